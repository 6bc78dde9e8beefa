//! Several serving threads in one worker (issue 8): one thread waits in epoll at a time, a
//! nudger wakes another when it is busy. Bursts of connections are all answered; slow
//! requests still run side by side. (Apart from tests/worker_balance.rs, whose counts a
//! concurrent burst would disturb.)

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Start one worker with `threads` serving threads on the suite app.
fn threaded(sb: &Sandbox, threads: &str) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file"])
        .arg(repo_root().join("tests/apps/suite.py"))
        .args([
            "--processes",
            "1",
            "--threads",
            threads,
            "--disable-logging",
        ]);
    let m = sb.spawn(cmd, "liege");
    wait_ready(&m, 1, T);
    (m, addr)
}

fn ok(addr: &str, path: &str) -> bool {
    let req = format!("GET {path} HTTP/1.0\r\n\r\n");
    raw_tcp(addr, req.as_bytes(), Duration::from_secs(20))
        .map(|r| r.starts_with(b"HTTP/1.1 200") || r.starts_with(b"HTTP/1.0 200"))
        .unwrap_or(false)
}

/// With several threads only one waits in epoll at a time (the others sleep until the nudger
/// wakes one): bursts of connections (64 at once, again and again) are all answered.
#[test]
fn bursts_of_connections_to_a_threaded_worker_are_all_answered() {
    let sb = Sandbox::new();
    let (_m, addr) = threaded(&sb, "4");
    for _ in 0..5 {
        let answered: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..64).map(|_| s.spawn(|| ok(&addr, "/thread"))).collect();
            hs.into_iter().map(|h| h.join().unwrap() as usize).sum()
        });
        assert_eq!(answered, 64);
    }
}

/// While the thread that took a request is busy in the app (here 400 ms of `time.sleep`),
/// another thread is woken to take the next one within a millisecond or so: four slow
/// requests at once still run side by side on four threads, on a fresh worker and right
/// after a run of quick requests.
#[test]
fn slow_requests_still_run_side_by_side_on_the_threads() {
    let sb = Sandbox::new();
    let (_m, addr) = threaded(&sb, "4");
    let wave = || {
        let t0 = std::time::Instant::now();
        let all = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| ok(&addr, "/sleep?0.4")))
                .collect();
            hs.into_iter().all(|h| h.join().unwrap())
        });
        assert!(all, "every slow request answered");
        t0.elapsed()
    };
    for _ in 0..3 {
        let took = wave();
        assert!(took < Duration::from_millis(700), "wave took {took:?}");
        for _ in 0..50 {
            assert!(ok(&addr, "/thread"));
        }
    }
}
