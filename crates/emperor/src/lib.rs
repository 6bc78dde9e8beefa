//! The emperor role: watches vassal directories and runs one master per vassal file.

use liege_config::Settings;

/// Run the emperor until it stops; returns the process exit code.
pub fn run(_settings: Settings) -> i32 {
    liege_sys::log::init("emperor");
    tracing::error!("emperor role not implemented yet");
    1
}

/// `liege --status ADDR`: print an emperor's stats as a table; returns the exit code.
pub fn status(addr: &str) -> i32 {
    eprintln!("liege: --status {addr}: not implemented yet");
    1
}
