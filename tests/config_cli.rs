//! The configuration layer seen from outside: `liege --check`, `--help`, `--version`, error
//! messages and exit codes of the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Run liege with a clean uWSGI/liege environment, in `cwd`.
fn liege_in(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_liege"));
    for (k, _) in std::env::vars() {
        if k.starts_with("UWSGI_") || k.starts_with("LIEGE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).current_dir(cwd).output().expect("run liege")
}

fn liege(args: &[&str]) -> Output {
    liege_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--check` line for `option = value` (value followed by the origin comment).
fn has_line(out: &str, option_value: &str) -> bool {
    out.lines()
        .any(|l| l.split("  ;").next().unwrap_or("").trim_end() == option_value)
}

#[test]
fn check_django_fixture() {
    let f = fixture("django.ini");
    // The paths, venv and users are those of the tutorial's machine: --check reports them
    // (warnings with --lenient) and still prints the configuration.
    let o = liege(&["--check", "--lenient", f.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for l in [
        "home = /home/test_user/virtualenv/test",
        "chdir = /home/test_user/myproject",
        "module = myproject.wsgi",
        "http = :8001",
        "socket = /home/test_user/myproject/myproject.sock",
        "chown-socket = test_user:test_user",
        "chmod-socket = 660",
        "vacuum = true",
        "master = true",
        "processes = 1",
    ] {
        assert!(has_line(&out, l), "missing `{l}` in:\n{out}");
    }
    // What --check found on this machine (the tutorial's paths and user do not exist here).
    for w in [
        "`chdir`: no such directory: /home/test_user/myproject",
        "`home`: no such directory",
        "no such user `test_user`",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("; warning:") && l.contains(w)),
            "missing warning {w:?} in:\n{out}"
        );
    }
    assert!(out.contains("django.ini line 12"), "{out}");
}

#[test]
fn check_hardened_fixture() {
    let f = fixture("hardened.ini");
    // The paths, venv and users are those of the tutorial's machine: --check reports them
    // (warnings with --lenient) and still prints the configuration.
    let o = liege(&["--check", "--lenient", f.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for l in [
        "uid = nginx",
        "plugins = python34",
        "python-path = /var/www/myproject",
        "python-path = /var/www/myproject/venv/lib/python3.4/site-packages",
        "pidfile = /var/run/nginx/myproject.pid",
        "chmod-socket = 644",
        "daemonize = /var/log/nginx/myproject.log",
        "enable-threads = true",
    ] {
        assert!(has_line(&out, l), "missing `{l}` in:\n{out}");
    }
}

#[test]
fn check_advanced_fixture() {
    let f = fixture("advanced.ini");
    // The paths, venv and users are those of the tutorial's machine: --check reports them
    // (warnings with --lenient) and still prints the configuration.
    let o = liege(&["--check", "--lenient", f.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for l in [
        "home = /path/to/app/env",
        "attach-daemon = /path/to/worker/script",
        "smart-attach-daemon = /tmp/worker.pid /path/to/worker/script",
        "cron = -5 -1 -1 -1 -1 /path/to/some/script",
        "unique-cron = -10 -1 -1 -1 -1 /path/to/other/script",
        "static-map = /static=/path/to/static",
        "static-expires-uri = /static/build/* 2592000",
        "cheap = true",
        "idle = 60",
    ] {
        assert!(has_line(&out, l), "missing `{l}` in:\n{out}");
    }
    assert!(out.contains("app_dir = /path/to/app"), "{out}");
}

#[test]
fn check_debian_emperor_fixture() {
    let f = fixture("debian-emperor.ini");
    let o = liege(&["--check", f.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("; role: emperor"), "{out}");
    for l in [
        "emperor = /etc/uwsgi-emperor/vassals",
        "emperor = /home/app/uwsgi-services",
        "processes = 2",
        "uid = www-data",
        "gid = www-data",
    ] {
        assert!(has_line(&out, l), "missing `{l}` in:\n{out}");
    }
}

fn temp_ini(text: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.ini");
    std::fs::write(&p, text).unwrap();
    (d, p)
}

#[test]
fn unknown_key_exits_1_naming_key_file_and_line() {
    let (d, p) = temp_ini("[uwsgi]\nmaster = true\nprocesess = 4\n");
    let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("procesess") && err.contains("bad.ini line 3"),
        "{err}"
    );
    assert!(err.contains("did you mean `processes`"), "{err}");
}

#[test]
fn malformed_value_exits_1_naming_key_file_and_line() {
    let (d, p) = temp_ini("[uwsgi]\nharakiri = soon\n");
    let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("`harakiri`") && err.contains("`soon`") && err.contains("bad.ini line 2"),
        "{err}"
    );
}

#[test]
fn undefined_placeholder_exits_1_naming_key_file_and_line() {
    let (d, p) = temp_ini("[uwsgi]\n\nchdir = /srv/%(project)\n");
    let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("%(project)") && err.contains("`chdir`") && err.contains("bad.ini line 3"),
        "{err}"
    );
}

#[test]
fn every_error_is_reported() {
    let (d, p) = temp_ini("[uwsgi]\nfoo = 1\nprocesses = x\nspooler = /s\n");
    let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("liege: ")).count(),
        3,
        "{err}"
    );
    assert!(err.contains("does not implement"), "{err}");
}

#[test]
fn unknown_command_line_option_exits_1() {
    let o = liege(&["--no-such-option", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown option `no-such-option`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn python_file_as_positional_argument_is_refused_like_uwsgi() {
    let o = liege(&["app.py"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unable to load configuration from `app.py`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_on_the_command_line_alone() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("app.py"), "application = None\n").unwrap();
    let o = liege_in(
        d.path(),
        &[
            "--check",
            "--http",
            ":8000",
            "-p",
            "4",
            "--wsgi-file",
            "app.py",
        ],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(has_line(&out, "processes = 4"), "{out}");
    assert!(out.contains("command line argument 4 `-p`"), "{out}");
}

#[test]
fn env_vars_are_options() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_liege"));
    let o = cmd
        .args(["--check"])
        .env("UWSGI_PROCESSES", "6")
        .env("UWSGI_HTTP_SOCKET", ":9000")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(has_line(&out, "processes = 6"), "{out}");
    assert!(
        out.contains("environment variable UWSGI_HTTP_SOCKET"),
        "{out}"
    );
}

#[test]
fn help_and_version() {
    let o = liege(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("Sockets:") && out.contains("--processes <integer>"),
        "{out}"
    );
    let o = liege(&["--version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("liege "), "{}", stdout(&o));
}

#[test]
fn lenient_check_prints_warnings_and_succeeds() {
    let (d, p) = temp_ini("[uwsgi]\nfoo = 1\nspooler = /s\nprocesses = 2\n");
    let o = liege_in(d.path(), &["--check", "--lenient", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(has_line(&out, "processes = 2"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("; warning:")).count(),
        2,
        "{out}"
    );
}

#[test]
fn dash_i_loads_the_ini_positionally_like_uwsgi() {
    let (d, p) = temp_ini("[uwsgi]\nprocesses = 3\n");
    let o = liege_in(d.path(), &["--check", "-i", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(has_line(&out, "single-interpreter = true"), "{out}");
    assert!(has_line(&out, "processes = 3"), "{out}");
}

#[test]
fn no_arguments_prints_a_short_usage_and_exits_2() {
    let o = liege(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("Usage:"), "{err}");
    assert!(
        err.contains("--module") && err.contains("--wsgi-file") && err.contains("--help"),
        "{err}"
    );
    assert!(err.lines().count() < 20, "not short: {err}");
}

#[test]
fn dash_capital_v_prints_the_version() {
    let o = liege(&["-V"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), stdout(&liege(&["--version"])));
    assert!(stdout(&o).starts_with("liege "), "{}", stdout(&o));
}

#[test]
fn module_as_positional_argument_suggests_module() {
    let o = liege(&["app:app"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("--module app:app"), "{err}");
    assert!(!err.contains("--wsgi-file app:app"), "{err}");
}

/// Run liege in `cwd`, killing it if it is still running after 10 s (a config that should
/// be refused but starts a server must fail the test, not hang it). Returns (exit code, or
/// None if it had to be killed; stderr).
fn liege_bounded(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_liege"));
    for (k, _) in std::env::vars() {
        if k.starts_with("UWSGI_") || k.starts_with("LIEGE_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run liege");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (code, err)
}

#[test]
fn broken_section_header_exits_1_naming_file_and_line() {
    let port = format!("127.0.0.1:{}", liege_testkit::free_port());
    let (d, p) = temp_ini(&format!(
        "; app\n[uwsgi\nhttp-socket = {port}\nwsgi-file = app.py\n"
    ));
    std::fs::write(d.path().join("app.py"), "application = None\n").unwrap();
    let p = p.to_str().unwrap();
    for args in [vec![p], vec!["--ini", p], vec!["--check", p]] {
        let (code, err) = liege_bounded(d.path(), &args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains("bad.ini line 2"), "{err}");
        assert!(err.contains("section header"), "{err}");
    }
}

#[test]
fn binary_file_as_ini_exits_1_naming_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.ini");
    let port = format!("127.0.0.1:{}", liege_testkit::free_port());
    std::fs::write(d.path().join("app.py"), "application = None\n").unwrap();
    let args = [
        "--http-socket",
        &port,
        "--wsgi-file",
        "app.py",
        p.to_str().unwrap(),
    ];
    // Valid UTF-8 with NULs (e.g. a truncated sqlite file), then invalid UTF-8.
    std::fs::write(&p, b"[uwsgi]\nprocesses = 1\n\x00\x01\x02garbage\n").unwrap();
    let (code, err) = liege_bounded(d.path(), &args);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.ini line 3") && err.contains("not an ini file"),
        "{err}"
    );
    std::fs::write(&p, b"\xff\xfe\x00[\x80uwsgi]\n").unwrap();
    let (code, err) = liege_bounded(d.path(), &args);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.ini line 1") && err.contains("not an ini file"),
        "{err}"
    );
}

#[test]
fn unknown_log_format_variable_is_an_error() {
    let (d, p) = temp_ini("[uwsgi]\nlog-format = %(addr) %(method) %(nosuchvar) %(var.HTTP_X)\n");
    let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("%(nosuchvar)")
            && err.contains("`log-format`")
            && err.contains("bad.ini line 2"),
        "{err}"
    );
    let (d, p) = temp_ini("[uwsgi]\nlog-format = %(addr) %(method) %(var.HTTP_X) %(msecs)\n");
    let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn check_reports_what_would_certainly_fail_at_start() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("notavenv")).unwrap();
    std::fs::create_dir(d.path().join("oldvenv")).unwrap();
    std::fs::write(
        d.path().join("oldvenv/pyvenv.cfg"),
        "home = /usr/bin\nversion = 2.7.18\n",
    )
    .unwrap();
    std::fs::create_dir(d.path().join("src")).unwrap();
    std::fs::write(d.path().join("src/present.py"), "application = None\n").unwrap();
    let ini = |body: &str| {
        let p = d.path().join("app.ini");
        std::fs::write(&p, format!("[uwsgi]\n{body}")).unwrap();
        let o = liege_in(d.path(), &["--check", p.to_str().unwrap()]);
        (o.status.code(), stderr(&o))
    };
    let cases: &[(&str, &str)] = &[
        ("wsgi-file = missing.py\n", "missing.py"),
        (
            "chdir = /nonexistent/dir\nwsgi-file = app.py\n",
            "/nonexistent/dir",
        ),
        (
            "home = notavenv\nmodule = present\npython-path = src\n",
            "not a virtualenv",
        ),
        (
            "home = oldvenv\nmodule = present\npython-path = src\n",
            "Python 2.7",
        ),
        (
            "module = no_such_pkg_xyz.wsgi:application\npython-path = src\n",
            "no_such_pkg_xyz",
        ),
        (
            "module = present\nuid = no-such-user-xyz\n",
            "no-such-user-xyz",
        ),
        (
            "module = present\ngid = no-such-group-xyz\n",
            "no-such-group-xyz",
        ),
        (
            "socket = x.sock\nmodule = present\nchown-socket = root:no-such-group-xyz\n",
            "no-such-group-xyz",
        ),
    ];
    for (body, needle) in cases {
        let body = format!("python-path = src\n{body}");
        let (code, err) = ini(&body);
        assert_eq!(code, Some(1), "{body}: {err}");
        assert!(err.contains(needle), "{body}: {err}");
        assert!(err.contains("app.ini line "), "{body}: {err}");
    }
    // Found on python-path (without importing it), or in the interpreter's own path.
    for ok in [
        "module = present\n",
        "module = json.decoder\n",
        "wsgi-file = src/present.py\n",
    ] {
        let (code, err) = ini(&format!("python-path = src\n{ok}"));
        assert_eq!(code, Some(0), "{ok}: {err}");
    }
}
