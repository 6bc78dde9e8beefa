//! logto with log-maxsize rotation to <file>.<timestamp>, daemonize, disable-logging.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn logto_rotates_at_log_maxsize() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let log = sb.path().join("app.log");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .arg("--logto")
        .arg(&log)
        .args(["--log-maxsize", "4000"]);
    let _m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let rotated = wait_for(T, "a rotated log file", || {
        let _ = body(&addr, "/");
        std::fs::read_dir(sb.path()).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let ts = name.strip_prefix("app.log.")?;
            (ts.len() >= 10 && ts.chars().all(|c| c.is_ascii_digit())).then_some(e.path())
        })
    });
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("master"), "{old}");
    assert!(
        old.contains("GET /"),
        "request lines go through the relay: {old}"
    );
    // The current file keeps receiving lines.
    wait_for(T, "lines in the new log", || {
        let _ = body(&addr, "/");
        std::fs::read_to_string(&log)
            .ok()
            .filter(|s| s.contains("GET /"))
    });
}

#[test]
fn daemonize_detaches_and_logs_to_the_file() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let log = sb.path().join("daemon.log");
    let pidfile = sb.path().join("daemon.pid");
    let st = sb
        .command(env!("CARGO_BIN_EXE_liege"))
        .args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .arg("--daemonize")
        .arg(&log)
        .arg("--pidfile")
        .arg(&pidfile)
        .status()
        .unwrap();
    assert!(st.success(), "the launching process exits 0");
    let pid: i32 = wait_for(T, "the daemon's pidfile", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _guard = Kill(pid);
    wait_version(&addr, "v1", T);
    assert!(std::fs::read_to_string(&log).unwrap().contains("master"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    wait_for(T, "the daemon to exit", || (!pid_alive(pid)).then_some(()));
}

#[test]
fn disable_logging_drops_request_lines_only() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--disable-logging",
    ]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    for _ in 0..3 {
        body(&addr, "/marker-path").unwrap();
    }
    assert!(m.output().contains("ready"));
    assert!(!m.output().contains("/marker-path"), "{}", m.output());
}

/// After `mv app.log app.log.1` and a reopen (`touch-logreopen`), the workers' request lines
/// go to the new `app.log` too, without `log-maxsize`.
#[test]
fn touch_logreopen_moves_worker_lines_to_the_new_file() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let log = sb.path().join("app.log");
    let touch = sb.write("reopen.touch", "");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .arg("--logto")
        .arg(&log)
        .arg("--touch-logreopen")
        .arg(&touch);
    let _m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let old = sb.path().join("app.log.1");
    std::fs::rename(&log, &old).unwrap();
    // Touch files are checked once a second by mtime: make sure it changes.
    std::thread::sleep(Duration::from_millis(1100));
    sb.write("reopen.touch", "x");
    wait_for(T, "the reopened app.log", || log.exists().then_some(()));
    let _ = body(&addr, "/after-reopen");
    let new = wait_for(T, "a request line in the new app.log", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|s| s.contains("GET /after-reopen"))
    });
    assert!(new.contains("GET /after-reopen"), "{new}");
    assert!(
        !std::fs::read_to_string(&old)
            .unwrap()
            .contains("/after-reopen"),
        "the request line went to the old file"
    );
}

/// `log-date` dates liege's own lines as well as the request lines.
#[test]
fn log_date_dates_every_line() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .arg("--logdate=[%Y]");
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    m.wait_output(T, "GET /");
    let year = liege_sys::log::local_strftime(std::time::SystemTime::now(), "[%Y]");
    let out = m.output();
    let mut own = 0;
    for l in out.lines().filter(|l| l.contains("liege[")) {
        assert!(l.starts_with(&year), "undated line: {l}\n{out}");
        own += 1;
    }
    assert!(own >= 3, "{out}");
    let req = out.lines().find(|l| l.contains("GET /")).unwrap();
    assert!(req.starts_with(&year), "{req}");
}
