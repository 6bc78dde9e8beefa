//! liege-wsgi: the pyo3 bridge between the worker's I/O thread and the Python app.
//!
//! Theory of operation: the worker initializes CPython on the process main thread
//! ([`interp::initialize`]), loads the app ([`app::load`]) and builds one [`Handler`]. Each
//! Python thread attaches once and then loops: wait for a [`types::Request`] with the GIL
//! released, build the environ, call the app, hand a [`types::ResponseHead`] back through a
//! oneshot. Bodies cross in bounded channels so neither side holds a whole large body, and
//! every blocking wait releases the GIL.

pub mod app;
pub mod handler;
pub mod input;
pub mod interp;
pub mod response;
pub mod types;

pub use handler::{EnvironOptions, Handler};

use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a Python thread gets its requests from (the worker's queue).
pub trait RequestSource: Sync {
    /// The next request if one is waiting (called with the GIL held: must not block).
    fn try_next(&self) -> Option<types::Request>;
    /// Wait for the next request (called with the GIL released); `None` means stop.
    fn next(&self) -> Option<types::Request>;
}

/// Import the configured apps (attaches to the interpreter started by [`interp::initialize`]).
pub fn load_apps(cfg: &liege_config::AppConfig) -> Result<Vec<app::MountedApp>, app::LoadError> {
    Python::attach(|py| app::load(py, cfg))
}

impl Handler {
    /// [`Handler::new`] from any thread.
    pub fn build(
        apps: Result<Vec<app::MountedApp>, String>,
        opts: &EnvironOptions,
    ) -> Result<Handler, String> {
        Python::attach(|py| Handler::new(py, apps, opts)).map_err(|e| e.to_string())
    }

    /// Run a Python thread: attach once, then take requests from `src` until it says stop,
    /// releasing the GIL while waiting. `busy` holds the start (unix ms) of the request being
    /// handled, 0 when idle.
    pub fn serve(&self, core: u32, busy: &AtomicU64, src: &impl RequestSource) {
        Python::attach(|py| loop {
            let job = match src.try_next() {
                Some(j) => Some(j),
                None => py.detach(|| src.next()),
            };
            match job {
                Some(req) => {
                    busy.store(unix_ms(), Ordering::Relaxed);
                    self.handle(py, core, req);
                    busy.store(0, Ordering::Relaxed);
                }
                None => break,
            }
        });
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

/// Run the app's `atexit` handlers (graceful exit; the interpreter is not finalized).
pub fn run_atexit() {
    Python::attach(|py| {
        if let Ok(atexit) = py.import("atexit") {
            if let Err(e) = atexit.call_method0("_run_exitfuncs") {
                tracing::warn!("atexit: {e}");
            }
        }
    });
}
