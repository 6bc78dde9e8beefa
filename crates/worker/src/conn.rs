//! One accepted connection: its buffers, the framing of the request being served, and the
//! [`Exchange`] the app's `wsgi.input`, `write()` and streamed bodies use while it runs.
//!
//! The socket is non-blocking. Reads of the request head and of the pre-read body never
//! wait (the serving thread parks the connection in epoll instead); only what the app asks
//! for while it runs (more body than was pre-read, writes to a slow client) waits, with
//! `socket-timeout` as the bound on each wait.

use crate::ctx::Ctx;
use crate::h1::{self, BodyLen, Chunked};
use crate::sock::{self, Got};
use liege_wsgi::types::{BodyError, ConnInfo, Exchange, Read, ResponseBody, ResponseHead, Span};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes asked of the kernel per read.
pub const READ_CHUNK: usize = 16 * 1024;

/// The request body still to come from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Done,
    Length(u64),
    /// The decoder and the decoded bytes so far (for limit-post).
    Chunked(Chunked, u64),
}

/// How the response of the current request goes out.
#[derive(Debug, Clone, Copy)]
pub enum Out {
    Http {
        minor: u8,
        is_head: bool,
        /// Keep the connection open after this response (decided before the head is sent).
        keep_alive: bool,
    },
    /// uwsgi protocol: raw HTTP with the peer's protocol in the status line, then close.
    Uwsgi { http11: bool },
}

/// The request head, kept apart from [`Io`] so the app can borrow one while the other is
/// the exchange.
#[derive(Default)]
pub struct ReqBuf {
    pub head: Vec<u8>,
    pub hdrs: Vec<(Span, Span)>,
}

/// The connection's I/O side (the [`Exchange`]).
pub struct Io {
    fd: RawFd,
    /// Bytes read and not consumed yet: a request head being received, body bytes, or the
    /// next pipelined request.
    pub rbuf: Vec<u8>,
    /// Body bytes decoded ahead (chunked bodies pre-read before the app is called).
    pub pre: Vec<u8>,
    pub body: Body,
    wbuf: Vec<u8>,
    pub out: Out,
    /// The response framing chosen at `start_stream`.
    framing: BodyLen,
    pub timeout: Duration,
    pub limit_post: u64,
    pub ctx: Arc<Ctx>,
    /// The current window of `socket-timeout` while the app reads the body, and the bytes
    /// it brought: each window must bring [`MIN_BODY_RATE`] × its length.
    pub body_start: Instant,
    body_got: u64,
    /// Why the body could not be read to its end (the answer becomes 408/413/400).
    pub body_error: Option<BodyError>,
}

/// Bytes per second a request body must bring, over each `socket-timeout` window, while
/// the app reads it (each read also waits at most `socket-timeout`): a client that trickles
/// cannot hold a thread for long.
pub const MIN_BODY_RATE: u64 = 1024;

/// Where a connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Head parsed and kept in [`ReqBuf`]; pre-reading the body.
    Body,
}

pub struct Conn {
    pub fd: OwnedFd,
    pub http: bool,
    pub info: ConnInfo,
    pub stage: Stage,
    pub req: ReqBuf,
    /// The parsed HTTP head (HTTP listeners, stage Body).
    pub head: Option<h1::Head>,
    /// uwsgi: the vars block's place in `req.head` (stage Body).
    pub io: Io,
    /// Registered in the epoll set (then re-arming is a MOD).
    pub registered: bool,
    /// Requests answered on this connection.
    pub served: u64,
    /// While parked: when to give up on it.
    pub deadline: Option<Instant>,
    /// `deadline` is the idle keep-alive one (replaced once a request starts arriving).
    pub idle_deadline: bool,
    /// `100 Continue` already sent for the current request.
    pub continued: bool,
}

/// A connection's buffers, kept by each thread for the next connection (no allocation per
/// connection once a thread has served a few).
#[derive(Default)]
struct Bufs {
    rbuf: Vec<u8>,
    pre: Vec<u8>,
    wbuf: Vec<u8>,
    head: Vec<u8>,
    hdrs: Vec<(Span, Span)>,
}

/// Buffers larger than this are freed rather than kept.
const KEEP_BUF: usize = 64 * 1024;
/// Sets of buffers a thread keeps.
const POOL: usize = 64;

thread_local! {
    static BUFS: std::cell::RefCell<Vec<Bufs>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Conn {
    pub fn new(fd: OwnedFd, http: bool, info: ConnInfo, ctx: &Arc<Ctx>) -> Conn {
        let raw = fd.as_raw_fd();
        let b = BUFS.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        Conn {
            fd,
            http,
            info,
            stage: Stage::Head,
            req: ReqBuf {
                head: b.head,
                hdrs: b.hdrs,
            },
            head: None,
            io: Io {
                fd: raw,
                rbuf: b.rbuf,
                pre: b.pre,
                body: Body::Done,
                wbuf: b.wbuf,
                out: Out::Uwsgi { http11: true },
                framing: BodyLen::Close,
                timeout: ctx.cfg.socket_timeout.max(Duration::from_millis(100)),
                limit_post: ctx.cfg.limit_post,
                ctx: ctx.clone(),
                body_start: Instant::now(),
                body_got: 0,
                body_error: None,
            },
            registered: false,
            served: 0,
            deadline: None,
            idle_deadline: false,
            continued: false,
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The socket, with the buffers given back to this thread's pool.
    pub fn into_fd(self) -> OwnedFd {
        let Conn { fd, req, io, .. } = self;
        let mut b = Bufs {
            rbuf: io.rbuf,
            pre: io.pre,
            wbuf: io.wbuf,
            head: req.head,
            hdrs: req.hdrs,
        };
        if b.rbuf.capacity() <= KEEP_BUF
            && b.pre.capacity() <= KEEP_BUF
            && b.wbuf.capacity() <= KEEP_BUF
            && b.head.capacity() <= KEEP_BUF
        {
            b.rbuf.clear();
            b.pre.clear();
            b.wbuf.clear();
            b.head.clear();
            b.hdrs.clear();
            BUFS.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL {
                    p.push(b);
                }
            });
        }
        fd
    }

    /// Ready for the next request on the same connection.
    pub fn reset(&mut self) {
        self.stage = Stage::Head;
        self.head = None;
        self.req.head.clear();
        self.req.hdrs.clear();
        self.io.pre.clear();
        self.io.body = Body::Done;
        self.io.body_error = None;
        self.deadline = None;
        self.idle_deadline = false;
        self.continued = false;
    }
}

impl Io {
    /// Read more bytes into `rbuf` without waiting.
    pub fn fill(&mut self) -> Got {
        sock::read_some(self.fd, &mut self.rbuf, READ_CHUNK)
    }

    /// Throw away body bytes already buffered, to reach the next request. True when the
    /// body is now fully consumed.
    pub fn discard_buffered_body(&mut self) -> bool {
        self.pre.clear();
        match self.body {
            Body::Done => true,
            Body::Length(left) => {
                if self.rbuf.len() as u64 >= left {
                    self.rbuf.drain(..left as usize);
                    self.body = Body::Done;
                    true
                } else {
                    false
                }
            }
            Body::Chunked(..) => {
                let mut sink = Vec::new();
                loop {
                    sink.clear();
                    let before = self.rbuf.len();
                    match self.decode_buffered(&mut sink, 64 * 1024) {
                        Ok(_) if self.body == Body::Done => return true,
                        Ok(_) if self.rbuf.len() == before => return false,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
            }
        }
    }

    /// Decode buffered chunked bytes into `pre` until it holds `want` bytes or the body
    /// ends. Ok(true) when the pre-read is complete.
    pub fn preread_chunked(&mut self, want: usize) -> Result<bool, BodyError> {
        let room = want.saturating_sub(self.pre.len());
        let mut pre = std::mem::take(&mut self.pre);
        let r = self.decode_buffered(&mut pre, room);
        self.pre = pre;
        r?;
        Ok(self.body == Body::Done || self.pre.len() >= want)
    }

    /// Decode the chunked body bytes already in `rbuf` into `out` (at most `max`); returns
    /// the body bytes produced. The body moves on (to `Done` at its end); an error leaves it
    /// where it was.
    fn decode_buffered(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        let Body::Chunked(mut d, mut total) = self.body else {
            return Ok(0);
        };
        let before = out.len();
        let n = d
            .decode(&self.rbuf, out, max)
            .map_err(BodyError::Malformed)?;
        self.rbuf.drain(..n);
        let got = out.len() - before;
        total += got as u64;
        if self.limit_post > 0 && total > self.limit_post {
            return Err(BodyError::TooLarge(self.limit_post));
        }
        self.body = if d.is_done() {
            Body::Done
        } else {
            Body::Chunked(d, total)
        };
        Ok(got)
    }

    fn read_more(&mut self) -> Result<(), BodyError> {
        let need = (MIN_BODY_RATE as u128 * self.timeout.as_millis() / 1000) as u64;
        let mut now = Instant::now();
        if now >= self.body_start + self.timeout {
            if self.body_got < need {
                return Err(BodyError::Timeout);
            }
            self.body_start = now;
            self.body_got = 0;
        }
        let wait = if self.body_got >= need {
            self.timeout
        } else {
            (self.body_start + self.timeout).saturating_duration_since(now)
        };
        let got = sock::read_wait(self.fd, &mut self.rbuf, READ_CHUNK, wait);
        if matches!(got, Got::WouldBlock) && self.body_got < need {
            now = Instant::now();
            if now < self.body_start + self.timeout {
                return self.read_more();
            }
        }
        match got {
            Got::Bytes(n) => {
                self.body_got += n as u64;
                Ok(())
            }
            Got::Eof => Err(BodyError::Disconnected),
            Got::WouldBlock => Err(BodyError::Timeout),
            Got::Err(e) => Err(BodyError::Io(e.to_string())),
        }
    }

    /// The status line and headers of a whole response into `wbuf`; returns whether a body
    /// follows.
    fn whole_head(&mut self, head: &ResponseHead, body_len: u64) -> bool {
        self.wbuf.clear();
        let add = &self.ctx.add_headers;
        match self.out {
            Out::Http {
                minor,
                is_head,
                keep_alive,
            } => {
                let none = h1::bodiless(head.status);
                let len = if none {
                    BodyLen::Nothing
                } else if is_head && h1::app_framing(head).content_length {
                    // HEAD: the app's (or the static file's) length stands for the GET body.
                    BodyLen::AppLength
                } else {
                    BodyLen::Exact(body_len)
                };
                h1::write_head(&mut self.wbuf, minor, head, add, len, keep_alive);
                !none && !is_head
            }
            Out::Uwsgi { http11 } => {
                uwsgi_head(&mut self.wbuf, http11, head, add);
                true
            }
        }
    }

    /// Write a response whose body is known whole; returns the body bytes sent.
    pub fn write_whole(
        &mut self,
        head: &ResponseHead,
        body: &ResponseBody,
    ) -> std::io::Result<u64> {
        match body {
            ResponseBody::Full(b) => {
                let with_body = self.whole_head(head, b.len() as u64);
                let wbuf = std::mem::take(&mut self.wbuf);
                let r = if with_body {
                    sock::write_all(self.fd, &mut [&wbuf, b], self.timeout)
                } else {
                    sock::write_all(self.fd, &mut [&wbuf], self.timeout)
                };
                self.wbuf = wbuf;
                r.map(|()| if with_body { b.len() as u64 } else { 0 })
            }
            ResponseBody::File(f) => {
                let len = match f.len {
                    Some(l) => l,
                    None => f.file.metadata()?.len().saturating_sub(f.offset),
                };
                let with_body = self.whole_head(head, len);
                sock::write_all(self.fd, &mut [&self.wbuf], self.timeout)?;
                if !with_body {
                    return Ok(0);
                }
                sock::send_file(self.fd, &f.file, f.offset, Some(len), self.timeout)
            }
        }
    }

    /// End a streamed response whose body is complete (the last chunk, or just the head if
    /// no chunk went out).
    pub fn end_stream(&mut self) -> std::io::Result<()> {
        let last: &[u8] = if self.framing == BodyLen::Chunked && self.sends_body() {
            b"0\r\n\r\n"
        } else {
            b""
        };
        let wbuf = std::mem::take(&mut self.wbuf);
        let r = sock::write_all(self.fd, &mut [&wbuf, last], self.timeout);
        self.wbuf = wbuf;
        self.wbuf.clear();
        r
    }

    fn sends_body(&self) -> bool {
        match self.out {
            Out::Http { is_head, .. } => !is_head && self.framing != BodyLen::Nothing,
            Out::Uwsgi { .. } => true,
        }
    }

    /// Whether the connection stays open after the response that was just sent.
    pub fn keeps_alive(&self) -> bool {
        matches!(
            self.out,
            Out::Http {
                keep_alive: true,
                ..
            }
        ) && self.body == Body::Done
    }
}

impl Exchange for Io {
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize, wait: bool) -> Read {
        let r = self.read_body_inner(out, max, wait);
        if let Read::Err(e) = &r {
            self.body_error = Some(e.clone());
        }
        r
    }

    fn start_stream(&mut self, head: &ResponseHead) -> std::io::Result<()> {
        self.start_stream_inner(head)
    }

    fn send_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.send_chunk_inner(data)
    }
}

impl Io {
    fn read_body_inner(&mut self, out: &mut Vec<u8>, max: usize, wait: bool) -> Read {
        if !self.pre.is_empty() {
            let n = max.min(self.pre.len());
            out.extend_from_slice(&self.pre[..n]);
            self.pre.drain(..n);
            return Read::Bytes(n);
        }
        loop {
            match self.body {
                Body::Done => return Read::Bytes(0),
                Body::Length(left) => {
                    if !self.rbuf.is_empty() {
                        let n = (left.min(max as u64) as usize).min(self.rbuf.len());
                        out.extend_from_slice(&self.rbuf[..n]);
                        self.rbuf.drain(..n);
                        let left = left - n as u64;
                        self.body = if left == 0 {
                            Body::Done
                        } else {
                            Body::Length(left)
                        };
                        return Read::Bytes(n);
                    }
                }
                Body::Chunked(..) => {
                    if !self.rbuf.is_empty() {
                        match self.decode_buffered(out, max) {
                            Ok(got) if got > 0 || self.body == Body::Done => {
                                return Read::Bytes(got)
                            }
                            Ok(_) => {}
                            Err(e @ BodyError::Malformed(_)) => {
                                self.body = Body::Done;
                                return Read::Err(e);
                            }
                            Err(e) => return Read::Err(e),
                        }
                    }
                }
            }
            if !wait {
                return Read::WouldBlock;
            }
            if let Err(e) = self.read_more() {
                return Read::Err(e);
            }
        }
    }

    fn start_stream_inner(&mut self, head: &ResponseHead) -> std::io::Result<()> {
        self.wbuf.clear();
        let add = &self.ctx.add_headers;
        match &mut self.out {
            Out::Http {
                minor,
                is_head,
                keep_alive,
            } => {
                let app = h1::app_framing(head);
                self.framing = if h1::bodiless(head.status) {
                    BodyLen::Nothing
                } else if app.content_length {
                    BodyLen::AppLength
                } else if *is_head {
                    BodyLen::Nothing
                } else if *minor == 1 {
                    BodyLen::Chunked
                } else {
                    BodyLen::Close
                };
                // The body the app has not read yet (if any) would have to be skipped to
                // reach a next request; the head goes out now, so decide now.
                let body_done = self.body == Body::Done
                    || (self.pre.is_empty()
                        && matches!(self.body, Body::Length(l) if self.rbuf.len() as u64 >= l));
                *keep_alive &= self.framing != BodyLen::Close && !app.close && body_done;
                h1::write_head(&mut self.wbuf, *minor, head, add, self.framing, *keep_alive);
            }
            Out::Uwsgi { http11 } => {
                self.framing = BodyLen::Close;
                uwsgi_head(&mut self.wbuf, *http11, head, add);
            }
        }
        Ok(())
    }

    fn send_chunk_inner(&mut self, data: &[u8]) -> std::io::Result<()> {
        let data = if self.sends_body() { data } else { &[] };
        let wbuf = std::mem::take(&mut self.wbuf);
        let r = if self.framing == BodyLen::Chunked && !data.is_empty() {
            let mut size = [0u8; 20];
            let n = hex_line(&mut size, data.len());
            sock::write_all(
                self.fd,
                &mut [&wbuf, &size[..n], data, b"\r\n"],
                self.timeout,
            )
        } else {
            sock::write_all(self.fd, &mut [&wbuf, data], self.timeout)
        };
        self.wbuf = wbuf;
        self.wbuf.clear();
        r
    }
}

/// `{len:x}\r\n` into `buf`; returns its length.
fn hex_line(buf: &mut [u8; 20], len: usize) -> usize {
    use std::io::Write;
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(c, "{len:x}\r\n");
    c.position() as usize
}

/// The head of a response on a uwsgi socket: raw HTTP with the peer's protocol, the app's
/// headers as they are, then `add-header`s.
fn uwsgi_head(
    out: &mut Vec<u8>,
    http11: bool,
    head: &ResponseHead,
    add: &[(http::HeaderName, http::HeaderValue)],
) {
    out.extend_from_slice(if http11 { b"HTTP/1.1 " } else { b"HTTP/1.0 " });
    h1::status_line_rest(out, head);
    for (k, v) in head.headers.iter().chain(add.iter()) {
        h1::header(out, k.as_str().as_bytes(), v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}
