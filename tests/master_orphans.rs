//! Workers exit on their own when their master is SIGKILLed.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn workers_exit_when_the_master_is_sigkilled() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
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
    wait_version(&addr, "v1", T);
    let workers = wait_workers(&m, 2, T);
    m.signal(nix::sys::signal::Signal::SIGKILL);
    m.wait_timeout(T).expect("master gone");
    wait_for(T, "orphaned workers to exit", || {
        workers.iter().all(|&w| !pid_alive(w)).then_some(())
    });
    wait_for(T, "the port to close", || {
        (!tcp_listening(&addr)).then_some(())
    });
}
