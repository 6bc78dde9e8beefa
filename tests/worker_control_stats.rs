//! What a worker reports on its control socket: Stats after traffic, Busy for a request that
//! runs for a while, then Idle.

use liege_config::WorkerConfig;
use liege_protocol::control::FromWorker;
use liege_testkit::worker::{spawn_worker, Listen};
use liege_testkit::{raw_tcp, repo_root, Response, Sandbox};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn stats_busy_idle() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    let w = spawn_worker(
        &sb,
        env!("CARGO_BIN_EXE_liege"),
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        &[],
    );
    w.wait_ready();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let addr = w.addr(0).tcp().to_string();
    let client = std::thread::spawn(move || {
        raw_tcp(
            &addr,
            b"GET /sleep?2.5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        )
        .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut busy, mut idle, mut stats) = (None, false, None);
    while Instant::now() < deadline && !(idle && stats.is_some()) {
        let Some(m) = w.recv(Duration::from_millis(500)) else {
            continue;
        };
        assert!(!m.is_empty(), "unexpected EOF");
        match FromWorker::decode(&m).unwrap() {
            FromWorker::Busy { since_unix_ms } => busy = Some(since_unix_ms),
            FromWorker::Idle => {
                assert!(busy.is_some(), "Idle before Busy");
                idle = true;
            }
            FromWorker::Stats(s) if s.requests >= 1 => stats = Some(s),
            _ => {}
        }
    }
    assert_eq!(
        Response::parse(client.join().unwrap()).unwrap().text(),
        "slept"
    );
    let since = busy.expect("a Busy message while the request ran");
    assert!(
        since >= before && since < before + 5000,
        "since={since} before={before}"
    );
    assert!(idle, "an Idle message after the request");
    let s = stats.expect("stats counting the request");
    assert_eq!(s.requests, 1);
    assert!(s.running_time >= 2_500_000, "{s:?}");
    assert!(s.tx >= 5);
    assert!(s.rss > 1_000_000, "{s:?}");
}
