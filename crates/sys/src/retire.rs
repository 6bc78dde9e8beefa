//! Making a worker stop taking connections *at once* (`max-requests`): without it, the accept
//! thread, already blocked in `accept4(2)` on the shared listening socket while the last
//! request runs, takes the next connection before the stop reaches it, and the worker serves
//! one request (or two) too many.
//!
//! [`retire_listeners`] points each of this process's listening fds at a fresh unix socket
//! that nobody connects to (with the same 200 ms receive timeout, so a thread blocked on it
//! still notices its stop flag), then interrupts every thread named `thread_name` with
//! [`WAKE_SIGNAL`]: an `accept4` in progress on the old socket returns `EINTR`, and the next
//! one waits on the retired socket. Connections already queued stay in the shared socket's
//! queue for the other workers. Only this process's fd table changes; the master and the
//! other workers keep the real socket.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// The signal that interrupts a blocked `accept4` (a real-time signal nothing else uses).
pub fn wake_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

extern "C" fn wake(_: libc::c_int) {}

/// Install a no-op handler for [`wake_signal`] without `SA_RESTART`, so a blocking call the
/// signal lands in returns `EINTR`. Call once, before threads are started.
pub fn install_wake_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction with a valid handler and an empty mask; `wake` is
    // async-signal-safe (it does nothing).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = wake as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(wake_signal(), &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Retire `fds` in this process and wake the threads named `thread_name` (see the module
/// docs). Returns how many threads were signalled.
pub fn retire_listeners(
    fds: &[RawFd],
    thread_name: &str,
    timeout: Duration,
) -> std::io::Result<usize> {
    let dead = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    dead.set_cloexec(true)?;
    // bind() with only the address family autobinds a unique abstract name nobody knows.
    // SAFETY: a zeroed sockaddr_un with its family set; the length covers the family only.
    let r = unsafe {
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        libc::bind(
            dead.as_raw_fd(),
            &sa as *const libc::sockaddr_un as *const libc::sockaddr,
            std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    dead.listen(1)?;
    dead.set_read_timeout(Some(timeout))?;
    for &fd in fds {
        // SAFETY: dup2 onto an fd this process owns (an inherited listener); the old open
        // file stays referenced by any accept4 in progress until it returns.
        if unsafe { libc::dup3(dead.as_raw_fd(), fd, libc::O_CLOEXEC) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    drop(dead);
    let pid = std::process::id() as libc::pid_t;
    let mut woken = 0;
    for e in std::fs::read_dir("/proc/self/task")?.flatten() {
        let Some(tid) = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == thread_name {
            // SAFETY: tgkill with our own pid, a thread id of ours and a signal with a
            // handler installed.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, wake_signal()) } == 0 {
                woken += 1;
            }
        }
    }
    Ok(woken)
}
