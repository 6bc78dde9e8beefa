//! Tyrant mode: each vassal runs as its file's owner (uid, primary gid, supplementary
//! groups); root-owned, group/world-writable and (with emperor-tyrant-nofollow) symlinked
//! files are refused with a message naming the rule and the fix; an owner change restarts
//! the vassal as the new owner. Needs root (as in CI): two users are created with useradd.

use liege_testkit::emperor::{hello, vassal, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Create (if needed) a user with its own primary group and the supplementary group `extra`.
fn ensure_user(name: &str, extra: &str) -> (u32, u32, u32) {
    let _ = Command::new("groupadd").args(["-f", extra]).status();
    if !Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success()
    {
        let st = Command::new("useradd")
            .args(["-M", "-U", "-s", "/usr/sbin/nologin", "-G", extra, name])
            .status()
            .unwrap();
        assert!(
            st.success()
                || Command::new("id")
                    .arg(name)
                    .output()
                    .unwrap()
                    .status
                    .success()
        );
    }
    let extra_gid = {
        let out = Command::new("getent")
            .args(["group", extra])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id(&["-u", name]), id(&["-g", name]), extra_gid)
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn groups_of(pid: i32) -> Vec<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("Groups:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|g| g.parse().unwrap())
        .collect()
}

#[test]
fn tyrant_runs_vassals_as_their_owner() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: tyrant mode needs root");
        return;
    }
    let (u1, g1, extra) = ensure_user("liege-tyrant1", "liege-tyrant-x");
    let (u2, g2, _) = ensure_user("liege-tyrant2", "liege-tyrant-x");
    let sb = Sandbox::new();
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The unprivileged vassals must reach their binary and app even when the checkout lives
    // in a private home directory (CI runs as root): give them copies in the sandbox.
    let uwsgi = sb.path().join("uwsgi");
    std::fs::copy(liege_testkit::emperor::uwsgi(), &uwsgi).unwrap();
    std::fs::set_permissions(&uwsgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = sb.path().join("app.py");
    std::fs::copy(liege_testkit::emperor::app("emperor_hello.py"), &app).unwrap();
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o644)).unwrap();
    let hello_ini = |port: u16, msg: &str| {
        format!(
            "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\nprocesses = 1\nenv = MSG={msg}\n",
            app.display()
        )
    };

    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let (aa, ac) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pc}"));
    let a = dir.join("a.ini");
    std::fs::write(&a, hello_ini(pa, "a")).unwrap();
    chown(&a, u1, g1);
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = dir.join("b.ini");
    std::fs::write(&b, hello_ini(pb, "b")).unwrap(); // root-owned
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = dir.join("c.ini");
    std::fs::write(&c, hello_ini(pc, "c")).unwrap();
    chown(&c, u1, g1);
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o666)).unwrap();
    let l = dir.join("l.ini");
    std::os::unix::fs::symlink("a.ini", &l).unwrap();
    chown(&l, u1, g1);

    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-tyrant",
            "--emperor-tyrant-nofollow",
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[],
    );

    // a: runs as liege-tyrant1 with its supplementary group.
    let text = wait_for(T, "a answering", || {
        liege_testkit::http_get(&aa, "/").filter(|r| r.status == 200)
    })
    .text();
    assert!(text.contains(&format!("uid={u1}")), "{text}");
    let (_, worker) = hello(&aa).unwrap();
    let groups = groups_of(worker);
    assert!(
        groups.contains(&extra) && groups.contains(&g1),
        "{groups:?}"
    );
    let va = e.wait_state(&a, "ready", T);
    assert_eq!(va["uid"], u1);

    // b, c, l: refused, each naming its rule and fix.
    for (p, needle) in [(&b, "chown"), (&c, "chmod go-w"), (&l, "symlink")] {
        let v = e.wait_state(p, "failed", T);
        let err = v["last_error"].as_str().unwrap_or("");
        assert!(err.contains(needle), "{}: {v}", p.display());
        assert!(err.contains("refused by emperor-tyrant"), "{v}");
    }
    let log = e.proc.output();
    assert_eq!(
        log.matches("b.ini is owned by uid 0").count(),
        1,
        "one log line per change:\n{log}"
    );

    // Fixing c's mode starts it.
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o644)).unwrap();
    wait_for(T, "c answering", || hello(&ac).filter(|(m, _)| m == "c"));

    // Owner change: restarted as the new owner.
    let master = va["pid"].as_i64().unwrap();
    chown(&a, u2, g2);
    let text = wait_for(T, "a as the new owner", || {
        liege_testkit::http_get(&aa, "/").filter(|r| r.text().contains(&format!("uid={u2}")))
    })
    .text();
    assert!(text.starts_with("a "), "{text}");
    let va = e.wait_state(&a, "ready", T);
    assert_ne!(va["pid"].as_i64().unwrap(), master, "a new master");
    assert!(e.stats().and_then(|s| vassal(&s, &b)).is_some());
}
