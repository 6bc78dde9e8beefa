//! The real process layer behind [`Children`]: fork+exec of our own binary with the boot
//! record in the environment, the listening fds and one end of a SOCK_SEQPACKET control pair.

use crate::supervisor::Children;
use liege_config::{InheritedListener, WorkerBoot, WorkerConfig, WORKER_BOOT_ENV};
use liege_protocol::control::{FromWorker, ToWorker};
use liege_sys::spawn::{spawn_self, ChildFds, SelfExe};
use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Variables a worker must not see: socket activation and notification belong to the master,
/// and `LIEGE__*` are internal.
const PRIVATE_ENV: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "UWSGI_EMPEROR_FD",
    "UWSGI_EMPEROR_FD_CONFIG",
];

pub struct RealChildren {
    exe: SelfExe,
    /// The master's environment at start (never modified by `env =`: no leak across reloads).
    base_env: Vec<(String, String)>,
    pub listeners: Vec<InheritedListener>,
    pub master_pid: i32,
    /// Workers' stdout/stderr when the master relays their output (log-maxsize).
    pub stdio: Option<RawFd>,
    controls: BTreeMap<i32, OwnedFd>,
    /// The scoreboard workers balance new connections with, and which worker holds which
    /// slot. `None` if it could not be created (workers then accept without balancing).
    scoreboard: Option<(liege_sys::scoreboard::Scoreboard, OwnedFd)>,
    slots: BTreeMap<i32, u32>,
    /// `master-as-root`: the identity each worker drops to.
    pub drop_to: Option<liege_config::DropTo>,
}

/// The master's environment without the variables only the master may see (for attached
/// daemons and cron jobs).
pub fn public_env(base: &[(String, String)]) -> Vec<(String, String)> {
    base.iter()
        .filter(|(k, _)| !PRIVATE_ENV.contains(&k.as_str()) && !k.starts_with("LIEGE__"))
        .cloned()
        .collect()
}

/// The environment a worker gets: the master's, minus private variables, with the app's
/// `unenv` removed and `env = K=V` applied.
pub fn worker_env(
    base: &[(String, String)],
    cfg: &WorkerConfig,
    boot_json: String,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !PRIVATE_ENV.contains(&k.as_str()) && !k.starts_with("LIEGE__"))
        .filter(|(k, _)| !cfg.app.unenv.iter().any(|u| u == k))
        .cloned()
        .collect();
    for kv in &cfg.app.env {
        if let Some((k, v)) = kv.split_once('=') {
            env.retain(|(n, _)| n != k);
            env.push((k.to_string(), v.to_string()));
        }
    }
    env.push((WORKER_BOOT_ENV.to_string(), boot_json));
    env
}

impl RealChildren {
    pub fn new(exe: SelfExe, base_env: Vec<(String, String)>) -> RealChildren {
        RealChildren {
            exe,
            base_env,
            listeners: Vec::new(),
            master_pid: std::process::id() as i32,
            stdio: None,
            controls: BTreeMap::new(),
            scoreboard: match liege_sys::scoreboard::Scoreboard::create() {
                Ok(sb) => Some(sb),
                Err(e) => {
                    tracing::warn!("no scoreboard ({e}): workers will accept without balancing");
                    None
                }
            },
            slots: BTreeMap::new(),
            drop_to: None,
        }
    }

    /// Control fds to poll, with their worker's pid.
    pub fn control_fds(&self) -> Vec<(i32, RawFd)> {
        self.controls
            .iter()
            .map(|(pid, fd)| (*pid, fd.as_raw_fd()))
            .collect()
    }

    /// Read the pending messages of `pid`'s channel. `None` = EOF/error (the channel is
    /// dropped; the process itself is reaped through SIGCHLD).
    pub fn read(&mut self, pid: i32) -> Option<Vec<FromWorker>> {
        let fd = self.controls.get(&pid)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    self.controls.remove(&pid);
                    return if out.is_empty() { None } else { Some(out) };
                }
                Ok(n) => match FromWorker::decode(&buf[..n]) {
                    Ok(m) => out.push(m),
                    Err(e) => tracing::warn!("worker pid {pid}: bad control message: {e}"),
                },
                Err(nix::errno::Errno::EAGAIN) => return Some(out),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!("worker pid {pid}: control channel: {e}");
                    self.controls.remove(&pid);
                    return if out.is_empty() { None } else { Some(out) };
                }
            }
        }
    }

    /// Forget a reaped worker's channel, and free its scoreboard slot.
    pub fn forget(&mut self, pid: i32) {
        self.controls.remove(&pid);
        if let (Some(slot), Some((sb, _))) = (self.slots.remove(&pid), &self.scoreboard) {
            sb.clear(slot);
        }
    }

    /// A worker's live counters from its scoreboard slot (published after every request;
    /// the control socket's `Stats` come at most once a second).
    pub fn live(&self, pid: i32) -> Option<liege_sys::scoreboard::Live> {
        let (sb, _) = self.scoreboard.as_ref()?;
        let slot = *self.slots.get(&pid)?;
        Some(sb.slot(slot).live())
    }

    /// The lowest scoreboard slot no live worker holds.
    fn free_slot(&self) -> Option<u32> {
        self.scoreboard.as_ref()?;
        (0..liege_sys::scoreboard::SLOTS).find(|s| !self.slots.values().any(|u| u == s))
    }
}

impl Children for RealChildren {
    fn spawn(&mut self, id: u32, generation: u64, cfg: &WorkerConfig) -> std::io::Result<i32> {
        debug_assert_eq!(
            liege_sys::thread_count(),
            1,
            "the master must be single-threaded when it forks"
        );
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        liege_sys::fd::set_nonblocking(mine.as_raw_fd(), true)?;
        let slot = self.free_slot();
        let scoreboard = match (&self.scoreboard, slot) {
            (Some((_, fd)), Some(slot)) => Some(liege_config::ScoreboardRef {
                fd: fd.as_raw_fd(),
                slot,
            }),
            _ => None,
        };
        let boot = WorkerBoot {
            id,
            generation,
            listeners: self.listeners.clone(),
            control_fd: theirs.as_raw_fd(),
            master_pid: self.master_pid,
            config: cfg.clone(),
            scoreboard,
            drop_to: self.drop_to.clone(),
        };
        let json = serde_json::to_string(&boot).map_err(std::io::Error::other)?;
        let env = worker_env(&self.base_env, cfg, json);
        let mut inherit: Vec<RawFd> = self.listeners.iter().map(|l| l.fd).collect();
        inherit.push(theirs.as_raw_fd());
        if let Some(sb) = scoreboard {
            inherit.push(sb.fd);
        }
        let argv = ["liege".to_string(), "worker".to_string(), id.to_string()];
        let pid = spawn_self(
            &self.exe,
            &argv,
            &env,
            &ChildFds {
                inherit: &inherit,
                stdio: self.stdio,
                // Workers are exec'd by the (single-threaded, already unprivileged) master,
                // so the death signal stays set: a dead master means a graceful stop.
                pdeathsig: Some(libc::SIGTERM),
            },
        )?;
        drop(theirs);
        self.controls.insert(pid, mine);
        if let Some(slot) = slot {
            self.slots.insert(pid, slot);
        }
        Ok(pid)
    }

    fn send(&mut self, pid: i32, msg: &ToWorker) -> bool {
        let Some(fd) = self.controls.get(&pid) else {
            return false;
        };
        nix::sys::socket::send(
            fd.as_raw_fd(),
            &msg.encode(),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        )
        .is_ok()
    }

    fn signal(&mut self, pid: i32, sig: i32) {
        liege_sys::spawn::kill(pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_applied_to_workers_not_leaked() {
        let base = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("NOTIFY_SOCKET".to_string(), "/run/x".to_string()),
            ("LISTEN_FDS".to_string(), "1".to_string()),
            ("DROP".to_string(), "1".to_string()),
            ("LIEGE__X".to_string(), "1".to_string()),
        ];
        let mut cfg = WorkerConfig::default();
        cfg.app.env = vec!["A=1".into(), "PATH=/usr/bin".into()];
        cfg.app.unenv = vec!["DROP".into()];
        let env = worker_env(&base, &cfg, "{}".into());
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["A", "PATH", WORKER_BOOT_ENV]);
        assert!(env.contains(&("PATH".into(), "/usr/bin".into())));
    }
}
