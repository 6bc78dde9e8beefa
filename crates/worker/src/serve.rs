//! The request path: every serving thread (one per `threads`) waits on one epoll set that
//! holds the listening sockets and the parked connections, and serves what wakes it from
//! start to finish: accept, read the request, call the app holding the GIL, write the
//! response, then close or park the connection again. No request crosses a thread.
//!
//! ```text
//!   epoll_wait ──► listener ready ──► accept ──┐
//!        ▲                                     ▼
//!        │          connection ready ──► read head (+ pre-read body) ── incomplete ──► park
//!        │                                     │ complete
//!        │                                     ▼
//!        │                        GIL: environ, app, close()     (body reads, streamed
//!        │                                     │                  chunks: GIL released)
//!        │                                     ▼
//!        └──── park (keep-alive) ◄── write response (no GIL) ──► close
//! ```
//!
//! A connection is owned by exactly one place at a time: the thread serving it, or the
//! parking lot ([`Lot`]) while it waits in epoll (`EPOLLONESHOT`, so one wake-up goes to one
//! thread). A slow client therefore never holds a thread while its head or pre-read body
//! (64 KiB, or `post-buffering`) is on the way; parked connections have a deadline
//! (`socket-timeout` for a request under way, [`IDLE_TIMEOUT`] between keep-alive
//! requests) enforced by [`Server::sweep`].
//!
//! With several threads only one of them (the leader) waits in epoll at a time; the thread
//! that takes an event serves it and comes back to lead again, so quick requests cost no
//! wake-up of another thread and no GIL hand-off. A follower is woken only when the leader
//! has been busy for [`NUDGE`] (see [`Server::run_nudger`]). With one epoll waiter per set,
//! the level-triggered listener never wakes a second thread for the same connection.
//!
//! Listening sockets are in every worker's epoll with `EPOLLEXCLUSIVE`: a new connection
//! wakes one worker, not all. After accepting, a thread looks at the scoreboard
//! ([`crate::acceptor::Balance`]): a worker holding more than its share moves to the back
//! of the listener's wake-up queue.

use crate::acceptor::Balance;
use crate::conn::{Body, Conn, Out, Stage};
use crate::ctx::{Ctx, LogRecord};
use crate::h1::{self, Framing};
use crate::sock::{self, Epoll, Got};
use liege_protocol::http1::span;
use liege_protocol::uwsgi::{check, content_length, parse_vars, Check, HEADER_LEN};
use liege_wsgi::types::{
    BodyError, ConnInfo, HttpHead, Reply, ResponseBody, ResponseHead, UwsgiVars, Vars,
};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a keep-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a serving thread drains a client's unread request bytes before closing.
const LINGER: Duration = Duration::from_millis(200);

/// How often an idle serving thread looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// A worker moves to the back of the listeners' wake-up queue after this many accepts.
const ROTATE_EVERY: u32 = 16;

/// With several threads, how long the leader may be busy before a follower is woken to
/// wait in epoll in its place (see [`Server::run_nudger`]).
const NUDGE: Duration = Duration::from_micros(200);

/// The nudger stops looking every NUDGE once no request came for this long.
const NUDGER_IDLE: Duration = Duration::from_millis(100);

/// Which serving thread waits in epoll (threads > 1).
#[derive(Default)]
struct Turn {
    /// A thread is in (or on its way to) epoll_wait.
    leader: bool,
    /// Threads waiting to lead.
    followers: usize,
    /// When the last leader left epoll with something to serve.
    busy_since: Option<Instant>,
    nudger_asleep: bool,
}

/// How long a worker holding more than its share of connections stops accepting, so that
/// the next connections wake a less loaded worker (see [`Server::step_aside`]).
const ASIDE: Duration = Duration::from_millis(2);

/// After stepping aside in vain [`VAIN`] times in a row (the least loaded worker took
/// nothing meanwhile: it is busy in a long request), a worker accepts whatever comes for
/// this long before it steps aside again.
const CALM: Duration = Duration::from_millis(100);
const VAIN: u32 = 3;

/// Whether the listening sockets are in this worker's epoll set, and what keeps them out.
/// Every change goes through [`Server::gate`], under its lock.
struct Gate {
    /// The listeners are in the epoll set now.
    registered: bool,
    /// At `worker-max-connections`.
    paused: bool,
    /// Stepped aside for a less loaded worker until then.
    aside_until: Option<Instant>,
    /// The least loaded other worker's connections when this one stepped aside.
    aside_from: u32,
    /// Asides in a row in which the other worker took nothing.
    vain: u32,
    /// No stepping aside before then.
    calm_until: Option<Instant>,
}

/// Token bit of listening sockets (connection tokens are `generation << 32 | slot`).
const LISTENER: u64 = 1 << 63;

/// An inherited listening socket.
pub struct Listener {
    pub fd: RawFd,
    pub unix: bool,
    pub http: bool,
    pub name: String,
    /// The listener's own address, when it is not a wildcard one: then every connection's
    /// local address (no getsockname per connection).
    fixed: Option<(u16, Arc<str>)>,
    /// The last local address seen and its text (SERVER_NAME fallback), reused while the
    /// address stays the same.
    local: Mutex<Option<(IpAddr, Arc<str>)>>,
}

impl Listener {
    pub fn new(fd: RawFd, unix: bool, http: bool, name: String) -> Listener {
        let fixed = if unix {
            None
        } else {
            sock::local_addr(fd)
                .filter(|a| !a.ip().is_unspecified())
                .map(|a| (a.port(), Arc::from(a.ip().to_string())))
        };
        Listener {
            fd,
            unix,
            http,
            name,
            fixed,
            local: Mutex::new(None),
        }
    }

    fn local_text(&self, ip: IpAddr) -> Arc<str> {
        let mut g = self.local.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some((cached, text)) if *cached == ip => text.clone(),
            _ => {
                let text: Arc<str> = ip.to_string().into();
                *g = Some((ip, text.clone()));
                text
            }
        }
    }
}

/// Parked connections, by token.
#[derive(Default)]
struct Lot {
    slots: Vec<(u32, Option<Conn>)>,
    free: Vec<u32>,
    len: usize,
}

impl Lot {
    fn insert(&mut self, c: Conn) -> u64 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[i as usize];
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = Some(c);
        self.len += 1;
        (slot.0 as u64) << 32 | i as u64
    }

    fn take(&mut self, token: u64) -> Option<Conn> {
        let i = (token & 0xffff_ffff) as usize;
        let gen = (token >> 32) as u32;
        let slot = self.slots.get_mut(i)?;
        if slot.0 != gen {
            return None;
        }
        let c = slot.1.take()?;
        self.free.push(i as u32);
        self.len -= 1;
        Some(c)
    }

    /// Remove the connections `f` selects.
    fn remove_if(&mut self, mut f: impl FnMut(&Conn) -> bool) -> Vec<Conn> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.1.as_ref().is_some_and(&mut f) {
                out.extend(slot.1.take());
                self.free.push(i as u32);
                self.len -= 1;
            }
        }
        out
    }
}

/// What reading a connection gave.
enum Prep {
    /// A whole head (and the pre-read body) is there: serve it.
    Ready,
    /// Wait in epoll for more bytes.
    Park,
    /// The peer closed, or sent something not worth an answer.
    Close,
    /// Answer with this error status, then close.
    Refuse(u16),
}

pub struct Server {
    ep: Epoll,
    listeners: Vec<Listener>,
    lot: Mutex<Lot>,
    /// Connections held by serving threads right now (changed under the `lot` lock).
    active: AtomicUsize,
    /// Connections accepted (for the rotation among workers).
    accepts: AtomicU32,
    /// Connections open (served, parked, idle), against `worker-max-connections`.
    conns: AtomicUsize,
    max_conns: usize,
    /// The listeners are out of the epoll set because of the cap (a copy of `Gate::paused`
    /// for the check on every close).
    paused: AtomicBool,
    /// A copy of `Gate::aside_until.is_some()` for the check before every wait.
    aside: AtomicBool,
    gate: Mutex<Gate>,
    stopping: AtomicBool,
    pub ctx: Arc<Ctx>,
    handler: Arc<liege_wsgi::Handler>,
    balance: Option<Balance>,
    rules: h1::Rules,
    /// Several serving threads: one at a time waits in epoll ([`Turn`]).
    multi: bool,
    turn: Mutex<Turn>,
    follow: std::sync::Condvar,
    nudge: std::sync::Condvar,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

impl Server {
    pub fn new(
        listeners: Vec<Listener>,
        ctx: Arc<Ctx>,
        handler: Arc<liege_wsgi::Handler>,
        balance: Option<Balance>,
    ) -> std::io::Result<Server> {
        let ep = Epoll::new()?;
        for (i, l) in listeners.iter().enumerate() {
            ep.add_listener(l.fd, LISTENER | i as u64)?;
        }
        Ok(Server {
            ep,
            listeners,
            lot: Mutex::new(Lot::default()),
            active: AtomicUsize::new(0),
            accepts: AtomicU32::new(0),
            conns: AtomicUsize::new(0),
            max_conns: ctx.cfg.max_connections.max(1) as usize,
            paused: AtomicBool::new(false),
            aside: AtomicBool::new(false),
            gate: Mutex::new(Gate {
                registered: true,
                paused: false,
                aside_until: None,
                aside_from: 0,
                vain: 0,
                calm_until: None,
            }),
            stopping: AtomicBool::new(false),
            rules: h1::Rules {
                max_head: ctx.cfg.buffer_size.max(1024),
                max_headers: (ctx.cfg.max_vars as usize).max(16),
                keep_underscore: ctx.cfg.keep_underscore_headers,
            },
            multi: ctx.cfg.threads > 1,
            turn: Mutex::new(Turn::default()),
            follow: std::sync::Condvar::new(),
            nudge: std::sync::Condvar::new(),
            balance,
            handler,
            ctx,
        })
    }

    fn lot(&self) -> std::sync::MutexGuard<'_, Lot> {
        self.lot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stop accepting; close idle keep-alive connections. Requests under way finish, and
    /// a connection whose first request has not arrived yet gets until its deadline.
    pub fn begin_stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.gate(|_| {});
        if let Some(b) = &self.balance {
            b.set_accepting(false);
        }
        self.sweep();
    }

    /// No connection is served or parked.
    pub fn drained(&self) -> bool {
        let lot = self.lot();
        lot.len == 0 && self.active.load(Ordering::Acquire) == 0
    }

    /// Close parked connections past their deadline (and idle ones once stopping).
    pub fn sweep(&self) {
        let now = Instant::now();
        let stopping = self.stopping();
        let expired = self
            .lot()
            .remove_if(|c| c.deadline.is_some_and(|d| d <= now) || (stopping && idle(c)));
        for c in expired {
            // A request had begun to arrive: say why it is dropped.
            if c.http && (!c.io.rbuf.is_empty() || c.stage == Stage::Body) {
                tracing::debug!("closing a connection whose request did not arrive in time");
                sock::write_now(
                    c.raw(),
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
            // On the control thread: never wait for a client here.
            self.release(c, Duration::ZERO);
        }
    }

    /// A connection is gone: the scoreboard and the `worker-max-connections` count.
    fn untrack(&self) {
        if let Some(b) = &self.balance {
            b.closed();
        }
        let open = self.conns.fetch_sub(1, Ordering::AcqRel) - 1;
        if open < self.max_conns && self.paused.load(Ordering::Acquire) {
            self.resume_accepting();
        }
    }

    /// Forget a connection and close it, draining unread request bytes for up to `linger`.
    fn release(&self, c: Conn, linger: Duration) {
        self.untrack();
        let unread = !c.io.rbuf.is_empty() || c.io.body != Body::Done;
        let fd = c.into_fd();
        if unread {
            sock::linger_close(fd, linger);
        } else {
            drop(fd);
        }
    }

    /// Close a connection a serving thread holds.
    fn close(&self, c: Conn) {
        self.release(c, LINGER);
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// Give a connection back to epoll until more bytes arrive.
    fn park(&self, mut c: Conn) {
        if self.stopping() && idle(&c) {
            self.close(c);
            return;
        }
        let now = Instant::now();
        let waiting_request = !idle(&c);
        if c.deadline.is_none() || (waiting_request && c.idle_deadline) {
            c.idle_deadline = !waiting_request;
            c.deadline = Some(
                now + if waiting_request {
                    c.io.timeout
                } else {
                    IDLE_TIMEOUT
                },
            );
        }
        let fd = c.raw();
        let registered = c.registered;
        c.registered = true;
        let mut lot = self.lot();
        let token = lot.insert(c);
        if let Err(e) = self.ep.arm(fd, token, registered) {
            let c = lot.take(token);
            drop(lot);
            tracing::warn!("cannot wait for a connection: {e}");
            if let Some(c) = c {
                self.close(c);
            }
            return;
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// A serving thread: attached to the interpreter once, the GIL released except while
    /// the app runs.
    pub fn run_thread(&self, core: u32) {
        liege_wsgi::attach_thread(|| self.thread_loop(core));
    }

    fn thread_loop(&self, core: u32) {
        loop {
            if self.stopping() && self.drained() {
                return;
            }
            if self.multi && !self.lead() {
                continue;
            }
            let mut wait = STOP_CHECK;
            if self.aside.load(Ordering::Acquire) {
                wait = wait.min(self.come_back());
            }
            let got = self.ep.wait_one(wait);
            if self.multi {
                self.step_down(got.is_some());
            }
            let Some(token) = got else {
                continue;
            };
            if token & LISTENER != 0 {
                self.accept((token & !LISTENER) as usize, core);
                continue;
            }
            let c = {
                let mut lot = self.lot();
                let c = lot.take(token);
                if c.is_some() {
                    self.active.fetch_add(1, Ordering::AcqRel);
                }
                c
            };
            if let Some(c) = c {
                self.drive(c, core);
            }
        }
    }

    /// Several threads: become the one thread waiting in epoll, or wait (as a follower)
    /// until there is none or the nudger asks for another. `false`: look again.
    fn lead(&self) -> bool {
        let mut t = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        if !t.leader {
            t.leader = true;
            return true;
        }
        t.followers += 1;
        t = self
            .follow
            .wait_timeout(t, STOP_CHECK)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        t.followers -= 1;
        false
    }

    /// The leader leaves epoll (to serve what woke it, or to look at the stop flag).
    fn step_down(&self, busy: bool) {
        let mut t = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        t.leader = false;
        if busy {
            t.busy_since = Some(Instant::now());
            if t.nudger_asleep {
                self.nudge.notify_one();
            }
        }
    }

    /// The nudger thread (threads > 1). Only one serving thread waits in epoll; the one that
    /// takes an event serves it and comes back, so while requests are quick the other
    /// threads sleep (no wake-up per request, no GIL ping-pong). When no thread has waited
    /// in epoll for [`NUDGE`] (the last leader is still busy: an app that waits on I/O),
    /// one follower is woken to lead. It looks every NUDGE while requests come, and sleeps
    /// once none came for [`NUDGER_IDLE`].
    pub fn run_nudger(&self) {
        let mut t = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.stopping() && self.drained() {
                self.follow.notify_all();
                return;
            }
            let now = Instant::now();
            match t.busy_since {
                Some(since) if !t.leader && now >= since + NUDGE => {
                    // With no follower every thread is busy, and the first one back leads:
                    // nothing to do until a leader steps down again (which wakes us).
                    if t.followers > 0 {
                        self.follow.notify_one();
                        t.busy_since = Some(now);
                    } else {
                        t.busy_since = None;
                    }
                }
                Some(since) if t.leader && now >= since + NUDGER_IDLE => {
                    t.busy_since = None;
                }
                None => {
                    t.nudger_asleep = true;
                    t = self
                        .nudge
                        .wait_timeout(t, STOP_CHECK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    t.nudger_asleep = false;
                    continue;
                }
                _ => {}
            }
            drop(t);
            std::thread::sleep(NUDGE);
            t = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        }
    }

    fn accept(&self, i: usize, core: u32) {
        let Some(l) = self.listeners.get(i) else {
            return;
        };
        if self.stopping() {
            return;
        }
        let (fd, peer) = match sock::accept(l.fd, !l.unix && l.http) {
            Ok(x) => x,
            Err(e) => {
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => {}
                    Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK) => {
                        tracing::warn!("listener {} (fd {}) can no longer accept", l.name, l.fd);
                        self.ep.remove(l.fd);
                    }
                    _ => {
                        tracing::warn!("accept on {}: {e}", l.name);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return;
            }
        };
        if self.conns.fetch_add(1, Ordering::AcqRel) + 1 >= self.max_conns {
            self.pause_accepting();
        }
        if let Some(b) = &self.balance {
            b.opened();
            // When this worker holds more than its share, and every ROTATE_EVERY accepts
            // anyway (two epoll_ctl calls each time, not per request).
            let n = self.accepts.fetch_add(1, Ordering::Relaxed);
            match b.overloaded() {
                Some(min) => self.step_aside(i, min),
                None if n % ROTATE_EVERY == ROTATE_EVERY - 1 && b.others_accepting() => {
                    self.rotate(i)
                }
                None => {}
            }
        }
        self.active.fetch_add(1, Ordering::AcqRel);
        let info = match self.conn_info(l, &fd, peer) {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!("accepted connection unusable: {e}");
                self.untrack();
                self.active.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        };
        let c = Conn::new(fd, l.http, info, &self.ctx);
        self.drive(c, core);
    }

    /// At `worker-max-connections`: take the listeners out of the epoll set (connections wait
    /// in the kernel's backlog, or go to another worker) until one closes.
    fn pause_accepting(&self) {
        if self.paused.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            "worker-max-connections ({}) reached: not accepting until a connection closes",
            self.max_conns
        );
        self.gate(|g| g.paused = true);
        // A connection may have closed between the count and the flag.
        if self.conns.load(Ordering::Acquire) < self.max_conns {
            self.resume_accepting();
        }
    }

    fn resume_accepting(&self) {
        if self.paused.swap(false, Ordering::AcqRel) {
            self.gate(|g| g.paused = false);
        }
    }

    /// Change what keeps the listeners out of the epoll set, then add or remove them to
    /// match: in the set unless stopping, paused or stepped aside.
    fn gate(&self, change: impl FnOnce(&mut Gate)) {
        let mut g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut g);
        self.aside.store(g.aside_until.is_some(), Ordering::Release);
        let want = !self.stopping() && !g.paused && g.aside_until.is_none();
        if want == g.registered {
            return;
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if want {
                self.add_listener(i);
            } else {
                self.ep.remove(l.fd);
            }
        }
        g.registered = want;
    }

    /// Put listener `i` in the epoll set (under the gate's lock).
    fn add_listener(&self, i: usize) {
        let l = &self.listeners[i];
        if let Err(e) = self.ep.add_listener(l.fd, LISTENER | i as u64) {
            tracing::warn!("listener {}: {e}", l.name);
        }
    }

    /// This worker holds more connections than its share (`min`: the least loaded other
    /// worker's): stop accepting for [`ASIDE`], so that the next connections wake that
    /// worker, instead of taking every connection of a burst while the other worker is
    /// still waking up (with keep-alive such a split lasts as long as the connections).
    /// Parked connections are still served meanwhile. A worker that stepped aside in vain
    /// [`VAIN`] times in a row (the other took nothing: it is busy) takes what comes for
    /// [`CALM`], only moving to the back of the wake-up queue as every [`ROTATE_EVERY`]
    /// accepts.
    fn step_aside(&self, i: usize, min: u32) {
        let now = Instant::now();
        let mut rotate = false;
        self.gate(|g| {
            if g.aside_until.is_some() {
                return;
            }
            if g.calm_until.is_some_and(|t| now < t) {
                rotate = true;
                return;
            }
            g.calm_until = None;
            g.aside_until = Some(now + ASIDE);
            g.aside_from = min;
        });
        if rotate {
            self.rotate(i);
        }
    }

    /// Stepped aside: accept again once the other workers caught up or [`ASIDE`] is over.
    /// Returns how long to wait in epoll before looking again.
    fn come_back(&self) -> Duration {
        let now = Instant::now();
        // One scan of the scoreboard for both questions.
        let (caught_up, min) = match &self.balance {
            Some(b) => {
                let min = b.min_other();
                (!min.is_some_and(|m| b.exceeds(m)), min)
            }
            None => (true, None),
        };
        let mut left = Duration::ZERO;
        self.gate(|g| {
            let Some(until) = g.aside_until else {
                return;
            };
            if caught_up || now >= until {
                // The least loaded worker took nothing meanwhile: it may not be able to.
                if !caught_up && min.is_none_or(|m| m <= g.aside_from) {
                    g.vain += 1;
                    if g.vain >= VAIN {
                        g.vain = 0;
                        g.calm_until = Some(now + CALM);
                    }
                } else {
                    g.vain = 0;
                }
                g.aside_until = None;
            } else {
                left = until - now;
            }
        });
        left
    }

    /// Move this worker to the end of the listener's queue of exclusive waiters, so the
    /// next connections wake another worker first (roughly round robin, as blocked accept(2)
    /// calls get). Without it the worker whose epoll registered first would take every
    /// connection while it keeps up.
    fn rotate(&self, i: usize) {
        let g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if g.registered {
            self.ep.remove(self.listeners[i].fd);
            self.add_listener(i);
        }
    }

    fn conn_info(
        &self,
        l: &Listener,
        fd: &OwnedFd,
        peer: Option<std::net::SocketAddr>,
    ) -> std::io::Result<ConnInfo> {
        if l.unix {
            return Ok(ConnInfo {
                peer: None,
                server_port: 80,
                local_ip: "localhost".into(),
                trusted: self.ctx.is_trusted(None),
                https: false,
            });
        }
        // uwsgi peers say who the client is in the vars; only HTTP needs the addresses.
        if !l.http {
            return Ok(ConnInfo {
                peer: None,
                server_port: 0,
                local_ip: "".into(),
                trusted: false,
                https: false,
            });
        }
        let peer = peer.ok_or_else(|| std::io::Error::other("no peer address"))?;
        let (server_port, local_ip) = match &l.fixed {
            Some((port, ip)) => (*port, ip.clone()),
            None => {
                let local = sock::local_addr(fd.as_raw_fd())
                    .ok_or_else(|| std::io::Error::other("no local address"))?;
                (local.port(), l.local_text(local.ip()))
            }
        };
        Ok(ConnInfo {
            peer: Some(peer),
            server_port,
            local_ip,
            trusted: self.ctx.is_trusted(Some(peer.ip())),
            https: false,
        })
    }

    /// Serve a connection until it must wait (parked), closes, or was answered for the
    /// last time.
    fn drive(&self, mut c: Conn, core: u32) {
        loop {
            match self.prepare(&mut c) {
                Prep::Ready => {
                    if !self.serve(&mut c, core) {
                        self.close(c);
                        return;
                    }
                    c.served += 1;
                    c.reset();
                    if c.io.rbuf.is_empty() {
                        // The client reads our answer before it sends the next request
                        // (pipelined bytes would wake epoll at once).
                        self.park(c);
                        return;
                    }
                }
                Prep::Park => {
                    self.park(c);
                    return;
                }
                Prep::Close => {
                    self.close(c);
                    return;
                }
                Prep::Refuse(status) => {
                    self.refuse(&mut c, status);
                    self.close(c);
                    return;
                }
            }
        }
    }

    /// Read (without waiting) until a request head and its pre-read body are there.
    fn prepare(&self, c: &mut Conn) -> Prep {
        loop {
            match c.stage {
                Stage::Head if !c.io.rbuf.is_empty() => {
                    let r = if c.http {
                        self.parse_http(c)
                    } else {
                        self.parse_uwsgi(c)
                    };
                    match r {
                        Some(Prep::Ready) => continue, // now in Stage::Body
                        Some(other) => return other,
                        None => {} // partial: read more
                    }
                }
                Stage::Head => {}
                Stage::Body => {
                    let preread = self.ctx.preread;
                    // A chunked body over a small limit-post is refused (413) before the
                    // app runs: read up to one byte past the limit.
                    let limit = self.ctx.cfg.limit_post;
                    let chunked_want = if limit > 0 && limit < 16 << 20 {
                        preread.max(limit as usize + 1)
                    } else {
                        preread
                    };
                    let ready = match c.io.body {
                        Body::Done => true,
                        Body::Length(n) => c.io.rbuf.len() as u64 >= n.min(preread as u64),
                        Body::Chunked(..) => match c.io.preread_chunked(chunked_want) {
                            Ok(r) => r,
                            Err(liege_wsgi::types::BodyError::TooLarge(limit)) => {
                                tracing::warn!("request body exceeds limit-post {limit}");
                                return Prep::Refuse(413);
                            }
                            Err(e) => {
                                tracing::debug!("{e}");
                                return Prep::Refuse(400);
                            }
                        },
                    };
                    if ready {
                        return Prep::Ready;
                    }
                    if !c.continued && c.head.is_some_and(|h| h.expect_continue) {
                        c.continued = true;
                        sock::write_now(c.raw(), b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                }
            }
            match c.io.fill() {
                Got::Bytes(_) => {}
                Got::WouldBlock => return Prep::Park,
                Got::Eof => return Prep::Close,
                Got::Err(e) => {
                    tracing::debug!("reading a request: {e}");
                    return Prep::Close;
                }
            }
        }
    }

    /// Move a complete head from `rbuf` into `req`. `None`: incomplete.
    fn parse_http(&self, c: &mut Conn) -> Option<Prep> {
        let head = match h1::parse(&c.io.rbuf, &self.rules, &mut c.req.hdrs) {
            h1::Parse::Partial => return None,
            h1::Parse::Refused(r) => {
                if r.why == "colliding header names" {
                    tracing::warn!("refusing a request with colliding header names");
                } else {
                    tracing::debug!("refusing a request: {}", r.why);
                }
                return Some(Prep::Refuse(r.status));
            }
            h1::Parse::Done(h) => h,
        };
        take_head(c, head.len);
        c.io.body = match head.framing {
            Framing::None => Body::Done,
            Framing::Length(n) => match self.length_body(n) {
                Ok(b) => b,
                Err(p) => return Some(p),
            },
            Framing::Chunked => Body::Chunked(h1::Chunked::default(), 0),
        };
        c.head = Some(head);
        Some(Prep::Ready)
    }

    /// The body of a request that declares `n` bytes, or 413 over limit-post.
    fn length_body(&self, n: u64) -> Result<Body, Prep> {
        let limit = self.ctx.cfg.limit_post;
        if limit > 0 && n > limit {
            tracing::warn!("request body of {n} bytes exceeds limit-post {limit}");
            return Err(Prep::Refuse(413));
        }
        Ok(if n > 0 { Body::Length(n) } else { Body::Done })
    }

    fn parse_uwsgi(&self, c: &mut Conn) -> Option<Prep> {
        let max = self.ctx.cfg.buffer_size.min(65535);
        let head_len = match check(&c.io.rbuf, max) {
            Ok(Check::Incomplete) => return None,
            Ok(Check::Complete { header, head_len }) => {
                if header.modifier1 != 0 {
                    tracing::warn!("-- unavailable modifier requested: {} --", header.modifier1);
                    return Some(Prep::Close);
                }
                head_len
            }
            Err(e) => {
                tracing::warn!("uwsgi: {e}");
                return Some(Prep::Close);
            }
        };
        take_head(c, head_len);
        c.req.hdrs.clear();
        let head = &c.req.head;
        match parse_vars(&head[HEADER_LEN..], self.ctx.cfg.max_vars as usize * 2) {
            Ok(v) => c
                .req
                .hdrs
                .extend(v.into_iter().map(|(k, v)| (span(head, k), span(head, v)))),
            Err(e) => {
                tracing::warn!("uwsgi: {e}");
                return Some(Prep::Close);
            }
        }
        let vars = UwsgiVars {
            buf: &c.req.head,
            vars: &c.req.hdrs,
        };
        let cl = vars.var(b"CONTENT_LENGTH").map(content_length).unwrap_or(0);
        let http11 = vars.var(b"SERVER_PROTOCOL") != Some(b"HTTP/1.0");
        c.io.out = Out::Uwsgi { http11 };
        c.io.body = match self.length_body(cl) {
            Ok(b) => b,
            Err(p) => return Some(p),
        };
        c.head = None;
        Some(Prep::Ready)
    }

    /// Answer an error status (the connection is closed after it).
    fn refuse(&self, c: &mut Conn, status: u16) {
        if c.http {
            c.io.out = Out::Http {
                minor: c.head.map(|h| h.minor).unwrap_or(1),
                is_head: false,
                keep_alive: false,
            };
        }
        let head = ResponseHead::error(status);
        let body = ResponseBody::Full(bytes::Bytes::from_static(error_text(status).as_bytes()));
        let _ = c.io.write_whole(&head, &body);
    }

    /// Serve the request in `c` (head and pre-read body are there). Returns whether the
    /// connection stays open.
    fn serve(&self, c: &mut Conn, core: u32) -> bool {
        let ctx = &*self.ctx;
        let start = Instant::now();
        let Conn {
            req,
            io,
            info,
            head,
            ..
        } = c;
        let vars = match head {
            Some(h) => Vars::Http(HttpHead {
                buf: &req.head,
                method: h.method,
                path: h.path,
                query: h.query,
                target: h.target,
                minor: h.minor,
                headers: &req.hdrs,
                repeated: h.repeated,
                host: h.host,
            }),
            None => Vars::Uwsgi(UwsgiVars {
                buf: &req.head,
                vars: &req.hdrs,
            }),
        };
        if let Some(h) = head {
            io.out = Out::Http {
                minor: h.minor,
                is_head: h.is_head,
                keep_alive: h.keep_alive && ctx.cfg.http_keepalive && !self.stopping(),
            };
        }
        if let Vars::Uwsgi(u) = &vars {
            // The peer (nginx) names the client; only a listed address is trusted.
            info.trusted = !ctx.trusted.is_empty()
                && u.var(b"REMOTE_ADDR")
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|a| a.parse().ok())
                    .is_some_and(|ip| ctx.is_trusted(Some(ip)));
        }
        let mut log = if ctx.cfg.disable_logging {
            None
        } else {
            Some(log_record(ctx, &vars, info))
        };

        let statics = ctx.statics.as_ref().and_then(|st| static_answer(st, &vars));
        let (sent, ok) = match statics {
            Some((rh, body)) => {
                let is_file = matches!(body, ResponseBody::File(_));
                io.discard_buffered_body();
                let r = io.write_whole(&rh, &body);
                if let Some(l) = log.as_mut() {
                    l.set_head(&rh);
                    if is_file && r.is_ok() {
                        l.via = " via sendfile()";
                    }
                }
                match r {
                    Ok(n) => (n, true),
                    Err(_) => (0, false),
                }
            }
            None => {
                ctx.busy_since[core as usize].store(unix_ms(), Ordering::Relaxed);
                io.body_start = Instant::now();
                let mut reply = self.handler.call(core, &vars, info, io);
                ctx.busy_since[core as usize].store(0, Ordering::Relaxed);
                if let (Some(e), Reply::Whole(..)) = (&io.body_error, &reply) {
                    // The body could not be read: say why, whatever the app made of it.
                    let status = match e {
                        BodyError::Timeout => 408,
                        BodyError::TooLarge(_) => 413,
                        _ => 400,
                    };
                    tracing::warn!("request body: {e}: answering {status}");
                    reply = Reply::error(status, error_text(status));
                    if let Out::Http { keep_alive, .. } = &mut io.out {
                        *keep_alive = false;
                    }
                }
                if let Some(l) = log.as_mut() {
                    l.set_head(reply.head());
                }
                match reply {
                    Reply::Whole(rh, body) => {
                        if !io.discard_buffered_body() {
                            if let Out::Http { keep_alive, .. } = &mut io.out {
                                *keep_alive = false;
                            }
                        }
                        if h1::app_framing(&rh).close {
                            if let Out::Http { keep_alive, .. } = &mut io.out {
                                *keep_alive = false;
                            }
                        }
                        if let (Some(l), ResponseBody::File(_)) = (log.as_mut(), &body) {
                            l.via = " via sendfile()";
                        }
                        match io.write_whole(&rh, &body) {
                            Ok(n) => (n, true),
                            Err(e) => {
                                tracing::debug!("writing the response: {e}");
                                (0, false)
                            }
                        }
                    }
                    Reply::Streamed { sent, complete, .. } => {
                        let ok = complete && io.end_stream().is_ok();
                        if ok {
                            io.discard_buffered_body();
                        }
                        (sent, ok)
                    }
                }
            }
        };
        let elapsed = start.elapsed();
        let n = ctx.finish(elapsed, sent);
        if let Some(l) = log {
            l.write(ctx, n, sent, elapsed);
        }
        if ctx.max_requests > 0 && n >= ctx.max_requests {
            // Recycle now, from this thread: the worker takes no further request, so exactly
            // max-requests are served.
            if !self.stopping() {
                tracing::info!(
                    "graceful stop (max-requests reached): finishing in-flight requests"
                );
            }
            self.begin_stop();
            return false;
        }
        ok && io.keeps_alive() && !self.stopping()
    }
}

/// Move a complete request head (`len` bytes) out of the read buffer into `req`; the
/// connection goes on to its body.
fn take_head(c: &mut Conn, len: usize) {
    c.req.head.clear();
    c.req.head.extend_from_slice(&c.io.rbuf[..len]);
    c.io.rbuf.drain(..len);
    c.stage = Stage::Body;
}

/// The plain-text body of an error the worker answers itself.
fn error_text(status: u16) -> &'static str {
    match status {
        405 => "Method Not Allowed\n",
        408 => "Request Timeout\n",
        413 => "Request Entity Too Large\n",
        431 => "Request Header Fields Too Large\n",
        _ => "Bad Request\n",
    }
}

/// A keep-alive connection waiting for its next request, with nothing received yet.
fn idle(c: &Conn) -> bool {
    c.served > 0 && c.stage == Stage::Head && c.io.rbuf.is_empty()
}

fn static_answer(
    st: &crate::statics::Statics,
    vars: &Vars<'_>,
) -> Option<(ResponseHead, ResponseBody)> {
    let (method, path, uri, ims) = match vars {
        Vars::Http(h) => (
            h.get(h.method),
            liege_wsgi::handler::decode_path(h.get(h.path)),
            h.get(h.target),
            h.header(b"if-modified-since"),
        ),
        Vars::Uwsgi(u) => (
            u.var(b"REQUEST_METHOD").unwrap_or_default(),
            std::borrow::Cow::Borrowed(u.var(b"PATH_INFO").unwrap_or_default()),
            u.var(b"REQUEST_URI").unwrap_or_default(),
            u.var(b"HTTP_IF_MODIFIED_SINCE"),
        ),
    };
    let answer = st.lookup(&crate::statics::Request {
        method,
        path_info: &path,
        request_uri: uri,
        if_modified_since: ims,
    })?;
    Some(crate::statics::into_head(answer, method == b"HEAD"))
}

fn lossy(b: Option<&[u8]>) -> String {
    b.map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The request log record (uWSGI's default line or `log-format`).
fn log_record(ctx: &Ctx, vars: &Vars<'_>, conn: &ConnInfo) -> Box<LogRecord> {
    match vars {
        Vars::Uwsgi(u) => {
            let addr = if ctx.cfg.log_x_forwarded_for {
                u.var(b"HTTP_X_FORWARDED_FOR")
            } else {
                None
            }
            .or(u.var(b"REMOTE_ADDR"));
            Box::new(LogRecord {
                started: SystemTime::now(),
                addr: lossy(addr),
                vars: u.vars.len() * 2,
                vars_bytes: u.buf.len() - HEADER_LEN,
                method: lossy(u.var(b"REQUEST_METHOD")),
                uri: lossy(u.var(b"REQUEST_URI")),
                proto: if u.var(b"SERVER_PROTOCOL") == Some(b"HTTP/1.0") {
                    "HTTP/1.0"
                } else {
                    "HTTP/1.1"
                },
                status: 0,
                headers: 0,
                headers_bytes: 0,
                core: 0,
                via: "",
                user: lossy(u.var(b"REMOTE_USER")),
                host: lossy(u.var(b"HTTP_HOST").or(u.var(b"SERVER_NAME"))),
                uagent: lossy(u.var(b"HTTP_USER_AGENT")),
                referer: lossy(u.var(b"HTTP_REFERER")),
                cl: u.var(b"CONTENT_LENGTH").map(content_length).unwrap_or(0),
                req_vars: ctx
                    .log_format
                    .as_ref()
                    .map(|lf| {
                        lf.req_vars
                            .iter()
                            .map(|v| lossy(u.var(v.as_bytes())))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        }
        Vars::Http(h) => {
            let addr = if ctx.cfg.log_x_forwarded_for {
                h.header(b"x-forwarded-for").map(|v| lossy(Some(v)))
            } else {
                None
            };
            let addr = addr.unwrap_or_else(|| match conn.peer {
                Some(p) => p.ip().to_string(),
                None => "0.0.0.0".to_string(),
            });
            let hbytes: usize = h
                .headers
                .iter()
                .map(|(k, v)| (k.1 - k.0) as usize + (v.1 - v.0) as usize + 4)
                .sum();
            Box::new(LogRecord {
                started: SystemTime::now(),
                addr,
                vars: (h.headers.len() + 12) * 2,
                vars_bytes: hbytes + h.get(h.target).len() + 16,
                method: lossy(Some(h.get(h.method))),
                uri: lossy(Some(h.get(h.target))),
                proto: if h.minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" },
                status: 0,
                headers: 0,
                headers_bytes: 0,
                core: 0,
                via: "",
                user: String::new(),
                host: lossy(h.header(b"host")),
                uagent: lossy(h.header(b"user-agent")),
                referer: lossy(h.header(b"referer")),
                cl: h
                    .header(b"content-length")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
                req_vars: ctx
                    .log_format
                    .as_ref()
                    .map(|lf| lf.req_vars.iter().map(|v| http_var(v, h, conn)).collect())
                    .unwrap_or_default(),
            })
        }
    }
}

/// A request variable by its CGI/environ name, for `%(var.NAME)` in `log-format`.
fn http_var(name: &str, h: &HttpHead<'_>, conn: &ConnInfo) -> String {
    if let Some(n) = name.strip_prefix("HTTP_") {
        let n = n.to_ascii_lowercase().replace('_', "-");
        return lossy(h.header(n.as_bytes()));
    }
    match name {
        "REQUEST_METHOD" => lossy(Some(h.get(h.method))),
        "REQUEST_URI" => lossy(Some(h.get(h.target))),
        "PATH_INFO" => lossy(Some(&liege_wsgi::handler::decode_path(h.get(h.path)))),
        "QUERY_STRING" => lossy(Some(h.get(h.query))),
        "CONTENT_TYPE" => lossy(h.header(b"content-type")),
        "CONTENT_LENGTH" => lossy(h.header(b"content-length")),
        "REMOTE_ADDR" => conn.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        "REMOTE_PORT" => conn.peer.map(|p| p.port().to_string()).unwrap_or_default(),
        "SERVER_PORT" => conn.server_port.to_string(),
        _ => String::new(),
    }
}
