//! The uwsgi protocol on `socket` listeners (TCP and unix), bytes on the wire.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Addr, Listen, Worker};
use liege_testkit::{raw_tcp, raw_unix, repo_root, uwsgi_packet, Response, Sandbox};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

struct T {
    w: Worker,
    marks: PathBuf,
    _sb: Sandbox,
}

fn start(listen: Listen, f: impl FnOnce(&mut WorkerConfig)) -> T {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    f(&mut c);
    let marks = sb.path().join("marks");
    let w = spawn_worker(
        &sb,
        BIN,
        &[listen],
        &serde_json::to_string(&c).unwrap(),
        &[("CLOSE_LOG", marks.to_str().unwrap())],
    );
    w.wait_ready();
    T { w, marks, _sb: sb }
}

/// What nginx's stock uwsgi_params sends for `method uri`.
fn nginx_vars<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    uri: &'a str,
    cl: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", cl),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "10.1.2.3"),
        ("REMOTE_PORT", "54321"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "example.org"),
        ("HTTP_HOST", "example.org"),
        ("HTTP_USER_AGENT", "test"),
    ]
}

impl T {
    fn send(&self, pkt: &[u8]) -> Vec<u8> {
        match self.w.addr(0) {
            Addr::Tcp(a) => raw_tcp(a, pkt, Duration::from_secs(10)).unwrap(),
            Addr::Unix(p) => raw_unix(p, pkt, Duration::from_secs(10)).unwrap(),
        }
    }
    fn log(&self) -> String {
        self.w.proc.output()
    }
}

fn hello(listen: Listen) {
    let t = start(listen, |c| {
        c.app.wsgi_file = Some(repo_root().join("tests/apps/hello.py"))
    });
    let out = t.send(&uwsgi_packet(&nginx_vars("GET", "/", "", "/", ""), b""));
    // Raw HTTP, no Content-Length added, connection closed after the body.
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nHello World"
    );
    t.w.proc
        .wait_output(Duration::from_secs(5), "GET / => generated 11 bytes");
}

#[test]
fn hello_over_tcp() {
    hello(Listen::UwsgiTcp);
}

#[test]
fn hello_over_unix() {
    hello(Listen::UwsgiUnix);
}

#[test]
fn vars_become_the_environ_as_latin1_str() {
    let t = start(Listen::UwsgiUnix, |_| {});
    let mut vars = nginx_vars("GET", "/env", "a=1&b=%20", "/env?a=1&b=%20", "");
    vars.push(("HTTP_X_LATIN", "caf\u{e9}"));
    vars.push(("HTTP_X_FORWARDED_PROTO", "https"));
    // A peer cannot set the server's own keys.
    vars.push(("wsgi.url_scheme", "gopher"));
    vars.push(("wsgi.input", "nope"));
    let out = t.send(&uwsgi_packet(&vars, b""));
    let r = Response::parse(out).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(e["REQUEST_METHOD"], "GET");
    assert_eq!(e["CONTENT_TYPE"], "");
    assert_eq!(e["CONTENT_LENGTH"], "");
    assert_eq!(e["DOCUMENT_ROOT"], "/usr/share/nginx/html");
    assert_eq!(e["REMOTE_ADDR"], "10.1.2.3");
    assert_eq!(e["REMOTE_PORT"], "54321");
    assert_eq!(e["SERVER_NAME"], "example.org");
    assert_eq!(e["SCRIPT_NAME"], "");
    // The uwsgi_packet helper sends the UTF-8 bytes of "é": each byte is one latin-1 char.
    assert_eq!(e["HTTP_X_LATIN"], "caf\u{c3}\u{a9}");
    // X-Forwarded-Proto from an untrusted client address is not believed.
    assert_eq!(e["wsgi.url_scheme"], "http");
    assert_eq!(e["wsgi.input_terminated"], "True");
}

#[test]
fn scheme_from_https_var_and_trusted_proxies() {
    let t = start(Listen::UwsgiTcp, |c| {
        c.trusted_proxies = vec!["10.0.0.0/8".into()]
    });
    let mut vars = nginx_vars("GET", "/env", "", "/env", "");
    vars.push(("HTTPS", "on"));
    let r = Response::parse(t.send(&uwsgi_packet(&vars, b""))).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["wsgi.url_scheme"], "https");
    let mut vars = nginx_vars("GET", "/env", "", "/env", "");
    vars.push(("HTTP_X_FORWARDED_PROTO", "https"));
    let r = Response::parse(t.send(&uwsgi_packet(&vars, b""))).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        e["wsgi.url_scheme"], "https",
        "REMOTE_ADDR 10.1.2.3 is trusted"
    );
}

#[test]
fn body_is_framed_by_content_length() {
    let t = start(Listen::UwsgiTcp, |_| {});
    let pkt = uwsgi_packet(
        &nginx_vars("POST", "/echo", "", "/echo", "5"),
        b"helloEXTRA BYTES",
    );
    let r = Response::parse(t.send(&pkt)).unwrap();
    assert_eq!(r.text(), "hello");
    // Non-numeric CONTENT_LENGTH reads as its leading digits ("3x" = 3).
    let pkt = uwsgi_packet(&nginx_vars("POST", "/echo", "", "/echo", "3x"), b"abcdef");
    assert_eq!(Response::parse(t.send(&pkt)).unwrap().text(), "abc");
}

#[test]
fn large_body_is_streamed() {
    let t = start(Listen::UwsgiUnix, |_| {});
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let cl = body.len().to_string();
    let pkt = uwsgi_packet(&nginx_vars("POST", "/sha256", "", "/sha256", &cl), &body);
    let r = Response::parse(t.send(&pkt)).unwrap();
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let sum = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(
        r.text(),
        format!("{} {}", body.len(), sum.split(' ').next().unwrap())
    );
}

#[test]
fn oversized_var_block_is_refused_and_logged() {
    let t = start(Listen::UwsgiTcp, |_| {});
    let big = "v".repeat(5000);
    let mut vars = nginx_vars("GET", "/", "", "/", "");
    vars.push(("HTTP_X_BIG", &big));
    let out = t.send(&uwsgi_packet(&vars, b""));
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    t.w.proc
        .wait_output(Duration::from_secs(5), "invalid request block size");
    assert!(t.log().contains("(max 4096)"));
    // HTTP sent to a uwsgi socket: the famous 21573.
    let out = t.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(out.is_empty());
    t.w.proc
        .wait_output(Duration::from_secs(5), "invalid request block size: 21573");
    // With a bigger buffer-size the same packet is served.
    let t2 = start(Listen::UwsgiTcp, |c| c.buffer_size = 8192);
    let mut vars = nginx_vars("GET", "/", "", "/", "");
    vars.push(("HTTP_X_BIG", &big));
    let r = Response::parse(t2.send(&uwsgi_packet(&vars, b""))).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn peers_cannot_load_apps() {
    let t = start(Listen::UwsgiTcp, |_| {});
    for key in ["UWSGI_SCRIPT", "UWSGI_MODULE", "UWSGI_FILE"] {
        let target = if key == "UWSGI_FILE" {
            repo_root()
                .join("tests/apps/dynamic_target.py")
                .display()
                .to_string()
        } else {
            "dynamic_target".to_string()
        };
        let mut vars = nginx_vars("GET", "/dyn", "", "/dyn", "");
        vars.push(("SCRIPT_NAME", "/dyn"));
        vars.push((key, &target));
        let r = Response::parse(t.send(&uwsgi_packet(&vars, b""))).unwrap();
        // The configured app answers (404 from the suite), nothing was imported.
        assert_eq!(r.text(), "not found: /dyn");
    }
    let marks = std::fs::read_to_string(&t.marks).unwrap_or_default();
    assert!(!marks.contains("DYNAMIC APP LOADED"), "{marks}");
}

#[test]
fn unknown_modifier_is_dropped() {
    let t = start(Listen::UwsgiTcp, |_| {});
    let mut pkt = uwsgi_packet(&nginx_vars("GET", "/", "", "/", ""), b"");
    pkt[0] = 5;
    assert!(t.send(&pkt).is_empty());
    t.w.proc
        .wait_output(Duration::from_secs(5), "unavailable modifier requested: 5");
}

#[test]
fn file_wrapper_uses_sendfile() {
    let t = start(Listen::UwsgiUnix, |_| {});
    let path = repo_root().join("tests/apps/suite.py");
    let q = path.display().to_string();
    let out = t.send(&uwsgi_packet(
        &nginx_vars("GET", "/file", &q, "/file", ""),
        b"",
    ));
    let r = Response::parse(out).unwrap();
    assert_eq!(r.body, std::fs::read(&path).unwrap());
    t.w.proc
        .wait_output(Duration::from_secs(5), "via sendfile()");
}

#[test]
fn streamed_and_failing_responses() {
    let t = start(Listen::UwsgiTcp, |_| {});
    let r = Response::parse(t.send(&uwsgi_packet(
        &nginx_vars("GET", "/write", "", "/write", ""),
        b"",
    )))
    .unwrap();
    assert_eq!(r.text(), "written then returned");
    // Before start_response: a real 500 (uWSGI sent nothing).
    let r = Response::parse(t.send(&uwsgi_packet(
        &nginx_vars("GET", "/raise", "", "/raise", ""),
        b"",
    )))
    .unwrap();
    assert_eq!(r.status, 500);
    // HTTP/1.0 in SERVER_PROTOCOL is echoed in the status line.
    let mut vars = nginx_vars("GET", "/", "", "/", "");
    vars.retain(|(k, _)| *k != "SERVER_PROTOCOL");
    vars.push(("SERVER_PROTOCOL", "HTTP/1.0"));
    let out = t.send(&uwsgi_packet(&vars, b""));
    assert!(
        out.starts_with(b"HTTP/1.0 404 Not Found\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn limit_post_on_uwsgi() {
    let t = start(Listen::UwsgiTcp, |c| c.limit_post = 10);
    let pkt = uwsgi_packet(&nginx_vars("POST", "/echo", "", "/echo", "20"), &[b'a'; 20]);
    let r = Response::parse(t.send(&pkt)).unwrap();
    assert_eq!(r.status, 413);
}
