//! Helpers for the master's integration tests (tests/master_*.rs).

use crate::{http_get, wait_for, Proc, Sandbox};
use std::path::PathBuf;
use std::time::Duration;

/// Copy tests/apps/master_app.py into the sandbox as `app.py` with `VERSION = version`.
///
/// Each write has a different size (a padding comment grows), because Python's bytecode
/// cache trusts (mtime in seconds, size): two same-size rewrites within one second would
/// otherwise load the stale cached code (see the report on wsgi-file loading).
pub fn write_app(sb: &Sandbox, version: &str) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let src = crate::repo_root().join("tests/apps/master_app.py");
    let text = std::fs::read_to_string(src).expect("tests/apps/master_app.py");
    let mut text = text.replace("VERSION = \"v1\"", &format!("VERSION = \"{version}\""));
    text.push_str(&format!("# write {n} {}\n", "#".repeat(n)));
    sb.write("app.py", &text)
}

/// Make the sandbox's app fail to import.
pub fn break_app(sb: &Sandbox) {
    sb.write(
        "app.py",
        "raise RuntimeError('this app is broken on purpose')\n",
    );
}

/// The body of `GET path` (any status), or None if the connection failed. Connecting and
/// reading are bounded (5 s / 10 s), so a full listen queue cannot stall a wait loop.
pub fn body(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = match addr.parse() {
        Ok(sa) => sa,
        Err(_) => return http_get(addr, path).map(|r| r.text()),
    };
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    crate::Response::parse(raw).map(|r| r.text())
}

/// Wait until `GET /` on `addr` answers with a body starting with `version`.
pub fn wait_version(addr: &str, version: &str, timeout: Duration) -> String {
    wait_for(timeout, &format!("{version} served on {addr}"), || {
        body(addr, "/").filter(|b| b.starts_with(&format!("{version} ")))
    })
}

/// The worker pids of a master (its live children), waiting until there are `n`.
pub fn wait_workers(master: &Proc, n: usize, timeout: Duration) -> Vec<i32> {
    wait_for(
        timeout,
        &format!("{n} workers of pid {}", master.pid()),
        || {
            let c = crate::children_of(master.pid());
            (c.len() == n).then_some(c)
        },
    )
}

/// Count occurrences of `needle` in the process output.
pub fn count_in_output(p: &Proc, needle: &str) -> usize {
    p.output().matches(needle).count()
}

/// Make sure a system user exists (for privilege tests run as root); returns (uid, gid).
pub fn ensure_user(name: &str) -> (u32, u32) {
    let get = || {
        let out = std::process::Command::new("id")
            .args(["-u", name])
            .output()
            .ok()?;
        let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let out = std::process::Command::new("id")
            .args(["-g", name])
            .output()
            .ok()?;
        let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some((uid, gid))
    };
    if let Some(ids) = get() {
        return ids;
    }
    // Tests run in parallel: one useradd at a time, and look again once it is our turn.
    let lock = std::fs::File::create("/tmp/liege-test-useradd.lock").expect("lock file");
    let _turn = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the useradd lock file");
    if let Some(ids) = get() {
        return ids;
    }
    let _ = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", "--user-group", name])
        .status();
    get().unwrap_or_else(|| panic!("could not create user {name}"))
}

/// Whether this test runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Wait until the master has logged `n` workers ready in total (over its whole life).
pub fn wait_ready(p: &Proc, n: usize, timeout: Duration) {
    wait_for(timeout, &format!("{n} workers ready"), || {
        (count_in_output(p, ") ready after ") >= n).then_some(())
    });
}
