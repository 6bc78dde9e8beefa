//! The OS layer: every `unsafe` call and raw fd lives here (fork/exec, CLOEXEC, sockets,
//! credentials, signals, pdeathsig, pidfiles, log files). No policy: callers decide when and
//! why.

pub mod creds;
pub mod fd;
pub mod log;
pub mod logfile;
pub mod net;
pub mod pidfile;
pub mod scoreboard;
pub mod signals;
pub mod spawn;
pub mod vassalfile;

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

/// Make a FIFO at `path` with mode 0600 (removing whatever was there).
pub fn make_fifo(path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(std::io::Error::from)
}

/// `prctl(PR_SET_PDEATHSIG)` for the calling process.
pub fn set_pdeathsig(sig: Signal) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(sig).map_err(std::io::Error::from)
}

/// Number of threads of this process (from /proc/self/status); 0 if unknown. The master
/// asserts it is 1 before every fork.
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Set the process umask.
pub fn set_umask(mask: u32) {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        mask as libc::mode_t,
    ));
}

/// Whether a process with this pid exists (`kill(pid, 0)`).
pub fn pid_exists(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// The local time fields cron matches on: (minute, hour, mday, month 1-12, wday 0-6).
pub fn local_time_fields() -> (u32, u32, u32, u32, u32) {
    // SAFETY: time/localtime_r write into our locals only.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        (
            tm.tm_min as u32,
            tm.tm_hour as u32,
            tm.tm_mday as u32,
            tm.tm_mon as u32 + 1,
            tm.tm_wday as u32,
        )
    }
}
