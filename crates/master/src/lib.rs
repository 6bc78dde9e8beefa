//! The master role: binds the sockets, drops privileges, supervises workers, reloads.
//!
//! # Theory of operation
//!
//! One master runs per app. It is single-threaded and never initializes Python, so it may
//! fork at any time; it only ever forks to exec itself as a worker ([`children`]).
//!
//! - **Boot** ([`master::Master::boot`]): logs (daemonize/logto), signal self-pipe, pidfile,
//!   sockets (adopted from systemd/fd 0 or bound), then chroot and privilege drop, then
//!   pidfile2/safe-pidfile and master FIFOs.
//! - **Loop** ([`master::Master::run`]): `poll(2)` over the signal pipe, every worker's
//!   control socket, the emperor pipe, the active FIFO and the log relay pipe, waking at least
//!   once a second for touch files, heartbeats and log rotation.
//! - **Policy** ([`supervisor::Supervisor`]): which workers should exist. It is independent of
//!   processes (tested with a fake), built on two enums with one transition function each
//!   ([`state::WorkerState`], [`state::Phase`]).
//! - **Reload**: the configuration is parsed again; sockets that are still configured stay
//!   open (never re-bound), new ones are bound, removed ones closed. A new generation of
//!   workers starts `reload_batch` at a time; each old worker is told to drain only once its
//!   replacement reported `Ready`. A new worker that exits before `Ready` aborts the reload
//!   and the old generation keeps serving.
//!
//! See docs/signals.md for signals, FIFO commands and the differences from uWSGI.

#![deny(unsafe_code)]

pub mod children;
pub mod control;
pub mod daemons;
pub mod master;
pub mod sockets;
pub mod state;
pub mod stats;
pub mod supervisor;

use liege_config::Settings;

/// The exit code of a worker that could not load the app (liege-worker's `EXIT_NO_APP`, uWSGI's
/// "no app loaded" code); a vassal master whose first generation fails this way exits with it.
pub const EXIT_NO_APP: i32 = 22;

/// Run a master until it stops; returns the process exit code.
pub fn run(settings: Settings) -> i32 {
    liege_sys::log::init("master");
    liege_sys::log::set_date(settings.master.worker.log_date.clone());
    // The original command line, for re-parsing on reload.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    match master::Master::boot(settings, argv, env) {
        Ok(m) => m.run(),
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}
