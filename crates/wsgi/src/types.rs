//! What crosses between the I/O thread (tokio) and the Python threads. Nothing here holds a
//! Python object, so it all moves freely between threads.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use std::net::SocketAddr;
use tokio::sync::{mpsc, oneshot};

/// A request body chunk, or the reason the body ended early.
pub type BodyChunk = Result<Bytes, BodyError>;

/// Why reading the request body failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    #[error("client disconnected before sending the whole body")]
    Disconnected,
    #[error("request body larger than limit-post ({0} bytes)")]
    TooLarge(u64),
    #[error("error reading the request body: {0}")]
    Io(String),
}

/// The request body: what was read before the app was called, then the rest as a stream.
#[derive(Debug, Default)]
pub struct RequestBody {
    pub initial: Bytes,
    /// More chunks, when the body did not fit in the pre-read buffer. `None` at EOF.
    pub rest: Option<mpsc::Receiver<BodyChunk>>,
}

/// Request metadata parsed by hyper (HTTP listeners).
#[derive(Debug)]
pub struct HttpHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

/// The request variables, by listener protocol.
#[derive(Debug)]
pub enum Vars {
    Http(HttpHead),
    /// uwsgi packet vars, in order (Latin-1 bytes).
    Uwsgi(Vec<(Bytes, Bytes)>),
}

/// What the I/O side knows about the connection.
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

/// One request handed to a Python thread.
pub struct Request {
    pub vars: Vars,
    pub conn: ConnInfo,
    pub body: RequestBody,
    /// `wsgi.input_terminated`-style: the body ends at EOF of `body`.
    pub reply: oneshot::Sender<ResponseHead>,
    /// Dropped when the Python thread is done with the request (frees a queue slot).
    pub permit: Option<Box<dyn Send>>,
}

/// A response body chunk, or an abort: the response must be cut (connection closed without
/// a proper end) because the app failed after the headers were sent.
pub type RespChunk = Result<Bytes, Aborted>;

/// The app failed mid-response: close the connection without ending the body properly.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("response aborted by an application error")]
pub struct Aborted;

/// A file to send from `offset`, `len` bytes (None = to EOF), from `wsgi.file_wrapper`.
#[derive(Debug)]
pub struct FileBody {
    pub file: std::fs::File,
    pub offset: u64,
    pub len: Option<u64>,
}

#[derive(Debug)]
pub enum ResponseBody {
    /// The whole body (list/tuple responses, single items): one write.
    Full(Bytes),
    /// Streamed chunks; the channel closes at the end.
    Stream(mpsc::Receiver<RespChunk>),
    /// A regular file (sendfile where the socket allows).
    File(FileBody),
}

/// Status line, headers and body, produced by the Python side.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase when it differs from the canonical one.
    pub reason: Option<Bytes>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: ResponseBody,
    /// Which Python thread ran it (the "core" of the request log line).
    pub core: u32,
    /// The app raised (for stats).
    pub exception: bool,
}

impl ResponseHead {
    /// A plain-text error response.
    pub fn error(status: u16, text: &'static str) -> ResponseHead {
        ResponseHead {
            status,
            reason: None,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            )],
            body: ResponseBody::Full(Bytes::from_static(text.as_bytes())),
            core: 0,
            exception: false,
        }
    }
}
