//! The worker's end of the SOCK_SEQPACKET control socket (`liege_protocol::control`).

use liege_protocol::control::{FromWorker, ToWorker};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::unix::AsyncFd;

/// What arrived on the control socket.
#[derive(Debug)]
pub enum ControlEvent {
    Message(ToWorker),
    /// The master closed its end (or died).
    Eof,
}

pub struct Control {
    fd: OwnedFd,
}

impl Control {
    /// Adopt the inherited control fd (CLOEXEC is set again so our own children never get it).
    pub fn adopt(fd: RawFd) -> std::io::Result<Control> {
        if fd < 0 {
            return Err(std::io::Error::other("no control fd"));
        }
        // SAFETY: the master handed us this fd in WorkerBoot for our exclusive use; nothing
        // else in this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
        flags.insert(nix::fcntl::OFlag::O_NONBLOCK);
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Ok(Control { fd })
    }

    /// Send one message (one packet). Never blocks; a full or closed socket drops it.
    pub fn send(&self, msg: &FromWorker) {
        let bytes = msg.encode();
        // SAFETY: valid fd and buffer; MSG_NOSIGNAL avoids SIGPIPE if the master is gone.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            tracing::debug!("control send failed: {}", std::io::Error::last_os_error());
        }
    }

    /// A reader for the control thread (must be called inside the tokio runtime).
    pub fn reader(&self) -> std::io::Result<ControlReader> {
        let dup = self.fd.try_clone()?;
        // SAFETY: `dup` is an OwnedFd moved into the AsyncFd, so it stays open and keeps the
        // same number for the AsyncFd's whole lifetime.
        let fd =
            unsafe { AsyncFd::register(dup) }.map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(ControlReader {
            fd,
            buf: vec![0u8; 65536],
        })
    }
}

pub struct ControlReader {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl ControlReader {
    /// The next event; undecodable packets are logged and skipped.
    pub async fn next(&mut self) -> ControlEvent {
        loop {
            let mut guard = match self.fd.readable().await {
                Ok(g) => g,
                Err(_) => return ControlEvent::Eof,
            };
            let buf = &mut self.buf;
            let r = guard.try_io(|fd| {
                // SAFETY: valid fd and buffer of buf.len() bytes.
                let n = unsafe {
                    libc::recv(
                        fd.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Err(_would_block) => continue,
                Ok(Ok(0)) => return ControlEvent::Eof,
                Ok(Ok(n)) => match ToWorker::decode(&self.buf[..n]) {
                    Ok(m) => return ControlEvent::Message(m),
                    Err(e) => tracing::warn!("bad control message: {e}"),
                },
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => {
                    tracing::warn!("control socket: {e}");
                    return ControlEvent::Eof;
                }
            }
        }
    }
}
