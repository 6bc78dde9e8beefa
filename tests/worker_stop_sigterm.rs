//! SIGTERM (and SIGHUP) to a worker: stop accepting, finish the request in flight, exit 0;
//! SIGUSR1/SIGUSR2 do not kill it.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen};
use liege_testkit::{raw_tcp, repo_root, wait_for, Response, Sandbox};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn sigterm_finishes_in_flight_request_then_exits_0() {
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
    let ready = w.wait_ready();
    assert!(
        ready.contains(&format!("\"pid\":{}", w.proc.pid())),
        "{ready}"
    );
    let addr = w.addr(0).tcp().to_string();
    let client = std::thread::spawn(move || {
        raw_tcp(
            &addr,
            b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        )
        .unwrap()
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
    w.proc.signal(Signal::SIGTERM);
    let out = client.join().unwrap();
    let r = Response::parse(out).expect("a complete response to the in-flight request");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slept");
    let st = w
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("worker exits");
    assert_eq!(st.code(), Some(0), "output:\n{}", w.proc.output());
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(w.proc.output().contains("graceful stop (SIGTERM)"));
}

#[test]
fn sigusr_signals_are_survived_and_sighup_is_graceful() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.wsgi_file = Some(repo_root().join("tests/apps/hello.py"));
    let mut w = spawn_worker(
        &sb,
        env!("CARGO_BIN_EXE_liege"),
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        &[],
    );
    w.wait_ready();
    w.proc.signal(Signal::SIGUSR1);
    w.proc.signal(Signal::SIGUSR2);
    w.proc
        .wait_output(Duration::from_secs(5), "SIGUSR2 ignored");
    let r = liege_testkit::http_get(w.addr(0).tcp(), "/").expect("still serving");
    assert_eq!(r.text(), "Hello World");
    w.proc.signal(Signal::SIGHUP);
    let st = w.proc.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(st.code(), Some(0));
    assert!(w.proc.output().contains("graceful stop (SIGHUP)"));
}
