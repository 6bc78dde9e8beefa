//! The worker role driven directly (as a master would): HTTP/1.1 through hyper, bytes on the
//! wire.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, Response, Sandbox};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

fn config(app: &str, f: impl FnOnce(&mut WorkerConfig)) -> String {
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps").join(app));
    f(&mut c);
    serde_json::to_string(&c).unwrap()
}

fn start(sb: &Sandbox, app: &str, f: impl FnOnce(&mut WorkerConfig)) -> Worker {
    let w = spawn_worker(sb, BIN, &[Listen::HttpTcp], &config(app, f), &[]);
    w.wait_ready();
    w
}

fn req(w: &Worker, raw: &str) -> Response {
    let out = raw_tcp(w.addr(0).tcp(), raw.as_bytes(), Duration::from_secs(10)).unwrap();
    Response::parse(out.clone())
        .unwrap_or_else(|| panic!("unparsable response {:?}", String::from_utf8_lossy(&out)))
}

fn get(w: &Worker, path: &str) -> Response {
    req(
        w,
        &format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn hello_world() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |_| {});
    let r = get(&w, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello World");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("11"));
}
