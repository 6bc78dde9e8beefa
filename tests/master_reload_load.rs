//! Reload under load: a bounded client (fresh connections and keep-alive, several threads)
//! runs while the master gets 10 graceful reloads, then 3 reloads whose app fails to import.
//! No request may fail (connection error, reset, 5xx), and the old code keeps answering
//! during the broken reloads.
//!
//! On a reused keep-alive connection, a close before any response byte is the ordinary
//! keep-alive race (RFC 9112 §9.3.1): like any HTTP client, the request is retried once on a
//! fresh connection. Those retries are counted and reported, and bounded.

use liege_testkit::master::*;
use liege_testkit::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    keepalive_retries: AtomicU64,
    errors: Mutex<Vec<String>>,
    worst_ms: AtomicU64,
}

impl Counters {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut v = self.errors.lock().unwrap();
        if v.len() < 20 {
            v.push(e);
        }
    }
}

/// Read one response (Content-Length framed). Err(true) = closed before any byte.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(u16, String, bool), (bool, String)> {
    let mut status_line = String::new();
    match r.read_line(&mut status_line) {
        Ok(0) => return Err((true, "closed before the response".into())),
        Ok(_) => {}
        Err(e) => {
            let early = e.kind() == std::io::ErrorKind::ConnectionReset;
            return Err((early, format!("reading status: {e}")));
        }
    }
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or((false, format!("bad status line {status_line:?}")))?;
    let mut len = None;
    let mut close = false;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)
            .map_err(|e| (false, format!("headers: {e}")))?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
            if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let len = len.ok_or((false, "no content-length".to_string()))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(|e| (false, format!("body: {e}")))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned(), close))
}

fn check(c: &Counters, status: u16, body: &str, t: Instant) {
    c.worst_ms
        .fetch_max(t.elapsed().as_millis() as u64, Ordering::SeqCst);
    if status == 200 && body.starts_with('v') {
        c.ok.fetch_add(1, Ordering::SeqCst);
    } else {
        c.fail(format!("{status} {body:?}"));
    }
}

fn fresh_client(addr: String, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let res = (|| {
            let s = TcpStream::connect(&addr).map_err(|e| (false, format!("connect: {e}")))?;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            (&s).write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .map_err(|e| (false, format!("write: {e}")))?;
            read_response(&mut BufReader::new(s))
        })();
        match res {
            Ok((st, body, _)) => check(&c, st, &body, t),
            Err((_, e)) => c.fail(format!("fresh: {e}")),
        }
    }
}

fn keepalive_client(addr: String, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let reused = conn.is_some();
        if conn.is_none() {
            match TcpStream::connect(&addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    conn = Some(BufReader::new(s));
                }
                Err(e) => {
                    c.fail(format!("keep-alive connect: {e}"));
                    continue;
                }
            }
        }
        let r = conn.as_mut().unwrap();
        let res = r
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .map_err(|e| (true, format!("write: {e}")))
            .and_then(|()| read_response(r));
        match res {
            Ok((st, body, close)) => {
                check(&c, st, &body, t);
                if close {
                    conn = None;
                }
            }
            Err((early, e)) => {
                conn = None;
                if reused && early {
                    c.keepalive_retries.fetch_add(1, Ordering::SeqCst);
                } else {
                    c.fail(format!("keep-alive: {e}"));
                }
            }
        }
    }
}

#[test]
fn reloads_under_load_fail_no_request() {
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

    let stop = Arc::new(AtomicBool::new(false));
    let c = Arc::new(Counters::default());
    let mut threads = Vec::new();
    for i in 0..4 {
        let (a, s, c) = (addr.clone(), stop.clone(), c.clone());
        threads.push(std::thread::spawn(move || {
            if i % 2 == 0 {
                fresh_client(a, s, c)
            } else {
                keepalive_client(a, s, c)
            }
        }));
    }
    let started = Instant::now();
    // 10 graceful reloads with new code.
    for i in 1..=10 {
        let v = format!("v{}", i + 1);
        write_app(&sb, &v);
        m.signal(nix::sys::signal::Signal::SIGHUP);
        wait_for(T, &format!("reload {i} done"), || {
            (count_in_output(&m, "reload done") >= i).then_some(())
        });
        wait_version(&addr, &v, T);
    }
    // 3 reloads whose app fails to import: v11 keeps answering.
    break_app(&sb);
    for i in 1..=3 {
        m.signal(nix::sys::signal::Signal::SIGHUP);
        wait_for(T, &format!("broken reload {i} rejected"), || {
            (count_in_output(&m, "reload failed") >= i).then_some(())
        });
        assert!(body(&addr, "/").unwrap().starts_with("v11 "));
    }
    // Keep the load on for at least ~20 s in total.
    while started.elapsed() < Duration::from_secs(20) {
        assert!(body(&addr, "/").unwrap().starts_with("v11 "));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let ok = c.ok.load(Ordering::SeqCst);
    let failed = c.failed.load(Ordering::SeqCst);
    let retries = c.keepalive_retries.load(Ordering::SeqCst);
    eprintln!(
        "reload under load: {ok} ok, {failed} failed, {retries} keep-alive retries, worst {} ms, {:?}",
        c.worst_ms.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert_eq!(failed, 0, "failures: {:?}", c.errors.lock().unwrap());
    assert!(ok > 200, "only {ok} requests in {:?}", started.elapsed());
    assert!(retries <= ok / 10, "{retries} keep-alive retries");
}
