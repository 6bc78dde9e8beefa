//! Static files served by the worker before the app: static-map, static-map2, check-static,
//! static-index, static-skip-ext; fall-through to the app; 304; HEAD; uwsgi with sendfile.

use liege_config::{StaticMap, WorkerConfig};
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, uwsgi_packet, Response, Sandbox};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

fn setup(sb: &Sandbox, listen: Listen) -> Worker {
    sb.write("pub/a.css", "body { color: red }\n");
    sb.write("pub/sub/index.html", "<h1>index</h1>\n");
    sb.write("pub/data.bin", "binary");
    sb.write("secret.txt", "do not serve");
    std::os::unix::fs::symlink(
        sb.path().join("secret.txt"),
        sb.path().join("pub/escape.txt"),
    )
    .unwrap();
    // A directory whose index.html is a symlink out of the docroot (issue 10, point 9).
    std::fs::create_dir_all(sb.path().join("pub/leak")).unwrap();
    std::os::unix::fs::symlink(
        sb.path().join("secret.txt"),
        sb.path().join("pub/leak/index.html"),
    )
    .unwrap();
    sb.write("root/robots.txt", "User-agent: *\n");
    sb.write("m2/static2/x.txt", "from map2\n");
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(repo_root().join("tests/apps"));
    c.app.wsgi_file = Some(repo_root().join("tests/apps/suite.py"));
    c.statics.maps = vec![StaticMap {
        prefix: "/static".into(),
        dir: sb.path().join("pub"),
    }];
    c.statics.maps2 = vec![StaticMap {
        prefix: "/static2".into(),
        dir: sb.path().join("m2"),
    }];
    c.statics.check_static = vec![sb.path().join("root")];
    c.statics.index = vec!["index.html".into()];
    c.statics.skip_ext = vec![".bin".into()];
    let w = spawn_worker(sb, BIN, &[listen], &serde_json::to_string(&c).unwrap(), &[]);
    w.wait_ready();
    w
}

fn http(w: &Worker, req: &str) -> Response {
    Response::parse(raw_tcp(w.addr(0).tcp(), req.as_bytes(), Duration::from_secs(10)).unwrap())
        .unwrap()
}

fn get(w: &Worker, path: &str) -> Response {
    http(
        w,
        &format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn static_files_over_http() {
    let sb = Sandbox::new();
    let w = setup(&sb, Listen::HttpTcp);
    let r = get(&w, "/static/a.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body { color: red }\n");
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.header("content-length"), Some("20"));
    let lm = r
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    // If-Modified-Since the same date: 304, no body.
    let r = http(&w, &format!("GET /static/a.css HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: {lm}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // HEAD: headers only.
    let raw = raw_tcp(
        w.addr(0).tcp(),
        b"HEAD /static/a.css HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("content-length: 20\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
    // Directory index, check-static docroot, static-map2.
    assert_eq!(get(&w, "/static/sub/").text(), "<h1>index</h1>\n");
    assert_eq!(get(&w, "/robots.txt").text(), "User-agent: *\n");
    assert_eq!(get(&w, "/static2/x.txt").text(), "from map2\n");
    // Fall-through to the app: missing file, no path boundary, skipped extension, POST.
    assert_eq!(
        get(&w, "/static/missing.css").text(),
        "not found: /static/missing.css"
    );
    assert_eq!(get(&w, "/staticfoo").text(), "not found: /staticfoo");
    assert_eq!(
        get(&w, "/static/data.bin").text(),
        "not found: /static/data.bin"
    );
    let r = http(
        &w,
        "POST /static/a.css HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.text(), "not found: /static/a.css");
    // A symlink out of the docroot is refused (and logged), then the app answers.
    assert_eq!(
        get(&w, "/static/escape.txt").text(),
        "not found: /static/escape.txt"
    );
    assert!(w.proc.output().contains("security error"));
    // So is a static-index file that is such a symlink.
    assert_eq!(get(&w, "/static/leak/").text(), "not found: /static/leak/");
    assert_eq!(get(&w, "/static/leak").text(), "not found: /static/leak");
    assert!(get(&w, "/static/../secret.txt")
        .text()
        .starts_with("not found"));
}

#[test]
fn static_files_over_uwsgi_use_sendfile() {
    let sb = Sandbox::new();
    let w = setup(&sb, Listen::UwsgiUnix);
    let pkt = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/static/a.css"),
            ("REQUEST_URI", "/static/a.css"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ],
        b"",
    );
    let out = liege_testkit::raw_unix(w.addr(0).unix(), &pkt, Duration::from_secs(10)).unwrap();
    let r = Response::parse(out).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body { color: red }\n");
    w.proc.wait_output(
        Duration::from_secs(5),
        "GET /static/a.css => generated 20 bytes in",
    );
    assert!(w.proc.output().contains("via sendfile()"));
}
