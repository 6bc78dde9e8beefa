//! attach-daemon (respawned when it dies, stopped with the master) and cron (a `-1` job runs
//! right away, at most once a minute).

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn attached_daemon_is_respawned_and_stopped_and_cron_runs() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    sb.write(
        "app.ini",
        &format!(
            "[uwsgi]\nhttp-socket = {addr}\nwsgi-file = app.py\n\
             attach-daemon = echo $$ >> daemon.pids; exec sleep 120\n\
             cron = -1 -1 -1 -1 -1 echo ran >> cron.txt\n"
        ),
    );
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--ini", "app.ini"]);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let list = sb.path().join("daemon.pids");
    let first = wait_for(T, "the daemon to start", || pids(&list).first().copied());
    assert!(pid_alive(first));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let second = wait_for(T, "the daemon to be respawned", || {
        pids(&list).get(1).copied()
    });
    assert!(pid_alive(second));
    wait_for(T, "the cron job to run", || {
        std::fs::read_to_string(sb.path().join("cron.txt"))
            .ok()
            .filter(|s| s.contains("ran"))
    });
    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(m.wait_timeout(T).unwrap().code(), Some(0));
    assert!(!pid_alive(second), "the daemon is stopped with the master");
}

#[test]
fn smart_daemon_is_adopted_by_pidfile_and_survives_the_master() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let pidfile = sb.path().join("smart.pid");
    sb.write(
        "app.ini",
        &format!(
            "[uwsgi]\nhttp-socket = {addr}\nwsgi-file = app.py\n\
             smart-attach-daemon = {} sleep 120 & echo $! > smart.pid\n",
            pidfile.display()
        ),
    );
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--ini", "app.ini"]);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let pid: i32 = wait_for(T, "the smart daemon's pidfile", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _guard = Kill(pid);
    m.wait_output(T, "found a live pid");
    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(m.wait_timeout(T).unwrap().code(), Some(0));
    assert!(pid_alive(pid), "smart daemons survive the master");
}
