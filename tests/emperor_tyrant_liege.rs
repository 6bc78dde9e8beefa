//! Tyrant mode with liege vassals: a vassal runs as its file's owner, and `uid`/`gid` inside
//! the file cannot grant more than the owner has (a file owned by a user asking for uid 0
//! never runs as root: its master cannot switch and the vassal is throttled, visibly).

use liege_testkit::emperor::{hello, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

fn ensure_user(name: &str) -> (u32, u32) {
    if !Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success()
    {
        let _ = Command::new("useradd")
            .args(["-M", "-U", "-s", "/usr/sbin/nologin", name])
            .status();
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

#[test]
fn tyrant_liege_vassal_cannot_grant_itself_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: tyrant mode needs root");
        return;
    }
    let (uid, gid) = ensure_user("liege-tyrant3");
    let sb = Sandbox::new();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(sb.path(), 0o755);
    // Copies the unprivileged vassals can reach even from a private checkout.
    let liege = sb.path().join("liege");
    std::fs::copy(LIEGE, &liege).unwrap();
    mode(&liege, 0o755);
    let app = sb.path().join("app.py");
    std::fs::copy(liege_testkit::emperor::app("emperor_hello.py"), &app).unwrap();
    mode(&app, 0o644);
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    mode(&dir, 0o755);

    let (pa, pb) = (free_port(), free_port());
    let ini = |port: u16, extra: &str| {
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\nprocesses = 1\nenv = MSG=t\n{extra}",
            app.display()
        )
    };
    let a = dir.join("a.ini");
    let b = dir.join("b.ini");
    std::fs::write(&a, ini(pa, "")).unwrap();
    std::fs::write(&b, ini(pb, "uid = 0\ngid = 0\n")).unwrap();
    for f in [&a, &b] {
        std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
        mode(f, 0o644);
    }
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-tyrant",
            "--emperor-wrapper",
            liege.to_str().unwrap(),
        ],
        &[],
    );
    let aa = format!("127.0.0.1:{pa}");
    let text = wait_for(T, "a answering", || {
        liege_testkit::http_get(&aa, "/").filter(|r| r.status == 200)
    })
    .text();
    assert!(text.contains(&format!("uid={uid}")), "{text}");
    let (_, worker) = hello(&aa).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:")
            && l.split_whitespace()
                .all(|x| x == "Uid:" || x == uid.to_string())),
        "{status}"
    );

    let v = e.wait_state(&b, "throttled", T);
    assert!(
        v["last_error"].as_str().unwrap_or("").contains("died"),
        "{v}"
    );
    assert!(
        hello(&format!("127.0.0.1:{pb}")).is_none(),
        "b must never serve"
    );
}
