//! Loading the app in a worker: wsgi-file, module forms, callable, chdir, python-path, env,
//! need-app, and the orphan check at start-up.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, spawn_worker_as, Listen, Worker};
use liege_testkit::{raw_tcp, repo_root, Response, Sandbox};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

fn apps() -> std::path::PathBuf {
    repo_root().join("tests/apps")
}

fn spawn(sb: &Sandbox, c: &WorkerConfig, env: &[(&str, &str)]) -> Worker {
    spawn_worker(
        sb,
        BIN,
        &[Listen::HttpTcp],
        &serde_json::to_string(c).unwrap(),
        env,
    )
}

fn get(w: &Worker, path: &str) -> Response {
    let raw = raw_tcp(
        w.addr(0).tcp(),
        format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap();
    Response::parse(raw).expect("response")
}

#[test]
fn import_error_with_need_app_exits_22_with_traceback() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.wsgi_file = Some(apps().join("broken.py"));
    let mut w = spawn(&sb, &c, &[]);
    let st = w
        .proc
        .wait_timeout(Duration::from_secs(20))
        .expect("worker exits");
    assert_eq!(st.code(), Some(22));
    let out = w.proc.output();
    assert!(out.contains("Traceback (most recent call last)"), "{out}");
    assert!(
        out.contains("ModuleNotFoundError: No module named 'this_module_does_not_exist'"),
        "{out}"
    );
    // Ready was never sent: the worker tells the master why, and the control socket closes.
    let m = w.recv(Duration::from_secs(5)).expect("a control message");
    let m: serde_json::Value = serde_json::from_slice(&m).expect("JSON");
    assert_eq!(m["t"], "load_failed", "{m}");
    let err = m["error"].as_str().unwrap();
    assert!(
        err.contains("ModuleNotFoundError") && err.contains("broken.py line"),
        "{err}"
    );
    assert_eq!(w.recv(Duration::from_secs(5)), Some(vec![]));
}

const ASGI_APPS: &[(&str, &str)] = &[
    (
        "asgi_func.py",
        "async def application(scope, receive, send):\n    pass\n",
    ),
    (
        "asgi_obj.py",
        "class App:\n    async def __call__(self, scope, receive, send):\n        pass\n\napplication = App()\n",
    ),
];

#[test]
fn asgi_app_with_need_app_is_a_start_up_failure_that_says_so() {
    for (file, src) in ASGI_APPS {
        let sb = Sandbox::new();
        let path = sb.write(file, src);
        let mut c = WorkerConfig::default();
        c.app.wsgi_file = Some(path);
        let mut w = spawn(&sb, &c, &[]);
        let st = w
            .proc
            .wait_timeout(Duration::from_secs(20))
            .expect("worker exits");
        assert_eq!(st.code(), Some(22), "{file}");
        let out = w.proc.output();
        assert_eq!(out.matches("is an ASGI app").count(), 1, "{out}");
        assert!(out.contains("a2wsgi") && out.contains("WSGI"), "{out}");
    }
}

#[test]
fn asgi_app_without_need_app_says_so_once_and_serves_500() {
    let sb = Sandbox::new();
    let path = sb.write(ASGI_APPS[1].0, ASGI_APPS[1].1);
    let mut c = WorkerConfig::default();
    c.app.wsgi_file = Some(path);
    c.app.need_app = false;
    let w = spawn(&sb, &c, &[]);
    w.wait_ready();
    assert_eq!(get(&w, "/").status, 500);
    assert_eq!(get(&w, "/").status, 500);
    let out = w.proc.output();
    assert_eq!(out.matches("is an ASGI app").count(), 1, "{out}");
    assert!(!out.contains("TypeError"), "{out}");
}

#[test]
fn no_app_configured_exits_22() {
    let sb = Sandbox::new();
    let mut w = spawn(&sb, &WorkerConfig::default(), &[]);
    let st = w
        .proc
        .wait_timeout(Duration::from_secs(20))
        .expect("worker exits");
    assert_eq!(st.code(), Some(22));
    assert!(w.proc.output().contains("no app configured"));
}

#[test]
fn import_error_without_need_app_serves_500() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.wsgi_file = Some(apps().join("broken.py"));
    c.app.need_app = false;
    let w = spawn(&sb, &c, &[]);
    w.wait_ready();
    let r = get(&w, "/");
    assert_eq!(r.status, 500);
    let out = w.proc.output();
    assert!(out.contains("no app loaded"), "{out}");
    assert!(out.contains("this_module_does_not_exist"), "{out}");
    // The request line logs app -1 as uWSGI does.
    assert!(out.contains("|app: -1|"), "{out}");
}

#[test]
fn module_forms_and_callable() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("factory", None, "other callable"),
        ("factory:other", None, "other callable"),
        ("factory:create_app()", None, "from factory"),
        ("factory", Some("create_app()"), "from factory"),
        ("hello", None, "Hello World"),
    ];
    for (module, callable, expect) in cases {
        let sb = Sandbox::new();
        let mut c = WorkerConfig::default();
        c.app.chdir = Some(apps());
        c.app.module = Some(module.to_string());
        c.app.callable = callable.map(str::to_string);
        let w = spawn(&sb, &c, &[]);
        w.wait_ready();
        let r = get(&w, "/");
        assert_eq!(r.text(), *expect, "module={module} callable={callable:?}");
    }
}

#[test]
fn missing_callable_is_a_load_error() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(apps());
    c.app.module = Some("factory:nope".into());
    let mut w = spawn(&sb, &c, &[]);
    let st = w.proc.wait_timeout(Duration::from_secs(20)).expect("exit");
    assert_eq!(st.code(), Some(22));
    assert!(
        w.proc.output().contains("has no callable \"nope\""),
        "{}",
        w.proc.output()
    );
}

#[test]
fn chdir_python_path_globs_and_env() {
    let sb = Sandbox::new();
    // Two library dirs matched by one glob, plus a third plain entry; each defines `which`.
    for (dir, name) in [("libs/a1", "a1"), ("libs/a2", "a2"), ("extra", "extra")] {
        sb.write(
            &format!("{dir}/which_{name}.py"),
            &format!("NAME = {name:?}\n"),
        );
    }
    sb.write("app/pp.py", r#"
import os, sys
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    entries = [p for p in sys.path if "libs" in p or "extra" in p or p == "."]
    body = "cwd=%s\npath=%s\nenv=%s,%s\n" % (
        os.path.basename(os.getcwd()), "|".join(os.path.relpath(p, os.getcwd()) if p != "." else "." for p in entries),
        os.environ.get("LIEGE_T1"), os.environ.get("LIEGE_T2", "unset"))
    return [body.encode()]
"#);
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(sb.path().join("app"));
    c.app.module = Some("pp".into());
    c.app.python_path = vec![
        sb.path().join("libs/a*").display().to_string(),
        sb.path().join("extra").display().to_string(),
    ];
    c.app.env = vec!["LIEGE_T1=one=1".into(), "LIEGE_T2=two".into()];
    c.app.unenv = vec!["LIEGE_T2".into()];
    let w = spawn(&sb, &c, &[]);
    w.wait_ready();
    let body = get(&w, "/").text();
    assert!(body.contains("cwd=app\n"), "{body}");
    // uWSGI order: each entry inserted at sys.path[0] in turn (glob matches too), so the
    // last one comes first, then ".".
    assert!(
        body.contains("path=../extra|../libs/a2|../libs/a1|.\n"),
        "{body}"
    );
    assert!(body.contains("env=one=1,unset"), "{body}");
}

#[test]
fn wrong_parent_exits_at_start() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.wsgi_file = Some(apps().join("hello.py"));
    let mut w = spawn_worker_as(
        &sb,
        BIN,
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        &[],
        1,
    );
    let st = w.proc.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_eq!(st.code(), Some(1));
    assert!(
        w.proc.output().contains("not the master 1"),
        "{}",
        w.proc.output()
    );
}

#[test]
fn mounts_with_manage_script_name() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(apps());
    c.app.wsgi_file = Some(apps().join("suite.py"));
    c.app.mounts = vec![
        (
            "/hello".into(),
            apps().join("hello.py").display().to_string(),
        ),
        ("/hello/deeper/".into(), "factory:create_app()".into()),
        ("/s".into(), "suite".into()),
    ];
    c.app.manage_script_name = true;
    let w = spawn(&sb, &c, &[]);
    w.wait_ready();
    assert_eq!(get(&w, "/hello").text(), "Hello World");
    assert_eq!(get(&w, "/hello/x").text(), "Hello World");
    assert_eq!(get(&w, "/hello/deeper/y").text(), "from factory");
    // Not on a path boundary: the default app.
    assert_eq!(get(&w, "/helloworld").text(), "not found: /helloworld");
    let e: serde_json::Value = serde_json::from_slice(&get(&w, "/s/env").body).unwrap();
    assert_eq!(e["SCRIPT_NAME"], "/s");
    assert_eq!(e["PATH_INFO"], "/env");
    assert!(w
        .proc
        .output()
        .contains("WSGI app 2 (mountpoint='/hello/deeper') ready"));
}

#[test]
fn mounts_selected_by_script_name_on_uwsgi() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.chdir = Some(apps());
    c.app.mounts = vec![
        ("/hello".into(), "hello".into()),
        ("/f".into(), "factory".into()),
    ];
    let w = spawn_worker(
        &sb,
        BIN,
        &[Listen::UwsgiTcp],
        &serde_json::to_string(&c).unwrap(),
        &[],
    );
    w.wait_ready();
    let ask = |script: &str| {
        let pkt = liege_testkit::uwsgi_packet(
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", "/x"),
                ("SCRIPT_NAME", script),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
            ],
            b"",
        );
        Response::parse(raw_tcp(w.addr(0).tcp(), &pkt, Duration::from_secs(10)).unwrap()).unwrap()
    };
    assert_eq!(ask("/hello").text(), "Hello World");
    assert_eq!(ask("/f/").text(), "other callable");
    // No default app mounted at "": 500 and a log line.
    assert_eq!(ask("/nope").status, 500);
    assert!(w.proc.output().contains("no python application found"));
}
