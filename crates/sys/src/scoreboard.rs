//! The scoreboard: a small shared-memory table (a memfd created by the master, mapped by
//! every worker) where each worker publishes how many connections it holds and whether it
//! is accepting. Workers read it to share new connections fairly (see liege-worker's
//! acceptor); the master clears a slot when it reaps the worker that used it.
//!
//! Each worker also publishes its request counters there after every request, so the
//! master's stats are live without a round-trip to a busy worker.
//!
//! Layout: `SLOTS` cache-line-sized slots; each holds two `AtomicU32`s (accepting pid or 0,
//! open connections) and four `AtomicU64` counters (requests, bytes sent, summed and average
//! request time). Only atomics are read or written through the mapping.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Number of slots (workers of two generations fit easily; a worker without a slot accepts
/// without balancing).
pub const SLOTS: u32 = 256;
const SLOT_BYTES: usize = 64;
const LEN: usize = SLOTS as usize * SLOT_BYTES;

/// A mapping of the scoreboard.
pub struct Scoreboard {
    base: NonNull<u8>,
}

// SAFETY: the mapping is only accessed through atomics, which are Sync; the pointer stays
// valid until Drop unmaps it.
unsafe impl Send for Scoreboard {}
// SAFETY: as above.
unsafe impl Sync for Scoreboard {}

/// One worker's slot.
#[repr(C)]
pub struct Slot {
    /// Pid of the worker while it accepts connections, 0 otherwise.
    pub accepting: AtomicU32,
    /// Connections the worker holds open.
    pub active: AtomicU32,
    /// Requests completed (written last by [`Slot::publish`]).
    pub requests: AtomicU64,
    /// Bytes sent.
    pub tx: AtomicU64,
    /// µs, summed request time.
    pub running_time: AtomicU64,
    /// µs, average request time as the worker computes it.
    pub avg_rt: AtomicU64,
}

/// A worker's counters as read from its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    pub requests: u64,
    pub tx: u64,
    pub running_time: u64,
    pub avg_rt: u64,
}

impl Slot {
    /// Publish the counters (the worker, after each request). `requests` is stored last, so
    /// a reader that sees it sees the other counters of that request or later.
    pub fn publish(&self, live: Live) {
        self.tx.store(live.tx, Ordering::Relaxed);
        self.running_time
            .store(live.running_time, Ordering::Relaxed);
        self.avg_rt.store(live.avg_rt, Ordering::Relaxed);
        self.requests.store(live.requests, Ordering::Release);
    }

    /// Read the counters (the master).
    pub fn live(&self) -> Live {
        let requests = self.requests.load(Ordering::Acquire);
        Live {
            requests,
            tx: self.tx.load(Ordering::Relaxed),
            running_time: self.running_time.load(Ordering::Relaxed),
            avg_rt: self.avg_rt.load(Ordering::Relaxed),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Slot>() <= SLOT_BYTES);

impl Scoreboard {
    /// Create a zeroed scoreboard (in the master). The fd is close-on-exec; the master passes
    /// it to each worker explicitly.
    pub fn create() -> std::io::Result<(Scoreboard, OwnedFd)> {
        let fd = nix::sys::memfd::memfd_create(
            c"liege-scoreboard",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, LEN as i64)?;
        let sb = Self::map(fd.as_fd())?;
        Ok((sb, fd))
    }

    /// Map a scoreboard inherited as `fd` (in a worker), then mark `fd` close-on-exec: the
    /// mapping is all the worker needs, and programs the app runs must not inherit a
    /// descriptor to every worker's shared table.
    pub fn open(fd: RawFd) -> std::io::Result<Scoreboard> {
        // SAFETY: the master passed this fd in WorkerBoot; it is open for our whole life.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let st = nix::sys::stat::fstat(borrowed)?;
        if (st.st_size as usize) < LEN {
            return Err(std::io::Error::other(format!(
                "scoreboard fd {} is {} bytes, expected {LEN}",
                borrowed.as_raw_fd(),
                st.st_size
            )));
        }
        let sb = Self::map(borrowed)?;
        crate::fd::set_cloexec(fd, true)?;
        Ok(sb)
    }

    fn map(fd: BorrowedFd<'_>) -> std::io::Result<Scoreboard> {
        // SAFETY: a fresh shared mapping of a memfd of at least LEN bytes; no other Rust
        // object aliases it, and it is only accessed through atomics.
        let ptr = unsafe {
            nix::sys::mman::mmap(
                None,
                NonZeroUsize::new(LEN).expect("LEN > 0"),
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
                fd,
                0,
            )?
        };
        Ok(Scoreboard { base: ptr.cast() })
    }

    /// Slot `i` (`i < SLOTS`).
    pub fn slot(&self, i: u32) -> &Slot {
        assert!(i < SLOTS, "scoreboard slot {i} out of range");
        // SAFETY: in bounds (checked), aligned (64-byte slots in a page-aligned mapping), and
        // Slot is atomics only (repr(C), at most SLOT_BYTES), valid for any bit pattern.
        unsafe { &*(self.base.as_ptr().add(i as usize * SLOT_BYTES) as *const Slot) }
    }

    /// Zero slot `i` (the master, after reaping its worker).
    pub fn clear(&self, i: u32) {
        let s = self.slot(i);
        s.accepting.store(0, Ordering::Release);
        s.active.store(0, Ordering::Release);
        s.publish(Live::default());
    }

    /// The fewest connections held by a worker other than `me` that is accepting, if any.
    pub fn min_other_active(&self, me: u32) -> Option<u32> {
        (0..SLOTS)
            .filter(|&i| i != me)
            .map(|i| self.slot(i))
            .filter(|s| s.accepting.load(Ordering::Acquire) != 0)
            .map(|s| s.active.load(Ordering::Acquire))
            .min()
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `map`; no reference into it outlives self.
        let _ = unsafe { nix::sys::mman::munmap(self.base.cast(), LEN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_share_counters() {
        let (a, fd) = Scoreboard::create().unwrap();
        let b = Scoreboard::open(fd.as_raw_fd()).unwrap();
        a.slot(3).accepting.store(42, Ordering::Release);
        a.slot(3).active.store(7, Ordering::Release);
        assert_eq!(b.slot(3).active.load(Ordering::Acquire), 7);
        assert_eq!(b.min_other_active(0), Some(7));
        assert_eq!(b.min_other_active(3), None);
        let live = Live {
            requests: 5,
            tx: 100,
            running_time: 7,
            avg_rt: 2,
        };
        a.slot(3).publish(live);
        assert_eq!(b.slot(3).live(), live);
        a.clear(3);
        assert_eq!(b.min_other_active(0), None);
        assert_eq!(b.slot(3).live(), Live::default());
    }
}
