//! The README's main command, `liege --emperor vassals.example`, on a copy of the bundled
//! vassals (with free ports instead of 8080/8082): every example app answers, through HTTP and
//! through the uwsgi socket, and a SIGTERM to the emperor stops everything gracefully.
//! This test signals its own process tree, so it lives alone in this file.

use liege_testkit::{
    children_of, http_get, pid_alive, raw_unix, repo_root, uwsgi_packet, wait_for, wait_http,
    Response, Sandbox,
};
use nix::sys::signal::Signal;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn emperor_runs_the_bundled_examples() {
    let sb = Sandbox::new();
    let vassals = sb.path().join("vassals");
    std::fs::create_dir_all(&vassals).expect("mkdir");
    let hello_port = liege_testkit::free_port();
    let admin_port = liege_testkit::free_port();
    for entry in std::fs::read_dir(repo_root().join("vassals.example")).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        if path.extension().is_some_and(|e| e == "sock") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        let text = text
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{hello_port}"))
            .replace("127.0.0.1:8082", &format!("127.0.0.1:{admin_port}"));
        std::fs::write(vassals.join(name), text).expect("write copy");
    }

    let mut cmd = sb.command(LIEGE);
    cmd.arg("--emperor").arg(&vassals);
    let mut emperor = sb.spawn(cmd, "emperor");

    // hello.ini: HTTP served by the workers.
    let hello_addr = format!("127.0.0.1:{hello_port}");
    let r = wait_http(&hello_addr, "/", 200, Duration::from_secs(20));
    assert_eq!(r.body, b"Hello World\n", "{}", emperor.output());

    // api.ini: the uwsgi protocol on a unix socket next to the file, as nginx would send it.
    let sock = vassals.join("api.sock");
    let get = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/items?x=1"),
            ("PATH_INFO", "/items"),
            ("QUERY_STRING", "x=1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "localhost"),
        ],
        b"",
    );
    let r = wait_for(Duration::from_secs(20), "api.sock answering", || {
        raw_unix(&sock, &get, Duration::from_secs(5))
            .ok()
            .and_then(Response::parse)
            .filter(|r| r.status == 200)
    });
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("api answers JSON");
    assert_eq!(json["path"], "/items");
    assert_eq!(json["query"], "x=1");
    assert_eq!(
        json["python"].as_str().map(|v| v.starts_with("3.11.")),
        Some(true)
    );

    let body = vec![b'x'; 100_000];
    let post = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/"),
            ("PATH_INFO", "/"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("CONTENT_LENGTH", "100000"),
            ("CONTENT_TYPE", "application/octet-stream"),
        ],
        &body,
    );
    let r = raw_unix(&sock, &post, Duration::from_secs(10))
        .ok()
        .and_then(Response::parse)
        .expect("POST answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(json["size"], 100_000);

    // admin.ini: `cheap` + `idle` (accepted; liege starts its worker at once for now).
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let r = wait_http(&admin_addr, "/", 200, Duration::from_secs(20));
    assert!(r.text().contains("<h1>admin</h1>"), "{}", r.text());

    // Graceful stop: the emperor exits 0, every vassal and worker is gone, the socket vacuumed.
    let mut tree = Vec::new();
    let mut frontier = vec![emperor.pid()];
    while let Some(p) = frontier.pop() {
        let kids = children_of(p);
        frontier.extend(&kids);
        tree.extend(kids);
    }
    assert!(
        tree.len() >= 3 + 4,
        "expected 3 masters and their workers, got {tree:?}"
    );
    emperor.signal(Signal::SIGTERM);
    let status = emperor
        .wait_timeout(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("emperor did not stop:\n{}", emperor.output()));
    assert_eq!(status.code(), Some(0), "{}", emperor.output());
    wait_for(Duration::from_secs(10), "every vassal process gone", || {
        tree.iter().all(|&p| !pid_alive(p)).then_some(())
    });
    assert!(http_get(&hello_addr, "/").is_none(), "hello still answers");
    assert!(!sock.exists(), "api.sock not vacuumed");
}
