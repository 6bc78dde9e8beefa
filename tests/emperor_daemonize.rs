//! `daemonize = FILE` for the emperor: the command returns at once, the emperor keeps running
//! detached (its own session), logs (and its vassals' logs) go to the file, and SIGTERM to the
//! pid in `emperor-pidfile` stops it and its vassals. Signals its own process tree.

use liege_testkit::emperor::{hello, hello_ini, stats};
use liege_testkit::{free_port, pid_alive, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

/// SIGKILLs the daemon if the test fails before stopping it.
struct Reaper(i32);
impl Drop for Reaper {
    fn drop(&mut self) {
        if self.0 > 0 && pid_alive(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn daemonized_emperor_detaches_and_logs_to_the_file() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let log = sb.path().join("daemon.log");
    let pidfile = sb.path().join("emperor.pid");
    let stats_addr = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(dir.join("app.ini"), hello_ini(port, "daemon")).unwrap();

    let mut cmd = sb.command(LIEGE);
    cmd.args([
        "--emperor",
        dir.to_str().unwrap(),
        "--emperor-stats",
        &stats_addr,
        "--emperor-pidfile",
        pidfile.to_str().unwrap(),
        "--daemonize",
        log.to_str().unwrap(),
    ]);
    let mut p = sb.spawn(cmd, "launcher");
    let st = p.wait_timeout(T).expect("the launching process returns");
    assert!(st.success(), "{}", p.output());

    let pid: i32 = wait_for(T, "the pidfile", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    let _reaper = Reaper(pid);
    assert_ne!(pid, p.pid(), "the daemon is a new process");
    assert!(pid_alive(pid));
    assert_eq!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
            .unwrap()
            .as_raw(),
        pid,
        "detached into its own session"
    );

    let (msg, _) = wait_for(T, "the vassal answering", || hello(&addr));
    assert_eq!(msg, "daemon");
    let s = wait_for(T, "stats", || stats(&stats_addr));
    assert_eq!(s["pid"], pid);
    wait_for(T, "emperor and vassal lines in the log file", || {
        let t = std::fs::read_to_string(&log).ok()?;
        (t.contains("emperor started") && t.contains("] master ")).then_some(())
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_for(T, "the daemon to exit", || (!pid_alive(pid)).then_some(()));
    wait_for(T, "the vassal to be gone", || {
        (!liege_testkit::tcp_listening(&addr)).then_some(())
    });
    let t = std::fs::read_to_string(&log).unwrap();
    assert!(t.contains("the emperor exits"), "{t}");
}
