//! Sharing connections between the workers of an app.
//!
//! All workers accept on the same listening sockets, each from its own epoll set with
//! `EPOLLEXCLUSIVE`, so the kernel wakes one worker per connection instead of every worker
//! ([`crate::serve`]). A worker already on a CPU could still take a burst before its sibling
//! is scheduled, and with keep-alive that split is permanent (measured with `wrk -c64` and 2
//! workers before the scoreboard: one worker took 100 % of the connections in one run out of
//! three). So before each accept a thread looks at the scoreboard (shared with the other
//! workers through the master, `liege_sys::scoreboard`): if this worker holds more
//! connections than the least loaded accepting worker, it steps aside for up to
//! [`YIELD_MAX`] so that worker takes the next connection. Connections parked or waiting
//! count too, so the rule also sends one-request-per-connection traffic (nginx
//! `uwsgi_pass`) to the worker that can run it.

use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long an accept thread steps aside for a less loaded worker before accepting anyway
/// (a bound, so a stuck sibling never stalls new connections for long).
const YIELD_MAX: Duration = Duration::from_millis(2);

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
        self.sb.min_other_active(self.slot).is_some()
    }
    /// Step aside (bounded) while another accepting worker holds fewer connections.
    pub fn wait_turn(&self) {
        let deadline = std::time::Instant::now() + YIELD_MAX;
        loop {
            let mine = self.sb.slot(self.slot).active.load(Ordering::Acquire);
            match self.sb.min_other_active(self.slot) {
                Some(min) if mine > min + slack(min) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                _ => return,
            }
        }
    }
}

/// Prepare an inherited listening fd: close-on-exec (processes the app spawns must not
/// inherit it) and non-blocking (a thread woken for a connection another worker took must
/// not sleep in accept). The flag is shared by every process holding the socket; all of
/// them are liege workers, which accept only when epoll says so.
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
    flags.insert(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    // A receive timeout left by an older worker generation (which accepted in a blocking
    // thread) does no harm, but clear it.
    setsockopt(&borrowed, sockopt::ReceiveTimeout, &TimeVal::new(0, 0))?;
    Ok(())
}
