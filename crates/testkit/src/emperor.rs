//! Helpers for the emperor tests: a real uWSGI from PyPI to run as a vassal, vassal files,
//! and the emperor stats JSON.

use crate::wait_for;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `uwsgi` binary of a venv with uWSGI 2.0 from PyPI (built once, ~1 min).
pub fn uwsgi() -> PathBuf {
    crate::venv(&["uwsgi==2.0.*"]).join("bin/uwsgi")
}

/// `tests/apps/<name>`, absolute.
pub fn app(name: &str) -> PathBuf {
    crate::repo_root().join("tests/apps").join(name)
}

/// A vassal ini serving `tests/apps/emperor_hello.py` over HTTP on 127.0.0.1:`port` with
/// `MSG` set to `msg` (so that an edit is visible in the response). Works for liege and uWSGI.
pub fn hello_ini(port: u16, msg: &str) -> String {
    format!(
        "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\nprocesses = 1\nenv = MSG={msg}\n",
        app("emperor_hello.py").display()
    )
}

/// Write `contents` to `path` atomically (write a temp file, then rename over).
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Read the emperor stats JSON from a TCP `addr` (None if it cannot be read or parsed).
pub fn stats(addr: &str) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if out.starts_with(b"HTTP/") => &out[i + 4..],
        _ => &out[..],
    };
    serde_json::from_slice(body).ok()
}

/// The stats object of the vassal whose id is `path` (liege) or ends with its file name (uWSGI).
pub fn vassal(stats: &serde_json::Value, path: &Path) -> Option<serde_json::Value> {
    let name = path.file_name()?.to_str()?;
    stats["vassals"]
        .as_array()?
        .iter()
        .find(|v| {
            let id = v["id"].as_str().unwrap_or("");
            id == path.to_str().unwrap_or("") || id == name || id.ends_with(&format!("/{name}"))
        })
        .cloned()
}

/// Wait until the vassal `path` has `state` in the stats at `addr`; returns its object.
pub fn wait_state(addr: &str, path: &Path, state: &str, timeout: Duration) -> serde_json::Value {
    wait_for(
        timeout,
        &format!("{} to be {state}", path.display()),
        || {
            let s = stats(addr)?;
            vassal(&s, path).filter(|v| v["state"] == state)
        },
    )
}

/// `(MSG, worker pid)` as answered by the hello app at `addr`.
pub fn hello(addr: &str) -> Option<(String, i32)> {
    let r = crate::http_get(addr, "/")?;
    if r.status != 200 {
        return None;
    }
    let t = r.text();
    let msg = t.split(' ').next()?.to_string();
    let pid = t
        .split("pid=")
        .nth(1)?
        .split(' ')
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some((msg, pid))
}

/// All descendants of `pid` (children, grandchildren, ...).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in crate::children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// A running emperor and the TCP address of its stats server.
pub struct Emperor {
    pub proc: crate::Proc,
    pub stats: String,
}

impl Emperor {
    /// Start `liege` (path `bin`) as an emperor with `--emperor-stats` on a free port and
    /// `args`. `env` is added to the sandbox's clean environment.
    pub fn start(sb: &crate::Sandbox, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Emperor {
        let stats = format!("127.0.0.1:{}", crate::free_port());
        let mut cmd = sb.command(bin);
        cmd.args(["--emperor-stats", &stats]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = sb.spawn(cmd, "emperor");
        wait_for(Duration::from_secs(10), "the emperor stats server", || {
            stats_of(&stats)
        });
        Emperor { proc, stats }
    }
    pub fn stats(&self) -> Option<serde_json::Value> {
        stats(&self.stats)
    }
    pub fn wait_state(&self, path: &Path, state: &str, timeout: Duration) -> serde_json::Value {
        wait_state(&self.stats, path, state, timeout)
    }
}

fn stats_of(addr: &str) -> Option<serde_json::Value> {
    stats(addr)
}

/// Set a file's mtime to now (what `touch` does).
pub fn touch(path: &Path) {
    let f = std::fs::File::options()
        .append(true)
        .open(path)
        .expect("open for touch");
    f.set_modified(std::time::SystemTime::now())
        .expect("set mtime");
}
