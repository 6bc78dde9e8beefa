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
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let Some(cfg) = settings.emperor.as_ref() else {
        tracing::error!("no emperor configuration");
        return 1;
    };
    for (set, what) in [
        (
            cfg.on_demand_extension.is_some(),
            "emperor-on-demand-extension",
        ),
        (
            cfg.on_demand_directory.is_some(),
            "emperor-on-demand-directory",
        ),
        (cfg.on_demand_exec.is_some(), "emperor-on-demand-exec"),
        (cfg.logto.is_some(), "emperor logto"),
        (cfg.daemonize.is_some(), "emperor daemonize"),
        (cfg.uid.is_some() || cfg.gid.is_some(), "emperor uid/gid"),
    ] {
        if set {
            tracing::warn!("{what} is not implemented yet in liege's emperor: ignored");
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
        Ok(e) => e,
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
