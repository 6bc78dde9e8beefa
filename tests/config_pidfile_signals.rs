//! `liege --reload PIDFILE` and `liege --stop PIDFILE` signal the pid in the file (SIGHUP and
//! SIGINT, as uWSGI's options do), and fail with exit code 1 on a missing or bad pidfile.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn liege(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_liege"))
        .args(args)
        .env_remove("UWSGI_INI")
        .output()
        .expect("run liege")
}

/// Start a `sleep`, write its pid to a pidfile, run liege with `flag`, and return the signal
/// that ended the sleep.
fn signal_seen(flag: &str) -> Option<i32> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let pidfile = dir.path().join("app.pid");
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let o = liege(&[flag, pidfile.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = liege_testkit::wait_for(Duration::from_secs(10), "sleep to exit", || {
        child.try_wait().unwrap()
    });
    status.signal()
}

#[test]
fn reload_sends_sighup() {
    assert_eq!(signal_seen("--reload"), Some(libc::SIGHUP));
}

#[test]
fn stop_sends_sigint() {
    assert_eq!(signal_seen("--stop"), Some(libc::SIGINT));
}

#[test]
fn missing_pidfile_exits_1() {
    let o = liege(&["--stop", "/nonexistent/liege.pid"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/liege.pid"), "{err}");
}
