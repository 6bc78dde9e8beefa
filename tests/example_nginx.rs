//! `vassals.example/nginx-api.conf` works as written: real nginx, with that server block (only
//! its port and socket path adapted) and Debian's `uwsgi_params`, in front of
//! `liege --ini vassals.example/api.ini` on its unix socket.

use liege_testkit::{
    free_port, http_get, raw_tcp, repo_root, wait_for, wait_http, Response, Sandbox,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

fn copy_example(name: &str, to: &Path) -> String {
    let text = std::fs::read_to_string(repo_root().join("vassals.example").join(name))
        .unwrap_or_else(|e| panic!("read {name}: {e}"));
    std::fs::write(to.join(name), &text).expect("write copy");
    text
}

#[test]
fn nginx_snippet_proxies_to_the_api_vassal() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is required (.ci/run installs it)");
    let sb = Sandbox::new();
    let app_dir = sb.path().join("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    copy_example("api.ini", &app_dir);
    copy_example("api.py", &app_dir);
    let sock = app_dir.join("api.sock");

    let mut cmd = sb.command(LIEGE);
    cmd.arg("--ini").arg(app_dir.join("api.ini"));
    let liege = sb.spawn(cmd, "liege");
    wait_for(Duration::from_secs(20), "api.sock", || {
        sock.exists().then_some(())
    });

    // nginx: the example server block with a free port and the sandbox's socket path.
    let port = free_port();
    let snippet = std::fs::read_to_string(repo_root().join("vassals.example/nginx-api.conf"))
        .expect("nginx-api.conf");
    assert!(snippet.contains("listen 127.0.0.1:8081;"), "{snippet}");
    assert!(
        snippet.contains("unix:/path/to/vassals.example/api.sock;"),
        "{snippet}"
    );
    let snippet = snippet
        .replace(
            "listen 127.0.0.1:8081;",
            &format!("listen 127.0.0.1:{port};"),
        )
        .replace(
            "unix:/path/to/vassals.example/api.sock;",
            &format!("unix:{};", sock.display()),
        );
    let conf_dir = sb.path().join("nginx");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("api.conf"), snippet).unwrap();
    std::fs::copy("/etc/nginx/uwsgi_params", conf_dir.join("uwsgi_params"))
        .expect("/etc/nginx/uwsgi_params (package nginx-common)");
    let d = conf_dir.display();
    // As root, nginx's workers would switch to nobody, who cannot reach the 0660 socket.
    let user = if nix::unistd::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let main_conf = format!(
        "{user}\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/api.conf;\n}}\n"
    );
    std::fs::write(conf_dir.join("nginx.conf"), main_conf).unwrap();
    let mut cmd = sb.command(nginx);
    cmd.arg("-p")
        .arg(&conf_dir)
        .arg("-c")
        .arg(conf_dir.join("nginx.conf"));
    let nginx = sb.spawn(cmd, "nginx");

    let addr = format!("127.0.0.1:{port}");
    let r = wait_http(&addr, "/items?x=1&y=%C3%A9", 200, Duration::from_secs(20));
    let json: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {}\nliege:\n{}", r.text(), liege.output()));
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/items");
    assert_eq!(json["query"], "x=1&y=%C3%A9");
    assert_eq!(json["remote_addr"], "127.0.0.1");
    assert_eq!(r.header("content-type"), Some("application/json"));

    // A 1 MiB POST through nginx's buffering, checked by size and SHA-256.
    let body: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let expected = Command::new(liege_testkit::PYTHON)
        .args([
            "-c",
            "import hashlib; print(hashlib.sha256(bytes(i % 251 for i in range(1048576))).hexdigest())",
        ])
        .output()
        .expect("python");
    let expected = String::from_utf8(expected.stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let raw = raw_tcp(&addr, &req, Duration::from_secs(20)).expect("POST through nginx");
    let r = Response::parse(raw).expect("HTTP response");
    assert_eq!(r.status, 200, "{}\nnginx:\n{}", r.text(), nginx.output());
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(json["size"], 1_048_576);
    assert_eq!(json["sha256"], expected.as_str());

    // Methods the app refuses come back as the app answered them.
    let r = raw_tcp(
        &addr,
        b"DELETE / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .ok()
    .and_then(Response::parse)
    .expect("DELETE answered");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    assert!(http_get(&addr, "/").is_some());
}
