//! The few syscalls the request path makes, on non-blocking sockets: epoll, reads, writes
//! and sendfile with a deadline (poll(2) while the socket is not ready), accept.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// An epoll instance shared by the serving threads of a worker.
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: epoll_create1 just returned it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd, a valid event struct for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watch a listening socket: level-triggered, and exclusive across the workers' epolls
    /// (one worker is woken per connection, not all of them).
    pub fn add_listener(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(
            libc::EPOLL_CTL_ADD,
            fd,
            (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
            token,
        )
    }

    /// Wake one thread once when `fd` is readable (or hung up); re-arm to wait again.
    pub fn arm(&self, fd: RawFd, token: u64, added: bool) -> io::Result<()> {
        let ev = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        if added {
            self.ctl(libc::EPOLL_CTL_MOD, fd, ev, token)
        } else {
            self.ctl(libc::EPOLL_CTL_ADD, fd, ev, token)
        }
    }

    pub fn remove(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// Wait for one event (`None` on timeout or signal); the timeout is rounded up to whole
    /// milliseconds (never 0 for a non-zero timeout: no busy loop).
    pub fn wait_one(&self, timeout: Duration) -> Option<u64> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: valid epoll fd; room for exactly one event.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                &mut ev,
                1,
                timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
            )
        };
        (n == 1).then_some(ev.u64)
    }
}

/// What a non-blocking read gave.
pub enum Got {
    Bytes(usize),
    Eof,
    WouldBlock,
    Err(io::Error),
}

/// Read what is there into the spare capacity of `buf` (at least `want` bytes of room).
pub fn read_some(fd: RawFd, buf: &mut Vec<u8>, want: usize) -> Got {
    buf.reserve(want);
    let spare = buf.spare_capacity_mut();
    // SAFETY: the pointer and length describe `buf`'s spare capacity; read writes at most
    // that many bytes, and we set the length to what it wrote.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
    if n > 0 {
        // SAFETY: the kernel initialized n bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n as usize) };
        return Got::Bytes(n as usize);
    }
    if n == 0 {
        return Got::Eof;
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Got::WouldBlock,
        io::ErrorKind::Interrupted => Got::Bytes(0),
        _ => Got::Err(e),
    }
}

/// Wait until `fd` is ready for `events` or `deadline` passes (`Ok(false)`).
pub fn wait_ready(fd: RawFd, events: i16, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Read at least one byte, waiting up to `timeout` for the socket.
pub fn read_wait(fd: RawFd, buf: &mut Vec<u8>, want: usize, timeout: Duration) -> Got {
    let deadline = Instant::now() + timeout;
    loop {
        match read_some(fd, buf, want) {
            Got::WouldBlock => match wait_ready(fd, libc::POLLIN, deadline) {
                Ok(true) => {}
                Ok(false) => return Got::WouldBlock,
                Err(e) => return Got::Err(e),
            },
            Got::Bytes(0) => {}
            other => return other,
        }
    }
}

/// A write or sendfile returned -1: wait for room (up to `timeout`) and say to try again,
/// or give the error.
fn write_failed(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => {
            if wait_ready(fd, libc::POLLOUT, Instant::now() + timeout)? {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "socket-timeout writing the response",
                ))
            }
        }
        io::ErrorKind::Interrupted => Ok(()),
        _ => Err(e),
    }
}

/// Write every byte of `bufs` (in order), waiting up to `timeout` for each bit of progress.
pub fn write_all(fd: RawFd, bufs: &mut [&[u8]], timeout: Duration) -> io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        if bufs[first].is_empty() {
            first += 1;
            continue;
        }
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 4];
        let mut n_iov = 0;
        for b in bufs[first..].iter().filter(|b| !b.is_empty()).take(4) {
            iovs[n_iov] = libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
            n_iov += 1;
        }
        // SAFETY: iovs describe live slices; MSG_NOSIGNAL: a gone peer is an error, not SIGPIPE.
        let n = unsafe {
            let msg = libc::msghdr {
                msg_name: std::ptr::null_mut(),
                msg_namelen: 0,
                msg_iov: iovs.as_mut_ptr(),
                msg_iovlen: n_iov,
                msg_control: std::ptr::null_mut(),
                msg_controllen: 0,
                msg_flags: 0,
            };
            libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
        };
        if n < 0 {
            write_failed(fd, timeout)?;
            continue;
        }
        let mut n = n as usize;
        while n > 0 && first < bufs.len() {
            let b = bufs[first];
            if n >= b.len() {
                n -= b.len();
                bufs[first] = &[];
                first += 1;
            } else {
                bufs[first] = &b[n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// sendfile(2) `len` bytes of `file` from `offset` (to EOF when `len` is None); returns the
/// bytes sent.
pub fn send_file(
    fd: RawFd,
    file: &std::fs::File,
    mut offset: u64,
    len: Option<u64>,
    timeout: Duration,
) -> io::Result<u64> {
    let mut left = len.unwrap_or(u64::MAX);
    let mut sent = 0;
    while left > 0 {
        let chunk = left.min(1 << 20) as usize;
        let mut off = offset as libc::off_t;
        // SAFETY: both fds are open; `off` is a valid pointer.
        let n = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut off, chunk) };
        if n < 0 {
            write_failed(fd, timeout)?;
            continue;
        }
        if n == 0 {
            break;
        }
        let n = n as u64;
        offset += n;
        sent += n;
        left -= n;
    }
    Ok(sent)
}

/// Best-effort write of a short answer (an error response) without waiting.
pub fn write_now(fd: RawFd, data: &[u8]) {
    // SAFETY: valid buffer.
    let _ = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
}

/// accept4 a non-blocking, close-on-exec connection, with the peer's address for TCP
/// (no getpeername(2) afterwards).
pub fn accept(fd: RawFd, tcp: bool) -> io::Result<(OwnedFd, Option<std::net::SocketAddr>)> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let (addr, lenp) = if tcp {
        (
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            &mut len as *mut libc::socklen_t,
        )
    } else {
        (std::ptr::null_mut(), std::ptr::null_mut())
    };
    // SAFETY: addr/lenp are null or point to a buffer of `len` bytes that outlives the call.
    let c = unsafe { libc::accept4(fd, addr, lenp, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) };
    if c < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 just returned it.
    let owned = unsafe { OwnedFd::from_raw_fd(c) };
    let peer = if tcp { sockaddr_to(&ss) } else { None };
    Ok((owned, peer))
}

/// A socket address filled by the kernel.
pub fn sockaddr_to(ss: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits in the storage.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6, which fits in the storage.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The local address of a socket.
pub fn local_addr(fd: RawFd) -> Option<std::net::SocketAddr> {
    // SAFETY: as in `accept`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: a buffer of `len` bytes.
    let r = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return None;
    }
    sockaddr_to(&ss)
}

/// Close after a response whose request was not read to its end: shut our side down and
/// drain for up to `wait` (zero: only what is already there), so the unread bytes do not make
/// the kernel reset the connection (which can destroy the response before the client reads
/// it).
pub fn linger_close(fd: OwnedFd, wait: Duration) {
    let raw = fd.as_raw_fd();
    // SAFETY: valid fd.
    unsafe { libc::shutdown(raw, libc::SHUT_WR) };
    let deadline = Instant::now() + wait;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        match read_some(raw, &mut buf, 16 * 1024) {
            Got::Bytes(_) => {}
            Got::WouldBlock => match wait_ready(raw, libc::POLLIN, deadline) {
                Ok(true) => {}
                _ => break,
            },
            Got::Eof | Got::Err(_) => break,
        }
    }
    drop(fd);
}
