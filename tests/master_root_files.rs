//! Files a root master opens (issue 10, points 10 and 11; docs/security.md): a pidfile or
//! log file that a user replaced with a symlink to a root-only file is never written through,
//! and a `uid` without a passwd entry (so without a primary group) is refused unless `gid`
//! is given, instead of running with gid 0. Needs root (as in CI).

use liege_testkit::master::*;
use liege_testkit::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn a_users_symlink_is_not_written_through() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let user = ensure_user("liege-hostile-a");
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    // A run directory the user owns, holding the user's links to root-only files.
    let run = sb.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::os::unix::fs::chown(&run, Some(user.0), Some(user.1)).unwrap();
    let victim = sb.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = |name: &str| {
        let p = run.join(name);
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        std::os::unix::fs::lchown(&p, Some(user.0), Some(user.1)).unwrap();
        p
    };
    let addr = format!("127.0.0.1:{}", free_port());
    // A master as root with `flag path` (its output in `<log>.log`).
    let master = |flag: &str, path: &Path, log: &str| {
        let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
        cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py", flag])
            .arg(path);
        sb.spawn(cmd, log)
    };
    let m = master("--pidfile", &link("app.pid"), "liege");
    wait_version(&addr, "v1", T);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(m.output().contains("symlink"), "{}", m.output());
    drop(m);

    // A hard link to the root-only file (possible where protected_hardlinks is off) is not
    // written into either.
    let hard = run.join("hard.pid");
    std::fs::hard_link(&victim, &hard).unwrap();
    let m = master("--pidfile", &hard, "liege-hard");
    wait_version(&addr, "v1", T);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(m.output().contains("hard link"), "{}", m.output());
    drop(m);

    let mut m = master("--logto", &link("app.log"), "liege2");
    let st = m.wait_timeout(T).expect("refuses to start");
    assert!(!st.success());
    assert!(m.output().contains("symlink"), "{}", m.output());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_uid_without_passwd_entry_needs_a_gid() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--uid",
        "54321",
    ]);
    let mut m = sb.spawn(cmd, "liege");
    let st = m.wait_timeout(T).expect("refuses to start");
    assert!(!st.success());
    let out = m.output();
    assert!(
        out.contains("uid 54321 has no passwd entry") && out.contains("set gid"),
        "{out}"
    );
    assert!(!tcp_listening(&addr));
}
