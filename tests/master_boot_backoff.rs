//! An app that cannot import at start makes a standalone master exit 22 with the Python
//! exception (uWSGI's "no app loaded. GAME OVER"), so systemd, a container runtime or a
//! script sees the failure. A worker that cannot boot after the app was once served is
//! retried with a growing delay (no fork bomb, no silent give-up), and fixing the file
//! brings the service up.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn first_boot_without_the_app_exits_22_naming_the_exception() {
    let sb = Sandbox::new();
    sb.write(
        "app.py",
        "import os\n\nraise RuntimeError('this app is broken on purpose')\n",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "2",
    ]);
    let mut m = sb.spawn(cmd, "liege");
    let st = m.wait_timeout(T).expect("the master gives up");
    assert_eq!(st.code(), Some(22), "{}", m.output());
    let out = m.output();
    let line = out
        .lines()
        .find(|l| l.contains("no app loaded:"))
        .unwrap_or_else(|| panic!("no cause line in:\n{out}"));
    assert!(
        line.contains("RuntimeError: this app is broken on purpose")
            && line.contains("app.py line 3"),
        "{line}"
    );
    // No retry loop: at most the first generation was spawned.
    assert!(count_in_output(&m, "spawned worker") <= 2, "{out}");
    assert!(!out.contains("failed to boot 2 time(s)"), "{out}");
}

#[test]
fn first_boot_syntax_error_names_file_and_line() {
    let sb = Sandbox::new();
    sb.write(
        "app.py",
        "def application(e, s):\n    return [b'x'\n\nx = (\n",
    );
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    let addr = format!("127.0.0.1:{}", free_port());
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"]);
    let mut m = sb.spawn(cmd, "liege");
    let st = m.wait_timeout(T).expect("the master gives up");
    assert_eq!(st.code(), Some(22), "{}", m.output());
    let out = m.output();
    let line = out
        .lines()
        .find(|l| l.contains("no app loaded:"))
        .unwrap_or("");
    assert!(
        line.contains("SyntaxError") && line.contains("app.py line"),
        "{out}"
    );
}

#[test]
fn boot_loop_after_a_ready_worker_backs_off_and_recovers_when_fixed() {
    let sb = Sandbox::new();
    write_app(&sb, "v0");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "1",
    ]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v0", T);
    break_app(&sb);
    let w = wait_workers(&m, 1, T);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w[0]),
        nix::sys::signal::Signal::SIGKILL,
    );
    let t0 = Instant::now();
    m.wait_output(T, "failed to boot 3 time(s) in a row");
    // 1 s then 2 s between attempts: three failures take at least ~3 s.
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(count_in_output(&m, "spawned worker") <= 5, "{}", m.output());
    assert!(m.output().contains("next attempt in 4s"), "{}", m.output());
    // Fixing the app: the next attempt serves it; the master never gave up.
    write_app(&sb, "v1");
    wait_version(&addr, "v1", T);
}
