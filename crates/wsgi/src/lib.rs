//! liege-wsgi: the pyo3 bridge between the worker's connections and the Python app.
//!
//! Theory of operation: the worker initializes CPython on the process main thread
//! ([`interp::initialize`]), loads the app ([`app::load`]) and builds one [`Handler`]. Each
//! serving thread attaches once ([`attach_thread`]) and then, for each request it has read,
//! calls [`Handler::call`] with the request's variables (borrowed, no copies) and its
//! connection as an [`types::Exchange`]. The GIL is held only while Python runs: reading
//! more body bytes, writing a streamed chunk and waiting for the next request all release it.

pub mod app;
pub mod handler;
pub mod input;
pub mod interp;
pub mod response;
mod scope;
pub mod types;

pub use handler::{EnvironOptions, Handler};

use pyo3::prelude::*;

/// Run `f` on a thread that stays attached to the interpreter (its thread state lives
/// until `f` returns), with the GIL released: [`Handler::call`] then only re-takes the GIL
/// instead of creating a thread state per request.
pub fn attach_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    Python::attach(|py| py.detach(f))
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
