//! An attach-daemon's own children die with a SIGKILLed master (issue 10, point 12): the
//! daemon's whole process group is killed, not only the shell the master started.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn a_daemons_children_die_with_a_killed_master() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    sb.write(
        "app.ini",
        &format!(
            "[uwsgi]\nhttp-socket = {addr}\nwsgi-file = app.py\n\
             attach-daemon = sleep 300 & echo $! > child.pid; wait\n"
        ),
    );
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--ini", "app.ini"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let pidfile = sb.path().join("child.pid");
    let child: i32 = wait_for(T, "the daemon's child", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    assert!(pid_alive(child));
    m.signal(nix::sys::signal::Signal::SIGKILL);
    let gone = wait_for(Duration::from_secs(10), "the daemon's child to die", || {
        (!pid_alive(child)).then_some(true)
    });
    assert!(gone);
}
