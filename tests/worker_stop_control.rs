//! Stopping a worker through its control socket: `GracefulStop`, `Stop`, and EOF (the master
//! died or closed its end).

use liege_config::WorkerConfig;
use liege_protocol::control::{FromWorker, ToWorker};
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, wait_for, Response, Sandbox};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn start(sb: &Sandbox) -> (Worker, PathBuf) {
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    let marks = sb.path().join("marks");
    let w = spawn_worker(
        sb,
        env!("CARGO_BIN_EXE_liege"),
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        &[("CLOSE_LOG", marks.to_str().unwrap())],
    );
    let ready = w.wait_ready();
    assert_eq!(
        FromWorker::decode(ready.as_bytes()).unwrap(),
        FromWorker::Ready { pid: w.proc.pid() }
    );
    (w, marks)
}

fn in_flight(w: &Worker, marks: &PathBuf, secs: &str) -> std::thread::JoinHandle<Vec<u8>> {
    let addr = w.addr(0).tcp().to_string();
    let req = format!("GET /sleep?{secs} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let t = std::thread::spawn(move || {
        raw_tcp(&addr, req.as_bytes(), Duration::from_secs(15)).unwrap()
    });
    wait_for(
        Duration::from_secs(10),
        "the request to reach the app",
        || {
            std::fs::read_to_string(marks)
                .ok()
                .filter(|m| m.contains("sleep started"))
        },
    );
    t
}

#[test]
fn graceful_stop_message_finishes_in_flight() {
    let sb = Sandbox::new();
    let (mut w, marks) = start(&sb);
    let client = in_flight(&w, &marks, "1");
    w.send(&ToWorker::GracefulStop.encode());
    let r = Response::parse(client.join().unwrap()).expect("complete response");
    assert_eq!(r.text(), "slept");
    let st = w.proc.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(st.code(), Some(0), "{}", w.proc.output());
    // A last Stats message was sent before exiting.
    let mut saw_stats = false;
    while let Some(m) = w.recv(Duration::from_millis(200)) {
        if m.is_empty() {
            break;
        }
        if let Ok(FromWorker::Stats(s)) = FromWorker::decode(&m) {
            saw_stats = s.requests >= 1 || saw_stats;
        }
    }
    assert!(saw_stats, "no final stats with the request counted");
}

#[test]
fn stop_message_exits_at_once() {
    let sb = Sandbox::new();
    let (mut w, marks) = start(&sb);
    let client = in_flight(&w, &marks, "20");
    let t0 = Instant::now();
    w.send(&ToWorker::Stop.encode());
    let st = w.proc.wait_timeout(Duration::from_secs(5)).expect("exit");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(st.code(), Some(0));
    // The in-flight request was cut.
    let out = client.join().unwrap();
    assert!(Response::parse(out).is_none());
}

#[test]
fn control_eof_is_a_graceful_stop() {
    let sb = Sandbox::new();
    let (w, marks) = start(&sb);
    let client = in_flight(&w, &marks, "1");
    let Worker {
        mut proc, control, ..
    } = w;
    drop(control);
    let r = Response::parse(client.join().unwrap()).expect("complete response");
    assert_eq!(r.text(), "slept");
    let st = proc.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(st.code(), Some(0), "{}", proc.output());
    assert!(proc.output().contains("control socket EOF"));
}
