//! Privileges (run as root, as in CI): bind a privileged port first, then drop to a test user
//! (primary group taken from the user, supplementary groups via initgroups); the master cannot
//! regain root; chown-socket/chmod-socket on a unix socket.

use liege_testkit::master::*;
use liege_testkit::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn privileged_port() -> u16 {
    (700..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

fn ids(pid: i32, key: &str) -> Vec<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with(key)).unwrap();
    line[key.len()..]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn binds_port_below_1024_then_drops_to_uid_with_its_primary_group() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (uid, gid) = ensure_user("liegetest");
    let sb = Sandbox::new();
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_app(&sb, "v1");
    let port = privileged_port();
    let addr = format!("127.0.0.1:{port}");
    let sock = sb.path().join("app.sock");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--wsgi-file",
        "app.py",
        "--http-socket",
        &addr,
        "--uid",
        "liegetest",
    ])
    .args(["--chown-socket", "liegetest", "--chmod-socket=660"])
    .arg("--http-socket")
    .arg(&sock);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    // The app runs as the user, with the user's primary group and its groups only.
    let id = body(&addr, "/id").unwrap();
    assert_eq!(
        id,
        format!("uid={uid} gid={gid} groups=[{gid}]"),
        "{}",
        m.output()
    );
    // The master itself dropped everything (real, effective, saved, fs ids).
    assert_eq!(ids(m.pid(), "Uid:"), vec![uid; 4]);
    assert_eq!(ids(m.pid(), "Gid:"), vec![gid; 4]);
    // The unix socket belongs to the user, mode 660.
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert!(!m.output().contains("will run as root"));
}

#[test]
fn running_as_root_warns() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--wsgi-file", "app.py", "--http-socket", &addr]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    m.wait_output(T, "will run as root");
}

/// `master-as-root`: the master keeps root (uid and gid 0) while every worker runs as the
/// user, including the workers of a reload.
#[test]
fn master_as_root_keeps_root_while_workers_drop() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (uid, gid) = ensure_user("liegetest");
    let sb = Sandbox::new();
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--wsgi-file",
        "app.py",
        "--http-socket",
        &addr,
        "--uid",
        "liegetest",
        "--master-as-root",
    ]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    assert_eq!(ids(m.pid(), "Uid:"), vec![0, 0, 0, 0], "{}", m.output());
    assert_eq!(ids(m.pid(), "Gid:"), vec![0, 0, 0, 0]);
    let id = body(&addr, "/id").unwrap();
    assert_eq!(
        id,
        format!("uid={uid} gid={gid} groups=[{gid}]"),
        "{}",
        m.output()
    );
    let workers = wait_workers(&m, 1, T);
    assert_eq!(ids(workers[0], "Uid:"), vec![uid; 4]);
    // A reload's workers drop too.
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(T, "a new worker", || {
        let w = liege_testkit::children_of(m.pid());
        (w.len() == 1 && w[0] != workers[0]).then_some(())
    });
    let id = body(&addr, "/id").unwrap();
    assert_eq!(id, format!("uid={uid} gid={gid} groups=[{gid}]"));
    assert!(m.output().contains("master-as-root"), "{}", m.output());
}
