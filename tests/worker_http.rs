//! The worker role driven directly (as a master would): HTTP/1.1, bytes on the wire.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, Response, Sandbox};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

fn config(app: &str, f: impl FnOnce(&mut WorkerConfig)) -> String {
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps").join(app));
    f(&mut c);
    serde_json::to_string(&c).unwrap()
}

fn start(sb: &Sandbox, app: &str, f: impl FnOnce(&mut WorkerConfig)) -> Worker {
    let w = spawn_worker(sb, BIN, &[Listen::HttpTcp], &config(app, f), &[]);
    w.wait_ready();
    w
}

fn req(w: &Worker, raw: &str) -> Response {
    let out = raw_tcp(w.addr(0).tcp(), raw.as_bytes(), Duration::from_secs(10)).unwrap();
    Response::parse(out.clone())
        .unwrap_or_else(|| panic!("unparsable response {:?}", String::from_utf8_lossy(&out)))
}

fn get(w: &Worker, path: &str) -> Response {
    req(
        w,
        &format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn hello_world() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |_| {});
    let r = get(&w, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello World");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("11"));
}

fn env_of(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn environ_keys_on_http() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |_| {});
    let r = req(
        &w,
        "GET /env/a%20b/c%2Fd%2fe/caf%E9?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nX-Multi: one\r\nX-Multi: two\r\nCookie: a=1\r\nCookie: b=2\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    // /env/... is routed as 404 by the app; use the real /env route for the rest.
    assert_eq!(r.status, 404);
    // Percent-decoded, except %2F (any case) which stays "%2F"; bytes map to latin-1 chars
    // (the app echoes PATH_INFO encoded back to latin-1).
    assert_eq!(r.body, b"not found: /env/a b/c%2Fd%2Fe/caf\xe9");
    let r = req(
        &w,
        "POST /env?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nX-Multi: one\r\nX-Multi: two\r\nCookie: a=1\r\nCookie: b=2\r\nX-Forwarded-Proto: https\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    let e = env_of(&r);
    assert_eq!(e["REQUEST_METHOD"], "POST");
    assert_eq!(e["PATH_INFO"], "/env");
    assert_eq!(e["SCRIPT_NAME"], "");
    assert_eq!(e["QUERY_STRING"], "x=1&y=%20");
    assert_eq!(e["REQUEST_URI"], "/env?x=1&y=%20");
    assert_eq!(e["SERVER_NAME"], "example.com");
    assert_eq!(
        e["SERVER_PORT"],
        w.addr(0).tcp().rsplit(':').next().unwrap()
    );
    assert_eq!(e["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(e["REMOTE_ADDR"], "127.0.0.1");
    assert!(e["REMOTE_PORT"].as_str().unwrap().parse::<u16>().unwrap() > 0);
    assert_eq!(e["CONTENT_TYPE"], "text/plain");
    assert_eq!(e["CONTENT_LENGTH"], "3");
    assert!(e.get("HTTP_CONTENT_TYPE").is_none());
    assert!(e.get("HTTP_CONTENT_LENGTH").is_none());
    assert_eq!(e["HTTP_HOST"], "example.com:8080");
    assert_eq!(e["HTTP_X_MULTI"], "one, two");
    assert_eq!(e["HTTP_COOKIE"], "a=1; b=2");
    // X-Forwarded-Proto from an untrusted peer does not change the scheme.
    assert_eq!(e["wsgi.url_scheme"], "http");
    assert_eq!(e["HTTP_X_FORWARDED_PROTO"], "https");
    assert_eq!(e["wsgi.version"], "(1, 0)");
    assert_eq!(e["wsgi.multithread"], "False");
    assert_eq!(e["wsgi.multiprocess"], "False");
    assert_eq!(e["wsgi.run_once"], "False");
    assert_eq!(e["wsgi.input_terminated"], "True");
    assert_eq!(e["wsgi.input"], "<Input>");
    assert_eq!(e["wsgi.errors"], "<TextIOWrapper>");
    assert_eq!(e["wsgi.file_wrapper"], "<type>");
    assert_eq!(e["uwsgi.version"], "bytes:2.0.31");
}

#[test]
fn latin1_path_is_a_latin1_str() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |_| {});
    // Decoded bytes arrive as latin-1 chars (bytes-as-latin1, PEP 3333); the app encodes
    // PATH_INFO back to latin-1, giving the original bytes.
    let r = get(&w, "/x%E9%C3%A9");
    assert_eq!(r.body, b"not found: /x\xe9\xc3\xa9");
}

#[test]
fn trusted_proxy_sets_the_scheme() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.threads = 3;
        c.processes = 2;
    });
    let r = req(
        &w,
        "GET /env HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    let e = env_of(&r);
    assert_eq!(e["wsgi.url_scheme"], "https");
    assert_eq!(e["wsgi.multithread"], "True");
    assert_eq!(e["wsgi.multiprocess"], "True");
    // No Host header at all (HTTP/1.0): SERVER_NAME falls back to the local address.
    let r = req(&w, "GET /env HTTP/1.0\r\n\r\n");
    let e = env_of(&r);
    assert_eq!(e["SERVER_NAME"], "127.0.0.1");
    assert_eq!(e["SERVER_PROTOCOL"], "HTTP/1.0");
}

#[test]
fn colliding_header_names_are_refused() {
    // Names with `_` reach the app only with http-keep-underscore-headers; then a pair that
    // collides once folded is refused.
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |c| c.keep_underscore_headers = true);
    let r = req(
        &w,
        "GET /env HTTP/1.1\r\nHost: h\r\nX-Foo: a\r\nX_Foo: b\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(w.proc.output().contains("colliding header names"));
    // Underscores alone are fine.
    let r = req(
        &w,
        "GET /env HTTP/1.1\r\nHost: h\r\nX_Only: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(env_of(&r)["HTTP_X_ONLY"], "a");
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |_| {});
    let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three pipelined requests in one write; the last closes the connection.
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let a = text.find("not found: /a").expect("first");
    let b = text.find("\r\n\r\nhello").expect("second");
    let c = text.find("not found: /c").expect("third");
    assert!(a < b && b < c, "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 3, "{text}");
}

#[test]
fn expect_100_continue() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |_| {});
    let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"body").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let r = Response::parse(out).unwrap();
    assert_eq!(r.text(), "body");
}

#[test]
fn head_has_headers_but_no_body() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |_| {});
    let out = raw_tcp(
        w.addr(0).tcp(),
        b"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 11\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

#[test]
fn http_1_0_gets_a_close_delimited_response() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |_| {});
    let out = raw_tcp(
        w.addr(0).tcp(),
        b"GET /gen HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nabc"), "{text}");
}

#[test]
fn head_limits_give_431() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |_| {});
    let big = "x".repeat(5000);
    let r = req(
        &w,
        &format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n"),
    );
    assert_eq!(r.status, 431);
    let many: String = (0..80).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = req(&w, &format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n"));
    assert_eq!(r.status, 431);
    // A bigger buffer-size lets the same head through.
    let sb2 = Sandbox::new();
    let w2 = start(&sb2, "hello.py", |c| c.buffer_size = 16384);
    let r = req(
        &w2,
        &format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn garbage_request_line_is_a_400() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |_| {});
    let r = req(&w, "NOT A REQUEST\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn limit_post_gives_413() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |c| c.limit_post = 1000);
    let r = req(
        &w,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{}",
            "a".repeat(2000)
        ),
    );
    assert_eq!(r.status, 413);
    let mut chunked = String::from(
        "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for _ in 0..3 {
        chunked.push_str(&format!("1f4\r\n{}\r\n", "b".repeat(500)));
    }
    chunked.push_str("0\r\n\r\n");
    assert_eq!(req(&w, &chunked).status, 413);
    let r = req(
        &w,
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(r.text(), "abc");
}

#[test]
fn python_threads_run_requests_in_parallel() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |c| c.threads = 2);
    let addr = w.addr(0).tcp().to_string();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let a = addr.clone();
            std::thread::spawn(move || {
                raw_tcp(
                    &a,
                    b"GET /sleep?1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                    Duration::from_secs(10),
                )
                .unwrap()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(Response::parse(h.join().unwrap()).unwrap().text(), "slept");
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_slow_client_does_not_hold_the_python_thread() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |c| c.threads = 1);
    // A client that sends half a head, and one that sends a body slowly.
    let mut slow_head = TcpStream::connect(w.addr(0).tcp()).unwrap();
    slow_head
        .write_all(b"GET /env HTTP/1.1\r\nHost: h\r\nX-Slow:")
        .unwrap();
    let mut slow_body = TcpStream::connect(w.addr(0).tcp()).unwrap();
    slow_body
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc",
        )
        .unwrap();
    // With one Python thread, this only answers if neither slow client holds it.
    let t0 = Instant::now();
    let r = get(&w, "/thread");
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2));
    slow_body.write_all(b"defghij").unwrap();
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    slow_body.read_to_end(&mut out).unwrap();
    assert_eq!(Response::parse(out).unwrap().text(), "abcdefghij");
    drop(slow_head);
}

#[test]
fn add_header_and_max_requests_recycle() {
    let sb = Sandbox::new();
    let mut w = start(&sb, "hello.py", |c| {
        c.add_headers = vec!["X-Served-By: liege".into()];
        c.max_requests = 2;
    });
    let r = get(&w, "/");
    assert_eq!(r.header("x-served-by"), Some("liege"));
    assert_eq!(get(&w, "/").status, 200);
    // The second request reaches max-requests: the worker stops gracefully, exit 0.
    let st = w
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("worker recycles");
    assert_eq!(st.code(), Some(0));
    assert!(w.proc.output().contains("max-requests reached"));
}

/// 300 sequential requests on one keep-alive connection: catches Nagle/delayed-ACK stalls
/// (40 ms each) and per-request wake-up problems. The bound is generous (debug build).
#[test]
fn sequential_keep_alive_requests_are_fast() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |c| c.disable_logging = true);
    let mut s = TcpStream::connect(w.addr(0).tcp()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 4096];
    for _ in 0..300 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"Hello World") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
    let per = t0.elapsed() / 300;
    eprintln!("per request: {per:?}");
    assert!(per < Duration::from_millis(10), "{per:?} per request");
    assert!(
        !w.proc.output().contains("[pid:"),
        "disable-logging still logged requests"
    );
}

/// Many concurrent keep-alive clients against 4 Python threads: every response belongs to
/// its request (echoed bodies), none is lost.
#[test]
fn concurrent_clients_get_their_own_answers() {
    let sb = Sandbox::new();
    let w = start(&sb, "suite.py", |c| {
        c.threads = 4;
        c.disable_logging = true;
    });
    let addr = w.addr(0).tcp().to_string();
    let hs: Vec<_> = (0..32)
        .map(|client| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = vec![0u8; 65536];
                for i in 0..20 {
                    let body = format!("client {client} request {i} {}", "x".repeat(i * 100));
                    let req = format!(
                        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    s.write_all(req.as_bytes()).unwrap();
                    let mut got = Vec::new();
                    loop {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0);
                        got.extend_from_slice(&buf[..n]);
                        if let Some(r) = Response::parse(got.clone()) {
                            let cl: usize = r.header("content-length").unwrap().parse().unwrap();
                            if r.body.len() >= cl {
                                assert_eq!(r.text(), body);
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn request_log_default_line_and_log_format() {
    let sb = Sandbox::new();
    let w = start(&sb, "hello.py", |_| {});
    get(&w, "/a%20b?x=1");
    w.proc.wait_output(
        Duration::from_secs(5),
        "GET /a%20b?x=1 => generated 11 bytes in ",
    );
    let out = w.proc.output();
    let line = out.lines().find(|l| l.contains("GET /a%20b")).unwrap();
    // uWSGI's layout (semantics §9), field by field.
    assert!(
        line.starts_with(&format!(
            "[pid: {}|app: 0|req: 1/1] 127.0.0.1 () {{",
            w.proc.pid()
        )),
        "{line}"
    );
    assert!(line.contains(" vars in "), "{line}");
    assert!(line.contains("(HTTP/1.1 200) 1 headers in "), "{line}");
    assert!(line.ends_with(" bytes (1 switches on core 0)"), "{line}");

    let sb2 = Sandbox::new();
    let w2 = start(&sb2, "suite.py", |c| {
        c.log_format = Some("custom %(addr) %(method) %(uri) %(status) %(rsize) [%(var.HTTP_X_ID)] %(uagent) wid=%(wid) %(nope)".into());
    });
    req(&w2, "GET /x?y=1 HTTP/1.1\r\nHost: h\r\nX-Id: abc\r\nUser-Agent: ua/1\r\nConnection: close\r\n\r\n");
    w2.proc.wait_output(
        Duration::from_secs(5),
        "custom 127.0.0.1 GET /x?y=1 404 13 [abc] ua/1 wid=1 -",
    );
}
