//! Test helpers for integration tests that drive the real `liege` binary: a temp dir per
//! test, free ports, waits with deadlines (never bare sleeps), raw HTTP over TCP and unix
//! sockets, and child processes that are killed (with their process group) when dropped.

pub mod emperor;
pub mod master;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Poll `f` every 10 ms until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Ports are handed out from a
/// per-process counter (spread by pid) and probed with `bind`, so parallel tests don't collide.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 2000) as u16 * 10,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        let p = if !(20000..=60000).contains(&p) {
            20000 + p % 40000
        } else {
            p
        };
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Path of the `liege` binary under test (set by cargo for integration tests of the root package).
pub fn liege_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LIEGE_BIN") {
        return PathBuf::from(p);
    }
    // CARGO_BIN_EXE_liege is only visible at compile time of the test crate; tests pass it in
    // via `Liege::new(env!("CARGO_BIN_EXE_liege"))` when they can. Fall back to target/debug.
    let mut p = std::env::current_exe().expect("current_exe");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("liege")
}

/// A running process (usually `liege`) in its own process group. Dropping it kills the whole
/// group with SIGKILL, so no test leaves orphans behind.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    /// Send a signal to the process itself (not the group).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }
    /// Wait for exit, up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Wait until the output contains `needle`.
    pub fn wait_output(&self, timeout: Duration, needle: &str) {
        wait_for(
            timeout,
            &format!("{needle:?} in the output of pid {}", self.pid()),
            || self.output().contains(needle).then_some(()),
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.pid();
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- output of pid {pgid} ----\n{}\n----", self.output());
        }
    }
}

/// Builder for one test's environment: a temp dir as cwd, a clean environment.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("liege-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Write a file (relative to the sandbox) and return its absolute path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, contents).expect("write");
        p
    }
    /// A command for `bin` with cwd = sandbox, a clean environment (PATH, HOME, LANG kept;
    /// no UWSGI_*/LIEGE_* leaking in), stdout+stderr to a log file.
    pub fn command(&self, bin: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new(bin.as_ref());
        cmd.current_dir(self.dir.path());
        cmd.env_clear();
        for k in ["PATH", "HOME", "LANG", "TMPDIR", "LIEGE_LOG"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd
    }
    /// Spawn `cmd` in its own process group with output captured in `<sandbox>/<name>.log`.
    pub fn spawn(&self, mut cmd: Command, name: &str) -> Proc {
        let log = self.dir.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f);
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc { child, log }
    }
    /// Spawn the liege binary with `args`.
    pub fn liege(&self, args: &[&str]) -> Proc {
        let mut cmd = self.command(liege_bin());
        cmd.args(args);
        self.spawn(cmd, "liege")
    }
}

/// A parsed HTTP response (enough for tests).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Parse a complete response read until EOF (Content-Length or chunked honoured when present).
    pub fn parse(raw: Vec<u8>) -> Option<Response> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?.to_string();
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let body = if chunked {
            dechunk(rest)?
        } else {
            rest.to_vec()
        };
        Some(Response {
            status,
            status_line,
            headers,
            body,
            raw,
        })
    }
}

/// Decode a chunked body (trailers ignored).
pub fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..nl]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Send raw bytes over a fresh TCP connection, read until EOF (or `timeout`), return the bytes.
pub fn raw_tcp(addr: &str, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    exchange(s, request)
}

/// Same as [`raw_tcp`] over a unix stream socket.
pub fn raw_unix(path: &Path, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    exchange(s, request)
}

/// Write `request`, then read until EOF; a read timeout ends the read with what came so far.
fn exchange(mut s: impl Read + Write, request: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(request)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

/// `GET path` with `Connection: close` over TCP; `None` if the connection failed.
pub fn http_get(addr: &str, path: &str) -> Option<Response> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = raw_tcp(addr, req.as_bytes(), Duration::from_secs(10)).ok()?;
    Response::parse(raw)
}

/// Wait until `GET path` on `addr` answers with `status`.
pub fn wait_http(addr: &str, path: &str, status: u16, timeout: Duration) -> Response {
    wait_for(timeout, &format!("HTTP {status} from {addr}{path}"), || {
        http_get(addr, path).filter(|r| r.status == status)
    })
}

/// Build a uwsgi protocol request packet (modifier1 0) from vars and a body.
pub fn uwsgi_packet(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v.as_bytes());
    }
    let mut pkt = vec![0u8];
    pkt.extend_from_slice(&(block.len() as u16).to_le_bytes());
    pkt.push(0);
    pkt.extend_from_slice(&block);
    pkt.extend_from_slice(body);
    pkt
}

/// A uwsgi `GET /` packet with the vars nginx's `uwsgi_params` would send.
pub fn uwsgi_get() -> Vec<u8> {
    uwsgi_packet(
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/"),
            ("PATH_INFO", "/"),
            ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "localhost"),
        ],
        b"",
    )
}

/// Is anything listening on this TCP address?
pub fn tcp_listening(addr: &str) -> bool {
    TcpStream::connect(addr).is_ok()
}

/// Does `pid` exist (and is not a zombie)?
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Direct children pids of `pid` (from /proc).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                let after = s.rsplit(')').next().unwrap_or("");
                let fields: Vec<&str> = after.split_whitespace().collect();
                if fields.get(1).and_then(|x| x.parse::<i32>().ok()) == Some(pid)
                    && !fields[0].starts_with('Z')
                {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// The Python interpreter liege embeds (used to make venvs in tests).
pub const PYTHON: &str = "/usr/bin/python3.11";

/// A Python virtualenv made with [`PYTHON`] (the interpreter liege embeds) holding `packages`
/// (pip requirement strings), created once under `target/test-venvs/` and reused by every
/// test and run. Creation is serialized with a lock file, so parallel tests may call this.
/// Returns the venv directory.
pub fn venv(packages: &[&str]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    packages.hash(&mut h);
    let root = target_dir().join("test-venvs");
    std::fs::create_dir_all(&root).expect("mkdir test-venvs");
    let name = format!("venv-{:016x}", h.finish());
    let dir = root.join(&name);
    let lock_file = std::fs::File::create(root.join(format!("{name}.lock"))).expect("lock file");
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    let done = dir.join(".liege-complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let st = Command::new(PYTHON)
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python -m venv");
        assert!(st.success(), "{PYTHON} -m venv {} failed", dir.display());
        if !packages.is_empty() {
            let st = Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(packages)
                .status()
                .expect("pip install");
            assert!(st.success(), "pip install {packages:?} failed");
        }
        std::fs::write(&done, packages.join("\n")).expect("marker");
    }
    dir
}

/// The cargo target directory (`CARGO_TARGET_DIR`, or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let mut p = std::env::current_exe().expect("current_exe");
    // target/debug/deps/test-xxxx → target
    while p.file_name().is_some_and(|n| n != "target") {
        if !p.pop() {
            break;
        }
    }
    if p.as_os_str().is_empty() || p == Path::new("/") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
    } else {
        p
    }
}

/// The repository root (for `vassals.example/`, `tests/apps/`, fixtures).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}
pub mod worker;
