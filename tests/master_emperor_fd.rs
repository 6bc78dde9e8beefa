//! The vassal side of the emperor protocol, with the binary given one end of a socketpair as
//! UWSGI_EMPEROR_FD: bytes 1/5/17 when ready, 26 heartbeats, obeying 1 (reload) and 2 (stop),
//! and stopping when the emperor's end closes.

use liege_testkit::master::*;
use liege_testkit::*;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use std::os::unix::net::UnixStream;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn vassal(sb: &Sandbox, addr: &str, extra: &[&str]) -> (Proc, UnixStream) {
    // The vassal end is inheritable (no CLOEXEC); ours is not.
    let (emperor, vassal): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )
    .unwrap();
    let emperor = UnixStream::from(emperor);
    set_cloexec(&emperor);
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", addr, "--wsgi-file", "app.py"])
        .args(extra)
        .env("UWSGI_EMPEROR_FD", vassal.as_raw_fd().to_string());
    let p = sb.spawn(cmd, "liege");
    drop(vassal);
    emperor.set_read_timeout(Some(T)).unwrap();
    (p, emperor)
}

fn set_cloexec(fd: &impl std::os::fd::AsFd) {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .unwrap();
}

fn read_until(s: &mut UnixStream, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !want.iter().all(|w| got.contains(w)) {
        let n = s.read(&mut b).expect("byte from the vassal");
        assert_eq!(n, 1, "vassal closed the pipe; got {got:?}");
        got.push(b[0]);
    }
    got
}

#[test]
fn vassal_reports_ready_heartbeats_reloads_and_stops_gracefully() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut m, mut e) = vassal(&sb, &addr, &["--heartbeat", "1"]);
    let got = read_until(&mut e, &[1, 5, 17]);
    assert_eq!(&got[..3], &[1, 5, 17], "spawned, accepting, loyal");
    wait_version(&addr, "v1", T);
    read_until(&mut e, &[26]);

    // 1 = graceful reload.
    write_app(&sb, "v2");
    e.write_all(&[1]).unwrap();
    wait_version(&addr, "v2", T);
    read_until(&mut e, &[5]);
    // A reload whose app fails to import: the old workers keep accepting, and the emperor
    // (waiting for the reload to end) gets 5 again.
    break_app(&sb);
    e.write_all(&[1]).unwrap();
    read_until(&mut e, &[5]);
    assert!(m.output().contains("reload failed"), "{}", m.output());
    assert!(body(&addr, "/").unwrap().starts_with("v2 "));
    // 2 = graceful stop.
    e.write_all(&[2]).unwrap();
    let st = m.wait_timeout(T).expect("vassal stops on byte 2");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn vassal_stops_when_the_emperor_dies() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut m, mut e) = vassal(&sb, &addr, &[]);
    read_until(&mut e, &[1]);
    drop(e);
    let st = m.wait_timeout(T).expect("vassal stops on EOF");
    assert_eq!(st.code(), Some(0));
    m.wait_output(T, "emperor");
}

#[test]
fn vassal_byte_0_stops_fast() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut m, mut e) = vassal(&sb, &addr, &[]);
    read_until(&mut e, &[1]);
    e.write_all(&[0]).unwrap();
    let st = m.wait_timeout(T).expect("vassal stops on byte 0");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn die_on_idle_sends_22_and_stops() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut m, mut e) = vassal(&sb, &addr, &["--idle", "2", "--die-on-idle"]);
    read_until(&mut e, &[1]);
    wait_version(&addr, "v1", T);
    let got = read_until(&mut e, &[22]);
    assert_eq!(*got.last().unwrap(), 22);
    let st = m.wait_timeout(T).expect("idle vassal stops");
    assert_eq!(st.code(), Some(0));
    m.wait_output(T, "die-on-idle");
}
