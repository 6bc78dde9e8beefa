//! Accepting connections on a listening socket shared by every worker of the app.
//!
//! Each listener gets a thread blocked in `accept4(2)` that hands new connections to the I/O
//! runtime. Why not tokio's accept: every worker's epoll is woken for each connection, and
//! the worker that happens to be on a CPU drains the whole burst. With keep-alive that split
//! is permanent: measured with `wrk -c64` and 2 workers, one worker took 100 % of the
//! connections in one run out of three. A thread blocked in accept(2) is an *exclusive*
//! waiter: the kernel hands each new connection to one sleeping waiter, oldest first, so
//! connections spread over the workers (the same property uWSGI's blocking accept relies on).
//!
//! The listening socket is made blocking (the flag is shared by every process holding it;
//! all of them are liege workers using this code) with a 200 ms `SO_RCVTIMEO`, so the thread
//! notices a stop within 200 ms. A connection it accepts after the stop began is still
//! handed over and served: the accept loop drains the channel until the thread is gone.

use nix::errno::Errno;
use nix::sys::socket::{accept4, setsockopt, sockopt, SockFlag};
use nix::sys::time::TimeVal;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a blocked accept wakes up to look at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Prepare an inherited listening fd for [`spawn`]: close-on-exec (processes the app spawns
/// must not inherit it), blocking, and a receive timeout.
pub fn prepare(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: the fd was inherited from the master as an open listening socket and stays
    // open for the life of the worker.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(
        borrowed,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let flags = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFL)?;
    let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
    flags.remove(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    let tv = TimeVal::new(STOP_CHECK.as_secs() as _, STOP_CHECK.subsec_micros() as _);
    setsockopt(&borrowed, sockopt::ReceiveTimeout, &tv)?;
    Ok(())
}

/// Start the accept thread for `fd` (already [`prepare`]d). Accepted sockets are
/// non-blocking and close-on-exec. The thread ends when `stop` is set (within
/// [`STOP_CHECK`]) or when the receiver is gone, dropping `tx`.
pub fn spawn(
    fd: RawFd,
    name: &str,
    stop: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<OwnedFd>,
) -> std::io::Result<()> {
    let name = name.to_string();
    std::thread::Builder::new()
        .name("liege-accept".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match accept4(fd, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
                    Ok(conn) => {
                        // SAFETY: accept4 just returned this fd; nothing else owns it.
                        let conn = unsafe { OwnedFd::from_raw_fd(conn) };
                        if tx.send(conn).is_err() {
                            return;
                        }
                    }
                    // The receive timeout expired (look at the stop flag), a signal, or a
                    // connection that went away before we took it.
                    Err(Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO) => {}
                    // The listener is gone: nothing more to accept.
                    Err(Errno::EBADF | Errno::EINVAL | Errno::ENOTSOCK) => {
                        tracing::warn!("listener {name} (fd {fd}) can no longer accept");
                        return;
                    }
                    // Out of fds or memory: back off briefly instead of spinning.
                    Err(e) => {
                        tracing::warn!("accept on {name}: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        })?;
    Ok(())
}
