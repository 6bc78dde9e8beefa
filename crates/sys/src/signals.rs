//! Signal plumbing for a synchronous poll loop: a self-pipe. The handler only writes the
//! signal number (one byte) to a non-blocking pipe; the loop polls the read end.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) and errno access are async-signal-safe; errno is saved and
        // restored so the interrupted code does not see our EAGAIN.
        unsafe {
            let e = *libc::__errno_location();
            libc::write(fd, (&b as *const u8).cast(), 1);
            *libc::__errno_location() = e;
        }
    }
}

/// The read end of the self-pipe. Only one may exist per process.
#[derive(Debug)]
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Install handlers for `signals` (and ignore SIGPIPE).
    pub fn install(signals: &[i32]) -> io::Result<SignalPipe> {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(io::Error::from)?;
        WRITE_FD.store(w.as_raw_fd(), Ordering::SeqCst);
        for &sig in signals {
            // SAFETY: `on_signal` is async-signal-safe (see above); the sigaction struct is
            // fully initialised before use.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        // SAFETY: setting SIGPIPE to SIG_IGN has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Ok(SignalPipe { read: r, _write: w })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Drain the pipe: the signals received since the last call, in order.
    pub fn drain(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend(buf[..n].iter().map(|&b| b as i32)),
            }
        }
        out
    }
}
