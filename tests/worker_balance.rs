//! New connections are shared between the workers of an app (the scoreboard): a burst of
//! keep-alive connections does not all land on whichever worker happened to be on a CPU.

use liege_testkit::master::*;
use liege_testkit::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// One request on an open keep-alive connection; returns the body.
fn get(s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

#[test]
fn a_burst_of_keep_alive_connections_is_shared_by_both_workers() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "2",
    ]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    wait_ready(&m, 2, T);
    // Open 32 connections at once (they stay open, as wrk's do), then ask each which
    // worker holds it.
    let mut conns: Vec<TcpStream> = (0..32)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let mut per_pid: BTreeMap<String, usize> = BTreeMap::new();
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = get(c, "/");
        let pid = body.split("pid=").nth(1).unwrap_or("?").trim().to_string();
        *per_pid.entry(pid).or_default() += 1;
    }
    assert_eq!(
        per_pid.len(),
        2,
        "both workers hold connections: {per_pid:?}"
    );
    assert!(
        per_pid.values().all(|&n| n >= 8),
        "neither worker holds fewer than a quarter of the connections: {per_pid:?}"
    );
}

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
