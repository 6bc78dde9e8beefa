//! `sigterm-reloads = true` restores uWSGI 2.0's meaning of SIGTERM (a brutal reload): the
//! master stays, the workers are replaced.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn sigterm_reloads_when_asked_to() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    sb.write(
        "app.ini",
        &format!("[uwsgi]\nhttp-socket = {addr}\nwsgi-file = app.py\nsigterm-reloads = true\n"),
    );
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--ini", "app.ini"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    write_app(&sb, "v2");
    m.signal(nix::sys::signal::Signal::SIGTERM);
    wait_version(&addr, "v2", T);
    assert!(pid_alive(m.pid()));
    m.wait_output(T, "brutal reload");
}
