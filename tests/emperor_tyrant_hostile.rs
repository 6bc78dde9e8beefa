//! Tyrant mode against hostile users on the same machine (issue 10, docs/security.md): two
//! unprivileged users with vassal dirs under one tyrant emperor try to make it run a file as
//! someone else, stall it, or make it read for them what only root may read. Needs root (as
//! in CI): the users are created with useradd.

use liege_testkit::emperor::{vassal, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
}

fn own(p: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// A sandbox the unprivileged users can enter, with copies of liege and the hello app.
struct Setup {
    sb: Sandbox,
    liege: PathBuf,
    app: PathBuf,
}

/// `None` (the test is skipped) unless this runs as root: tyrant mode needs root.
fn setup() -> Option<Setup> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: tyrant mode needs root");
        return None;
    }
    let sb = Sandbox::new();
    mode(sb.path(), 0o755);
    let liege = sb.path().join("liege");
    std::fs::copy(LIEGE, &liege).unwrap();
    mode(&liege, 0o755);
    let app = sb.path().join("app.py");
    std::fs::copy(liege_testkit::emperor::app("emperor_hello.py"), &app).unwrap();
    mode(&app, 0o644);
    Some(Setup { sb, liege, app })
}

impl Setup {
    fn ini(&self, port: u16, msg: &str) -> String {
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\nprocesses = 1\nenv = MSG={msg}\n",
            self.app.display()
        )
    }
    /// `cmd` run in `dir` as `owner`, as a tyrant emperor starts the owner's vassal.
    fn as_owner<'c>(&self, cmd: &'c mut Command, dir: &Path, owner: (u32, u32)) -> &'c mut Command {
        cmd.current_dir(dir)
            .env("LIEGE__VASSAL_OWNER", owner.0.to_string())
            .uid(owner.0)
            .gid(owner.1)
    }
    fn dir(&self, rel: &str, owner: (u32, u32)) -> PathBuf {
        let d = self.sb.path().join(rel);
        std::fs::create_dir_all(&d).unwrap();
        own(&d, owner);
        mode(&d, 0o755);
        d
    }
    fn file(&self, p: &Path, text: &str, owner: (u32, u32)) {
        std::fs::write(p, text).unwrap();
        own(p, owner);
        mode(p, 0o644);
    }
    fn emperor(&self, monitor: &str, extra: &[&str]) -> Emperor {
        let mut args = vec![
            "--emperor",
            monitor,
            "--emperor-tyrant",
            "--emperor-tyrant-nofollow",
            "--emperor-wrapper",
            self.liege.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Emperor::start(&self.sb, LIEGE, &args, &[])
    }
}

fn last_error(v: &serde_json::Value) -> String {
    v["last_error"].as_str().unwrap_or("").to_string()
}

/// Wait until `path` is refused (state `failed`) with an error containing `needle` (a new
/// file is `failed` with "not started yet" until its check is done).
fn wait_refused(e: &Emperor, path: &Path, needle: &str) -> serde_json::Value {
    wait_for(
        T,
        &format!("{} refused with {needle:?}", path.display()),
        || {
            let s = e.stats()?;
            vassal(&s, path).filter(|v| v["state"] == "failed" && last_error(v).contains(needle))
        },
    )
}

/// Point 1: B replaces B's `vassals` directory with a symlink to A's uploads; the A-owned
/// file found there must not run (as A). A directory owned by another user than the file's
/// owner is refused too.
#[test]
fn a_symlinked_or_foreign_directory_is_refused() {
    let Some(s) = setup() else {
        return;
    };
    let a = ensure_user("liege-hostile-a");
    let b = ensure_user("liege-hostile-b");
    let root = (0, 0);
    s.dir("home", root);
    s.dir("home/a", a);
    let uploads = s.dir("home/a/uploads", a);
    let vassals_a = s.dir("home/a/vassals", a);
    s.dir("home/b", b);
    s.dir("home/c", root);
    let foreign = s.dir("home/c/vassals", b);

    let (pe, pf, pok) = (free_port(), free_port(), free_port());
    let evil = uploads.join("evil.ini");
    s.file(&evil, &s.ini(pe, "evil"), a);
    let link = s.sb.path().join("home/b/vassals");
    std::os::unix::fs::symlink("../a/uploads", &link).unwrap();
    own(&link, b);
    let planted = foreign.join("planted.ini");
    s.file(&planted, &s.ini(pf, "planted"), a);
    let ok = vassals_a.join("ok.ini");
    s.file(&ok, &s.ini(pok, "ok"), a);

    // B also swaps a directory the admin named as a monitor itself (B owns its parent).
    let direct = s.sb.path().join("home/b/direct");
    std::os::unix::fs::symlink("../a/uploads", &direct).unwrap();
    own(&direct, b);

    let glob = format!("{}/home/*/vassals/*.ini", s.sb.path().display());
    let e = s.emperor(&glob, &["--emperor", direct.to_str().unwrap()]);
    // The control vassal runs, as A: the emperor does see and start files.
    wait_for(T, "ok answering", || {
        liege_testkit::http_get(&format!("127.0.0.1:{pok}"), "/")
            .filter(|r| r.status == 200 && r.text().contains(&format!("uid={}", a.0)))
    });
    let via_link = link.join("evil.ini");
    let v = wait_refused(&e, &via_link, "symlink");
    assert!(last_error(&v).contains("emperor-tyrant-nofollow"), "{v}");
    let v = wait_refused(&e, &direct.join("evil.ini"), "symlink");
    assert!(last_error(&v).contains("emperor-tyrant-nofollow"), "{v}");
    let v = wait_refused(&e, &planted, &format!("owned by uid {}", b.0));
    assert!(last_error(&v).contains("directory"), "{v}");
    std::thread::sleep(Duration::from_millis(500));
    for p in [pe, pf] {
        assert!(
            liege_testkit::http_get(&format!("127.0.0.1:{p}"), "/").is_none(),
            "port {p} must never serve"
        );
    }
}

/// Point 3: what a user's file makes the parser read is read in a child running as that user:
/// an `include` of a FIFO neither freezes the emperor nor runs; a 15 MiB file is refused at once; `@(file)` of a root-only file fails with the
/// user's rights and its content is never echoed.
#[test]
fn hostile_files_do_not_stall_or_leak() {
    let Some(s) = setup() else {
        return;
    };
    let a = ensure_user("liege-hostile-a");
    let dir = s.dir("vassals", (0, 0));
    let fifo = s.sb.path().join("stall.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let secret = s.sb.path().join("secret");
    std::fs::write(&secret, "TOPSECRET-42\n").unwrap();
    mode(&secret, 0o600);

    let (p1, p2, p3, pok) = (free_port(), free_port(), free_port(), free_port());
    let inc = dir.join("inc.ini");
    s.file(
        &inc,
        &format!("{}include = {}\n", s.ini(p1, "inc"), fifo.display()),
        a,
    );
    let big = dir.join("big.ini");
    let mut text = s.ini(p2, "big");
    while text.len() < 15 << 20 {
        text.push_str("; padding padding padding padding padding padding padding padding\n");
    }
    s.file(&big, &text, a);
    let leak = dir.join("leak.ini");
    s.file(
        &leak,
        &format!(
            "{}env = X=@({})\nnot-an-option = @({})\n",
            s.ini(p3, "leak"),
            secret.display(),
            secret.display()
        ),
        a,
    );
    let vfifo = dir.join("fifo.ini");
    nix::unistd::mkfifo(&vfifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    own(&vfifo, a);

    let e = s.emperor(dir.to_str().unwrap(), &[]);
    wait_refused(&e, &inc, "not a regular file");
    wait_refused(&e, &big, "larger than");
    wait_refused(&e, &leak, "Permission denied");

    // The emperor still answers at once and still acts on a new file.
    let ok = dir.join("ok.ini");
    s.file(&ok, &s.ini(pok, "ok"), a);
    let t0 = Instant::now();
    let st = e.stats().expect("stats answer");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    wait_for(T, "ok answering", || {
        liege_testkit::http_get(&format!("127.0.0.1:{pok}"), "/").filter(|r| r.status == 200)
    });
    // A vassal file that is a FIFO is not even a candidate (and would be refused, opened
    // non-blocking, if it became one between the scan and the open).
    assert!(vassal(&st, &vfifo).is_none());
    let log = e.proc.output();
    let stats = e.stats().unwrap().to_string();
    assert!(!log.contains("TOPSECRET") && !stats.contains("TOPSECRET"));
    for p in [p1, p2, p3] {
        assert!(liege_testkit::http_get(&format!("127.0.0.1:{p}"), "/").is_none());
    }
}

/// Point 2, the vassal's side: a liege vassal of a tyrant emperor reads its file only if it
/// is not a symlink and belongs to its own uid, so a file swapped after the emperor's check
/// (by B, while the emperor starts A's vassal) is refused by the vassal itself.
#[test]
fn a_vassal_refuses_a_file_swapped_after_the_check() {
    let Some(s) = setup() else {
        return;
    };
    let a = ensure_user("liege-hostile-a");
    let b = ensure_user("liege-hostile-b");
    let dir = s.dir("vassals", (0, 0));
    let swapped = dir.join("app.ini");
    s.file(&swapped, &s.ini(free_port(), "b"), b);
    let link = dir.join("link.ini");
    std::os::unix::fs::symlink("mine.ini", &link).unwrap();
    own(&link, a);
    s.file(&dir.join("mine.ini"), &s.ini(free_port(), "a"), a);
    let run = |name: &str| {
        let mut cmd = Command::new(&s.liege);
        cmd.args(["--check", "--ini", name]).env_clear();
        let out = s.as_owner(&mut cmd, &dir, a).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run("app.ini");
    assert!(
        !ok && err.contains(&format!("owned by uid {}", b.0)),
        "{err}"
    );
    let (ok, err) = run("link.ini");
    assert!(!ok && err.contains("symlink"), "{err}");
    let (ok, err) = run("mine.ini");
    assert!(ok, "{err}");
}

/// Point 2, the handed file: a tyrant emperor hands a liege vassal the descriptor of the very
/// file it opened and checked (`LIEGE__VASSAL_FILE_FD`), and the vassal parses that inode, not
/// whatever the name holds by the time it starts: here the name holds B's file, and the vassal
/// runs the checked content as A anyway. A reload (SIGHUP) reads the name again, owner-checked.
#[test]
fn a_vassal_parses_the_file_the_emperor_checked() {
    let Some(s) = setup() else {
        return;
    };
    let a = ensure_user("liege-hostile-a");
    let b = ensure_user("liege-hostile-b");
    let dir = s.dir("handed", (0, 0));
    let port = free_port();
    let checked = dir.join("checked.ini");
    s.file(&checked, &s.ini(port, "checked"), a);
    let name = dir.join("app.ini");
    s.file(&name, &s.ini(port, "swapped-by-b"), b);
    let handed = std::fs::File::open(&checked).unwrap();
    std::fs::remove_file(&checked).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&handed);
    let start = |args: &[&str], log: &str| {
        let mut cmd = s.sb.command(&s.liege);
        cmd.args(args).env("LIEGE__VASSAL_FILE_FD", fd.to_string());
        s.as_owner(&mut cmd, &dir, a);
        // SAFETY: fcntl only, in the child before exec: the handed file survives the exec.
        unsafe {
            cmd.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        s.sb.spawn(cmd, log)
    };
    let mut check = start(&["--check", "--ini", "app.ini"], "check");
    let status = check.wait_timeout(T).expect("check exits");
    assert!(status.success(), "{}", check.output());
    let mut m = start(&["--ini", "app.ini"], "vassal");
    let addr = format!("127.0.0.1:{port}");
    let r = wait_for(T, "the vassal answering", || {
        liege_testkit::http_get(&addr, "/")
    });
    assert!(
        r.text().starts_with("checked ") && r.text().contains(&format!("uid={}", a.0)),
        "{}",
        r.text()
    );
    // A reload reads the name again: B's file there is refused, and the old workers serve on.
    m.signal(nix::sys::signal::Signal::SIGHUP);
    m.wait_output(T, &format!("owned by uid {}", b.0));
    assert!(liege_testkit::http_get(&addr, "/")
        .unwrap()
        .text()
        .starts_with("checked "));
    // The owner's own edit is what the next reload runs.
    std::fs::remove_file(&name).unwrap();
    s.file(&name, &s.ini(port, "edited"), a);
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(T, "the reload to run the edited file", || {
        liege_testkit::http_get(&addr, "/").filter(|r| r.text().starts_with("edited "))
    });
    m.signal(nix::sys::signal::Signal::SIGINT);
    assert!(m.wait_timeout(T).is_some());
}

/// Point 4: with `emperor-on-demand-extension`, a user's `.socket` file names a socket the
/// root emperor binds. It must not make the emperor delete a root-owned socket in a root-only
/// directory, nor read a root-only file through a symlink into the log and the stats; a
/// socket in the user's own directory is bound with mode 0666, owned by the user.
#[test]
fn on_demand_names_from_users_are_confined() {
    let Some(s) = setup() else {
        return;
    };
    let b = ensure_user("liege-hostile-b");
    let dir = s.dir("vassals", (0, 0));
    let rootonly = s.sb.path().join("rootonly");
    std::fs::create_dir(&rootonly).unwrap();
    mode(&rootonly, 0o700);
    let victim = rootonly.join("victim.sock");
    drop(std::os::unix::net::UnixListener::bind(&victim).unwrap());
    let secret = s.sb.path().join("secret");
    std::fs::write(&secret, "TOPSECRET-OD\n").unwrap();
    mode(&secret, 0o600);
    let home_b = s.dir("home-b", b);
    let od = |msg: &str| {
        format!(
            "[uwsgi]\nmaster = true\nwsgi-file = {}\nprocesses = 1\nenv = MSG={msg}\n",
            s.app.display()
        )
    };
    let b1 = dir.join("b1.ini");
    s.file(&b1, &od("b1"), b);
    s.file(
        &dir.join("b1.ini.socket"),
        &format!("{}\n", victim.display()),
        b,
    );
    let b2 = dir.join("b2.ini");
    s.file(&b2, &od("b2"), b);
    let l = dir.join("b2.ini.socket");
    std::os::unix::fs::symlink(&secret, &l).unwrap();
    own(&l, b);
    let b3 = dir.join("b3.ini");
    s.file(&b3, &od("b3"), b);
    let mine = home_b.join("b3.sock");
    s.file(
        &dir.join("b3.ini.socket"),
        &format!("{}\n", mine.display()),
        b,
    );

    let e = s.emperor(
        dir.to_str().unwrap(),
        &["--emperor-on-demand-extension", ".socket"],
    );
    wait_refused(&e, &b1, "does not own");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(&victim).expect("the root socket is still there");
    assert!(m.file_type().is_socket() && m.uid() == 0);
    wait_refused(&e, &b2, "symlink");
    let v = e.wait_state(&b3, "on-demand", T);
    assert_eq!(v["uid"], b.0, "{v}");
    let m = std::fs::symlink_metadata(&mine).unwrap();
    assert_eq!((m.mode() & 0o777, m.uid()), (0o666, b.0));
    // Removing the vassal file unlinks the socket the emperor made.
    std::fs::remove_file(&b3).unwrap();
    wait_for(T, "b3.sock to be unlinked", || {
        (!mine.exists()).then_some(())
    });
    let log = e.proc.output();
    let stats = e.stats().unwrap().to_string();
    assert!(
        !log.contains("TOPSECRET") && !stats.contains("TOPSECRET"),
        "{log}"
    );
}
