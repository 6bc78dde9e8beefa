//! SIGHUP: graceful reload with new code; the master pid and the listening sockets stay.

use liege_testkit::master::*;
use liege_testkit::*;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn sighup_reloads_new_code_keeping_master_pid_and_sockets() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let sock = sb.path().join("app.sock");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--http-socket"])
        .arg(&sock)
        .args(["--wsgi-file", "app.py", "--processes", "2"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let old = wait_workers(&m, 2, T);
    let inode = std::fs::metadata(&sock).unwrap().ino();

    write_app(&sb, "v2");
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_version(&addr, "v2", T);
    wait_for(T, "the old workers to be replaced", || {
        let now = children_of(m.pid());
        (now.len() == 2 && now.iter().all(|p| !old.contains(p))).then_some(())
    });
    // Same master, same unix socket file (never re-bound), both sockets serve the new code.
    assert!(pid_alive(m.pid()));
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), inode);
    let raw = raw_unix(
        &sock,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    let r = Response::parse(raw).expect("response over the unix socket");
    assert!(r.text().starts_with("v2 "), "{}", r.text());
    m.wait_output(T, "reload done");
}
