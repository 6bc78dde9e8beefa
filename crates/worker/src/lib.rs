//! The worker role: embeds CPython (through liege-wsgi) and serves HTTP/1.1 and the uwsgi
//! protocol on listening sockets inherited from the master.

use liege_config::WorkerBoot;

/// Run a worker until it is told to stop; returns the process exit code.
pub fn run(boot: WorkerBoot) -> i32 {
    liege_sys::log::init(&format!("worker {}", boot.id));
    tracing::error!("worker role not implemented yet");
    1
}
