//! systemd notifications (`NOTIFY_SOCKET`), sent without ever blocking the event loop: the
//! socket is non-blocking; when the receiver's queue is full a watchdog ping is dropped
//! (the next one follows) and any other message is kept and retried on the next iteration.

use std::collections::VecDeque;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    sock: Option<(UnixDatagram, SocketAddr)>,
    pending: VecDeque<String>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace); disabled if unset.
    pub fn from_env() -> Notifier {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let addr = match p.to_str().and_then(|s| s.strip_prefix('@')) {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                None => SocketAddr::from_pathname(&p).ok()?,
            };
            let s = UnixDatagram::unbound().ok()?;
            s.set_nonblocking(true).ok()?;
            Some((s, addr))
        });
        Notifier {
            sock,
            pending: VecDeque::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn try_send(&self, msg: &str) -> std::io::Result<()> {
        let Some((s, addr)) = &self.sock else {
            return Ok(());
        };
        s.send_to_addr(msg.as_bytes(), addr).map(|_| ())
    }

    /// Send `msg` (newline-separated `KEY=VALUE` lines). `droppable`: a watchdog ping.
    pub fn send(&mut self, msg: String, droppable: bool) {
        if !self.enabled() {
            return;
        }
        self.flush();
        if self.pending.is_empty() {
            match self.try_send(&msg) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!("NOTIFY_SOCKET: {e}");
                    return;
                }
            }
        }
        if !droppable {
            self.pending.push_back(msg);
        }
    }

    /// Retry what could not be sent.
    pub fn flush(&mut self) {
        while let Some(m) = self.pending.front() {
            match self.try_send(m) {
                Ok(()) => {
                    self.pending.pop_front();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("NOTIFY_SOCKET: {e}");
                    self.pending.clear();
                }
            }
        }
    }
}
