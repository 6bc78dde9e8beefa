//! A worker killed with SIGKILL is replaced, and the exit is logged with the signal.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn a_sigkilled_worker_is_replaced() {
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
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let before = wait_workers(&m, 2, T);
    let victim = before[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = wait_for(T, "a replacement worker", || {
        let c = children_of(m.pid());
        (c.len() == 2 && !c.contains(&victim)).then_some(c)
    });
    assert!(
        after.contains(&before[1]),
        "the other worker was left alone"
    );
    m.wait_output(T, &format!("pid {victim}"));
    m.wait_output(T, "SIGKILL");
    // Both workers serve: ask until each pid answered once.
    let mut seen = std::collections::BTreeSet::new();
    wait_for(T, "both workers answering", || {
        let b = body(&addr, "/")?;
        let pid: i32 = b.rsplit('=').next()?.trim().parse().ok()?;
        seen.insert(pid);
        after.iter().all(|p| seen.contains(p)).then_some(())
    });
}
