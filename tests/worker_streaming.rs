//! Streaming responses (issue 8, point 3): a generator's items, and the bytes given to
//! `start_response`'s `write()`, go to the client as the app produces them, over HTTP
//! (keep-alive, `Connection: close`, HTTP/1.0 as nginx's `proxy_pass` sends it) and over the
//! uwsgi protocol (the packet nginx's `uwsgi_pass` sends). uWSGI sends each chunk at once;
//! Server-Sent Events and long polling depend on it.
//!
//! The app (tests/apps/streaming.py) sends `data: first\n\n`, sleeps 1.5 s, then sends
//! `second`. Each test times, with a real socket, when each chunk arrives after the request
//! was written: the first within 700 ms, the second not before 1.2 s.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Addr, Listen, Worker};
use liege_testkit::{dechunk, repo_root, uwsgi_packet, Sandbox};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_liege");

const FIRST: &[u8] = b"data: first\n\n";
const SECOND: &[u8] = b"second";
/// The first chunk must arrive this soon after the request (the app sends it at once).
const FIRST_WITHIN: Duration = Duration::from_millis(700);
/// The second chunk cannot arrive before this (the app sleeps 1.5 s before sending it).
const SECOND_NOT_BEFORE: Duration = Duration::from_millis(1200);
/// Give up on a response after this long.
const DEADLINE: Duration = Duration::from_secs(8);

fn start(sb: &Sandbox, listen: Listen, threads: u32) -> Worker {
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/streaming.py"));
    c.threads = threads;
    let w = spawn_worker(sb, BIN, &[listen], &serde_json::to_string(&c).unwrap(), &[]);
    w.wait_ready();
    w
}

/// Either kind of client socket.
trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn connect(addr: &Addr) -> Box<dyn Conn> {
    match addr {
        Addr::Tcp(a) => {
            let s = TcpStream::connect(a).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            Box::new(s)
        }
        Addr::Unix(p) => {
            let s = UnixStream::connect(p).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            Box::new(s)
        }
    }
}

/// What came back and when.
struct Arrivals {
    bytes: Vec<u8>,
    /// (time since the request was written, bytes received) for every read.
    reads: Vec<(Duration, usize)>,
    first: Option<Duration>,
    second: Option<Duration>,
    eof: bool,
}

impl Arrivals {
    fn timeline(&self) -> String {
        let reads: Vec<String> = self
            .reads
            .iter()
            .map(|(t, n)| format!("{n} B at {} ms", t.as_millis()))
            .collect();
        format!(
            "reads: [{}]; received {:?}",
            reads.join(", "),
            String::from_utf8_lossy(&self.bytes)
        )
    }

    /// The assertion of every test: the first chunk early, the second after the pause.
    fn assert_streamed(&self, what: &str) {
        let first = self.first.unwrap_or_else(|| {
            panic!("{what}: the first chunk never arrived; {}", self.timeline())
        });
        let second = self.second.unwrap_or_else(|| {
            panic!(
                "{what}: the second chunk never arrived; {}",
                self.timeline()
            )
        });
        assert!(
            first < FIRST_WITHIN,
            "{what}: the first chunk arrived {} ms after the request (want < {} ms), \
             the second at {} ms: held back instead of sent as the app produced it; {}",
            first.as_millis(),
            FIRST_WITHIN.as_millis(),
            second.as_millis(),
            self.timeline()
        );
        assert!(
            second >= SECOND_NOT_BEFORE,
            "{what}: the second chunk arrived {} ms after the request, before the app's \
             1.5 s pause could have ended; {}",
            second.as_millis(),
            self.timeline()
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Write `request`, then read until `done(bytes)` holds, EOF, or [`DEADLINE`], noting when
/// each chunk of the app first shows in the bytes received.
fn exchange(s: &mut dyn Conn, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Arrivals {
    s.write_all(request).unwrap();
    let t0 = Instant::now();
    let mut a = Arrivals {
        bytes: Vec::new(),
        reads: Vec::new(),
        first: None,
        second: None,
        eof: false,
    };
    let mut buf = [0u8; 4096];
    while t0.elapsed() < DEADLINE && !done(&a.bytes) {
        match s.read(&mut buf) {
            Ok(0) => {
                a.eof = true;
                break;
            }
            Ok(n) => {
                let t = t0.elapsed();
                a.reads.push((t, n));
                a.bytes.extend_from_slice(&buf[..n]);
                if a.first.is_none() && find(&a.bytes, FIRST) {
                    a.first = Some(t);
                }
                if a.second.is_none() && find(&a.bytes, SECOND) {
                    a.second = Some(t);
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}; {}", a.timeline()),
        }
    }
    a
}

/// Split a response into its head (status line and headers) and body.
fn split(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[end + 4..],
    )
}

fn expected_body() -> Vec<u8> {
    [FIRST, SECOND].concat()
}

/// HTTP/1.1 keep-alive: the response is chunked, each chunk sent as produced; afterwards the
/// same connection still serves a request.
fn http11_keep_alive(path: &str, threads: u32) {
    let sb = Sandbox::new();
    let w = start(&sb, Listen::HttpTcp, threads);
    let mut s = connect(w.addr(0));
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nAccept: text/event-stream\r\n\r\n");
    let a = exchange(&mut *s, req.as_bytes(), |b| b.ends_with(b"\r\n0\r\n\r\n"));
    let what = format!("HTTP/1.1 keep-alive {path} (threads {threads})");
    a.assert_streamed(&what);
    let (head, body) = split(&a.bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{what}: {head}"
    );
    assert_eq!(
        dechunk(body).as_deref(),
        Some(&expected_body()[..]),
        "{what}"
    );
    // The connection outlives the streamed response.
    let b = exchange(
        &mut *s,
        b"GET /ping HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        |b| b.ends_with(b"pong"),
    );
    assert!(
        b.bytes.starts_with(b"HTTP/1.1 200 OK\r\n") && b.bytes.ends_with(b"pong"),
        "{what}: the next request on the connection: {}",
        b.timeline()
    );
}

/// A request that is the connection's only one: read until the server closes.
fn one_shot(listen: Listen, threads: u32, request: &[u8], what: &str) -> Arrivals {
    let sb = Sandbox::new();
    let w = start(&sb, listen, threads);
    let mut s = connect(w.addr(0));
    let a = exchange(&mut *s, request, |_| false);
    a.assert_streamed(what);
    assert!(a.eof, "{what}: the server did not close; {}", a.timeline());
    a
}

/// HTTP/1.1 with `Connection: close`: chunked or close-delimited, the body is the two chunks.
fn http11_close(path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    let what = format!("HTTP/1.1 Connection: close {path}");
    let a = one_shot(Listen::HttpTcp, 1, req.as_bytes(), &what);
    let (head, body) = split(&a.bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {head}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body).unwrap_or_else(|| panic!("{what}: bad chunked body {body:?}"))
    } else {
        body.to_vec()
    };
    assert_eq!(body, expected_body(), "{what}");
}

/// HTTP/1.0 as nginx's `proxy_pass` sends it: a close-delimited body, no chunked framing.
fn http10(path: &str) {
    let req = format!("GET {path} HTTP/1.0\r\nHost: upstream\r\nConnection: close\r\n\r\n");
    let what = format!("HTTP/1.0 {path}");
    let a = one_shot(Listen::HttpTcp, 1, req.as_bytes(), &what);
    let (head, body) = split(&a.bytes);
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{what}: {head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{what}: {head}"
    );
    assert_eq!(body, &expected_body()[..], "{what}");
}

/// What nginx's stock `uwsgi_params` sends for `GET path`.
fn nginx_packet(path: &str) -> Vec<u8> {
    uwsgi_packet(
        &[
            ("QUERY_STRING", ""),
            ("REQUEST_METHOD", "GET"),
            ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", ""),
            ("REQUEST_URI", path),
            ("PATH_INFO", path),
            ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "54321"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", "example.org"),
            ("HTTP_HOST", "example.org"),
            ("HTTP_ACCEPT", "text/event-stream"),
        ],
        b"",
    )
}

/// The uwsgi protocol on a unix socket (nginx's `uwsgi_pass unix:…`): raw HTTP back, the
/// body close-delimited.
fn uwsgi(path: &str, threads: u32) {
    let what = format!("uwsgi protocol {path} (threads {threads})");
    let a = one_shot(Listen::UwsgiUnix, threads, &nginx_packet(path), &what);
    let (head, body) = split(&a.bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {head}");
    assert_eq!(body, &expected_body()[..], "{what}");
}

#[test]
fn generator_streams_over_http11_keep_alive() {
    http11_keep_alive("/gen", 1);
}

#[test]
fn generator_streams_over_http11_connection_close() {
    http11_close("/gen");
}

#[test]
fn generator_streams_over_http10() {
    http10("/gen");
}

#[test]
fn generator_streams_over_uwsgi_unix() {
    uwsgi("/gen", 1);
}

#[test]
fn write_callable_streams_over_http11_keep_alive() {
    http11_keep_alive("/write", 1);
}

#[test]
fn write_callable_streams_over_http11_connection_close() {
    http11_close("/write");
}

#[test]
fn write_callable_streams_over_http10() {
    http10("/write");
}

#[test]
fn write_callable_streams_over_uwsgi_unix() {
    uwsgi("/write", 1);
}

#[test]
fn generator_streams_over_http11_keep_alive_with_4_threads() {
    http11_keep_alive("/gen", 4);
}

#[test]
fn generator_streams_over_uwsgi_unix_with_4_threads() {
    uwsgi("/gen", 4);
}
