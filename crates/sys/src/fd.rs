//! Raw file-descriptor helpers: CLOEXEC, socket probes, polling.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Set or clear `FD_CLOEXEC` on `fd`.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and write the descriptor flags of `fd`; an invalid fd
    // yields EBADF, which we report.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if new != flags && libc::fcntl(fd, libc::F_SETFD, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether `FD_CLOEXEC` is set on `fd` (for assertions and tests).
pub fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD only reads the descriptor flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// Set or clear `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL only change the file status flags of `fd`.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if libc::fcntl(fd, libc::F_SETFL, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Duplicate `fd` onto a new descriptor (>= 3) with CLOEXEC set.
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a fresh descriptor we own exclusively.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Make `target` (0, 1 or 2) refer to the same open file as `src`.
pub fn dup_onto(src: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 atomically replaces `target`; callers only pass stdio numbers, which are
    // not owned by any Rust object.
    if unsafe { libc::dup2(src, target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Point stdin at /dev/null.
pub fn stdin_devnull() -> io::Result<()> {
    let f = std::fs::File::open("/dev/null")?;
    dup_onto(f.as_raw_fd(), 0)
}

/// True if `fd` is an open socket that is listening (`SO_ACCEPTCONN`).
pub fn is_listening_socket(fd: RawFd) -> bool {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `val`; on a non-socket it fails with
    // ENOTSOCK and we return false.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && val != 0
}

/// Events to wait for / that happened, as in poll(2).
pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;
pub const POLLHUP: i16 = libc::POLLHUP;
pub const POLLERR: i16 = libc::POLLERR;

/// poll(2) over `(fd, events)` pairs; returns the `revents` of each entry in order.
/// EINTR is reported as "nothing happened" (a signal's self-pipe byte wakes the next call).
pub fn poll(fds: &[(RawFd, i16)], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid, exclusively borrowed array of `pfds.len()` pollfd structs.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(vec![0; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.into_iter().map(|p| p.revents).collect())
}

/// Set CLOEXEC on every open descriptor >= `from`, so nothing we inherited by accident
/// (a shell's stray fds, a test harness's pipes) leaks into the processes we exec.
pub fn cloexec_all_from(from: RawFd) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= from)
        .collect();
    for fd in fds {
        // The read_dir fd itself is closed by now; errors (EBADF) are harmless.
        let _ = set_cloexec(fd, true);
    }
}

/// Outcome of a non-blocking read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    WouldBlock,
    Eof,
    Error(i32),
}

/// One non-blocking `read(2)` into `buf` on a raw fd we do not own as an object.
pub fn read_raw(fd: RawFd, buf: &mut [u8]) -> ReadOutcome {
    // SAFETY: reading at most `buf.len()` bytes into an exclusively borrowed buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    match n {
        0 => ReadOutcome::Eof,
        n if n > 0 => ReadOutcome::Data(n as usize),
        _ => match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => ReadOutcome::WouldBlock,
            Some(e) => ReadOutcome::Error(e),
            None => ReadOutcome::Error(0),
        },
    }
}

/// Write all of `buf` to a raw fd (blocking fds; stops at the first error).
pub fn write_all_raw(fd: RawFd, buf: &[u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: writing bytes from a borrowed buffer.
        let w = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if w <= 0 {
            break;
        }
        off += w as usize;
    }
}

/// Send one byte on a socket without blocking or raising SIGPIPE; falls back to `write` for
/// non-sockets (an emperor pipe). Errors are ignored: a full pipe drops the byte.
pub fn send_byte(fd: RawFd, b: u8) {
    // SAFETY: one byte from a local; MSG_NOSIGNAL avoids SIGPIPE.
    let r = unsafe {
        libc::send(
            fd,
            (&b as *const u8).cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
        // SAFETY: as above, for a pipe.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Close a raw fd handed to us by number (emperor pipe, systemd socket) that no Rust object
/// owns.
pub fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns `fd` by protocol (it came from the environment) and stops using
    // the number afterwards.
    unsafe {
        libc::close(fd);
    }
}

/// The size of the file behind `fd` (fstat), e.g. our log file on fd 2.
pub fn file_size(fd: RawFd) -> Option<u64> {
    // SAFETY: fstat writes into a zeroed local struct.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st.st_size as u64)
    }
}

/// accept4 on a non-blocking listener: a non-blocking, close-on-exec connection, or None.
pub fn accept_nonblocking(listener: RawFd) -> Option<OwnedFd> {
    // SAFETY: accept4 with null address pointers; the returned fd is fresh and ours.
    let c = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    // SAFETY: `c` was just returned by the kernel and is owned by nobody else.
    (c >= 0).then(|| unsafe { OwnedFd::from_raw_fd(c) })
}

/// Open `rel` beneath the directory `root` (`openat2` with `RESOLVE_BENEATH` and
/// `RESOLVE_NO_MAGICLINKS`): no `..`, absolute path or symlink on the way may leave `root`,
/// whoever swaps what while it resolves. Read-only, non-blocking (a FIFO does not stall the
/// caller), CLOEXEC. An escape fails with `EXDEV`.
pub fn open_beneath(root: &std::path::Path, rel: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (croot, crel) = (c(root)?, c(rel)?);
    // SAFETY: a NUL-terminated path; the result is a fresh descriptor we own.
    let dir = unsafe {
        libc::open(
            croot.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dir` was just opened and nobody else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    // SAFETY: open_how is plain old data, zero-initialised then filled in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads `how` (of the size given) and the NUL-terminated path; the result
    // is a fresh descriptor we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            crel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { std::fs::File::from_raw_fd(fd as i32) })
}
