//! PEP 3333 behaviour of the worker, checked as bytes on the wire: start_response and
//! exc_info, write(), iterables and close(), str items, header injection, errors, wsgi.input,
//! file_wrapper, and the suite under wsgiref.validate.validator.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, wait_for, Response, Sandbox};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

// Field order matters: the worker (and its log) must drop before the sandbox directory.
struct T {
    w: Worker,
    marks: PathBuf,
    _sb: Sandbox,
}

fn start(app: &str) -> T {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps").join(app));
    let marks = sb.path().join("marks");
    let w = spawn_worker(
        &sb,
        BIN,
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        &[("CLOSE_LOG", marks.to_str().unwrap())],
    );
    w.wait_ready();
    T { _sb: sb, w, marks }
}

impl T {
    fn raw(&self, req: &[u8]) -> Vec<u8> {
        raw_tcp(self.w.addr(0).tcp(), req, Duration::from_secs(10)).unwrap()
    }
    fn get(&self, path: &str) -> Response {
        let raw = self
            .raw(format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes());
        Response::parse(raw.clone())
            .unwrap_or_else(|| panic!("bad response {:?}", String::from_utf8_lossy(&raw)))
    }
    fn post(&self, path: &str, body: &[u8], chunked: bool) -> Response {
        let mut req =
            format!("POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n").into_bytes();
        if chunked {
            req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for c in body.chunks(10_000) {
                req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                req.extend_from_slice(c);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
        } else {
            req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            req.extend_from_slice(body);
        }
        Response::parse(self.raw(&req)).expect("response")
    }
    fn marks(&self) -> String {
        std::fs::read_to_string(&self.marks).unwrap_or_default()
    }
    fn wait_mark(&self, m: &str) {
        wait_for(Duration::from_secs(10), m, || {
            self.marks().contains(m).then_some(())
        });
    }
    fn log(&self) -> String {
        self.w.proc.output()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn write_callable_then_iterable() {
    let t = start("suite.py");
    let r = t.get("/write");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "written then returned");
    // write() streams: chunked framing on HTTP/1.1.
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
}

#[test]
fn generator_body_streams_and_close_is_called() {
    let t = start("suite.py");
    let r = t.get("/gen");
    assert_eq!(r.text(), "abc");
    t.wait_mark("closed gen");
}

#[test]
fn start_response_from_inside_the_generator() {
    let t = start("suite.py");
    let r = t.get("/gen-late-start");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-late"), Some("yes"));
    assert_eq!(r.text(), "late");
}

#[test]
fn exception_before_start_response_is_a_500_with_traceback() {
    let t = start("suite.py");
    let r = t.get("/raise");
    assert_eq!(r.status, 500);
    let log = t.log();
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(
        log.contains("ValueError: app exploded before start_response"),
        "{log}"
    );
}

#[test]
fn exception_mid_body_cuts_the_response_and_closes() {
    let t = start("suite.py");
    let raw = t.raw(b"GET /raise-mid HTTP/1.1\r\nHost: h\r\n\r\n");
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("first-part "), "{text}");
    // The chunked body never gets its terminating zero-size chunk: the truncation is visible.
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    t.wait_mark("closed raise-mid");
    t.w.proc
        .wait_output(Duration::from_secs(10), "RuntimeError: boom mid-iteration");
}

#[test]
fn str_body_items_are_refused_with_a_logged_type_error() {
    let t = start("suite.py");
    let r = t.get("/str");
    assert_eq!(r.status, 500);
    assert!(
        t.log()
            .contains("TypeError: response body items must be bytes, not str"),
        "{}",
        t.log()
    );
    t.wait_mark("closed str");
}

#[test]
fn exc_info_before_headers_replaces_the_status() {
    let t = start("suite.py");
    let r = t.get("/exc-before");
    assert_eq!(r.status, 500);
    assert_eq!(r.status_line, "HTTP/1.1 500 Oops");
    assert_eq!(r.text(), "recovered");
}

#[test]
fn exc_info_after_headers_reraises() {
    let t = start("suite.py");
    let raw = t.raw(b"GET /exc-after HTTP/1.1\r\nHost: h\r\n\r\n");
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("partial"));
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    t.wait_mark("reraised KeyError");
    t.w.proc
        .wait_output(Duration::from_secs(10), "KeyError: 'late'");
}

#[test]
fn second_start_response_without_exc_info_raises() {
    let t = start("suite.py");
    assert_eq!(t.get("/twice").text(), "RuntimeError");
}

#[test]
fn header_injection_and_bad_status_are_refused() {
    let t = start("suite.py");
    let raw = t.raw(b"GET /inject HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
    assert!(!text.contains("evil"), "{text}");
    assert!(
        t.log().contains("invalid value for header x-bad"),
        "{}",
        t.log()
    );
    assert_eq!(t.get("/bad-status").status, 500);
    assert!(t.log().contains("invalid status \"20 OK\""), "{}", t.log());
}

#[test]
fn custom_reason_phrase_is_kept() {
    let t = start("suite.py");
    let r = t.get("/reason");
    assert_eq!(r.status_line, "HTTP/1.1 299 Custom Thing");
}

#[test]
fn missing_start_response_is_a_500() {
    let t = start("suite.py");
    assert_eq!(t.get("/nostart").status, 500);
    assert!(
        t.log().contains("did not call start_response"),
        "{}",
        t.log()
    );
}

#[test]
fn file_wrapper_sends_the_file_and_closes_it() {
    let t = start("suite.py");
    let path = repo_root().join("tests/apps/suite.py");
    let want = std::fs::read(&path).unwrap();
    let r = t.get(&format!("/file?{}", path.display()));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, want);
    let r = t.get("/filelike");
    assert_eq!(r.text(), "from a BytesIO");
}

#[test]
fn wsgi_input_read_readline_readlines_iteration() {
    let t = start("suite.py");
    let r = t.post("/lines", b"line one\nabcdef\nx\ny\n", false);
    assert_eq!(
        r.text(),
        "[b'line one\\n', b'abc', [b'def\\n', b'x\\n', b'y\\n']]"
    );
    let r = t.post("/iterlines", b"a\nb\nc", true);
    assert_eq!(r.text(), "[b'a\\n', b'b\\n', b'c']");
    let r = t.post("/echo", b"echo me", false);
    assert_eq!(r.text(), "echo me");
}

#[test]
fn large_bodies_stream_both_ways() {
    let t = start("suite.py");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let expect = format!("{} {}", body.len(), sha256_hex(&body));
    assert_eq!(t.post("/sha256", &body, false).text(), expect);
    assert_eq!(t.post("/sha256", &body, true).text(), expect);
    let r = t.get("/big?5000000");
    assert_eq!(r.body.len(), 5_000_000);
}

#[test]
fn close_is_called_when_the_client_disconnects() {
    let t = start("suite.py");
    let mut s = TcpStream::connect(t.w.addr(0).tcp()).unwrap();
    s.write_all(b"GET /close-disconnect HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    drop(s);
    t.wait_mark("closed disconnect");
}

/// The suite app wrapped in wsgiref.validate.validator: every route used must pass without
/// an AssertionError (PEP 3333 checks on both the server and the app side).
#[test]
fn validator_wrapped_app_passes() {
    let t = start("validated.py");
    let r = t.get("/write");
    assert_eq!(r.text(), "written then returned");
    let r = t.get("/gen");
    assert_eq!(r.text(), "abc");
    t.wait_mark("closed gen");
    assert_eq!(t.get("/gen-late-start").text(), "late");
    let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let expect = format!("{} {}", body.len(), sha256_hex(&body));
    assert_eq!(t.post("/sha256", &body, true).text(), expect);
    assert_eq!(t.post("/sha256", &body, false).text(), expect);
    let r = t.post("/lines", b"line one\nabcdef\nx\n", true);
    assert_eq!(r.status, 200);
    assert_eq!(
        t.post("/iterlines", b"a\nb", false).text(),
        "[b'a\\n', b'b']"
    );
    let r = t.get("/exc-before");
    assert_eq!(r.status_line, "HTTP/1.1 500 Oops");
    let raw = t.raw(b"GET /exc-after HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(String::from_utf8_lossy(&raw).contains("partial"));
    t.wait_mark("reraised KeyError");
    let path = repo_root().join("tests/apps/hello.py");
    let r = t.get(&format!("/file?{}", path.display()));
    assert_eq!(r.body, std::fs::read(&path).unwrap());
    assert_eq!(t.get("/filelike").text(), "from a BytesIO");
    let raw = t.raw(b"GET /raise-mid HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(String::from_utf8_lossy(&raw).contains("first-part"));
    t.wait_mark("closed raise-mid");
    let r = t.get("/env");
    assert_eq!(r.status, 200);
    let log = t.log();
    assert!(
        !log.contains("AssertionError"),
        "validator complained:\n{log}"
    );
    assert!(!log.contains("WSGIWarning"), "validator warned:\n{log}");
}
