//! What crosses between the worker's connection code and the Python side. A request is run
//! to completion on the thread that read it: the worker hands [`crate::Handler::call`] the
//! request's variables (borrowed from its buffers, no copies) and an [`Exchange`], the
//! request's connection, which the app's `wsgi.input`, `write()` and streamed bodies use
//! while it runs. Nothing here holds a Python object.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::net::SocketAddr;

/// Why reading the request body failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    #[error("client disconnected before sending the whole body")]
    Disconnected,
    #[error("request body larger than limit-post ({0} bytes)")]
    TooLarge(u64),
    #[error("timed out waiting for the request body (socket-timeout)")]
    Timeout,
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    #[error("error reading the request body: {0}")]
    Io(String),
}

/// A byte range `[start, end)` of a buffer (kept as offsets so the buffer can be reused).
pub use liege_protocol::http1::Span;

/// An HTTP request head, borrowed from the worker's buffer (names and values as sent).
#[derive(Debug, Clone, Copy)]
pub struct HttpHead<'a> {
    pub buf: &'a [u8],
    pub method: Span,
    /// The path as sent (not decoded), without the query.
    pub path: Span,
    /// The query string without `?` (empty span when none).
    pub query: Span,
    /// The request target as sent (origin form), for `REQUEST_URI`.
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// `(name, value)` pairs in the order received.
    pub headers: &'a [(Span, Span)],
    /// Some header name occurs twice: the environ joins their values.
    pub repeated: bool,
    /// The `Host` header (or the authority of an absolute-form target).
    pub host: Option<Span>,
}

impl<'a> HttpHead<'a> {
    pub fn get(&self, s: Span) -> &'a [u8] {
        &self.buf[s.0 as usize..s.1 as usize]
    }
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.get(*n).eq_ignore_ascii_case(name))
            .map(|(_, v)| self.get(*v))
    }
}

/// uwsgi packet vars, borrowed from the worker's buffer, in order (Latin-1 bytes).
#[derive(Debug, Clone, Copy)]
pub struct UwsgiVars<'a> {
    pub buf: &'a [u8],
    pub vars: &'a [(Span, Span)],
}

impl<'a> UwsgiVars<'a> {
    pub fn get(&self, s: Span) -> &'a [u8] {
        &self.buf[s.0 as usize..s.1 as usize]
    }
    /// The value of `name`; a var sent twice means its last value (as in the environ).
    pub fn var(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| self.get(*k) == name)
            .map(|(_, v)| self.get(*v))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.vars.iter().map(|(k, v)| (self.get(*k), self.get(*v)))
    }
}

/// The request variables, by listener protocol.
#[derive(Debug, Clone, Copy)]
pub enum Vars<'a> {
    Http(HttpHead<'a>),
    Uwsgi(UwsgiVars<'a>),
}

/// What the worker knows about the connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer (TCP) or None (unix socket).
    pub peer: Option<SocketAddr>,
    /// The port we accepted on (80 for unix sockets, as uWSGI).
    pub server_port: u16,
    /// The local address, as text (SERVER_NAME fallback when there is no Host header).
    pub local_ip: std::sync::Arc<str>,
    /// The peer is a trusted proxy: its forwarding headers may set `wsgi.url_scheme`.
    pub trusted: bool,
    /// The listener is TLS-terminated (never today; kept for `https-socket`).
    pub https: bool,
}

/// The connection of the request being run, as the app's `wsgi.input`, `write()` and
/// streamed bodies see it. Every method may block on the socket; callers release the GIL
/// first unless `wait` is false.
pub trait Exchange: Send {
    /// Append up to `max` more body bytes to `out`; `Read::Bytes(0)` at the end of the body.
    /// With `wait == false`, answers [`Read::WouldBlock`] instead of waiting for the socket.
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize, wait: bool) -> Read;
    /// Send the head of a streamed response (status line, headers, framing).
    fn start_stream(&mut self, head: &ResponseHead) -> std::io::Result<()>;
    /// Send one body chunk at once (a generator's item, a `write()` call).
    fn send_chunk(&mut self, data: &[u8]) -> std::io::Result<()>;
}

/// Outcome of [`Exchange::read_body`].
#[derive(Debug)]
pub enum Read {
    Bytes(usize),
    WouldBlock,
    Err(BodyError),
}

/// A file to send from `offset`, `len` bytes (None = to EOF), from `wsgi.file_wrapper`.
#[derive(Debug)]
pub struct FileBody {
    pub file: std::fs::File,
    pub offset: u64,
    pub len: Option<u64>,
}

/// A response body known whole when the app returned.
#[derive(Debug)]
pub enum ResponseBody {
    /// The whole body (list/tuple responses, single items): one write.
    Full(Bytes),
    /// A regular file (sendfile).
    File(FileBody),
}

/// Status line and headers, produced by the Python side.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase when it differs from the canonical one.
    pub reason: Option<Bytes>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Which Python thread ran it (the "core" of the request log line).
    pub core: u32,
    /// The app raised (for stats).
    pub exception: bool,
}

impl ResponseHead {
    /// A plain-text error response head.
    pub fn error(status: u16) -> ResponseHead {
        ResponseHead {
            status,
            reason: None,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            )],
            core: 0,
            exception: false,
        }
    }
}

/// What the app's call produced.
#[derive(Debug)]
pub enum Reply {
    /// Nothing was written yet: the worker writes head and body (without the GIL).
    Whole(ResponseHead, ResponseBody),
    /// The head and `sent` body bytes already went out through the [`Exchange`]. `complete`
    /// is false when the app failed mid-body or the client went away: the connection must
    /// be closed without ending the body properly.
    Streamed {
        head: ResponseHead,
        sent: u64,
        complete: bool,
    },
}

impl Reply {
    /// A plain-text error reply (nothing sent yet).
    pub fn error(status: u16, text: &'static str) -> Reply {
        Reply::Whole(
            ResponseHead::error(status),
            ResponseBody::Full(Bytes::from_static(text.as_bytes())),
        )
    }
    pub fn head(&self) -> &ResponseHead {
        match self {
            Reply::Whole(h, _) => h,
            Reply::Streamed { head, .. } => head,
        }
    }
}
