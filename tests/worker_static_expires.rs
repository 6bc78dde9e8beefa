//! The `static-expires*` family on the wire (uWSGI semantics §6.3): `Expires` plus
//! `Cache-Control: max-age` (a liege addition), the first matching rule in uWSGI's order
//! (type, file, path-info, uri; now-based before `-mtime`), the `-mtime` variants counting
//! from the file's mtime, 304 for `If-Modified-Since`, over HTTP and the uwsgi protocol, from
//! a real ini through the real `liege` binary. An invalid regex is a config-time error.

use liege_testkit::{free_port, raw_tcp, raw_unix, uwsgi_packet, wait_http, Response, Sandbox};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);
/// A fixed mtime for the `-mtime` variants: 2023-11-14 22:13:20 UTC.
const MTIME: u64 = 1_700_000_000;

fn liege(sb: &Sandbox, ini: &str) -> liege_testkit::Proc {
    let mut cmd = sb.command(BIN);
    cmd.args(["--ini", ini]);
    sb.spawn(cmd, "liege")
}

fn set_mtime(sb: &Sandbox, rel: &str) {
    let f = std::fs::File::options()
        .write(true)
        .open(sb.path().join(rel))
        .unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME))
        .unwrap();
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

fn epoch(http_date: &str) -> u64 {
    httpdate::parse_http_date(http_date)
        .unwrap_or_else(|e| panic!("bad http date {http_date:?}: {e}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn get(addr: &str, path: &str, extra: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n");
    Response::parse(raw_tcp(addr, req.as_bytes(), T).unwrap()).unwrap()
}

/// `Expires` is now + `secs` (within the request's own time window) and max-age is `secs`.
fn assert_expires_from_now(r: &Response, secs: u64, before: u64, after: u64, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.status_line);
    let exp = epoch(
        r.header("expires")
            .unwrap_or_else(|| panic!("{what}: no Expires")),
    );
    assert!(
        (before + secs..=after + secs).contains(&exp),
        "{what}: Expires {exp} not in now+{secs} ({before}..={after})"
    );
    assert_eq!(
        r.header("cache-control"),
        Some(format!("max-age={secs}").as_str()),
        "{what}"
    );
}

#[test]
fn static_expires_over_http_and_uwsgi() {
    let sb = Sandbox::new();
    sb.write("app.py", "def application(env, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [b'app:' + env['PATH_INFO'].encode()]\n");
    sb.write("pub/a.css", "body { color: red }\n");
    sb.write("pub/build/app.js", "console.log(1)\n");
    sb.write("pub/build/bundle.map", "{}\n");
    sb.write("pub/doc.txt", "plain\n");
    sb.write("pub/img/logo.png", "png");
    sb.write("pub/img/icon.svg", "<svg/>");
    set_mtime(&sb, "pub/img/logo.png");
    set_mtime(&sb, "pub/img/icon.svg");
    let http = format!("127.0.0.1:{}", free_port());
    let usock = sb.path().join("uwsgi.sock");
    // Rules are listed out of uWSGI's order on purpose: the order of application is fixed.
    sb.write(
        "app.ini",
        &format!(
            "[uwsgi]\n\
             http-socket = {http}\n\
             socket = {usock}\n\
             wsgi-file = app.py\n\
             static-map = /static={pub}\n\
             static-expires-uri = /static/build/* 2592000\n\
             static-expires-path-info = \\.js$ 7\n\
             static-expires = \\.css$ 99\n\
             static-expires-type = text/css=60\n\
             static-expires-mtime = \\.png$ 1000\n\
             static-expires-uri-mtime = \\.svg$ 999999999\n",
            usock = usock.display(),
            pub = sb.path().join("pub").display(),
        ),
    );
    let p = liege(&sb, "app.ini");
    wait_http(&http, "/static/doc.txt", 200, T);
    assert!(
        !p.output().contains("not implemented"),
        "no not-implemented warning:\n{}",
        p.output()
    );

    // The issue fixture line: a REQUEST_URI regex, now + 30 days (query string included in
    // the URI it matches).
    let before = now();
    let r = get(&http, "/static/build/bundle.map?v=3", "");
    let after = now();
    assert_eq!(r.text(), "{}\n");
    assert_expires_from_now(&r, 2_592_000, before, after, "uri rule");
    assert!(r.header("last-modified").is_some());

    // path-info comes before uri in uWSGI's order.
    let (before, r, after) = (now(), get(&http, "/static/build/app.js", ""), now());
    assert_expires_from_now(&r, 7, before, after, "path-info before uri");

    // type comes before the file-path rule.
    let (before, r, after) = (now(), get(&http, "/static/a.css", ""), now());
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_expires_from_now(&r, 60, before, after, "type before file");

    // -mtime: Expires = mtime + seconds, already past, so max-age=0.
    let r = get(&http, "/static/img/logo.png", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("last-modified"), Some(date(MTIME).as_str()));
    assert_eq!(r.header("expires"), Some(date(MTIME + 1000).as_str()));
    assert_eq!(r.header("cache-control"), Some("max-age=0"));

    // uri-mtime in the future: max-age counts down from mtime + seconds.
    let (before, r, after) = (now(), get(&http, "/static/img/icon.svg", ""), now());
    assert_eq!(
        r.header("expires"),
        Some(date(MTIME + 999_999_999).as_str())
    );
    let max_age: u64 = r.header("cache-control").unwrap()["max-age=".len()..]
        .parse()
        .unwrap();
    assert!((MTIME + 999_999_999 - after..=MTIME + 999_999_999 - before).contains(&max_age));

    // No matching rule: neither header.
    let r = get(&http, "/static/doc.txt", "");
    assert_eq!(r.text(), "plain\n");
    assert_eq!(r.header("expires"), None);
    assert_eq!(r.header("cache-control"), None);

    // If-Modified-Since: 304, no body, the same expiry headers.
    let r = get(
        &http,
        "/static/img/logo.png",
        &format!("If-Modified-Since: {}\r\n", date(MTIME)),
    );
    assert_eq!(r.status, 304, "{}", String::from_utf8_lossy(&r.raw));
    assert!(r.body.is_empty());
    assert_eq!(r.header("expires"), Some(date(MTIME + 1000).as_str()));
    // An older If-Modified-Since: the full file.
    let r = get(
        &http,
        "/static/img/logo.png",
        &format!("If-Modified-Since: {}\r\n", date(MTIME - 1)),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "png"));

    // HEAD: headers only, expiry included.
    let raw = raw_tcp(
        &http,
        b"HEAD /static/a.css HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        T,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(text.contains("\r\ncache-control: max-age=60\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");

    // A missing file still falls through to the app, without expiry headers.
    let r = get(&http, "/static/build/missing.js", "");
    assert_eq!(r.text(), "app:/static/build/missing.js");
    assert_eq!(r.header("expires"), None);

    // The uwsgi protocol: REQUEST_URI and PATH_INFO come from the packet.
    let uw = |path: &str, uri: &str| {
        let pkt = uwsgi_packet(
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", path),
                ("REQUEST_URI", uri),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
            ],
            b"",
        );
        Response::parse(raw_unix(&usock, &pkt, T).unwrap()).unwrap()
    };
    let (before, r, after) = (
        now(),
        uw("/static/build/bundle.map", "/static/build/bundle.map"),
        now(),
    );
    assert_eq!(r.text(), "{}\n");
    assert_expires_from_now(&r, 2_592_000, before, after, "uwsgi uri rule");
    // The uri rule sees REQUEST_URI, not PATH_INFO.
    let r = uw("/static/build/bundle.map", "/elsewhere/bundle.map");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("expires"), None);
    let r = uw("/static/img/logo.png", "/static/img/logo.png");
    assert_eq!(r.header("expires"), Some(date(MTIME + 1000).as_str()));
}

#[test]
fn invalid_expires_regex_is_a_config_error_naming_option_file_and_line() {
    let sb = Sandbox::new();
    sb.write("app.py", "def application(env, sr):\n    return []\n");
    sb.write(
        "bad.ini",
        &format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{}\nwsgi-file = app.py\nstatic-expires-path-info = ^/(unclosed 60\n",
            free_port()
        ),
    );
    let mut p = liege(&sb, "bad.ini");
    let status = p.wait_timeout(T).expect("liege exits on a config error");
    assert!(!status.success());
    let out = p.output();
    assert!(
        out.contains("static-expires-path-info")
            && out.contains("bad.ini line 4")
            && out.contains("invalid regex"),
        "{out}"
    );
}
