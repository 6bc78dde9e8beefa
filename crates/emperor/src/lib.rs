//! The emperor role: watches vassal directories and globs and runs one master per vassal file.
//!
//! # Theory of operation
//!
//! * **Desired state is the files on disk.** Every `emperor = DIR|GLOB` is a [`monitor`]. A
//!   scan lists the matching `*.ini` files with a [`monitor::Fingerprint`] (device, inode,
//!   size, mtime in ns). inotify (the `notify` crate) only *wakes* the loop: any event in a
//!   watched directory schedules a rescan 15 ms later, so save-by-rename, symlink swaps
//!   (Kubernetes `..data`), new directories matching a glob and inotify queue overflows are
//!   all handled by the same comparison. A slow periodic rescan (`emperor-freq`) is the
//!   safety net for filesystems without inotify.
//! * **Validate before acting.** A new or changed file is parsed with the same code as
//!   `liege --check` before anything is done; a broken edit leaves the running vassal on its
//!   last good configuration, logged once and shown in the stats.
//! * **One lifecycle enum, one transition function** ([`state::VassalState`],
//!   [`state::Vassal::transition`]), pure and unit-tested. The loop feeds it events and
//!   performs the actions it returns (spawn, send a byte, kill, remove).
//! * **Processes.** Vassals are fork+exec'd from the main thread (see [`spawn`]), each owned
//!   by a small task that forwards its pipe bytes (uWSGI's single-byte protocol) and its exit.
//!   `PR_SET_PDEATHSIG(SIGKILL)` in every vassal: when the emperor dies, they die.
//! * **On demand** (`emperor-on-demand-*`): the emperor binds the vassal's socket, watches it
//!   (never accepting) and spawns the vassal with it on fd 0 at the first connection; after
//!   byte 22 (die-on-idle) it watches the same socket again (state `OnDemand`).
//! * **Observability.** `emperor-stats` serves uWSGI's emperor stats JSON plus liege's fields
//!   ([`stats`]); systemd gets READY/RELOADING/STOPPING/STATUS/WATCHDOG.
//!
//! The emperor never initializes Python.

pub mod emperor;
pub mod monitor;
pub mod spawn;
pub mod state;
pub mod stats;
pub mod systemd;

use liege_config::Settings;

/// Run the emperor until it stops; returns the process exit code.
pub fn run(settings: Settings) -> i32 {
    liege_sys::log::init("emperor");
    liege_sys::log::set_date(settings.master.worker.log_date.clone());
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let Some(cfg) = settings.emperor.as_ref() else {
        tracing::error!("no emperor configuration");
        return 1;
    };
    // The emperor's own identity: resolved now (the user database is readable), applied
    // after the stats socket is bound and before any vassal is spawned.
    let identity = if cfg.uid.is_some() || cfg.gid.is_some() {
        match liege_sys::creds::Identity::resolve(cfg.uid.as_deref(), cfg.gid.as_deref(), false) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!("emperor uid/gid: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    if cfg.tyrant {
        if let Some(u) = identity.as_ref().and_then(|id| id.uid.as_ref()) {
            if u.uid != 0 {
                tracing::error!(
                    "emperor-tyrant needs the emperor to stay root (it starts each vassal as its file's owner), but uid = {} would drop it to uid {}: remove uid/gid or emperor-tyrant",
                    cfg.uid.as_deref().unwrap_or(""),
                    u.uid
                );
                return 1;
            }
        }
    }
    // Logs: `daemonize` detaches and logs to its file, `logto` appends to its file. Vassals
    // inherit stdout/stderr, so their logs go there too. (Single-threaded here.)
    if let Some(d) = &cfg.daemonize {
        if let Err(e) = liege_sys::logfile::daemonize(d) {
            tracing::error!("daemonize {}: {e}", d.display());
            return 1;
        }
    } else if let Some(l) = &cfg.logto {
        match liege_sys::logfile::open(l).and_then(|f| liege_sys::logfile::redirect_stdio(&f)) {
            Ok(()) => {}
            Err(e) => {
                tracing::error!("logto {}: {e}", l.display());
                return 1;
            }
        }
    }
    let pidfile = cfg.pidfile.clone();
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            tracing::error!("cannot write pidfile {}: {e}", p.display());
            return 1;
        }
    }
    let emperor = match emperor::Emperor::new(&settings) {
        Ok(e) => e.drop_privileges_to(identity),
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    // Current-thread runtime: every spawn happens on this (the main) thread, which lives as
    // long as the emperor; PR_SET_PDEATHSIG is tied to the thread that forked.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot build the tokio runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(emperor.run());
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    code
}

/// `liege --status ADDR`: print an emperor's stats as a table; returns the exit code.
pub fn status(addr: &str) -> i32 {
    stats::status(addr)
}
