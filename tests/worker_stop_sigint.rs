//! SIGINT and SIGQUIT stop a worker at once, even with a request in the app.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen};
use liege_testkit::{raw_tcp, repo_root, wait_for, Sandbox};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn stops_at_once(sig: Signal) {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    let marks = sb.path().join("marks");
    let mut w = spawn_worker(
        &sb,
        env!("CARGO_BIN_EXE_liege"),
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        &[("CLOSE_LOG", marks.to_str().unwrap())],
    );
    w.wait_ready();
    let addr = w.addr(0).tcp().to_string();
    let _client = std::thread::spawn(move || {
        raw_tcp(
            &addr,
            b"GET /sleep?20 HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(25),
        )
    });
    wait_for(
        Duration::from_secs(10),
        "the request to reach the app",
        || {
            std::fs::read_to_string(&marks)
                .ok()
                .filter(|m| m.contains("sleep started"))
        },
    );
    let t0 = Instant::now();
    w.proc.signal(sig);
    let st = w.proc.wait_timeout(Duration::from_secs(5)).expect("exit");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "{sig} took {:?}",
        t0.elapsed()
    );
    assert_eq!(st.code(), Some(0));
}

#[test]
fn sigint_stops_at_once() {
    stops_at_once(Signal::SIGINT);
}

#[test]
fn sigquit_stops_at_once() {
    stops_at_once(Signal::SIGQUIT);
}
