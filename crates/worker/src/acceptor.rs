//! Sharing connections between the workers of an app.
//!
//! All workers accept on the same listening sockets, each from its own epoll set with
//! `EPOLLEXCLUSIVE`, so the kernel wakes one worker per connection instead of every worker
//! ([`crate::serve`]). A worker already on a CPU could still take a burst before its sibling
//! is scheduled, and with keep-alive that split is permanent (measured with `wrk -c64` and 2
//! workers before the scoreboard: one worker took 100 % of the connections in one run out of
//! three). So after each accept a thread looks at the scoreboard (shared with the other
//! workers through the master, `liege_sys::scoreboard`): if this worker holds more
//! connections than the least loaded accepting worker, it takes its listeners out of its
//! epoll set for a moment (2 ms, or until the other caught up), so the next connections
//! wake that worker; it keeps serving its own connections meanwhile. Moving to the back of
//! the listener's queue of waiters is not enough: a worker that keeps up finds the
//! level-triggered listener ready again after every accept, and takes a whole burst while
//! its sibling is still being scheduled (measured: 10 and 54 of wrk's 64 keep-alive
//! connections). If the other worker took nothing while this one stood aside (it is busy
//! in a long request), this one accepts whatever comes for 100 ms before trying again.
//! Connections parked or waiting count too, so the rule also sends
//! one-request-per-connection traffic (nginx `uwsgi_pass`) to the worker that can run it.

use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::Ordering;

/// How many more connections than the least loaded worker this one may hold and still
/// accept: a little room so that two workers with nearly equal loads never both step aside.
fn slack(min: u32) -> u32 {
    2 + min / 8
}

/// This worker's slot on the scoreboard.
pub struct Balance {
    sb: liege_sys::scoreboard::Scoreboard,
    slot: u32,
}

impl Balance {
    pub fn open(r: liege_config::ScoreboardRef) -> std::io::Result<Balance> {
        let sb = liege_sys::scoreboard::Scoreboard::open(r.fd)?;
        Ok(Balance { sb, slot: r.slot })
    }
    /// A connection was accepted.
    pub fn opened(&self) {
        self.sb
            .slot(self.slot)
            .active
            .fetch_add(1, Ordering::AcqRel);
    }
    /// A connection ended.
    pub fn closed(&self) {
        self.sb
            .slot(self.slot)
            .active
            .fetch_sub(1, Ordering::AcqRel);
    }
    pub fn set_accepting(&self, on: bool) {
        let pid = if on { std::process::id() } else { 0 };
        self.sb
            .slot(self.slot)
            .accepting
            .store(pid, Ordering::Release);
    }
    /// Another worker of the app is accepting too.
    pub fn others_accepting(&self) -> bool {
        self.min_other().is_some()
    }
    /// The fewest connections held by another accepting worker.
    pub fn min_other(&self) -> Option<u32> {
        self.sb.min_other_active(self.slot)
    }
    /// This worker holds more connections than the least loaded accepting worker (plus a
    /// little slack, so two workers with nearly equal loads do not both give way): that
    /// worker's count.
    pub fn overloaded(&self) -> Option<u32> {
        let mine = self.sb.slot(self.slot).active.load(Ordering::Acquire);
        // Nobody can hold fewer than 0: at or under the slack there is nothing to scan.
        if mine <= slack(0) {
            return None;
        }
        self.min_other().filter(|&min| self.exceeds(min))
    }
    /// This worker holds more connections than `min` (the least loaded other worker's count,
    /// read once by the caller) plus the slack.
    pub fn exceeds(&self, min: u32) -> bool {
        self.sb.slot(self.slot).active.load(Ordering::Acquire) > min + slack(min)
    }
}

/// Prepare an inherited listening fd: close-on-exec (processes the app spawns must not
/// inherit it) and non-blocking (a thread woken for a connection another worker took must
/// not sleep in accept). The flag is shared by every process holding the socket; all of
/// them are liege workers, which accept only when epoll says so.
///
/// TCP listeners also get TCP_NODELAY, which accepted sockets inherit (no setsockopt per
/// connection), and, unless `defer` is None, TCP_DEFER_ACCEPT: the kernel hands a connection
/// over only once its first bytes are there (or after `defer` seconds), so the read after
/// accept finds the request instead of parking the connection (as uWSGI does).
pub fn prepare(fd: RawFd, tcp: bool, defer: Option<u32>) -> std::io::Result<()> {
    // SAFETY: the fd was inherited from the master as an open listening socket and stays
    // open for the life of the worker.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(
        borrowed,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let flags = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFL)?;
    let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
    flags.insert(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    // A receive timeout left by an older worker generation (which accepted in a blocking
    // thread) does no harm, but clear it.
    setsockopt(&borrowed, sockopt::ReceiveTimeout, &TimeVal::new(0, 0))?;
    if tcp {
        setsockopt(&borrowed, sockopt::TcpNoDelay, &true)?;
        if let Some(secs) = defer {
            let secs = secs.max(1) as libc::c_int;
            // SAFETY: valid fd; an int option value of the right size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_DEFER_ACCEPT,
                    (&secs as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r != 0 {
                tracing::debug!("TCP_DEFER_ACCEPT: {}", std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
