//! systemd notifications: READY=1 once workers accept, RELOADING=1 on reload, STOPPING=1.

use liege_testkit::master::*;
use liege_testkit::*;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn recv_until(sock: &UnixDatagram, needle: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {needle}: {e}; got {all:?}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.lines().any(|l| l == needle);
        all.push(msg);
        if done {
            return all;
        }
    }
}

#[test]
fn notify_socket_gets_ready_reloading_and_stopping() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let path = sb.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .env("NOTIFY_SOCKET", &path);
    let mut m = sb.spawn(cmd, "liege");
    recv_until(&sock, "READY=1");
    // READY means accepting: a request succeeds right away.
    assert!(body(&addr, "/").unwrap().starts_with("v1 "));
    // Workers never see NOTIFY_SOCKET.
    assert_eq!(body(&addr, "/env?NOTIFY_SOCKET").unwrap(), "<unset>");

    m.signal(nix::sys::signal::Signal::SIGHUP);
    let msgs = recv_until(&sock, "RELOADING=1");
    assert!(msgs
        .last()
        .unwrap()
        .lines()
        .any(|l| l.starts_with("MONOTONIC_USEC=")));
    recv_until(&sock, "READY=1");
    m.signal(nix::sys::signal::Signal::SIGTERM);
    recv_until(&sock, "STOPPING=1");
    assert_eq!(m.wait_timeout(T).unwrap().code(), Some(0));
}
