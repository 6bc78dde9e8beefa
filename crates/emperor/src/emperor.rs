//! The event loop: reconciles the vassal files on disk with the running vassals.
//!
//! One task (this loop, on the main thread of a current-thread runtime) owns every vassal
//! entry; each running vassal process has a small task of its own (`watch_child`) that owns
//! the `Child` and the emperor end of its pipe, forwards the bytes and the exit to this loop,
//! and executes the byte/kill controls it receives. Spawning happens on the main thread only,
//! which matters: `PR_SET_PDEATHSIG` fires when the *thread* that forked exits.

use crate::monitor::{Fingerprint, Found, Monitor, Owner, ScanOptions};
use crate::spawn::{Credentials, Launcher, Proc};
use crate::state::{Action, AfterStop, Event, Policy, Vassal, VassalState};
use crate::stats::{BlacklistEntry, StatsDoc, VassalStats};
use liege_config::{BindAddr, Settings};
use liege_protocol::emperor as proto;
use notify::Watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Events are coalesced for this long before a rescan (bounded: later events do not push the
/// rescan back), so that a burst of writes is read once, complete.
const DEBOUNCE: Duration = Duration::from_millis(15);
/// A file must stay missing this long before its vassal is stopped, so that editors that
/// rename the old file away before writing the new one do not cause a stop/start.
const MISSING_GRACE: Duration = Duration::from_millis(100);
/// The longest systemd waits for READY=1 (at start or after RELOADING=1).
const READY_CAP: Duration = Duration::from_secs(60);
/// The largest vassal file the emperor reads (as root): real ones are a few KiB.
const VASSAL_FILE_MAX: u64 = 1 << 20;
/// How long a tyrant vassal's config check may take before it is killed and the file refused.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Config checks running at once for one file owner.
const CHECKS_PER_OWNER: usize = 2;
/// How much of a config check's error output is kept.
const CHECK_OUTPUT_MAX: u64 = 16 << 10;

/// Controls sent to a vassal's process task.
#[derive(Debug)]
enum Ctl {
    Byte(u8),
    Kill,
}

/// What a process task (or an on-demand socket watcher) reports.
#[derive(Debug)]
enum ChildKind {
    /// A connection is waiting on the on-demand socket.
    Activate,
    Byte(u8),
    PipeClosed,
    Exited(String),
    /// A tyrant vassal's config check ended (`instance` is the check's number).
    Checked(Result<(), String>),
}

#[derive(Debug)]
struct ChildMsg {
    key: PathBuf,
    instance: u64,
    kind: ChildKind,
}

/// One vassal file and what we know about it.
struct Entry {
    monitor: usize,
    life: Vassal,
    instance: u64,
    ctl: Option<mpsc::UnboundedSender<Ctl>>,
    fp: Option<Fingerprint>,
    owner: Option<Owner>,
    mtime_secs: i64,
    disk_hash: Option<u64>,
    force_hash: Option<u64>,
    /// Tyrant identity to run as (set when the file is accepted).
    creds: Option<Credentials>,
    /// Why the file on disk cannot be used now (validation error), if it cannot.
    config_error: Option<String>,
    /// Why tyrant mode refuses the file, if it does.
    refusal: Option<String>,
    missing_since: Option<Instant>,
    first_attempt: Option<Instant>,
    last_attempt: Option<Instant>,
    /// Reload bytes sent, and when the last one was (for latency measurements).
    reloads: u64,
    last_reload: Option<SystemTime>,
    /// The on-demand socket the emperor holds for this vassal (decided when first added).
    od: Option<OnDemandSocket>,
    od_decided: bool,
    /// Dropping it stops the task watching the on-demand socket.
    watch_cancel: Option<oneshot::Sender<()>>,
    /// Tyrant mode: the checked directory holding the accepted file (the vassal starts in it).
    dir: Option<Arc<std::os::fd::OwnedFd>>,
    /// Tyrant mode: the accepted file itself, which the vassal parses (not its name).
    file: Option<Arc<std::os::fd::OwnedFd>>,
    /// Tyrant mode: the config check running for the file as last read, and its number.
    pending: Option<(u64, Accepted)>,
}

/// A file read and accepted by the tyrant rules, waiting for (or done with) validation.
struct Accepted {
    owner: Owner,
    dir: Arc<std::os::fd::OwnedFd>,
    /// The opened file (`Opened::file`), handed to the check and the vassal.
    file: Arc<std::os::fd::OwnedFd>,
    first: bool,
    old_owner: Option<Owner>,
    content: String,
}

/// A listening socket bound by the emperor for an on-demand vassal (uWSGI §7.10).
struct OnDemandSocket {
    /// The name as configured (stats `on_demand`).
    name: String,
    addr: BindAddr,
    fd: std::os::fd::OwnedFd,
    /// Unix path and inode, to unlink it (only if still ours) when the vassal goes away.
    unix_inode: Option<(PathBuf, u64, u64)>,
}

impl Entry {
    fn new(monitor: usize) -> Self {
        Entry {
            monitor,
            life: Vassal::new(),
            instance: 0,
            ctl: None,
            fp: None,
            owner: None,
            mtime_secs: 0,
            disk_hash: None,
            force_hash: None,
            creds: None,
            config_error: None,
            refusal: None,
            missing_since: None,
            first_attempt: None,
            last_attempt: None,
            reloads: 0,
            last_reload: None,
            od: None,
            od_decided: false,
            watch_cancel: None,
            dir: None,
            file: None,
            pending: None,
        }
    }
    fn blocked(&self) -> Option<&String> {
        self.refusal.as_ref().or(self.config_error.as_ref())
    }
}

/// systemd notification bookkeeping.
struct Systemd {
    notifier: crate::systemd::Notifier,
    ready_sent: bool,
    reloading: bool,
    /// READY=1 is sent by then even if some vassal is still starting/reloading, so that one
    /// hung app cannot make systemd time out the whole emperor.
    ready_by: Instant,
    last_status: String,
}

pub struct Emperor {
    settings_minified: bool,
    stats_http: bool,
    stats_addr: Option<BindAddr>,
    monitors: Vec<Monitor>,
    opts: ScanOptions,
    policy: Policy,
    launcher: Launcher,
    tyrant: bool,
    tyrant_nofollow: bool,
    freq: Duration,
    validate_env: Vec<(String, String)>,
    on_demand: OnDemandConfig,
    vassals: BTreeMap<PathBuf, Entry>,
    next_instance: u64,
    child_tx: mpsc::UnboundedSender<ChildMsg>,
    child_rx: mpsc::UnboundedReceiver<ChildMsg>,
    wake: Arc<tokio::sync::Notify>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeMap<PathBuf, (u64, u64)>,
    /// Directories we failed to watch (warned about once).
    watch_failed: BTreeSet<PathBuf>,
    rescan_at: Option<Instant>,
    next_full_scan: Instant,
    first_scan_done: bool,
    shutdown: Option<bool>,
    sd: Systemd,
    start_inst: Instant,
    start_sys: SystemTime,
    cwd: PathBuf,
    /// The emperor's own `uid`/`gid`, applied once the stats socket is bound.
    identity: Option<liege_sys::creds::Identity>,
    /// Tyrant mode: config checks running at once, per file owner (so that one user's many
    /// files delay only that user's checks).
    check_slots: BTreeMap<u32, Arc<tokio::sync::Semaphore>>,
}

/// How on-demand socket names are found (`emperor-on-demand-*`), and the backlog.
#[derive(Debug, Clone, Default)]
struct OnDemandConfig {
    extension: Option<String>,
    directory: Option<PathBuf>,
    exec: Option<String>,
    backlog: u32,
}

impl OnDemandConfig {
    fn enabled(&self) -> bool {
        self.extension.is_some() || self.directory.is_some() || self.exec.is_some()
    }

    /// The socket name for the vassal file `path`, if it is on demand (uWSGI §7.10):
    /// extension, then directory, then exec. `owner` (tyrant mode): the `.socket` file must
    /// belong to the vassal file's owner; it is never read through a symlink, only when it is
    /// a small regular file, and its content never shows in an error.
    fn name_for(&self, path: &Path, owner: Option<u32>) -> Result<Option<String>, String> {
        if let Some(ext) = &self.extension {
            let mut f = path.as_os_str().to_os_string();
            f.push(ext);
            let f = PathBuf::from(f);
            match liege_sys::vassalfile::read_small_nofollow(&f, 4096) {
                Ok((uid, data)) => {
                    if let Some(o) = owner.filter(|o| *o != uid) {
                        return Err(format!(
                            "refused by emperor-tyrant: {} is owned by uid {uid}, not by the vassal file's owner uid {o}",
                            f.display()
                        ));
                    }
                    let end = data.iter().position(|b| *b < 32).unwrap_or(data.len());
                    let name = String::from_utf8_lossy(&data[..end]).trim().to_string();
                    if !name.is_empty() {
                        return Ok(Some(name));
                    }
                }
                Err(e) if e.transient() => {}
                Err(e) => return Err(format!("cannot use {}: {e}", f.display())),
            }
        }
        if let Some(dir) = &self.directory {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(Some(
                dir.join(format!("{stem}.socket")).display().to_string(),
            ));
        }
        if let Some(cmd) = &self.exec {
            // `sh -c 'CMD "$1"' sh PATH`: the path is one argument whatever it contains.
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{cmd} \"$1\""))
                .arg("sh")
                .arg(path)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("emperor-on-demand-exec {cmd}: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if !line.is_empty() {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }
}

/// Bind an on-demand socket: a name with ':' is TCP, anything else a unix path. The vassal's
/// own `chmod-socket`/`chown-socket` are applied to a unix socket (uWSGI: always 0666), the
/// mode through the umask at bind time and the owner with `lchown`.
///
/// `tyrant` (the vassal's owner uid and gid): the name comes from a user, so a unix socket
/// must be in `confine` (`emperor-on-demand-directory`) or in a directory owned by that user,
/// must not exist yet (the emperor never replaces a file it did not create), and belongs to
/// the user; a TCP port must be unprivileged (1024 and up).
fn bind_on_demand(
    name: &str,
    vassal: &Settings,
    backlog: u32,
    tyrant: Option<(u32, u32)>,
    confine: Option<&Path>,
) -> Result<OnDemandSocket, String> {
    use std::os::fd::AsRawFd;
    let addr = if name.contains(':') {
        liege_config::value::parse_addr(name)
            .map_err(|e| format!("on-demand socket {name}: {e}"))?
    } else {
        BindAddr::Unix(PathBuf::from(name))
    };
    if let Some(l) = vassal.master.listeners.iter().find(|l| l.addr == addr) {
        return Err(format!(
            "the vassal declares its on-demand socket {name} itself ({} = {}); the emperor binds it and hands it over on fd 0: remove that line",
            l.option, l.original
        ));
    }
    let dir = match tyrant {
        Some((uid, _)) => on_demand_allowed(&addr, name, uid, confine)?,
        None => None,
    };
    let mode = match &addr {
        BindAddr::Unix(_) => Some(vassal.master.chmod_socket.unwrap_or(0o666)),
        _ => None,
    };
    // Tyrant: bind and chown through the checked directory's descriptor.
    let via = match (&dir, &addr) {
        (Some(d), BindAddr::Unix(p)) => Some(PathBuf::from(format!(
            "/proc/self/fd/{}/{}",
            d.as_raw_fd(),
            p.file_name().unwrap_or_default().to_string_lossy()
        ))),
        _ => None,
    };
    let bind_addr = via
        .clone()
        .map(BindAddr::Unix)
        .unwrap_or_else(|| addr.clone());
    let mut bound = liege_sys::net::bind_with_mode(
        &bind_addr,
        liege_sys::net::BindOptions {
            backlog,
            reuse_port: false,
        },
        mode,
    )
    .map_err(|e| format!("cannot bind the on-demand socket {name}: {e}"))?;
    if via.is_some() {
        // Vacuum later by the name, if the inode is still this one.
        bound.unix_inode = bound
            .unix_inode
            .map(|(_, dev, ino)| (PathBuf::from(name), dev, ino));
    }
    if let BindAddr::Unix(named) = &addr {
        let path = via.as_deref().unwrap_or(named);
        let owner = match (&vassal.master.chown_socket, tyrant) {
            // A tyrant vassal's socket is its owner's, whatever the file asks.
            (_, Some((u, g))) => Some((Some(u), Some(g))),
            (Some(spec), None) => Some(
                liege_sys::creds::resolve_owner(spec)
                    .map_err(|e| format!("chown-socket {spec}: {e}"))?,
            ),
            (None, None) => None,
        };
        if let Some((u, g)) = owner {
            liege_sys::net::chown(path, u, g)
                .map_err(|e| format!("chown-socket on {name}: {e}"))?;
        }
    }
    tracing::info!(
        "on-demand socket {name} bound (fd {})",
        bound.fd.as_raw_fd()
    );
    Ok(OnDemandSocket {
        name: name.to_string(),
        addr,
        fd: bound.fd,
        unix_inode: bound.unix_inode,
    })
}

/// Tyrant mode: may a user have the emperor (root) bind this on-demand socket? For a unix
/// socket, returns its directory, opened and checked: the socket is bound through that
/// descriptor (`/proc/self/fd/N/NAME`), so swapping the directory after the check cannot make
/// root create the socket elsewhere.
fn on_demand_allowed(
    addr: &BindAddr,
    name: &str,
    uid: u32,
    confine: Option<&Path>,
) -> Result<Option<std::fs::File>, String> {
    match addr {
        BindAddr::Tcp { port, .. } if *port < 1024 => Err(format!(
            "refused by emperor-tyrant: the on-demand socket {name} is a privileged port; fix: use a port of 1024 or more"
        )),
        BindAddr::Unix(p) => {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::OpenOptionsExt;
            let refuse = |why: &str| {
                Err(format!(
                    "refused by emperor-tyrant: the on-demand socket {name} {why}; fix: name a socket in a directory the app's user owns{}",
                    confine
                        .map(|c| format!(" or in {}", c.display()))
                        .unwrap_or_default()
                ))
            };
            if !p.is_absolute()
                || p.file_name().is_none()
                || p.components().any(|c| c == std::path::Component::ParentDir)
            {
                return refuse("is not an absolute path without `..`");
            }
            let parent = p.parent().unwrap_or(Path::new("/"));
            let Ok(dir) = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(parent)
            else {
                return refuse("is in a missing directory");
            };
            // What was opened must be the directory as named: no symlink on the way.
            let real = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok();
            if real.as_deref() != Some(parent) {
                return refuse("is in a directory reached through a symlink");
            }
            let mine = dir.metadata().is_ok_and(|m| m.uid() == uid);
            if !mine && confine.is_none_or(|c| parent != c) {
                return refuse("is in a directory the app's user does not own");
            }
            if std::fs::symlink_metadata(p).is_ok() {
                return refuse(
                    "already exists (the emperor never replaces a file it did not create)",
                );
            }
            Ok(Some(dir))
        }
        _ => Ok(None),
    }
}

/// FNV-1a, 64 bits: a stable content hash for "config in force vs on disk".
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn describe(st: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match st {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (_, Some(sig)) => format!("killed by signal {sig}"),
            _ => "exited".into(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

/// Tyrant mode's rules, each refusal naming the rule and the fix.
pub fn tyrant_check(path: &Path, owner: &Owner, nofollow: bool) -> Result<(), String> {
    let p = path.display();
    if nofollow && owner.symlink {
        return Err(format!(
            "refused by emperor-tyrant-nofollow: {p} is a symlink; fix: replace the link by a regular file owned by the app's user"
        ));
    }
    if owner.uid == 0 || owner.gid == 0 {
        return Err(format!(
            "refused by emperor-tyrant: {p} is owned by uid {} gid {} and tyrant vassals may not run as root; fix: chown USER:GROUP {p} (the user the app should run as)",
            owner.uid, owner.gid
        ));
    }
    if owner.mode & 0o022 != 0 {
        return Err(format!(
            "refused by emperor-tyrant: {p} has mode {:04o} (group- or world-writable, so others could choose what runs as its owner); fix: chmod go-w {p}",
            owner.mode
        ));
    }
    Ok(())
}

impl Emperor {
    pub fn new(settings: &Settings) -> Result<Emperor, String> {
        let cfg = settings
            .emperor
            .as_ref()
            .ok_or("no emperor configuration")?;
        if cfg.monitors.is_empty() {
            return Err("no vassal directory or glob given (emperor = DIR)".into());
        }
        let cwd = std::env::current_dir().map_err(|e| format!("cannot read the cwd: {e}"))?;
        let monitors = cfg
            .monitors
            .iter()
            .map(|m| Monitor::resolve(m, &cwd))
            .collect();
        let launcher = Launcher::new(cfg, &cwd, std::env::vars_os());
        let validate_env = launcher
            .env
            .iter()
            .filter_map(|(k, v)| {
                Some((k.clone().into_string().ok()?, v.clone().into_string().ok()?))
            })
            .collect();
        let (child_tx, child_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        Ok(Emperor {
            settings_minified: settings.master.stats_minified,
            stats_http: cfg.stats_http || settings.master.stats_http,
            stats_addr: cfg.stats.clone(),
            monitors,
            opts: ScanOptions {
                nofollow: cfg.nofollow,
                tyrant_nofollow: cfg.tyrant_nofollow,
                extra_extensions: cfg.extra_extensions.clone(),
            },
            policy: Policy {
                throttle: cfg.throttle,
                max_throttle: cfg.max_throttle.max(cfg.throttle),
                curse_tolerance: cfg.curse_tolerance,
                required_heartbeat: cfg.required_heartbeat,
                ..Policy::default()
            },
            launcher,
            tyrant: cfg.tyrant,
            tyrant_nofollow: cfg.tyrant_nofollow,
            freq: cfg.freq.max(Duration::from_millis(100)),
            validate_env,
            on_demand: OnDemandConfig {
                extension: cfg.on_demand_extension.clone(),
                directory: cfg.on_demand_directory.clone(),
                exec: cfg.on_demand_exec.clone(),
                backlog: liege_sys::net::effective_backlog(cfg.listen).0,
            },
            vassals: BTreeMap::new(),
            next_instance: 1,
            child_tx,
            child_rx,
            wake: Arc::new(tokio::sync::Notify::new()),
            watcher: None,
            watched: BTreeMap::new(),
            watch_failed: BTreeSet::new(),
            rescan_at: Some(now),
            next_full_scan: now,
            first_scan_done: false,
            shutdown: None,
            sd: Systemd {
                notifier: crate::systemd::Notifier::from_env(),
                ready_sent: false,
                reloading: false,
                ready_by: now + READY_CAP,
                last_status: String::new(),
            },
            start_inst: now,
            start_sys: SystemTime::now(),
            cwd,
            identity: None,
            check_slots: BTreeMap::new(),
        })
    }

    /// Run as this identity (`uid`/`gid`, with initgroups) once the stats socket is bound.
    pub fn drop_privileges_to(mut self, identity: Option<liege_sys::creds::Identity>) -> Self {
        self.identity = identity;
        self
    }

    fn epoch(&self, t: Option<Instant>) -> i64 {
        match t {
            None => 0,
            Some(t) => {
                let st = if t >= self.start_inst {
                    self.start_sys + (t - self.start_inst)
                } else {
                    self.start_sys - (self.start_inst - t)
                };
                st.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            }
        }
    }

    // ---- the loop -------------------------------------------------------------------------

    pub async fn run(mut self) -> i32 {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
        let mut urg = signal(SignalKind::from_raw(libc::SIGURG)).expect("SIGURG handler");
        let mut winch = signal(SignalKind::window_change()).expect("SIGWINCH handler");

        let wake = self.wake.clone();
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            match res {
                // Reads (ours, the vassals') change nothing.
                Ok(ev)
                    if matches!(
                        ev.kind,
                        notify::EventKind::Access(
                            notify::event::AccessKind::Open(_)
                                | notify::event::AccessKind::Read
                                | notify::event::AccessKind::Close(notify::event::AccessMode::Read)
                                | notify::event::AccessKind::Close(
                                    notify::event::AccessMode::Execute
                                )
                        )
                    ) =>
                {
                    return
                }
                Ok(ev) => tracing::trace!(?ev, "fs event"),
                Err(e) => {
                    tracing::warn!("file watcher error (the periodic rescan still runs): {e}")
                }
            }
            wake.notify_one();
        }) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::warn!(
                "cannot start the inotify watcher ({e}); falling back to a rescan every {:?}",
                self.freq
            ),
        }

        let (stats_tx, mut stats_rx) = mpsc::channel::<oneshot::Sender<StatsDoc>>(16);
        if let Some(addr) = self.stats_addr.clone() {
            match bind_stats(&addr).await {
                Ok(l) => {
                    tracing::info!("emperor stats on {}", display_addr(&addr));
                    if let BindAddr::Tcp { host, .. } = &addr {
                        if host.is_empty() || host == "0.0.0.0" || host == "[::]" || host == "::" {
                            tracing::warn!(
                                "the emperor stats server listens on {} (every address): anyone who can reach this host can read it; bind it to 127.0.0.1 or a unix socket",
                                display_addr(&addr)
                            );
                        }
                    }
                    tokio::spawn(serve_stats(
                        l,
                        stats_tx,
                        self.settings_minified,
                        self.stats_http,
                    ));
                }
                Err(e) => {
                    tracing::error!("cannot bind emperor-stats {}: {e}", display_addr(&addr));
                    return 1;
                }
            }
        }

        // Privileges: after binding the stats socket, before spawning any vassal (vassals
        // then run as this identity too). chroot is not an emperor option.
        if let Some(id) = &self.identity {
            if let Err(e) = liege_sys::creds::chroot_and_drop(None, id) {
                tracing::error!("emperor uid/gid: {e}");
                return 1;
            }
            tracing::info!(
                uid = nix::unistd::getuid().as_raw(),
                gid = nix::unistd::getgid().as_raw(),
                "emperor privileges dropped"
            );
        }

        let mut watchdog = sd_notify::watchdog_enabled()
            .filter(|_| self.sd.notifier.enabled())
            .map(|d| {
                let mut iv = tokio::time::interval((d / 2).max(Duration::from_millis(10)));
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                iv
            });

        tracing::info!(
            monitors = ?self.monitors.iter().map(|m| m.pattern().to_string()).collect::<Vec<_>>(),
            "emperor started"
        );

        loop {
            let now = Instant::now();
            let full = now >= self.next_full_scan;
            if full || self.rescan_at.is_some_and(|t| now >= t) {
                self.rescan_at = None;
                if full {
                    self.next_full_scan = now + self.freq;
                }
                self.reconcile(now);
                self.first_scan_done = true;
            }
            self.tick(now);
            self.sd_update();
            if self.shutdown.is_some() && self.vassals.is_empty() {
                break;
            }
            let deadline = self.deadline(now);
            tokio::select! {
                _ = self.wake.notified() => {
                    let t = Instant::now() + DEBOUNCE;
                    self.rescan_at = Some(self.rescan_at.map_or(t, |r| r.min(t)));
                }
                Some(msg) = self.child_rx.recv() => {
                    self.on_child(msg);
                    // Drain what else is queued before the housekeeping above.
                    while let Ok(m) = self.child_rx.try_recv() {
                        self.on_child(m);
                    }
                }
                Some(reply) = stats_rx.recv() => {
                    let _ = reply.send(self.stats_doc());
                }
                _ = hup.recv() => self.reload_all(),
                _ = term.recv() => self.begin_shutdown(true),
                _ = int.recv() => self.begin_shutdown(false),
                _ = quit.recv() => self.begin_shutdown(false),
                _ = usr1.recv() => {
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    for line in crate::stats::table(&self.stats_doc(), now).lines() {
                        tracing::info!("{line}");
                    }
                }
                _ = urg.recv() => self.retry_throttled(),
                _ = winch.recv() => self.rescan_at = Some(Instant::now()),
                _ = async { watchdog.as_mut().unwrap().tick().await }, if watchdog.is_some() => {
                    self.sd.notifier.send("WATCHDOG=1\n".into(), true);
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        tracing::info!("all vassals stopped: the emperor exits");
        0
    }

    fn deadline(&self, now: Instant) -> Instant {
        let mut d = self.next_full_scan;
        if self.sd.notifier.enabled() && (!self.sd.ready_sent || self.sd.reloading) {
            d = d.min(self.sd.ready_by.max(now));
        }
        if self.sd.notifier.has_pending() {
            d = d.min(now + Duration::from_millis(20));
        }
        if let Some(r) = self.rescan_at {
            d = d.min(r);
        }
        for e in self.vassals.values() {
            if let Some(t) = e.life.next_deadline(&self.policy) {
                d = d.min(t);
            }
        }
        d.max(now)
    }

    // ---- reconciliation --------------------------------------------------------------------

    fn update_watches(&mut self) {
        let mut want = BTreeSet::new();
        for m in &self.monitors {
            m.watch_dirs(&mut want);
        }
        // Symlinked vassals: also watch where the link points (its target may change there).
        if !self.opts.nofollow {
            for p in self.vassals.keys() {
                if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                    if let Some(parent) = std::fs::canonicalize(p)
                        .ok()
                        .and_then(|c| c.parent().map(Path::to_path_buf))
                    {
                        want.insert(parent);
                    }
                }
            }
        }
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        let ident = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(p, id)| !want.contains(*p) || ident(p) != Some(**id))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            let _ = w.unwatch(&p);
            self.watched.remove(&p);
            tracing::debug!(dir = %p.display(), "unwatched");
        }
        for p in want {
            if self.watched.contains_key(&p) {
                continue;
            }
            let Some(id) = ident(&p) else { continue };
            match w.watch(&p, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %p.display(), "watching");
                    self.watched.insert(p, id);
                }
                Err(e) => {
                    if self.watch_failed.insert(p.clone()) {
                        tracing::warn!(
                            dir = %p.display(),
                            "cannot watch ({e}); changes there are seen by the periodic rescan only"
                        );
                    }
                }
            }
        }
    }

    fn reconcile(&mut self, now: Instant) {
        // Watches first: a file created in a new directory after its watch is added raises an
        // event; one created before is seen by the scan below.
        self.update_watches();
        let mut found: BTreeMap<PathBuf, Found> = BTreeMap::new();
        for (i, m) in self.monitors.iter().enumerate() {
            m.scan(i, &self.opts, &mut found);
        }
        // Gone files.
        let gone: Vec<PathBuf> = self
            .vassals
            .keys()
            .filter(|p| !found.contains_key(*p))
            .cloned()
            .collect();
        for p in gone {
            let e = self.vassals.get_mut(&p).expect("present");
            let since = *e.missing_since.get_or_insert(now);
            if now < since + MISSING_GRACE {
                // Look again when the grace period is over.
                let t = since + MISSING_GRACE;
                self.rescan_at = Some(self.rescan_at.map_or(t, |r| r.min(t)));
                continue;
            }
            if matches!(
                e.life.state,
                VassalState::Stopping {
                    then: AfterStop::Remove | AfterStop::Exit,
                    ..
                }
            ) {
                continue;
            }
            tracing::info!(vassal = %p.display(), "vassal file removed: stopping the vassal gracefully");
            self.feed(
                &p,
                Event::Stop {
                    then: AfterStop::Remove,
                    graceful: true,
                },
                now,
            );
        }
        if self.shutdown.is_some() {
            return;
        }
        for (p, f) in found {
            match self.vassals.get_mut(&p) {
                None => {
                    self.vassals.insert(p.clone(), Entry::new(f.monitor));
                    tracing::info!(vassal = %p.display(), monitor = %self.monitors[f.monitor].spec, "new vassal file");
                    self.examine(&p, &f, now);
                }
                Some(e) => {
                    e.missing_since = None;
                    let owner_changed = self.tyrant && e.owner != Some(f.owner);
                    if e.fp != Some(f.fp) || owner_changed {
                        self.examine(&p, &f, now);
                    }
                }
            }
        }
    }

    /// A new or changed file: open it once (beneath its monitor's base, non-blocking, a
    /// regular file within the size budget), check the tyrant rules on what `fstat` of that
    /// descriptor says, then validate those bytes (in tyrant mode: in a child running as the
    /// owner, see `start_check`) and start, reload, restart or keep the running config.
    fn examine(&mut self, path: &Path, f: &Found, now: Instant) {
        let tyrant = self.tyrant;
        let nofollow = tyrant && self.tyrant_nofollow;
        if nofollow && f.owner.symlink {
            if let Err(rule) = tyrant_check(path, &f.owner, true) {
                self.record(path, f, f.owner, None);
                self.refuse(path, rule, now);
                return;
            }
        }
        let base = self.monitors[f.monitor].base();
        let opened = match liege_sys::vassalfile::open(&base, path, nofollow, VASSAL_FILE_MAX) {
            Ok(o) => o,
            Err(err) if err.transient() => {
                tracing::debug!(vassal = %path.display(), "cannot read ({err}); will retry");
                return;
            }
            Err(err @ liege_sys::vassalfile::OpenError::Symlink(_)) => {
                self.record(path, f, f.owner, None);
                self.refuse(
                    path,
                    format!("refused by emperor-tyrant-nofollow: {err}; fix: use real directories and a regular file owned by the app's user"),
                    now,
                );
                return;
            }
            Err(err) => {
                self.record(path, f, f.owner, None);
                self.config_invalid(path, format!("invalid configuration: {err}"), now);
                return;
            }
        };
        if opened.content.is_empty() {
            // Most likely caught between the truncate and the write of an in-place save: the
            // write that fills it raises the next event. Nothing is recorded, so that the next
            // scan looks again; a running vassal is left alone.
            tracing::debug!(vassal = %path.display(), "empty vassal file: ignored until it has content");
            if let Some(e) = self.vassals.get(path) {
                if e.fp.is_none() && !e.life.state.has_process() {
                    self.feed(
                        path,
                        Event::Invalid {
                            reason: "empty file".into(),
                        },
                        now,
                    );
                }
            }
            return;
        }
        let owner = Owner {
            uid: opened.uid,
            gid: opened.gid,
            mode: opened.mode,
            symlink: f.owner.symlink,
        };
        let (first, old_owner) = self.record(path, f, owner, Some(fnv1a(&opened.content)));
        if tyrant {
            let rule = tyrant_check(path, &owner, nofollow).and_then(|()| {
                match opened.dirs.iter().find(|d| d.uid != 0 && d.uid != owner.uid) {
                    Some(d) => Err(format!(
                        "refused by emperor-tyrant: the directory {} is owned by uid {}, neither root nor the file's owner uid {} (its owner could swap what the file names); fix: chown root {}",
                        d.path.display(),
                        d.uid,
                        owner.uid,
                        d.path.display()
                    )),
                    None => Ok(()),
                }
            });
            if let Err(rule) = rule {
                self.refuse(path, rule, now);
                return;
            }
            let e = self.vassals.get_mut(path).expect("entry");
            if let Some(old) = e.refusal.take() {
                tracing::info!(vassal = %path.display(), "tyrant mode accepts the file now");
                if e.life.last_error.as_ref() == Some(&old) {
                    e.life.last_error = None;
                }
            }
        }
        let content = match String::from_utf8(opened.content) {
            Ok(c) => c,
            Err(_) => {
                self.config_invalid(
                    path,
                    format!(
                        "invalid configuration: {} is not UTF-8 text",
                        path.display()
                    ),
                    now,
                );
                return;
            }
        };
        let accepted = Accepted {
            owner,
            dir: Arc::new(opened.dir),
            file: Arc::new(opened.file),
            first,
            old_owner,
            content,
        };
        if tyrant {
            self.start_check(path, accepted);
        } else {
            let validation = self.validate(path, Some(accepted.content.clone()));
            self.finish(path, validation, accepted, now);
        }
    }

    /// Record what the file looked like when examined. Returns (first time, previous owner).
    fn record(
        &mut self,
        path: &Path,
        f: &Found,
        owner: Owner,
        hash: Option<u64>,
    ) -> (bool, Option<Owner>) {
        let e = self.vassals.get_mut(path).expect("entry");
        let first = e.fp.is_none();
        let old_owner = e.owner;
        e.fp = Some(f.fp);
        e.owner = Some(owner);
        e.mtime_secs = f.mtime_secs;
        if hash.is_some() {
            e.disk_hash = hash;
        }
        // Whatever check was running is about an older version of the file.
        e.pending = None;
        (first, old_owner)
    }

    fn running(e: &Entry) -> bool {
        e.life.state.has_process() && !matches!(e.life.state, VassalState::Stopping { .. })
    }

    /// Tyrant mode refuses the file: a running vassal is stopped, a new one not started.
    fn refuse(&mut self, path: &Path, rule: String, now: Instant) {
        let e = self.vassals.get_mut(path).expect("entry");
        if e.refusal.as_ref() != Some(&rule) {
            tracing::error!(vassal = %path.display(), "{rule}");
        }
        e.refusal = Some(rule.clone());
        if Self::running(e) {
            self.feed(
                path,
                Event::Stop {
                    then: AfterStop::Park(rule),
                    graceful: true,
                },
                now,
            );
        } else {
            self.feed(path, Event::Invalid { reason: rule }, now);
        }
    }

    /// The file cannot be used: a running vassal keeps its last good configuration.
    fn config_invalid(&mut self, path: &Path, msg: String, now: Instant) {
        let e = self.vassals.get_mut(path).expect("entry");
        if e.config_error.as_ref() != Some(&msg) {
            if Self::running(e) {
                tracing::error!(vassal = %path.display(), "the vassal keeps running its last good configuration; {msg}");
            } else {
                tracing::error!(vassal = %path.display(), "not started; {msg}");
            }
        }
        e.config_error = Some(msg.clone());
        self.feed(path, Event::Invalid { reason: msg }, now);
    }

    /// Tyrant mode: validate the file in a child running as its owner (`Launcher::spawn_check`)
    /// without waiting for it here; `on_checked` goes on when it is done.
    fn start_check(&mut self, path: &Path, accepted: Accepted) {
        let creds = Credentials::for_owner(accepted.owner.uid, accepted.owner.gid);
        let gen = self.next_instance;
        self.next_instance += 1;
        let slots = self
            .check_slots
            .entry(accepted.owner.uid)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(CHECKS_PER_OWNER)))
            .clone();
        let launcher = self.launcher.clone();
        let dir = accepted.dir.clone();
        let file = accepted.file.clone();
        let e = self.vassals.get_mut(path).expect("entry");
        e.pending = Some((gen, accepted));
        let tx = self.child_tx.clone();
        let key = path.to_path_buf();
        // Spawned from a task of this current-thread runtime: still the main thread, as
        // PR_SET_PDEATHSIG wants.
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let result = match launcher.spawn_check(&key, &creds, &dir, &file) {
                Ok(child) => run_check(child).await,
                Err(err) => Err(format!("cannot start the config check: {err}")),
            };
            let _ = tx.send(ChildMsg {
                key,
                instance: gen,
                kind: ChildKind::Checked(result),
            });
        });
    }

    fn on_checked(&mut self, path: &Path, gen: u64, result: Result<(), String>, now: Instant) {
        let Some(e) = self.vassals.get_mut(path) else {
            return;
        };
        let accepted = match e.pending.take() {
            Some((g, a)) if g == gen => a,
            other => {
                e.pending = other;
                return;
            }
        };
        let validation = match result {
            // On-demand needs the settings (listeners, chmod-socket): parsed here from the
            // bytes already read, once the owner's own check has passed, reading any other
            // file only if the owner owns it or anyone may read it.
            Ok(()) if self.on_demand.enabled() => {
                liege_config::source::with_reader(accepted.owner.uid, || {
                    self.validate(path, Some(accepted.content.clone()))
                })
            }
            Ok(()) => Ok(None),
            Err(msg) => Err(msg),
        };
        self.finish(path, validation, accepted, now);
    }

    /// The rest of `examine` once the file is validated.
    fn finish(
        &mut self,
        path: &Path,
        validation: Result<Option<Box<Settings>>, String>,
        accepted: Accepted,
        now: Instant,
    ) {
        let mut validation = validation;
        // On-demand: the socket name is decided when the vassal is first added (uWSGI), and
        // a vassal may never declare that socket itself.
        let mut new_od = None;
        if let Ok(Some(settings)) = &validation {
            let entry = self.vassals.get(path).expect("entry");
            if let Some(od) = &entry.od {
                if let Some(l) = settings.master.listeners.iter().find(|l| l.addr == od.addr) {
                    validation = Err(format!(
                        "the vassal declares its on-demand socket {} itself ({} = {}); the emperor binds it and hands it over on fd 0: remove that line",
                        od.name, l.option, l.original
                    ));
                }
            } else if !entry.od_decided && self.on_demand.enabled() {
                let owner = self.tyrant.then_some(accepted.owner.uid);
                match self.on_demand.name_for(path, owner) {
                    Ok(None) => new_od = Some(None),
                    Ok(Some(name)) => match bind_on_demand(
                        &name,
                        settings,
                        self.on_demand.backlog,
                        owner.map(|u| (u, accepted.owner.gid)),
                        self.on_demand.directory.as_deref(),
                    ) {
                        Ok(sock) => new_od = Some(Some(sock)),
                        Err(e) => validation = Err(e),
                    },
                    Err(e) => validation = Err(e),
                }
            }
        }
        let tyrant = self.tyrant;
        let e = self.vassals.get_mut(path).expect("entry");
        if let Some(od) = new_od {
            e.od_decided = true;
            e.life.on_demand = od.is_some();
            e.od = od;
        }
        let running = Self::running(e);
        match validation {
            Err(msg) => {
                self.config_invalid(path, format!("invalid configuration: {msg}"), now);
                return;
            }
            Ok(_) => {
                if let Some(old) = e.config_error.take() {
                    tracing::info!(vassal = %path.display(), "configuration valid again");
                    if e.life.last_error.as_ref() == Some(&old) {
                        e.life.last_error = None;
                    }
                }
            }
        }
        let Accepted {
            owner,
            dir,
            file,
            first,
            old_owner,
            ..
        } = accepted;
        let creds = tyrant.then(|| Credentials::for_owner(owner.uid, owner.gid));
        let owner_changed =
            tyrant && !first && old_owner.map(|o| (o.uid, o.gid)) != Some((owner.uid, owner.gid));
        e.creds = creds;
        e.dir = tyrant.then_some(dir);
        e.file = tyrant.then_some(file);
        if running && owner_changed {
            tracing::info!(vassal = %path.display(), uid = owner.uid, gid = owner.gid, "file owner changed: restarting the vassal as the new owner");
            self.feed(
                path,
                Event::Stop {
                    then: AfterStop::Restart,
                    graceful: true,
                },
                now,
            );
        } else if matches!(e.life.state, VassalState::Starting { .. }) {
            // Not up yet (maybe failing to start): start it afresh with the new file rather
            // than asking a process that may never read the pipe to reload.
            tracing::info!(vassal = %path.display(), "vassal file changed while starting: restarting");
            self.feed(
                path,
                Event::Stop {
                    then: AfterStop::Restart,
                    graceful: false,
                },
                now,
            );
        } else {
            if running {
                tracing::info!(vassal = %path.display(), "vassal file changed: reloading gracefully");
            }
            // Running: byte 1. Stopping: start again once it has exited. Otherwise: start now.
            self.feed(path, Event::Reload, now);
        }
    }

    /// Parse the file exactly as the vassal will (same arguments, its directory as the
    /// working directory), with the code behind `liege --check`; `content`: the bytes the
    /// emperor read from its own descriptor, used instead of reading the file again.
    fn validate(
        &self,
        path: &Path,
        content: Option<String>,
    ) -> Result<Option<Box<Settings>>, String> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().map(OsString::from).unwrap_or_default();
        let args = self.launcher.args(path, &name);
        let preload = content.map(|c| (path.to_path_buf(), c));
        match liege_config::parse_in_preloaded(&args, &self.validate_env, dir, preload) {
            Ok(liege_config::Action::Run(s)) => Ok(Some(s)),
            Ok(_) => Ok(None),
            Err(errs) => Err(errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    fn tick(&mut self, now: Instant) {
        let due: Vec<PathBuf> = self
            .vassals
            .iter()
            .filter(|(_, e)| e.life.next_deadline(&self.policy).is_some_and(|t| t <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            let e = &self.vassals[&p];
            if let (VassalState::Throttled { .. }, Some(reason)) = (&e.life.state, e.blocked()) {
                // Do not restart from a file known to be broken: wait for it to change.
                let reason = reason.clone();
                self.feed(&p, Event::Invalid { reason }, now);
                continue;
            }
            self.feed(&p, Event::Tick, now);
        }
    }

    fn reload_all(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!("SIGHUP: reloading every vassal gracefully");
        if self.sd.notifier.enabled() {
            let mut msg = String::from("RELOADING=1\n");
            if let Ok(m) = sd_notify::NotifyState::monotonic_usec_now() {
                msg.push_str(&format!("{m}\n"));
            }
            self.sd.notifier.send(msg, false);
            self.sd.reloading = true;
            self.sd.ready_by = Instant::now() + READY_CAP;
        }
        let now = Instant::now();
        let keys: Vec<PathBuf> = self.vassals.keys().cloned().collect();
        for p in keys {
            let e = &self.vassals[&p];
            if let Some(why) = e.blocked() {
                tracing::warn!(vassal = %p.display(), "not reloaded: {why}");
                continue;
            }
            if matches!(e.life.state, VassalState::Stopping { .. }) {
                continue;
            }
            self.feed(&p, Event::Reload, now);
        }
    }

    /// SIGURG (uWSGI: clear the blacklist): retry every throttled vassal now.
    fn retry_throttled(&mut self) {
        let now = Instant::now();
        let keys: Vec<PathBuf> = self
            .vassals
            .iter()
            .filter(|(_, e)| {
                matches!(e.life.state, VassalState::Throttled { .. }) && e.blocked().is_none()
            })
            .map(|(p, _)| p.clone())
            .collect();
        tracing::info!("SIGURG: retrying {} throttled vassals now", keys.len());
        for p in keys {
            if let Some(e) = self.vassals.get_mut(&p) {
                e.life.attempts = 0;
            }
            self.feed(&p, Event::Reload, now);
        }
    }

    fn begin_shutdown(&mut self, graceful: bool) {
        match self.shutdown {
            Some(false) => return,
            Some(true) if graceful => return,
            _ => {}
        }
        self.shutdown = Some(graceful);
        tracing::info!(
            "{}: stopping {} vassals {}",
            if graceful {
                "SIGTERM"
            } else {
                "SIGINT/SIGQUIT"
            },
            self.vassals.len(),
            if graceful { "gracefully" } else { "now" }
        );
        if self.sd.notifier.enabled() {
            self.sd.notifier.send("STOPPING=1\n".into(), false);
        }
        let now = Instant::now();
        let keys: Vec<PathBuf> = self.vassals.keys().cloned().collect();
        for p in keys {
            self.feed(
                &p,
                Event::Stop {
                    then: AfterStop::Exit,
                    graceful,
                },
                now,
            );
        }
    }

    // ---- transitions and actions -----------------------------------------------------------

    /// Feed one event to a vassal's state machine and perform the resulting actions.
    fn feed(&mut self, path: &Path, ev: Event, now: Instant) {
        let Some(e) = self.vassals.get_mut(path) else {
            return;
        };
        let before = e.life.state.name();
        let actions = e
            .life
            .transition(ev, now, &self.policy, rand::random::<f64>());
        let after = e.life.state.name();
        if before != after && !actions.contains(&Action::Remove) {
            match &e.life.state {
                VassalState::Throttled { until } => tracing::warn!(
                    vassal = %path.display(),
                    "{}; restarting in {:.1}s (attempt {})",
                    e.life.last_error.as_deref().unwrap_or("stopped"),
                    until.saturating_duration_since(now).as_secs_f64(),
                    e.life.attempts
                ),
                VassalState::Failed { reason } if before != "failed" => {
                    tracing::warn!(vassal = %path.display(), "not running: {reason}")
                }
                _ => tracing::debug!(vassal = %path.display(), "{before} -> {after}"),
            }
            if after == "ready" {
                tracing::info!(vassal = %path.display(), pid = e.life.pid.unwrap_or(0), "vassal ready");
            }
        }
        for a in actions {
            self.act(path, a, now);
        }
    }

    fn act(&mut self, path: &Path, a: Action, now: Instant) {
        match a {
            Action::Spawn => self.spawn(path, now),
            Action::Send(b) => {
                let Some(e) = self.vassals.get_mut(path) else {
                    return;
                };
                if b == proto::TO_VASSAL_RELOAD {
                    e.force_hash = e.disk_hash;
                    e.reloads += 1;
                    e.last_reload = Some(SystemTime::now());
                }
                if let Some(ctl) = &e.ctl {
                    let _ = ctl.send(Ctl::Byte(b));
                }
            }
            Action::Kill => {
                if let Some(e) = self.vassals.get(path) {
                    let why = match &e.life.state {
                        VassalState::Stopping { .. } => "did not stop in time".to_string(),
                        _ => e.life.last_error.clone().unwrap_or_default(),
                    };
                    tracing::warn!(vassal = %path.display(), pid = e.life.pid.unwrap_or(0), "SIGKILL: {why}");
                    if let Some(ctl) = &e.ctl {
                        let _ = ctl.send(Ctl::Kill);
                    }
                }
            }
            Action::Remove => {
                if let Some(e) = self.vassals.remove(path) {
                    tracing::info!(vassal = %path.display(), "vassal removed");
                    if let Some(od) = e.od {
                        drop(od.fd);
                        // liege: unlink the socket file (uWSGI left it behind), if still ours
                        // (the task watching it may not have closed its copy yet).
                        if let Some((p, dev, ino)) = od.unix_inode {
                            liege_sys::net::remove_own_unix(&p, dev, ino);
                        }
                    }
                }
            }
            Action::Watch => self.watch(path),
        }
    }

    /// Watch an on-demand vassal's socket; a waiting connection feeds `Activated`.
    fn watch(&mut self, path: &Path) {
        let instance = self.next_instance;
        self.next_instance += 1;
        let Some(e) = self.vassals.get_mut(path) else {
            return;
        };
        let Some(od) = &e.od else { return };
        let fd = match od.fd.try_clone() {
            Ok(fd) => fd,
            Err(err) => {
                tracing::error!(vassal = %path.display(), "cannot watch the on-demand socket {}: {err}", od.name);
                return;
            }
        };
        tracing::info!(vassal = %path.display(), socket = %od.name, "on demand: waiting for a connection");
        let (cancel_tx, cancel_rx) = oneshot::channel();
        e.watch_cancel = Some(cancel_tx);
        e.instance = instance;
        tokio::spawn(watch_socket(
            fd,
            cancel_rx,
            self.child_tx.clone(),
            path.to_path_buf(),
            instance,
        ));
    }

    fn spawn(&mut self, path: &Path, now: Instant) {
        let instance = self.next_instance;
        self.next_instance += 1;
        let Some(e) = self.vassals.get_mut(path) else {
            return;
        };
        e.first_attempt.get_or_insert(now);
        e.last_attempt = Some(now);
        e.watch_cancel = None;
        match self.launcher.spawn(
            path,
            e.creds.as_ref(),
            e.dir.as_deref().zip(e.file.as_deref()),
            e.od.as_ref().map(|o| &o.fd),
        ) {
            Ok((child, sock)) => {
                let pid = child.pid;
                let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
                e.ctl = Some(ctl_tx);
                e.instance = instance;
                e.force_hash = e.disk_hash;
                tracing::info!(vassal = %path.display(), pid, "vassal spawned");
                tokio::spawn(watch_child(
                    child,
                    sock,
                    ctl_rx,
                    self.child_tx.clone(),
                    path.to_path_buf(),
                    instance,
                ));
                self.feed(path, Event::Spawned { pid }, now);
            }
            Err(err) => {
                tracing::error!(vassal = %path.display(), program = %self.launcher.program.display(), "cannot spawn: {err}");
                self.feed(
                    path,
                    Event::SpawnFailed {
                        error: err.to_string(),
                    },
                    now,
                );
            }
        }
    }

    fn on_child(&mut self, msg: ChildMsg) {
        let now = Instant::now();
        if let ChildKind::Checked(result) = msg.kind {
            self.on_checked(&msg.key, msg.instance, result, now);
            return;
        }
        let Some(e) = self.vassals.get_mut(&msg.key) else {
            return;
        };
        if e.instance != msg.instance {
            return;
        }
        match msg.kind {
            ChildKind::Activate => {
                e.watch_cancel = None;
                tracing::info!(vassal = %msg.key.display(), "on demand: connection waiting, spawning the vassal");
                self.feed(&msg.key, Event::Activated, now);
            }
            ChildKind::Byte(b) => {
                tracing::debug!(vassal = %msg.key.display(), byte = b, "from vassal");
                if b == proto::FROM_VASSAL_VOLUNTARY_SHUTDOWN {
                    tracing::info!(vassal = %msg.key.display(), "voluntary shutdown");
                }
                self.feed(&msg.key, Event::Byte(b), now);
            }
            ChildKind::PipeClosed => {
                tracing::debug!(vassal = %msg.key.display(), "emperor pipe closed by the vassal");
            }
            ChildKind::Checked(_) => unreachable!("handled above"),
            ChildKind::Exited(how) => {
                e.ctl = None;
                let expected = matches!(e.life.state, VassalState::Stopping { .. });
                if expected {
                    tracing::info!(vassal = %msg.key.display(), "vassal exited ({how})");
                }
                self.feed(&msg.key, Event::Exited { how }, now);
            }
        }
    }

    // ---- observability ---------------------------------------------------------------------

    fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut c = BTreeMap::new();
        for e in self.vassals.values() {
            *c.entry(e.life.state.name()).or_insert(0) += 1;
        }
        c
    }

    fn sd_update(&mut self) {
        if !self.sd.notifier.enabled() {
            return;
        }
        self.sd.notifier.flush();
        let counts = self.counts();
        let mut status = format!("The Emperor is governing {} vassals", self.vassals.len());
        if !counts.is_empty() {
            status.push_str(": ");
            status.push_str(
                &counts
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let waiting = self.shutdown.is_none() && (!self.sd.ready_sent || self.sd.reloading);
        let mut settled =
            self.first_scan_done && self.vassals.values().all(|e| e.life.state.settled());
        if waiting && !settled && Instant::now() >= self.sd.ready_by {
            tracing::warn!(
                "some vassals are still starting after {}s: telling systemd we are ready anyway",
                READY_CAP.as_secs()
            );
            settled = true;
        }
        let mut msg = String::new();
        if settled && waiting {
            msg.push_str("READY=1\n");
            self.sd.ready_sent = true;
            self.sd.reloading = false;
        }
        let status_changed = status != self.sd.last_status;
        if status_changed || !msg.is_empty() {
            msg.push_str(&format!("STATUS={status}\n"));
            self.sd.notifier.send(msg, false);
        }
        if status_changed {
            self.sd.last_status = status;
        }
    }

    fn stats_doc(&self) -> StatsDoc {
        let now = Instant::now();
        let mut vassals = Vec::new();
        let mut blacklist = Vec::new();
        for (p, e) in &self.vassals {
            let v = &e.life;
            let (next_retry, next_in) = match v.state {
                VassalState::Throttled { until } => (
                    self.epoch(Some(until)).max(1),
                    until.saturating_duration_since(now).as_millis() as i64,
                ),
                _ => (0, 0),
            };
            let id = p.display().to_string();
            if let VassalState::Throttled { until } = v.state {
                blacklist.push(BlacklistEntry {
                    id: id.clone(),
                    throttle_level: until
                        .saturating_duration_since(e.last_attempt.unwrap_or(now))
                        .as_millis() as i64,
                    attempt: v.attempts as i64,
                    first_attempt: self.epoch(e.first_attempt),
                    last_attempt: self.epoch(e.last_attempt),
                });
            }
            let (uid, gid) = match &e.creds {
                Some(c) => (c.uid as i64, c.gid as i64),
                None => (
                    nix::unistd::geteuid().as_raw() as i64,
                    nix::unistd::getegid().as_raw() as i64,
                ),
            };
            vassals.push(VassalStats {
                id,
                pid: match v.state {
                    VassalState::OnDemand => -1,
                    _ => v.pid.map(i64::from).unwrap_or(0),
                },
                born: self.epoch(v.born),
                last_mod: e.mtime_secs,
                last_heartbeat: self.epoch(v.last_heartbeat),
                loyal: v.loyal.is_some() as i64,
                ready: (v.ready.is_some() || v.accepting.is_some()) as i64,
                accepting: v.accepting.is_some() as i64,
                last_loyal: self.epoch(v.loyal),
                last_ready: self.epoch(v.ready),
                last_accepting: self.epoch(v.accepting),
                first_run: self.epoch(v.first_run),
                last_run: self.epoch(v.last_run),
                cursed: match v.state {
                    VassalState::Stopping { since, .. } => self.epoch(Some(since)),
                    _ => 0,
                },
                zerg: 0,
                on_demand: e.od.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
                uid,
                gid,
                monitor: self.monitors[e.monitor].spec.clone(),
                respawns: v.respawns as i64,
                state: v.state.name().to_string(),
                last_error: e.blocked().cloned().or_else(|| match &v.state {
                    VassalState::Failed { reason } => Some(reason.clone()),
                    _ => v.last_error.clone(),
                }),
                config_hash: e
                    .force_hash
                    .filter(|_| v.pid.is_some())
                    .map(|h| format!("{h:016x}")),
                config_hash_disk: e.disk_hash.map(|h| format!("{h:016x}")),
                next_retry,
                next_retry_in_ms: next_in,
                attempts: v.attempts as i64,
                reloads: e.reloads as i64,
                last_reload_ms: e
                    .last_reload
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
            });
        }
        StatsDoc {
            version: format!("liege {}", env!("CARGO_PKG_VERSION")),
            pid: std::process::id() as i64,
            uid: nix::unistd::getuid().as_raw() as i64,
            gid: nix::unistd::getgid().as_raw() as i64,
            cwd: self.cwd.display().to_string(),
            emperor: self.monitors.iter().map(|m| m.spec.clone()).collect(),
            emperor_tyrant: self.tyrant as i64,
            throttle_level: 0,
            vassals,
            blacklist,
        }
    }
}

/// The task that waits for a connection on an on-demand socket (never accepting it: the
/// vassal will). Registering a fresh fd each time reports connections already queued.
async fn watch_socket(
    fd: std::os::fd::OwnedFd,
    cancel: oneshot::Receiver<()>,
    tx: mpsc::UnboundedSender<ChildMsg>,
    key: PathBuf,
    instance: u64,
) {
    // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open, and is the same
    // descriptor, until the AsyncFd is dropped at the end of this function.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    let afd = match registered {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(vassal = %key.display(), "cannot watch the on-demand socket: {e}");
            return;
        }
    };
    tokio::select! {
        _ = cancel => {}
        r = afd.readable() => {
            if r.is_ok() {
                let _ = tx.send(ChildMsg { key, instance, kind: ChildKind::Activate });
            }
        }
    }
}

/// Wait for a config check (`Launcher::spawn_check`) within [`CHECK_TIMEOUT`]: Ok if it
/// exited 0, else its error lines. A check that takes too long is killed.
async fn run_check((mut child, stderr): (Proc, std::os::fd::OwnedFd)) -> Result<(), String> {
    let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr);
    let run = async {
        let mut out = Vec::new();
        if let Ok(err) = stderr {
            let _ = err.take(CHECK_OUTPUT_MAX).read_to_end(&mut out).await;
        }
        (child.wait().await, out)
    };
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, run).await;
    if outcome.is_err() {
        child.kill();
        let _ = child.wait().await;
    }
    match outcome {
        Err(_) => Err(format!(
            "the config check (run as the file's owner) did not finish within {}s; is something it reads a FIFO or very slow?",
            CHECK_TIMEOUT.as_secs()
        )),
        Ok((Ok(st), _)) if st.success() => Ok(()),
        Ok((st, out)) => {
            let text = String::from_utf8_lossy(&out);
            let lines: Vec<&str> = text
                .lines()
                .map(|l| l.strip_prefix("liege: ").unwrap_or(l))
                .filter(|l| !l.trim().is_empty())
                .collect();
            if lines.is_empty() {
                Err(format!("the config check failed ({})", describe(st)))
            } else {
                Err(lines.join("; "))
            }
        }
    }
}

/// The task that owns one vassal process and its pipe.
async fn watch_child(
    mut child: Proc,
    sock: std::os::unix::net::UnixStream,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    tx: mpsc::UnboundedSender<ChildMsg>,
    key: PathBuf,
    instance: u64,
) {
    let send = |kind| {
        let _ = tx.send(ChildMsg {
            key: key.clone(),
            instance,
            kind,
        });
    };
    let stream = sock
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(sock));
    let (mut rd, mut wr) = match stream {
        Ok(s) => s.into_split(),
        Err(e) => {
            tracing::error!(vassal = %key.display(), "emperor pipe unusable: {e}; killing the vassal");
            child.kill();
            send(ChildKind::Exited(describe(child.wait().await)));
            return;
        }
    };
    let last_error = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let mut relay = child
        .stderr
        .take()
        .map(|e| tokio::spawn(relay_stderr(e, last_error.clone())));
    let mut buf = [0u8; 64];
    let mut pipe_open = true;
    let mut ctl_open = true;
    loop {
        tokio::select! {
            st = child.wait() => {
                // The vassal's last lines may still be in the pipe (its workers can hold it a
                // moment longer): read them, within a bound.
                if let Some(r) = relay.take() {
                    let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
                }
                let how = describe(st);
                let how = match last_error.lock().ok().and_then(|mut l| l.take()) {
                    Some(line) => format!("{how}; last error: {line}"),
                    None => how,
                };
                send(ChildKind::Exited(how));
                return;
            }
            r = rd.read(&mut buf), if pipe_open => match r {
                Ok(0) | Err(_) => {
                    pipe_open = false;
                    send(ChildKind::PipeClosed);
                }
                Ok(n) => {
                    for b in &buf[..n] {
                        send(ChildKind::Byte(*b));
                    }
                }
            },
            c = ctl.recv(), if ctl_open => match c {
                Some(Ctl::Byte(b)) => {
                    let _ = wr.write_all(&[b]).await;
                }
                Some(Ctl::Kill) => child.kill(),
                None => ctl_open = false,
            },
        }
    }
}

/// Copy a vassal's stderr to ours line by line, keeping the last error line (liege's
/// `ERROR:` lines, uWSGI-style `*** ... ***` and Python exception lines) in `last`.
async fn relay_stderr(
    stderr: std::os::fd::OwnedFd,
    last: std::sync::Arc<std::sync::Mutex<Option<String>>>,
) {
    use tokio::io::AsyncBufReadExt;
    let stderr = match tokio::net::unix::pipe::Receiver::from_owned_fd(stderr) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("a vassal's stderr pipe is unusable: {e}");
            return;
        }
    };
    let mut rd = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        {
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(&line);
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(cause) = error_line(text.trim_end()) {
            if let Ok(mut l) = last.lock() {
                *l = Some(cause);
            }
        }
    }
}

/// The message of an error line of a vassal's log, if it is one: `liege[pid] role ERROR: msg`
/// gives `msg`.
fn error_line(line: &str) -> Option<String> {
    let (_, msg) = line.split_once(" ERROR: ")?;
    let msg = msg.trim();
    (!msg.is_empty()).then(|| msg.chars().take(400).collect())
}

enum StatsListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

fn display_addr(a: &BindAddr) -> String {
    match a {
        BindAddr::Tcp { host, port } => format!("{host}:{port}"),
        BindAddr::Unix(p) => p.display().to_string(),
        BindAddr::Abstract(n) => format!("@{n}"),
        BindAddr::Fd(n) => format!("fd://{n}"),
    }
}

async fn bind_stats(addr: &BindAddr) -> std::io::Result<StatsListener> {
    match addr {
        BindAddr::Tcp { host, port } => {
            let h = if host.is_empty() {
                "0.0.0.0"
            } else {
                host.as_str()
            };
            let h = h.trim_start_matches('[').trim_end_matches(']');
            Ok(StatsListener::Tcp(
                tokio::net::TcpListener::bind((h, *port)).await?,
            ))
        }
        BindAddr::Unix(p) => {
            if std::os::unix::net::UnixStream::connect(p).is_err() {
                let _ = std::fs::remove_file(p);
            }
            Ok(StatsListener::Unix(tokio::net::UnixListener::bind(p)?))
        }
        BindAddr::Abstract(n) => {
            use std::os::linux::net::SocketAddrExt;
            let sa = std::os::unix::net::SocketAddr::from_abstract_name(n.as_bytes())?;
            let l = std::os::unix::net::UnixListener::bind_addr(&sa)?;
            l.set_nonblocking(true)?;
            Ok(StatsListener::Unix(tokio::net::UnixListener::from_std(l)?))
        }
        BindAddr::Fd(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: `fd://N` names a listening socket this process was given and owns; it
            // is adopted once, here.
            let l = unsafe { std::net::TcpListener::from_raw_fd(*fd) };
            l.set_nonblocking(true)?;
            Ok(StatsListener::Tcp(tokio::net::TcpListener::from_std(l)?))
        }
    }
}

async fn serve_stats(
    l: StatsListener,
    req: mpsc::Sender<oneshot::Sender<StatsDoc>>,
    minified: bool,
    http: bool,
) {
    async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut s: S,
        req: mpsc::Sender<oneshot::Sender<StatsDoc>>,
        minified: bool,
        http: bool,
    ) {
        let (tx, rx) = oneshot::channel();
        if req.send(tx).await.is_err() {
            return;
        }
        let Ok(doc) = rx.await else { return };
        let _ = s
            .write_all(&crate::stats::render(&doc, minified, http))
            .await;
        let _ = s.shutdown().await;
        // Drain whatever the client sent (an HTTP request) so that closing does not reset
        // the connection before it read the answer.
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    loop {
        match &l {
            StatsListener::Tcp(t) => match t.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(answer(s, req.clone(), minified, http));
                }
                Err(e) => {
                    tracing::warn!("emperor stats accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            StatsListener::Unix(u) => match u.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(answer(s, req.clone(), minified, http));
                }
                Err(e) => {
                    tracing::warn!("emperor stats accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: u32, gid: u32, mode: u32, symlink: bool) -> Owner {
        Owner {
            uid,
            gid,
            mode,
            symlink,
        }
    }

    #[test]
    fn tyrant_rules_name_the_rule_and_the_fix() {
        let p = Path::new("/home/a/v/app.ini");
        assert!(tyrant_check(p, &owner(1000, 1000, 0o644, false), true).is_ok());
        let e = tyrant_check(p, &owner(0, 1000, 0o644, false), false).unwrap_err();
        assert!(e.contains("uid 0") && e.contains("fix: chown"), "{e}");
        let e = tyrant_check(p, &owner(1000, 0, 0o644, false), false).unwrap_err();
        assert!(e.contains("gid 0"), "{e}");
        let e = tyrant_check(p, &owner(1000, 1000, 0o664, false), false).unwrap_err();
        assert!(
            e.contains("0664") && e.contains("fix: chmod go-w /home/a/v/app.ini"),
            "{e}"
        );
        let e = tyrant_check(p, &owner(1000, 1000, 0o644, true), true).unwrap_err();
        assert!(
            e.contains("emperor-tyrant-nofollow") && e.contains("symlink"),
            "{e}"
        );
        // Without nofollow a symlink is judged by its target's owner.
        assert!(tyrant_check(p, &owner(1000, 1000, 0o644, true), false).is_ok());
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}
