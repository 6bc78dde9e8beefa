//! `home` / virtualenvs: the interpreter is configured through PyConfig so a venv's
//! site-packages are visible with the base standard library intact; a venv of another Python
//! version is refused with both versions named; a real Django project runs from a venv.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker, Listen, Worker};
use liege_testkit::{raw_tcp, venv, Response, Sandbox, PYTHON};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

fn spawn(sb: &Sandbox, c: &WorkerConfig) -> Worker {
    spawn_worker(
        sb,
        BIN,
        &[Listen::HttpTcp],
        &serde_json::to_string(c).unwrap(),
        &[],
    )
}

fn get(w: &Worker, path: &str, host: &str) -> Response {
    let raw = raw_tcp(
        w.addr(0).tcp(),
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(20),
    )
    .unwrap();
    Response::parse(raw).expect("response")
}

#[test]
fn venv_site_packages_and_stdlib() {
    let sb = Sandbox::new();
    let v = sb.path().join("venv");
    let st = Command::new(PYTHON)
        .args(["-m", "venv", "--without-pip"])
        .arg(&v)
        .status()
        .unwrap();
    assert!(st.success());
    let site = v.join("lib/python3.11/site-packages");
    std::fs::write(site.join("only_in_venv.py"), "WHERE = 'venv'\n").unwrap();
    sb.write(
        "app/app.py",
        r#"
import decimal, json, ssl, sys, sysconfig
import only_in_venv

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = "\n".join([
        only_in_venv.WHERE,
        sys.prefix,
        sys.base_prefix,
        json.__file__,
        str(any(p.endswith("site-packages") and p.startswith(sys.prefix) for p in sys.path)),
    ])
    return [body.encode()]
"#,
    );
    let mut c = WorkerConfig::default();
    c.app.home = Some(v.clone());
    c.app.chdir = Some(sb.path().join("app"));
    c.app.module = Some("app".into());
    let w = spawn(&sb, &c);
    w.wait_ready();
    let text = get(&w, "/", "h").text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "venv", "{text}");
    assert_eq!(Path::new(lines[1]), v.as_path(), "{text}");
    assert_eq!(lines[2], "/usr", "{text}");
    assert!(lines[3].starts_with("/usr/lib/python3.11/"), "{text}");
    assert_eq!(lines[4], "True", "{text}");
}

#[test]
fn venv_of_another_python_version_is_refused_naming_both() {
    let sb = Sandbox::new();
    let v = sb.path().join("oldvenv");
    std::fs::create_dir_all(v.join("bin")).unwrap();
    std::fs::write(
        v.join("pyvenv.cfg"),
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.9.2\n",
    )
    .unwrap();
    let mut c = WorkerConfig::default();
    c.app.home = Some(v);
    c.app.wsgi_file = Some(liege_testkit::repo_root().join("tests/apps/hello.py"));
    let mut w = spawn(&sb, &c);
    let st = w.proc.wait_timeout(Duration::from_secs(10)).expect("exit");
    assert_ne!(st.code(), Some(0));
    let out = w.proc.output();
    assert!(out.contains("made with Python 3.9"), "{out}");
    assert!(out.contains("liege embeds Python 3.11"), "{out}");
}

#[test]
fn django_project_from_a_venv() {
    let v = venv(&["django"]);
    let sb = Sandbox::new();
    let st = Command::new(v.join("bin/django-admin"))
        .args(["startproject", "mysite"])
        .current_dir(sb.path())
        .status()
        .unwrap();
    assert!(st.success(), "django-admin startproject failed");
    let mut c = WorkerConfig::default();
    c.app.home = Some(v.clone());
    c.app.chdir = Some(sb.path().join("mysite"));
    c.app.module = Some("mysite.wsgi".into());
    let w = spawn(&sb, &c);
    w.wait_ready();
    let r = get(&w, "/", "localhost");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), w.proc.output());
    assert!(
        r.text()
            .contains("The install worked successfully! Congratulations!"),
        "{}",
        r.text()
    );
    // Django's own 404 page for an unknown URL (DEBUG = True in a new project).
    let r = get(&w, "/nope/", "localhost");
    assert_eq!(r.status, 404);
}
