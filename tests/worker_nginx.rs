//! Real nginx in front of a worker: `include uwsgi_params; uwsgi_pass unix:…;`.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen};
use liege_testkit::{free_port, raw_tcp, repo_root, tcp_listening, wait_for, Response, Sandbox};
use std::io::Write;
use std::time::Duration;

fn nginx_bin() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn nginx_uwsgi_pass_get_post_query_headers() {
    let Some(nginx) = nginx_bin() else {
        // .ci/run installs nginx; outside CI say clearly why nothing was checked.
        panic!("nginx is not installed (apt-get install -y nginx)");
    };
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    let w = spawn_worker(
        &sb,
        env!("CARGO_BIN_EXE_liege"),
        &[Listen::UwsgiUnix],
        &serde_json::to_string(&c).unwrap(),
        &[],
    );
    w.wait_ready();
    let sock = w.addr(0).unix().to_path_buf();

    let port = free_port();
    let dir = sb.path().join("nginx");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let conf = format!(
        r#"
daemon off;
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 8m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:{sock};
        }}
    }}
}}
"#,
        d = dir.display(),
        sock = sock.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = sb.command(nginx);
    cmd.arg("-p").arg(&dir).arg("-c").arg(&conf_path);
    let _nginx = sb.spawn(cmd, "nginx");
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(10), "nginx listening", || {
        tcp_listening(&addr).then_some(())
    });

    // GET with a query string and a custom header.
    let raw = raw_tcp(
        &addr,
        b"GET /env?a=1&b=two%20words HTTP/1.1\r\nHost: example.test\r\nX-Custom-Thing: hello there\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .unwrap();
    let r = Response::parse(raw).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["REQUEST_METHOD"], "GET");
    assert_eq!(e["PATH_INFO"], "/env");
    assert_eq!(e["QUERY_STRING"], "a=1&b=two%20words");
    assert_eq!(e["REQUEST_URI"], "/env?a=1&b=two%20words");
    assert_eq!(e["HTTP_X_CUSTOM_THING"], "hello there");
    assert_eq!(e["HTTP_HOST"], "example.test");
    assert_eq!(e["SERVER_PORT"], port.to_string());
    assert_eq!(e["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(e["CONTENT_LENGTH"], "");
    assert_eq!(e["wsgi.url_scheme"], "http");

    // POST of 1 MiB: the app checksums what it read.
    let body: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut req = format!(
        "POST /sha256 HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = Response::parse(raw_tcp(&addr, &req, Duration::from_secs(20)).unwrap()).unwrap();
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let sum = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        format!("1048576 {}", sum.split(' ').next().unwrap())
    );

    // A streamed response (write() + iterable) arrives whole through nginx.
    let raw = raw_tcp(
        &addr,
        b"GET /write HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        Response::parse(raw).unwrap().text(),
        "written then returned"
    );
}
