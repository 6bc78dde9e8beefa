//! The master process: boot (logs, sockets, privileges, pidfiles) and the poll loop.

use crate::children::RealChildren;
use crate::control::{emperor_action, emperor_send, Action, Fifos, Notify, Touch};
use crate::sockets::{Inherited, Sockets};
use crate::state::Phase;
use crate::supervisor::{Generation, Notice, ReloadKind, Supervisor};
use liege_config::{MasterConfig, Settings};
use liege_protocol::control::FromWorker;
use liege_protocol::emperor as ep;
use liege_sys::fd::{poll, POLLERR, POLLHUP, POLLIN};
use liege_sys::spawn::SelfExe;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The master's housekeeping period (touch files, heartbeat, log size), as uWSGI's tick.
const TICK: Duration = Duration::from_secs(1);

/// Why the master could not start. Each variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("could not open the log file {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("could not install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("could not open /proc/self/exe: {0}")]
    SelfExe(std::io::Error),
    #[error(transparent)]
    Socket(#[from] liege_sys::net::SocketError),
    #[error(transparent)]
    Credentials(#[from] liege_sys::creds::CredError),
}

/// Log-file state for `logto`/`daemonize`: workers write into a pipe the master relays to the
/// file, so only the master ever holds the file and reopening or rotating it is clean.
struct LogRelay {
    path: PathBuf,
    maxsize: Option<u64>,
    backup: Option<PathBuf>,
    pipe_read: Option<OwnedFd>,
    _pipe_write: Option<OwnedFd>,
}

impl LogRelay {
    fn rotate(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let target = liege_sys::logfile::rotated_name(&self.path, self.backup.as_deref(), now);
        if let Err(e) = std::fs::rename(&self.path, &target) {
            tracing::error!("log rotation: rename to {}: {e}", target.display());
            return;
        }
        self.reopen();
        tracing::info!("log rotated to {}", target.display());
    }

    fn reopen(&self) {
        // What workers wrote before the reopen goes to the file it was written for.
        self.relay();
        match liege_sys::logfile::open(&self.path) {
            Ok(f) => {
                let _ = liege_sys::logfile::redirect_stdio(&f);
            }
            Err(e) => tracing::error!("reopen {}: {e}", self.path.display()),
        }
    }

    fn check_size(&self) {
        let Some(max) = self.maxsize else {
            return;
        };
        let Some(size) = liege_sys::fd::file_size(2) else {
            return;
        };
        if size >= max {
            self.rotate();
        }
    }

    /// Copy what workers wrote to the pipe into our (current) log file.
    fn relay(&self) {
        let Some(r) = &self.pipe_read else {
            return;
        };
        let mut buf = vec![0u8; 65536];
        while let Ok(n @ 1..) = nix::unistd::read(r, &mut buf) {
            liege_sys::fd::write_all_raw(2, &buf[..n]);
        }
    }
}

pub struct Master {
    argv: Vec<OsString>,
    env: Vec<(String, String)>,
    cfg: MasterConfig,
    signals: liege_sys::signals::SignalPipe,
    sockets: Sockets,
    children: RealChildren,
    sup: Supervisor,
    emperor_fd: Option<RawFd>,
    notify: Notify,
    fifos: Fifos,
    touches: Vec<Touch>,
    log: Option<LogRelay>,
    pidfiles: Vec<PathBuf>,
    stats: Option<crate::stats::StatsServer>,
    daemons: crate::daemons::Daemons,
    cron: crate::daemons::Cron,
    loyal_sent: bool,
    /// Byte 1 ("spawned") went to the emperor (sent once per master lifetime).
    spawned_sent: bool,
    /// The code `run` returns (22 when the first generation cannot load the app).
    exit_code: i32,
    /// The last `LoadFailed` a worker sent (the Python exception in one line).
    last_load_error: Option<String>,
    /// Last sign of traffic (for `idle`).
    last_activity: Instant,
    last_tick: Instant,
    last_heartbeat: Instant,
}

fn generation_of(cfg: &MasterConfig) -> Generation {
    let mut worker = cfg.worker.clone();
    worker.processes = cfg.processes.max(1);
    Generation {
        worker,
        processes: cfg.processes.max(1),
        reload_batch: cfg.reload_batch.max(1),
        mercy: cfg.worker_reload_mercy,
        max_lifetime: cfg.max_worker_lifetime,
        // `cheaper-algo` can only be `spare` (the config layer refuses the others).
        cheaper: (cfg.cheaper > 0).then(|| crate::supervisor::Cheaper {
            min: cfg.cheaper,
            initial: cfg.cheaper_initial.unwrap_or(cfg.cheaper).max(cfg.cheaper),
            step: cfg.cheaper_step.max(1),
            overload: cfg.cheaper_overload.max(1),
        }),
    }
}

fn touches_of(cfg: &MasterConfig) -> Vec<Touch> {
    let mut t = Vec::new();
    for p in &cfg.touch_reload {
        t.push(Touch::new(
            p.clone(),
            Action::Reload {
                kind: ReloadKind::Graceful,
                reread: true,
            },
        ));
    }
    for p in &cfg.touch_chain_reload {
        t.push(Touch::new(
            p.clone(),
            Action::Reload {
                kind: ReloadKind::Chain,
                reread: true,
            },
        ));
    }
    for p in &cfg.touch_workers_reload {
        t.push(Touch::new(
            p.clone(),
            Action::Reload {
                kind: ReloadKind::Graceful,
                reread: false,
            },
        ));
    }
    for p in &cfg.touch_logreopen {
        t.push(Touch::new(p.clone(), Action::ReopenLog));
    }
    t
}

impl Master {
    /// Everything before the loop, in order: logs, signals, pidfile, sockets, privileges.
    pub fn boot(
        settings: Settings,
        argv: Vec<OsString>,
        env: Vec<(String, String)>,
    ) -> Result<Master, BootError> {
        let cfg = settings.master.clone();
        // Nothing we inherited is passed on unless we say so (the emperor pipe, systemd and
        // fd://N sockets are kept open, but not across exec).
        liege_sys::fd::cloexec_all_from(3);
        for w in &settings.warnings {
            tracing::warn!("{w}");
        }
        if let Some(fd) = settings.emperor_fd {
            // The emperor pipe is ours only: never inherited by workers.
            let _ = liege_sys::fd::set_cloexec(fd, true);
            let _ = liege_sys::fd::set_nonblocking(fd, true);
        }
        // Logs. A vassal never forks away: daemonize turns into logto (uWSGI §7.3).
        let mut log = None;
        let logpath = match (&cfg.daemonize, &cfg.logto) {
            (Some(d), _) if settings.emperor_fd.is_none() => {
                liege_sys::logfile::daemonize(d).map_err(|source| BootError::Log {
                    path: d.display().to_string(),
                    source,
                })?;
                Some(d.clone())
            }
            (Some(p), _) | (None, Some(p)) => {
                let f = liege_sys::logfile::open(p).map_err(|source| BootError::Log {
                    path: p.display().to_string(),
                    source,
                })?;
                liege_sys::logfile::redirect_stdio(&f).map_err(|source| BootError::Log {
                    path: p.display().to_string(),
                    source,
                })?;
                Some(p.clone())
            }
            (None, None) => None,
        };
        if let Some(path) = logpath {
            // Workers always write into a pipe the master relays to the file: a reopen
            // (`touch-logreopen`, FIFO `l`, `log-reopen`) or a rotation then moves every
            // process's output to the new file at once.
            let (pipe_read, pipe_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok((r, w)) => {
                    let _ = liege_sys::fd::set_nonblocking(r.as_raw_fd(), true);
                    (Some(r), Some(w))
                }
                Err(e) => {
                    tracing::error!("cannot create the log pipe (workers keep the file open): {e}");
                    (None, None)
                }
            };
            log = Some(LogRelay {
                path,
                maxsize: cfg.log_maxsize,
                backup: cfg.log_backupname.clone(),
                pipe_read,
                _pipe_write: pipe_write,
            });
        }
        tracing::info!("liege master starting (pid {})", std::process::id());
        if let Some(mask) = cfg.umask {
            liege_sys::set_umask(mask);
        }
        let signals = liege_sys::signals::SignalPipe::install(&[
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGCHLD,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ])
        .map_err(BootError::Signals)?;
        let exe = SelfExe::open().map_err(BootError::SelfExe)?;
        let pid = std::process::id();
        let mut pidfiles = Vec::new();
        // pidfile: written before the privilege drop (as root), like uWSGI.
        if let Some(p) = &cfg.pidfile {
            match liege_sys::pidfile::write(p, pid) {
                Ok(()) => pidfiles.push(p.clone()),
                Err(e) => tracing::error!("pidfile {}: {e}", p.display()),
            }
        }
        // Sockets: adopt what we were handed, bind the rest, then drop privileges (so
        // privileged ports work with `uid`).
        let inherited = Inherited::collect(&env, &cfg);
        let identity = liege_sys::creds::Identity::resolve(
            cfg.uid.as_deref(),
            cfg.gid.as_deref(),
            cfg.no_initgroups,
        )?;
        let sockets = Sockets::open(&cfg, inherited)?;
        let stats = match &cfg.stats {
            Some(addr) => {
                let (backlog, _) = liege_sys::net::effective_backlog(cfg.listen);
                let b = liege_sys::net::bind(
                    addr,
                    liege_sys::net::BindOptions {
                        backlog,
                        reuse_port: false,
                    },
                )?;
                if let (liege_config::BindAddr::Unix(p), Some(mode)) = (addr, cfg.chmod_socket) {
                    let _ = liege_sys::net::chmod(p, mode);
                }
                tracing::info!("stats server on {}", b.local);
                Some(crate::stats::StatsServer::new(
                    b,
                    cfg.stats_http,
                    cfg.stats_minified,
                ))
            }
            None => None,
        };
        if sockets.listeners.is_empty() {
            tracing::warn!("no socket configured: workers will have nothing to accept on");
        }
        // master-as-root: the master only chroots; each worker drops to the identity itself
        // before it loads Python.
        let drop_to = if cfg.master_as_root
            && nix::unistd::geteuid().is_root()
            && (identity.uid.is_some() || identity.gid.is_some())
        {
            Some(liege_sys::creds::drop_to_for_workers(&identity)?)
        } else {
            None
        };
        let own_identity = if drop_to.is_some() {
            liege_sys::creds::Identity {
                uid: None,
                gid: None,
                initgroups: false,
            }
        } else {
            identity.clone()
        };
        liege_sys::creds::chroot_and_drop(cfg.chroot.as_deref(), &own_identity)?;
        if let Some(dir) = &cfg.chroot {
            tracing::info!("chroot to {}", dir.display());
        }
        if drop_to.is_none() && (identity.uid.is_some() || identity.gid.is_some()) {
            tracing::info!(
                "running as uid {} gid {}",
                nix::unistd::getuid(),
                nix::unistd::getgid()
            );
        }
        match &drop_to {
            Some(d) => tracing::info!(
                "master-as-root: the master keeps root; workers run as uid {} gid {}",
                d.uid.map_or("-".to_string(), |u| u.to_string()),
                d.gid.map_or("-".to_string(), |g| g.to_string()),
            ),
            None if nix::unistd::geteuid().is_root() => {
                tracing::warn!("the app will run as root (set uid/gid to drop privileges)")
            }
            None => {}
        }
        for (p, atomic) in [(&cfg.pidfile2, false), (&cfg.safe_pidfile, true)] {
            if let Some(p) = p {
                let r = if atomic {
                    liege_sys::pidfile::write_atomic(p, pid)
                } else {
                    liege_sys::pidfile::write(p, pid)
                };
                match r {
                    Ok(()) => pidfiles.push(p.clone()),
                    Err(e) => tracing::error!("pidfile {}: {e}", p.display()),
                }
            }
        }
        let fifos = Fifos::create(&cfg.master_fifo);
        let touches = touches_of(&cfg);
        let mut children = RealChildren::new(exe, env.clone());
        children.drop_to = drop_to;
        children.listeners = sockets.inherited();
        children.stdio = log
            .as_ref()
            .and_then(|l| l._pipe_write.as_ref())
            .map(|w| w.as_raw_fd());
        let notify = Notify {
            enabled: settings.emperor_fd.is_none() && env.iter().any(|(k, _)| k == "NOTIFY_SOCKET"),
        };
        notify.send(&[sd_notify::NotifyState::Status("starting workers")]);
        let sup = Supervisor::new(generation_of(&cfg));
        let public = crate::children::public_env(&env);
        let daemons = crate::daemons::Daemons::new(&cfg.daemons, public.clone(), cfg.reload_mercy);
        let cron = crate::daemons::Cron::new(&cfg.crons, public, cfg.cron_harakiri);
        let now = Instant::now();
        Ok(Master {
            argv,
            env,
            cfg,
            signals,
            sockets,
            children,
            sup,
            emperor_fd: settings.emperor_fd,
            notify,
            fifos,
            touches,
            log,
            pidfiles,
            stats,
            daemons,
            cron,
            loyal_sent: false,
            spawned_sent: false,
            exit_code: 0,
            last_activity: now,
            last_load_error: None,
            last_tick: now,
            last_heartbeat: now,
        })
    }

    /// The loop; returns the exit code.
    pub fn run(mut self) -> i32 {
        self.daemons.tick(Instant::now());
        if self.cfg.cheap {
            self.sup.go_cheap(Instant::now(), &mut self.children);
            tracing::info!("cheap mode: no worker until the first connection");
            // The sockets are listening: connections queue in the kernel until workers run.
            if let Some(fd) = self.emperor_fd {
                emperor_send(fd, ep::FROM_VASSAL_SPAWNED);
                emperor_send(fd, ep::FROM_VASSAL_ACCEPTING);
                self.spawned_sent = true;
            }
            self.notify.send(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status("cheap: waiting for the first connection"),
            ]);
        }
        loop {
            let now = Instant::now();
            self.reap(now);
            let wake = self.sup.tick(now, &mut self.children);
            self.handle_notices();
            if self.sup.phase == Phase::Stopped && self.daemons.all_stopped() {
                break;
            }
            if now.duration_since(self.last_tick) >= TICK {
                self.last_tick = now;
                self.housekeeping(now);
            }
            // Sleep until the next deadline, the next tick, or an event.
            let next_tick = self.last_tick + TICK;
            let until = wake.map_or(next_tick, |w| w.min(next_tick));
            let timeout = until
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(1000) as i32;
            let mut fds: Vec<(RawFd, i16)> = vec![(self.signals.fd(), POLLIN)];
            let emperor_idx = self.emperor_fd.map(|fd| {
                fds.push((fd, POLLIN));
                fds.len() - 1
            });
            let fifo_idx = self.fifos.fd().map(|fd| {
                fds.push((fd, POLLIN));
                fds.len() - 1
            });
            let log_idx = self
                .log
                .as_ref()
                .and_then(|l| l.pipe_read.as_ref())
                .map(|r| {
                    fds.push((r.as_raw_fd(), POLLIN));
                    fds.len() - 1
                });
            let stats_base = fds.len();
            let stats_fds = self
                .stats
                .as_ref()
                .map(|s| s.poll_fds())
                .unwrap_or_default();
            fds.extend(stats_fds.iter().copied());
            let controls = self.children.control_fds();
            let ctl_base = fds.len();
            fds.extend(controls.iter().map(|&(_, fd)| (fd, POLLIN)));
            // cheap: watch the listeners for a first connection (never accept it here: it
            // waits in the listen queue for a worker).
            let cheap_base = fds.len();
            let cheap_fds: Vec<RawFd> =
                if self.sup.is_cheap() && matches!(self.sup.phase, Phase::Running) {
                    self.sockets
                        .listeners
                        .iter()
                        .map(|l| l.bound.fd.as_raw_fd())
                        .collect()
                } else {
                    Vec::new()
                };
            fds.extend(cheap_fds.iter().map(|&fd| (fd, POLLIN)));
            let revents = match poll(&fds, timeout.max(0)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let now = Instant::now();
            let mut actions = Vec::new();
            if revents[0] != 0 {
                for sig in self.signals.drain() {
                    if let Some(a) = self.signal_action(sig) {
                        actions.push(a);
                    }
                }
            }
            if let Some(i) = emperor_idx {
                if revents[i] != 0 {
                    actions.extend(self.read_emperor());
                }
            }
            if let Some(i) = fifo_idx {
                if revents[i] != 0 {
                    actions.extend(self.fifos.read());
                }
            }
            if let Some(i) = log_idx {
                if revents[i] != 0 {
                    if let Some(l) = &self.log {
                        l.relay();
                    }
                }
            }
            for (k, &(pid, _)) in controls.iter().enumerate() {
                if revents[ctl_base + k] & (POLLIN | POLLHUP | POLLERR) != 0 {
                    self.read_worker(pid, now);
                }
            }
            if let Some(k) = (0..cheap_fds.len()).find(|&k| revents[cheap_base + k] != 0) {
                tracing::info!(
                    "connection waiting on {}: leaving cheap mode, spawning workers",
                    self.sockets.listeners[k].spec.original
                );
                self.sup.wake();
                self.last_activity = now;
            }
            if let Some(st) = &mut self.stats {
                st.handle(
                    &revents[stats_base..stats_base + stats_fds.len()],
                    &self.sup,
                    &self.sockets,
                    &self.daemons.stats(),
                    &|pid| self.children.live(pid),
                );
            }
            for a in actions {
                self.act(a, now);
            }
        }
        self.shutdown()
    }

    fn signal_action(&self, sig: i32) -> Option<Action> {
        match sig {
            libc::SIGCHLD => None,
            libc::SIGHUP => {
                tracing::info!("SIGHUP: graceful reload");
                Some(Action::Reload {
                    kind: ReloadKind::Graceful,
                    reread: true,
                })
            }
            libc::SIGTERM if self.cfg.sigterm_reloads && !self.cfg.die_on_term => {
                tracing::info!("SIGTERM: brutal reload (sigterm-reloads)");
                Some(Action::Reload {
                    kind: ReloadKind::Brutal,
                    reread: true,
                })
            }
            libc::SIGTERM => {
                tracing::info!("SIGTERM: graceful stop");
                Some(Action::Stop { graceful: true })
            }
            libc::SIGINT | libc::SIGQUIT => {
                tracing::info!(
                    "{}: fast stop",
                    if sig == libc::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGQUIT"
                    }
                );
                Some(Action::Stop { graceful: false })
            }
            libc::SIGUSR1 | libc::SIGUSR2 => Some(Action::LogStatus),
            _ => None,
        }
    }

    fn read_emperor(&mut self) -> Vec<Action> {
        let Some(fd) = self.emperor_fd else {
            return Vec::new();
        };
        let mut buf = [0u8; 64];
        let n = match liege_sys::fd::read_raw(fd, &mut buf) {
            liege_sys::fd::ReadOutcome::Data(n) => n,
            liege_sys::fd::ReadOutcome::WouldBlock => return Vec::new(),
            liege_sys::fd::ReadOutcome::Eof | liege_sys::fd::ReadOutcome::Error(_) => {
                tracing::error!("lost connection with my emperor: stopping");
                liege_sys::fd::close_raw(fd);
                self.emperor_fd = None;
                return vec![Action::Stop { graceful: true }];
            }
        };
        let mut out = Vec::new();
        for &b in &buf[..n] {
            match emperor_action(b) {
                Some(a) => {
                    tracing::info!("emperor says {b}: {a:?}");
                    out.push(a);
                }
                None => tracing::warn!("unknown byte {b} from the emperor"),
            }
        }
        out
    }

    fn read_worker(&mut self, pid: i32, now: Instant) {
        let Some(msgs) = self.children.read(pid) else {
            return;
        };
        for m in msgs {
            match m {
                FromWorker::Ready { .. } => self.sup.on_ready(pid, now, &mut self.children),
                FromWorker::Stats(s) => {
                    let before = self
                        .sup
                        .workers
                        .iter()
                        .find(|w| w.pid == pid)
                        .map(|w| w.stats.requests);
                    if before != Some(s.requests) || s.in_request > 0 {
                        self.last_activity = now;
                    }
                    self.sup.on_stats(pid, s)
                }
                FromWorker::Busy { since_unix_ms } => {
                    self.last_activity = now;
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(since_unix_ms);
                    let ago = Duration::from_millis(now_ms.saturating_sub(since_unix_ms));
                    self.sup.on_busy(pid, Some(ago), now)
                }
                FromWorker::Idle => self.sup.on_busy(pid, None, now),
                FromWorker::LoadFailed { error } => self.last_load_error = Some(error),
            }
        }
    }

    fn reap(&mut self, now: Instant) {
        while let Some((pid, exit)) = liege_sys::spawn::reap_one() {
            // Read what the worker said before dying (e.g. a Ready racing its exit).
            if let Some(msgs) = self.children.read(pid) {
                for m in msgs {
                    match m {
                        FromWorker::Stats(s) => self.sup.on_stats(pid, s),
                        FromWorker::LoadFailed { error } => self.last_load_error = Some(error),
                        _ => {}
                    }
                }
            }
            let (daemon, control_died) = self.daemons.on_exit(pid, exit, now);
            if control_died {
                self.act(Action::Stop { graceful: true }, now);
            }
            if daemon || self.cron.on_exit(pid, exit) {
                continue;
            }
            self.children.forget(pid);
            self.sup.on_exit(pid, exit, now, &mut self.children);
        }
    }

    fn handle_notices(&mut self) {
        for n in self.sup.take_notices() {
            match n {
                Notice::FirstReady => {
                    if let (Some(fd), false) = (self.emperor_fd, self.spawned_sent) {
                        emperor_send(fd, ep::FROM_VASSAL_SPAWNED);
                        self.spawned_sent = true;
                    }
                    self.notify.send(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status("workers accepting"),
                    ]);
                }
                Notice::Accepting { id } => {
                    if let Some(fd) = self.emperor_fd {
                        if id == 1 || !self.loyal_sent {
                            emperor_send(fd, ep::FROM_VASSAL_ACCEPTING);
                        }
                        if !self.loyal_sent {
                            // liege: loyalty = accepting (uWSGI waited for a first request).
                            emperor_send(fd, ep::FROM_VASSAL_LOYAL);
                            self.loyal_sent = true;
                        }
                    }
                }
                Notice::ReloadDone { generation } => {
                    let s = format!("workers accepting (generation {generation})");
                    self.notify.send(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status(&s),
                    ]);
                }
                Notice::ReloadFailed { generation } => {
                    // The old generation is still accepting: an emperor waiting for the
                    // reload to finish hears so.
                    if let Some(fd) = self.emperor_fd {
                        emperor_send(fd, ep::FROM_VASSAL_ACCEPTING);
                    }
                    let s =
                        format!("reload to generation {generation} failed; old workers serving");
                    self.notify.send(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status(&s),
                    ]);
                }
                Notice::Stopped => {}
                Notice::FirstBootFailed { id, exit } => {
                    // uWSGI: an app that cannot be imported makes the whole server exit 22,
                    // standalone or under an emperor (which then backs off and shows it).
                    if exit == liege_sys::spawn::Exit::Code(crate::EXIT_NO_APP)
                        && !matches!(self.sup.phase, Phase::Stopping { .. } | Phase::Stopped)
                    {
                        let cause = self
                            .last_load_error
                            .take()
                            .unwrap_or_else(|| format!("worker {id} exited: {exit}"));
                        tracing::error!(
                            "no app loaded: {cause}; no worker was ever ready: \
                             *** GAME OVER *** (exit code {})",
                            crate::EXIT_NO_APP
                        );
                        self.exit_code = crate::EXIT_NO_APP;
                        self.act(Action::Stop { graceful: false }, Instant::now());
                    }
                }
            }
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let mut actions = Vec::new();
        for t in &mut self.touches {
            if t.check() {
                tracing::info!("{} touched: {:?}", t.path.display(), t.action);
                actions.push(t.action);
            }
        }
        for a in actions {
            self.act(a, now);
        }
        if let (Some(fd), Some(hb)) = (self.emperor_fd, self.cfg.heartbeat) {
            let serving = self
                .sup
                .workers
                .iter()
                .any(|w| matches!(w.state, crate::state::WorkerState::Ready { .. }));
            if serving && now.duration_since(self.last_heartbeat) >= hb {
                emperor_send(fd, ep::FROM_VASSAL_HEARTBEAT);
                self.last_heartbeat = now;
            }
        }
        if let Some(l) = &self.log {
            l.relay();
            l.check_size();
        }
        self.check_idle(now);
        self.sup.cheaper_check(now, &mut self.children);
        self.daemons.tick(now);
        if !matches!(self.sup.phase, Phase::Stopping { .. } | Phase::Stopped) {
            self.cron.tick(now, crate::daemons::local_fields());
        }
    }

    /// `idle`: after `idle` without traffic, go cheap (workers stopped gracefully, the
    /// master waits for the next connection); with `die-on-idle`, tell the emperor (byte 22:
    /// back to on-demand) and stop gracefully instead. Connections waiting in a listen queue
    /// and requests in progress count as traffic.
    fn check_idle(&mut self, now: Instant) {
        let Some(idle) = self.cfg.idle else {
            return;
        };
        // `busy` follows the workers' Busy/Idle messages; a Stats snapshot's `in_request` can
        // be stale (taken between a request's count and its end, then never re-sent).
        let busy = self.sup.workers.iter().any(|w| w.busy);
        if !matches!(self.sup.phase, Phase::Running)
            || busy
            || (self.sup.is_cheap() && !self.cfg.die_on_idle)
        {
            self.last_activity = now;
            return;
        }
        let queued = self.sockets.listeners.iter().any(|l| {
            liege_sys::net::listen_queue(l.bound.fd.as_raw_fd()).is_some_and(|(q, _)| q > 0)
        });
        if queued {
            self.last_activity = now;
        }
        if now.duration_since(self.last_activity) >= idle && !self.cfg.die_on_idle {
            tracing::info!(
                "idle for {}s: going cheap (workers stop until the next connection)",
                idle.as_secs()
            );
            self.sup.go_cheap(now, &mut self.children);
            return;
        }
        if now.duration_since(self.last_activity) >= idle {
            tracing::info!("idle for {}s: stopping (die-on-idle)", idle.as_secs());
            if let Some(fd) = self.emperor_fd {
                emperor_send(fd, ep::FROM_VASSAL_VOLUNTARY_SHUTDOWN);
            }
            self.act(Action::Stop { graceful: true }, now);
        }
    }

    fn act(&mut self, a: Action, now: Instant) {
        match a {
            Action::Stop { graceful } => {
                if !matches!(self.sup.phase, Phase::Stopping { .. }) {
                    self.notify.send(&[sd_notify::NotifyState::Stopping]);
                }
                self.daemons.stop(now);
                self.sup.stop(graceful, now, &mut self.children);
            }
            Action::Reload { kind, reread } => {
                if matches!(self.sup.phase, Phase::Stopping { .. } | Phase::Stopped) {
                    return;
                }
                if let Ok(t) = sd_notify::NotifyState::monotonic_usec_now() {
                    self.notify.send(&[sd_notify::NotifyState::Reloading, t]);
                }
                let next = if reread {
                    match self.reread(now) {
                        Ok(g) => Some(g),
                        Err(e) => {
                            tracing::error!("reload aborted, keeping the running generation: {e}");
                            self.notify.send(&[sd_notify::NotifyState::Ready]);
                            if let Some(fd) = self.emperor_fd {
                                emperor_send(fd, ep::FROM_VASSAL_ACCEPTING);
                            }
                            return;
                        }
                    }
                } else {
                    None
                };
                if reread && self.cfg.log_reopen {
                    if let Some(l) = &self.log {
                        l.reopen();
                    }
                }
                self.sup.reload(next, kind, now, &mut self.children);
            }
            Action::LogStatus => {
                tracing::info!(
                    "status: {} (generation {})",
                    self.sup.phase.name(),
                    self.sup.active_generation()
                );
                for w in &self.sup.workers {
                    tracing::info!(
                        "worker {} pid {} generation {} {} requests {}",
                        w.id,
                        w.pid,
                        w.generation,
                        w.state.name(),
                        w.stats.requests
                    );
                }
            }
            Action::RewritePidfiles => {
                for p in &self.pidfiles {
                    if let Err(e) = liege_sys::pidfile::write(p, std::process::id()) {
                        tracing::error!("pidfile {}: {e}", p.display());
                    }
                }
            }
            Action::ReopenLog => {
                if let Some(l) = &self.log {
                    l.reopen();
                }
            }
            Action::RotateLog => {
                if let Some(l) = &self.log {
                    l.rotate();
                }
            }
        }
    }

    /// Parse the command line again (the ini may have changed) and update the sockets.
    fn reread(&mut self, now: Instant) -> Result<Generation, String> {
        let settings = match liege_config::parse_command_line(&self.argv, &self.env) {
            Ok(liege_config::Action::Run(s)) => *s,
            Ok(other) => {
                return Err(format!(
                    "the command line no longer runs a master: {other:?}"
                ))
            }
            Err(errors) => {
                return Err(errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        };
        for w in &settings.warnings {
            tracing::warn!("{w}");
        }
        let cfg = settings.master;
        self.sockets.update(&cfg).map_err(|e| e.to_string())?;
        self.children.listeners = self.sockets.inherited();
        self.touches = touches_of(&cfg);
        self.daemons.reload(&cfg.daemons, now);
        self.cron.reload(&cfg.crons, cfg.cron_harakiri);
        let g = generation_of(&cfg);
        // Options that only apply at start (uid, chroot, pidfile, daemonize, ...) keep their
        // first value; the rest follow the new file.
        let keep = std::mem::replace(&mut self.cfg, cfg);
        self.cfg.pidfile = keep.pidfile;
        self.cfg.master_fifo = keep.master_fifo;
        self.cfg.daemonize = keep.daemonize;
        self.cfg.logto = keep.logto;
        self.cfg.vacuum = keep.vacuum;
        Ok(g)
    }

    fn shutdown(self) -> i32 {
        let Master {
            sockets,
            cfg,
            pidfiles,
            fifos,
            log,
            stats,
            mut daemons,
            exit_code,
            ..
        } = self;
        daemons.kill_remaining();
        if let Some(st) = stats {
            if let (true, Some((path, dev, ino))) = (cfg.vacuum, st.unix_inode()) {
                liege_sys::net::vacuum_unix(&path, dev, ino);
            }
        }
        if let Some(l) = &log {
            l.relay();
        }
        sockets.close(cfg.vacuum);
        fifos.remove();
        if cfg.vacuum {
            for p in &pidfiles {
                if liege_sys::pidfile::remove_if_ours(p, std::process::id()) {
                    tracing::info!("vacuum: removed {}", p.display());
                }
            }
        }
        tracing::info!("goodbye to liege");
        exit_code
    }
}
