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
