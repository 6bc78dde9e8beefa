//! The master role: binds the sockets, drops privileges, supervises workers, reloads.

pub mod state;
pub mod supervisor;

use liege_config::Settings;

/// Run a master until it stops; returns the process exit code.
pub fn run(_settings: Settings) -> i32 {
    liege_sys::log::init("master");
    tracing::error!("master role not implemented yet");
    1
}
