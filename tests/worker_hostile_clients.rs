//! Hostile HTTP and uwsgi clients against a real worker: trickled heads and bodies have a
//! deadline for the whole, stalled bodies never hold the Python threads, heads that could
//! be read two ways are refused, and a uwsgi peer cannot inject into the status line.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, uwsgi_packet, Response, Sandbox};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_liege");

fn start(sb: &Sandbox, listen: Listen, f: impl FnOnce(&mut WorkerConfig)) -> Worker {
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    f(&mut c);
    let w = spawn_worker(sb, BIN, &[listen], &serde_json::to_string(&c).unwrap(), &[]);
    w.wait_ready();
    w
}

fn req(w: &Worker, raw: &[u8]) -> Response {
    let out = raw_tcp(w.addr(0).tcp(), raw, Duration::from_secs(10)).unwrap();
    Response::parse(out.clone())
        .unwrap_or_else(|| panic!("unparsable response {:?}", String::from_utf8_lossy(&out)))
}

/// Read until EOF or `limit`; returns what came and when the connection closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (out, Some(t0.elapsed())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (out, Some(t0.elapsed())),
        }
    }
    (out, None)
}

#[test]
fn a_trickled_uwsgi_packet_is_cut_at_socket_timeout() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::UwsgiTcp, |c| {
        c.socket_timeout = Duration::from_secs(2)
    });
    let pkt = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/"),
            ("REQUEST_URI", "/"),
        ],
        b"",
    );
    let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let t0 = Instant::now();
    // One byte every 400 ms: each read is well within socket-timeout, the whole is not.
    let mut closed = None;
    for b in &pkt[..pkt.len() - 1] {
        if s.write_all(&[*b]).is_err() {
            closed = Some(t0.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = Some(t0.elapsed());
                break;
            }
            Ok(_) => panic!("an answer to half a packet"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = Some(t0.elapsed());
                break;
            }
        }
    }
    let closed = closed.expect("the trickling connection was never closed");
    assert!(
        closed >= Duration::from_millis(1800) && closed < Duration::from_millis(3500),
        "closed after {closed:?} (socket-timeout 2 s for the whole head)"
    );
}

#[test]
fn a_slow_http_head_gets_408_at_socket_timeout() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |c| {
        c.socket_timeout = Duration::from_secs(2)
    });
    let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap();
    let (out, closed) = read_until_closed(&mut s, Duration::from_secs(8));
    let closed = closed.expect("the connection was not closed within 8 s");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        closed < Duration::from_millis(3500),
        "closed after {closed:?}"
    );
}

#[test]
fn stalled_bodies_do_not_hold_the_python_threads() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |c| {
        c.threads = 2;
        c.socket_timeout = Duration::from_secs(3);
    });
    // Two clients declare 99,000 bytes, send 70,000 and stall.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 99000\r\n\r\n")
            .unwrap();
        s.write_all(&vec![b'x'; 70_000]).unwrap();
        stalled.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    // A normal request is answered at once: no Python thread waits for the stalled bodies.
    let t0 = Instant::now();
    let r = req(
        &w,
        b"GET /thread HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // The stalled ones get a 408 at socket-timeout and are closed.
    for mut s in stalled {
        let (out, closed) = read_until_closed(&mut s, Duration::from_secs(8));
        assert!(closed.is_some(), "a stalled connection is still open");
        assert!(
            String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408 "),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn a_trickled_large_body_cannot_hold_a_thread_for_long() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |c| {
        c.threads = 1;
        c.socket_timeout = Duration::from_secs(2);
    });
    // Larger than the pre-read (1 MiB): the app reads the rest itself, at the client's pace.
    let total = 1_200_000usize;
    let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
    s.write_all(
        format!("POST /sha256 HTTP/1.1\r\nHost: h\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s.write_all(&vec![b'y'; 1_100_000]).unwrap();
    let t0 = Instant::now();
    // Then 100 bytes every 500 ms: each read is within socket-timeout, the rate is not.
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < Duration::from_secs(20) {
        if s.write_all(&[b'y'; 100]).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if !out.is_empty() {
            break;
        }
    }
    let held = t0.elapsed();
    // socket-timeout of grace plus the 1.1 MB already received at 1 KiB/s would be ~1000 s:
    // the rate is counted from when the app started reading, so the grace is what counts.
    assert!(held < Duration::from_secs(8), "held for {held:?}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
}

#[test]
fn ambiguous_or_malformed_heads_are_refused() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |_| {});
    let cases: &[(&[u8], u16)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", 400),
        (b"GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"-bl / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 9\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
    ];
    for (raw, status) in cases {
        let r = req(&w, raw);
        assert_eq!(
            r.status,
            *status,
            "{:?} -> {}",
            String::from_utf8_lossy(raw),
            r.status
        );
    }
    // OPTIONS * and absolute-form targets are fine.
    let r = req(
        &w,
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_ne!(r.status, 400);
    let r = req(
        &w,
        b"GET http://example.com/env HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn headers_with_underscores_are_dropped_unless_kept() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |_| {});
    let raw = b"GET /env HTTP/1.1\r\nHost: h\r\nX_Remote_User: admin\r\nConnection: close\r\n\r\n";
    let env: serde_json::Value = serde_json::from_slice(&req(&w, raw).body).unwrap();
    assert!(env.get("HTTP_X_REMOTE_USER").is_none(), "{env}");
    let sb2 = Sandbox::new();
    let w2 = start(&sb2, Listen::HttpTcp, |c| c.keep_underscore_headers = true);
    let env: serde_json::Value = serde_json::from_slice(&req(&w2, raw).body).unwrap();
    assert_eq!(env["HTTP_X_REMOTE_USER"], "admin");
}

#[test]
fn a_chunked_body_over_limit_post_is_413() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |c| c.limit_post = 2_000_000);
    let mut raw = b"POST /sha256 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'z'; 65536];
    for _ in 0..48 {
        raw.extend_from_slice(b"10000\r\n");
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(req(&w, &raw).status, 413);
}

#[test]
fn a_uwsgi_peer_cannot_inject_into_the_status_line() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::UwsgiTcp, |_| {});
    let pkt = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/echo"),
            ("REQUEST_URI", "/echo"),
            ("SERVER_PROTOCOL", "HTTP/1.1\r\nX-Injected: 1"),
            ("CONTENT_LENGTH", "5"),
            ("CONTENT_LENGTH", "3"),
        ],
        b"abcde",
    );
    let out = raw_tcp(w.addr(0).tcp(), &pkt, Duration::from_secs(10)).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.contains("X-Injected"), "{text}");
    // CONTENT_LENGTH sent twice means its last value, for the body too.
    assert!(text.ends_with("\r\n\r\nabc"), "{text}");
}

#[test]
fn a_worker_stops_accepting_at_worker_max_connections() {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, |c| c.max_connections = 2);
    // Two clients that never finish their heads hold the worker's two connections.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
        s.write_all(b"GET /thread HTTP/1.1\r\nHost: h\r\n").unwrap();
        idle.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    // A third waits in the kernel's backlog: no answer while the two are open...
    let mut third = TcpStream::connect(w.addr(0).tcp()).unwrap();
    third
        .write_all(b"GET /thread HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(
        matches!(third.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "answered above worker-max-connections"
    );
    assert!(w
        .proc
        .output()
        .contains("worker-max-connections (2) reached"));
    // ...and is served as soon as one of them goes away.
    drop(idle.pop());
    let t0 = Instant::now();
    let (out, _) = read_until_closed(&mut third, Duration::from_secs(5));
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}
