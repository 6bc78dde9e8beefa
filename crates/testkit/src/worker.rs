//! Driving the worker role directly, the way a master does: bind listeners in the test,
//! create the SOCK_SEQPACKET control socketpair, build the `WorkerBoot` JSON and exec the
//! real `liege` binary with `LIEGE__WORKER_BOOT` and the fds dup'ed into place.

use crate::{Proc, Sandbox};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One listener to hand to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// HTTP on 127.0.0.1:<ephemeral>.
    HttpTcp,
    /// HTTP on a unix socket in the sandbox.
    HttpUnix,
    /// uwsgi protocol on 127.0.0.1:<ephemeral>.
    UwsgiTcp,
    /// uwsgi protocol on a unix socket in the sandbox.
    UwsgiUnix,
}

/// Where a listener is, as the test sees it.
#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(String),
    Unix(PathBuf),
}

impl Addr {
    /// `host:port` (panics for unix).
    pub fn tcp(&self) -> &str {
        match self {
            Addr::Tcp(a) => a,
            Addr::Unix(p) => panic!("{} is a unix socket", p.display()),
        }
    }
    /// Socket path (panics for TCP).
    pub fn unix(&self) -> &std::path::Path {
        match self {
            Addr::Unix(p) => p,
            Addr::Tcp(a) => panic!("{a} is a TCP address"),
        }
    }
}

/// A running worker and the master's end of its control socket.
pub struct Worker {
    pub proc: Proc,
    pub control: OwnedFd,
    pub addrs: Vec<Addr>,
}

impl Worker {
    /// Send one control packet (JSON, see `liege_protocol::control::ToWorker`).
    pub fn send(&self, msg: &[u8]) {
        // SAFETY: valid fd and buffer.
        let r = unsafe {
            libc::send(
                self.control.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        assert!(
            r >= 0,
            "send on control socket: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Receive one control packet within `timeout`: `Some(bytes)`, `Some(empty)` on EOF,
    /// `None` on timeout.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.control.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r == 0 {
                return None;
            }
            if r < 0 {
                continue;
            }
            // SAFETY: valid fd and buffer.
            let n = unsafe {
                libc::recv(
                    self.control.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Some(buf);
            }
            if Instant::now() > deadline {
                return None;
            }
        }
    }

    /// Wait for a control message containing `needle` (e.g. `"ready"`); panics on EOF/timeout.
    pub fn wait_message(&self, timeout: Duration, needle: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(m) if m.is_empty() => panic!(
                    "control socket EOF while waiting for {needle:?}; output:\n{}",
                    self.proc.output()
                ),
                Some(m) => {
                    let s = String::from_utf8_lossy(&m).into_owned();
                    if s.contains(needle) {
                        return s;
                    }
                }
                None => panic!(
                    "timed out waiting for {needle:?} on the control socket; output:\n{}",
                    self.proc.output()
                ),
            }
        }
    }

    /// Wait for `Ready`.
    pub fn wait_ready(&self) -> String {
        self.wait_message(Duration::from_secs(20), "\"ready\"")
    }

    pub fn addr(&self, i: usize) -> &Addr {
        &self.addrs[i]
    }
}

fn cloexec_socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid 2-element array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Start `bin` as a worker with `listeners` and `config_json` (a serialized `WorkerConfig`).
/// `extra_env` is added to the child's environment.
pub fn spawn_worker(
    sb: &Sandbox,
    bin: &str,
    listeners: &[Listen],
    config_json: &str,
    extra_env: &[(&str, &str)],
) -> Worker {
    spawn_worker_as(
        sb,
        bin,
        listeners,
        config_json,
        extra_env,
        std::process::id() as i32,
    )
}

/// [`spawn_worker`] with an explicit `master_pid` in the boot record.
pub fn spawn_worker_as(
    sb: &Sandbox,
    bin: &str,
    listeners: &[Listen],
    config_json: &str,
    extra_env: &[(&str, &str)],
    master_pid: i32,
) -> Worker {
    let cmd = sb.command(bin);
    spawn_inner(
        sb,
        cmd,
        listeners,
        config_json,
        extra_env,
        &master_pid.to_string(),
        false,
    )
}

/// Start the worker from a `/bin/sh` that plays the master: the shell's pid is the
/// `master_pid`, it runs `bin` in the background (its pid goes to `<sandbox>/worker.pid`),
/// then runs `then` (e.g. `sleep 1; exit 0` to die while the worker runs). `proc` is the shell.
pub fn spawn_worker_under_shell(
    sb: &Sandbox,
    bin: &str,
    listeners: &[Listen],
    config_json: &str,
    then: &str,
) -> Worker {
    let mut cmd = sb.command("/bin/sh");
    let pidfile = sb.path().join("worker.pid");
    cmd.arg("-c").arg(format!(
        r#"LIEGE__WORKER_BOOT=$(printf '%s' "$BOOT_TEMPLATE" | sed "s/__MASTER_PID__/$$/"); export LIEGE__WORKER_BOOT; unset BOOT_TEMPLATE; "$LIEGE_BIN" & echo $! > '{}'; {then}"#,
        pidfile.display()
    ));
    cmd.env("LIEGE_BIN", bin);
    spawn_inner(sb, cmd, listeners, config_json, &[], "__MASTER_PID__", true)
}

fn spawn_inner(
    sb: &Sandbox,
    mut cmd: std::process::Command,
    listeners: &[Listen],
    config_json: &str,
    extra_env: &[(&str, &str)],
    master_pid: &str,
    template: bool,
) -> Worker {
    let mut owned: Vec<OwnedFd> = Vec::new();
    let mut addrs = Vec::new();
    let mut entries = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        let target = 3 + i as RawFd;
        let (fd, addr, unix): (OwnedFd, Addr, bool) = match l {
            Listen::HttpTcp | Listen::UwsgiTcp => {
                let t = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
                let a = t.local_addr().expect("local addr").to_string();
                (OwnedFd::from(t), Addr::Tcp(a), false)
            }
            Listen::HttpUnix | Listen::UwsgiUnix => {
                let p = sb.path().join(format!("sock{i}"));
                let u = std::os::unix::net::UnixListener::bind(&p).expect("bind unix");
                (OwnedFd::from(u), Addr::Unix(p), true)
            }
        };
        let protocol = match l {
            Listen::HttpTcp | Listen::HttpUnix => "Http",
            Listen::UwsgiTcp | Listen::UwsgiUnix => "Uwsgi",
        };
        let name = match &addr {
            Addr::Tcp(a) => a.clone(),
            Addr::Unix(p) => p.display().to_string(),
        };
        entries.push(format!(
            r#"{{"fd":{target},"protocol":"{protocol}","name":"{name}","unix":{unix}}}"#
        ));
        owned.push(fd);
        addrs.push(addr);
    }
    let (master_end, worker_end) = cloexec_socketpair();
    let control_target = 3 + listeners.len() as RawFd;
    owned.push(worker_end);
    let boot = format!(
        r#"{{"id":1,"generation":0,"listeners":[{}],"control_fd":{control_target},"master_pid":{master_pid},"config":{config_json}}}"#,
        entries.join(","),
    );
    cmd.env(
        if template {
            "BOOT_TEMPLATE"
        } else {
            "LIEGE__WORKER_BOOT"
        },
        boot,
    );
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let sources: Vec<RawFd> = owned.iter().map(|f| f.as_raw_fd()).collect();
    let mut tmp: Vec<RawFd> = vec![-1; sources.len()];
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl and
    // dup2 (async-signal-safe) on fds that are open in the child; it does not allocate
    // (`tmp` was allocated before the fork). First every source is duplicated above any
    // target number, then moved to 3, 4, ...; dup2 clears CLOEXEC on the targets.
    unsafe {
        cmd.pre_exec(move || {
            for (i, &s) in sources.iter().enumerate() {
                let t = libc::fcntl(s, libc::F_DUPFD_CLOEXEC, 512);
                if t < 0 {
                    return Err(std::io::Error::from_raw_os_error(libc::EBADF));
                }
                tmp[i] = t;
            }
            for (i, &t) in tmp.iter().enumerate() {
                if libc::dup2(t, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::from_raw_os_error(libc::EBADF));
                }
            }
            Ok(())
        });
    }
    let proc = sb.spawn(cmd, "worker");
    drop(owned);
    Worker {
        proc,
        control: master_end,
        addrs,
    }
}
