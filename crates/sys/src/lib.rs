//! The OS layer: every `unsafe` call and raw fd lives here (fork/exec, CLOEXEC, sockets,
//! credentials, signals, pdeathsig). No policy: callers decide when and why.

pub mod log;

pub use nix::sys::signal::Signal;
use std::path::Path;

/// Send `sig` to the pid written in `pidfile` (`liege --reload/--stop PIDFILE`).
pub fn signal_pidfile(pidfile: &Path, sig: Signal) -> Result<(), String> {
    let text = std::fs::read_to_string(pidfile)
        .map_err(|e| format!("cannot read pidfile {}: {e}", pidfile.display()))?;
    let pid: i32 = text.trim().parse().map_err(|_| {
        format!(
            "pidfile {} does not hold a pid: {:?}",
            pidfile.display(),
            text.trim()
        )
    })?;
    if pid <= 0 {
        return Err(format!(
            "pidfile {} holds an invalid pid {pid}",
            pidfile.display()
        ));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| {
        format!(
            "cannot send {sig} to pid {pid} (from {}): {e}",
            pidfile.display()
        )
    })
}
