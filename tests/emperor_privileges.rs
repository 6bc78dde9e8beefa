//! The emperor's own `uid`/`gid` (dropped after binding the stats socket, before spawning
//! vassals, with the user's supplementary groups), `emperor-tyrant` refused with a non-root
//! uid, and `logto` (append, vassals' logs included).

use liege_testkit::emperor::{hello, hello_ini, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn emperor_drops_to_its_uid_after_binding_stats() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let sb = Sandbox::new();
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("app.ini");
    std::fs::write(&ini, hello_ini(port, "nobody")).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
        ],
        &[],
    );
    let (msg, _) = wait_for(T, "the vassal answering", || hello(&addr));
    assert_eq!(msg, "nobody");
    let r = liege_testkit::http_get(&addr, "/").unwrap();
    assert!(r.text().contains("uid=65534"), "{}", r.text());
    let s = e.stats().unwrap();
    assert_eq!(s["uid"], 65534, "the stats report the emperor's uid");
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.proc.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid_line}"
    );
    let gid_line = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
    assert!(
        !gid_line.split_whitespace().skip(1).any(|g| g == "0"),
        "{gid_line}"
    );
}

#[test]
fn tyrant_with_a_non_root_uid_is_refused() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let mut cmd = sb.command(LIEGE);
    cmd.args([
        "--emperor",
        dir.to_str().unwrap(),
        "--emperor-tyrant",
        "--uid",
        "65534",
    ]);
    let mut p = sb.spawn(cmd, "emperor");
    let st = p.wait_timeout(T).expect("the emperor exits");
    assert_eq!(st.code(), Some(1));
    let out = p.output();
    assert!(
        out.contains("emperor-tyrant needs the emperor to stay root")
            && out.contains("remove uid/gid or emperor-tyrant"),
        "{out}"
    );
}

#[test]
fn logto_appends_emperor_and_vassal_logs() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let log = sb.path().join("logto.log");
    std::fs::write(&log, "previous line\n").unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(dir.join("app.ini"), hello_ini(port, "logged")).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--logto",
            log.to_str().unwrap(),
        ],
        &[],
    );
    wait_for(T, "the vassal answering", || hello(&addr));
    let text = wait_for(T, "emperor and vassal lines in the log", || {
        let t = std::fs::read_to_string(&log).ok()?;
        (t.contains("emperor started") && t.contains("vassal ready") && t.contains("] master "))
            .then_some(t)
    });
    assert!(text.starts_with("previous line\n"), "appended: {text}");
    // Nothing goes to the emperor's original stderr any more.
    assert!(
        !e.proc.output().contains("emperor started"),
        "{}",
        e.proc.output()
    );
}
