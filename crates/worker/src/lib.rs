//! The worker role: embeds CPython (through liege-wsgi) and serves HTTP/1.1 and the uwsgi
//! protocol on listening sockets inherited from the master.
//!
//! # Theory of operation
//!
//! ```text
//!  process main thread ── Python::initialize, app import ── serving thread, core 0
//!  liege-py-N threads  ── serving threads, cores 1..threads
//!  liege-ctl thread    ── tokio current_thread runtime: control socket, signals, stats,
//!                         deadlines of parked connections
//! ```
//!
//! Each serving thread accepts, reads, runs the app and writes the response itself
//! ([`serve`]): no request is handed from one thread to another. A thread holds the GIL
//! only while Python runs; it releases it to wait for the next request, to read more of a
//! body and to write. A slow client never holds a thread while its head (or pre-read body)
//! is on the way: the connection waits in epoll instead.
//!
//! Lifecycle ([`Phase`]): `Starting` → `Serving` (Ready sent) → `Draining` (SIGTERM,
//! `GracefulStop`, control EOF, max-requests: stop accepting, finish requests under way)
//! → exit 0. SIGINT, SIGQUIT and `Stop` exit at once.

mod acceptor;
mod conn;
mod control;
mod ctx;
mod h1;
mod logfmt;
mod serve;
mod sock;
mod statics;

use control::{Control, ControlEvent};
use ctx::Ctx;
use liege_config::{Protocol, WorkerBoot};
use liege_protocol::control::{FromWorker, ToWorker};
use serve::Server;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Exit code when the app cannot be loaded and `need-app` is on (uWSGI's).
pub const EXIT_NO_APP: i32 = 22;

/// `major.minor` and executable of the Python the worker embeds (for `--check`).
pub const PYTHON_SHORT: &str = liege_wsgi::interp::BUILT_SHORT;
pub const PYTHON_EXECUTABLE: &str = liege_wsgi::interp::BUILT_EXECUTABLE;

/// The worker's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Serving,
    Draining,
    Stopped,
}

/// What moves the lifecycle.
#[derive(Debug, Clone, Copy)]
enum Event {
    Accepting,
    Graceful(&'static str),
    Immediate(&'static str),
    Drained,
}

/// The one transition function.
fn transition(phase: Phase, ev: Event) -> Phase {
    match (phase, ev) {
        (Phase::Starting, Event::Accepting) => Phase::Serving,
        (Phase::Starting | Phase::Serving, Event::Graceful(_)) => Phase::Draining,
        (_, Event::Immediate(_)) => Phase::Stopped,
        (Phase::Draining, Event::Drained) => Phase::Stopped,
        (p, _) => p,
    }
}

/// Run a worker until it is told to stop; returns the process exit code.
pub fn run(boot: WorkerBoot) -> i32 {
    liege_sys::log::init(&format!("worker {}", boot.id));
    liege_sys::log::set_date(boot.config.log_date.clone());
    // master-as-root: drop to uid/gid before anything else (Python, the app, env);
    // first, since a change of credentials clears the parent-death signal orphan_guard sets.
    if let Some(to) = &boot.drop_to {
        if let Err(e) = liege_sys::creds::drop_to(to) {
            tracing::error!("cannot drop privileges (master-as-root): {e}");
            return 1;
        }
    }
    if let Err(code) = orphan_guard(boot.master_pid) {
        return code;
    }
    let cfg = boot.config.clone();

    // env / unenv / chdir before the interpreter starts: os.environ and "." reflect them.
    // The process is still single-threaded here.
    for e in &cfg.app.env {
        match e.split_once('=') {
            Some((k, v)) => std::env::set_var(k, v),
            None => std::env::set_var(e, ""),
        }
    }
    for k in &cfg.app.unenv {
        std::env::remove_var(k);
    }
    if let Some(dir) = &cfg.app.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            tracing::error!("chdir {}: {e}", dir.display());
            return 1;
        }
    }

    let mut argv = vec!["liege".to_string()];
    if let Some(a) = &cfg.app.pyargv {
        argv.extend(a.split_whitespace().map(str::to_string));
    }
    let opts = liege_wsgi::interp::InterpOptions {
        home: cfg.app.home.clone(),
        optimize: cfg.app.optimize,
        argv,
    };
    if let Err(e) = liege_wsgi::interp::initialize(&opts) {
        tracing::error!("{e}");
        return 1;
    }

    let loaded = liege_wsgi::load_apps(&cfg.app);
    let app = match loaded {
        Ok(app) => {
            tracing::info!(
                "WSGI app 0 (mountpoint='') ready in worker {} (pid: {})",
                boot.id,
                std::process::id()
            );
            Ok(app)
        }
        Err(e) => {
            if let Some(tb) = &e.traceback {
                tracing::error!("{}", tb.trim_end());
            }
            tracing::error!("cannot load the app: {e}");
            if cfg.app.need_app {
                tracing::error!("*** no app loaded. GAME OVER *** (need-app)");
                // The master names the cause when it gives up (first generation).
                if let Ok(c) = Control::adopt(boot.control_fd) {
                    c.send(&FromWorker::LoadFailed {
                        error: e.to_string(),
                    });
                }
                return EXIT_NO_APP;
            }
            tracing::warn!("need-app = false: every request will get a 500");
            // Said once above; each request only points back here (as uWSGI does).
            Err("no python application found, check the start-up log for errors".to_string())
        }
    };
    if let Some(dir) = &cfg.app.chdir2 {
        if let Err(e) = std::env::set_current_dir(dir) {
            tracing::error!("chdir2 {}: {e}", dir.display());
            return 1;
        }
    }
    let app_loaded = app.is_ok();
    if let Ok(apps) = &app {
        for (i, m) in apps.iter().enumerate().skip(1) {
            tracing::info!("WSGI app {i} (mountpoint='{}') ready", m.mountpoint);
        }
    }
    let env_opts = liege_wsgi::EnvironOptions {
        multithread: cfg.threads > 1,
        multiprocess: cfg.processes > 1,
        file_wrapper: !cfg.disable_file_wrapper,
        manage_script_name: cfg.app.manage_script_name,
    };
    let handler = match liege_wsgi::Handler::build(app, &env_opts) {
        Ok(h) => Arc::new(h),
        Err(e) => {
            tracing::error!("cannot set up the WSGI handler: {e}");
            return 1;
        }
    };

    let control = match Control::adopt(boot.control_fd) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::warn!("no control socket ({e}); running without a master channel");
            None
        }
    };

    let threads = cfg.threads.max(1);
    let (trusted, trust_unix) = ctx::parse_trusted(&cfg.trusted_proxies);
    let preread = (cfg.post_buffering as usize).max(ctx::PREREAD);
    let add_headers = match ctx::parse_add_headers(&cfg.add_headers) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let max_requests = if cfg.max_requests > 0 {
        cfg.max_requests + boot.id as u64 * cfg.max_requests_delta
    } else {
        0
    };
    let ctx = Arc::new(Ctx {
        add_headers,
        max_requests,
        busy_since: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        live: boot.scoreboard.as_ref().and_then(|r| {
            ctx::LiveSlot::open(r)
                .map_err(|e| tracing::warn!("scoreboard: {e}; stats will lag by up to 1 s"))
                .ok()
        }),
        statics: statics::Statics::new(&cfg.statics),
        log_format: cfg.log_format.as_deref().map(logfmt::LogFormat::parse),
        wid: boot.id,
        stats: Default::default(),
        exceptions: handler.exceptions.clone(),
        trusted,
        trust_unix,
        pid: std::process::id(),
        app_loaded,
        preread,
        cfg,
    });

    let mut listeners = Vec::new();
    for l in &boot.listeners {
        let defer = ctx
            .cfg
            .defer_accept
            .then(|| ctx.cfg.socket_timeout.as_secs() as u32);
        if let Err(e) = acceptor::prepare(l.fd, !l.unix, defer) {
            tracing::error!(
                "cannot use inherited listener {} (fd {}): {e}",
                l.name,
                l.fd
            );
            return 1;
        }
        listeners.push(serve::Listener::new(
            l.fd,
            l.unix,
            l.protocol == Protocol::Http,
            l.name.clone(),
        ));
    }
    let balance = boot
        .scoreboard
        .and_then(|r| match acceptor::Balance::open(r) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!("scoreboard: {e}; accepting without balancing");
                None
            }
        });
    if let Some(b) = &balance {
        b.set_accepting(true);
    }
    let server = match Server::new(listeners, ctx.clone(), handler, balance) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("cannot set up the listeners: {e}");
            return 1;
        }
    };

    // The control thread first (it sends Ready), then serving threads 1..threads; the main
    // thread is core 0.
    let ctl_server = server.clone();
    let ctl_control = control.clone();
    let n_listeners = boot.listeners.len();
    let ctl = std::thread::Builder::new()
        .name("liege-ctl".into())
        .spawn(move || control_thread(ctl_server, ctl_control, n_listeners));
    if let Err(e) = ctl {
        tracing::error!("cannot start the control thread: {e}");
        return 1;
    }
    let mut serving = Vec::new();
    if threads > 1 {
        let s = server.clone();
        let t = std::thread::Builder::new()
            .name("liege-nudge".into())
            .spawn(move || s.run_nudger());
        match t {
            Ok(t) => serving.push(t),
            Err(e) => {
                tracing::error!("cannot start the nudger thread: {e}");
                return 1;
            }
        }
    }
    for core in 1..threads {
        let s = server.clone();
        let t = std::thread::Builder::new()
            .name(format!("liege-py-{core}"))
            .spawn(move || s.run_thread(core));
        match t {
            Ok(t) => serving.push(t),
            Err(e) => {
                tracing::error!("cannot start serving thread {core}: {e}");
                return 1;
            }
        }
    }
    server.run_thread(0);
    for t in serving {
        let _ = t.join();
    }
    liege_wsgi::run_atexit();
    if let Some(c) = &control {
        c.send(&FromWorker::Stats(ctx.snapshot()));
    }
    tracing::info!("worker {} (pid {}) exiting", boot.id, std::process::id());
    0
}

/// PR_SET_PDEATHSIG, then check the parent is still the master (the setting does nothing
/// if it already died).
fn orphan_guard(master_pid: i32) -> Result<(), i32> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and has no memory arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        tracing::warn!("PR_SET_PDEATHSIG: {}", std::io::Error::last_os_error());
    }
    let ppid = nix::unistd::getppid().as_raw();
    if master_pid > 0 && ppid != master_pid {
        tracing::error!("parent is pid {ppid}, not the master {master_pid}: exiting");
        return Err(1);
    }
    Ok(())
}

fn control_thread(server: Arc<Server>, control: Option<Arc<Control>>, listeners: usize) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot build the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(control_main(server, control, listeners));
    if code != 0 {
        std::process::exit(code);
    }
}

async fn control_main(server: Arc<Server>, control: Option<Arc<Control>>, listeners: usize) -> i32 {
    let ctx = server.ctx.clone();
    let mut phase = Phase::Starting;
    let (mut sigterm, mut sigint, mut sigquit, mut sighup, mut sigusr1, mut sigusr2) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
        _ => {
            tracing::error!("cannot install signal handlers");
            return 1;
        }
    };
    let mut reader = match control.as_ref().map(|c| c.reader()).transpose() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("control socket: {e}");
            return 1;
        }
    };
    phase = transition(phase, Event::Accepting);
    if let Some(c) = &control {
        c.send(&FromWorker::Ready {
            pid: std::process::id() as i32,
        });
    }
    tracing::debug!("accepting on {listeners} listener(s)");

    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Deadlines of parked connections (and the end of a drain) are looked at 4 times a
    // second.
    let mut sweep_tick = tokio::time::interval(Duration::from_millis(250));
    sweep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_requests = u64::MAX;
    // Busy is reported once a request has run for a tick (harakiri granularity is 1 s), not
    // per request: a control packet per request would cost more than the request.
    let mut reported_busy: Option<u64> = None;
    loop {
        let ev = tokio::select! {
            _ = sigterm.recv() => Event::Graceful("SIGTERM"),
            _ = sigint.recv() => Event::Immediate("SIGINT"),
            _ = sigquit.recv() => Event::Immediate("SIGQUIT"),
            // uWSGI workers finish their request and exit on SIGHUP (a reload of that worker).
            _ = sighup.recv() => Event::Graceful("SIGHUP"),
            // Their default action would kill the worker; nothing to do with them here.
            _ = sigusr1.recv() => {
                tracing::info!("SIGUSR1 ignored by the worker (send it to the master)");
                continue;
            }
            _ = sigusr2.recv() => {
                tracing::info!("SIGUSR2 ignored by the worker");
                continue;
            }
            ev = async {
                match reader.as_mut() {
                    Some(r) => r.next().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                ControlEvent::Message(ToWorker::GracefulStop) => Event::Graceful("GracefulStop"),
                ControlEvent::Message(ToWorker::Stop) => Event::Immediate("Stop"),
                ControlEvent::Eof => {
                    reader = None;
                    Event::Graceful("control socket EOF")
                }
            },
            _ = sweep_tick.tick() => {
                server.sweep();
                if phase == Phase::Draining && server.drained() {
                    Event::Drained
                } else {
                    continue;
                }
            }
            _ = stats_tick.tick() => {
                let n = ctx.stats.requests.load(Ordering::Relaxed);
                if let Some(c) = &control {
                    if n != last_requests {
                        last_requests = n;
                        c.send(&FromWorker::Stats(ctx.snapshot()));
                    }
                    match (ctx.oldest_busy(), reported_busy) {
                        (Some(since), r) if r != Some(since) => {
                            c.send(&FromWorker::Busy { since_unix_ms: since });
                            reported_busy = Some(since);
                        }
                        (None, Some(_)) => {
                            c.send(&FromWorker::Idle);
                            reported_busy = None;
                        }
                        _ => {}
                    }
                }
                continue;
            }
        };
        let next = transition(phase, ev);
        if next == phase {
            continue;
        }
        match ev {
            Event::Graceful(why) => {
                tracing::info!("graceful stop ({why}): finishing in-flight requests");
                server.begin_stop();
            }
            Event::Immediate(why) => {
                tracing::info!("stopping now ({why})");
                if let Some(c) = &control {
                    c.send(&FromWorker::Stats(ctx.snapshot()));
                }
                // Exit without waiting for threads that may be running app code.
                std::process::exit(0);
            }
            Event::Drained | Event::Accepting => {}
        }
        phase = next;
        if phase == Phase::Stopped {
            // The serving threads leave on their own once drained; the main thread exits.
            return 0;
        }
    }
}
