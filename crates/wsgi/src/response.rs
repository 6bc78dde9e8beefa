//! `start_response`, the `write()` callable it returns, and `wsgi.file_wrapper`.
//!
//! The head (status + headers) is sent to the I/O thread at most once, when the first body
//! bytes are ready (PEP 3333: not before the first non-empty item), together with the body
//! kind: the whole body when it is known at once, or a bounded channel for a stream.

use crate::types::{RespChunk, ResponseBody, ResponseHead};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// Capacity of the response stream channel (chunks in flight between Python and the socket).
const STREAM_CAPACITY: usize = 8;

pub(crate) struct SrState {
    status: Option<(u16, Option<Bytes>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    reply: Option<oneshot::Sender<ResponseHead>>,
    stream: Option<mpsc::Sender<RespChunk>>,
    core: u32,
}

/// The `start_response` callable of one request.
#[pyclass(frozen, module = "liege", name = "StartResponse")]
pub struct StartResponse {
    st: Mutex<SrState>,
}

fn lock(m: &Mutex<SrState>) -> std::sync::MutexGuard<'_, SrState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Outcome of trying to send something to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Ok,
    /// The client went away (the I/O side dropped the channel).
    Gone,
}

/// A `str` (latin-1 only) as bytes; `what` names the value in the TypeError.
fn latin1_bytes(s: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let s = s
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str")))?;
    let text = s.to_cow()?;
    if text.is_ascii() {
        return Ok(text.as_bytes().to_vec());
    }
    text.chars()
        .map(|c| u8::try_from(c as u32))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| PyTypeError::new_err(format!("{what} is not latin-1 encodable: {text:?}")))
}

fn parse_status(status: &Bound<'_, PyAny>) -> PyResult<(u16, Option<Bytes>)> {
    let b = latin1_bytes(status, "status")?;
    let bad = || PyValueError::new_err(format!("invalid status {:?}", String::from_utf8_lossy(&b)));
    if b.len() < 4 || b[3] != b' ' || !b[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if b.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        return Err(bad());
    }
    let code: u16 = std::str::from_utf8(&b[..3])
        .map_err(|_| bad())?
        .parse()
        .map_err(|_| bad())?;
    if !(100..=999).contains(&code) {
        return Err(bad());
    }
    let reason = &b[4..];
    let canonical = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason());
    let reason = match canonical {
        Some(c) if c.as_bytes() == reason => None,
        _ => Some(Bytes::copy_from_slice(reason)),
    };
    Ok((code, reason))
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    let list = headers
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err("response headers must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let t = item
            .cast::<PyTuple>()
            .map_err(|_| PyTypeError::new_err("each response header must be a tuple"))?;
        if t.len() != 2 {
            return Err(PyTypeError::new_err(
                "each response header must be a (name, value) tuple",
            ));
        }
        let name = latin1_bytes(&t.get_item(0)?, "header name")?;
        let value = latin1_bytes(&t.get_item(1)?, "header value")?;
        let name = HeaderName::from_bytes(&name).map_err(|_| {
            PyValueError::new_err(format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(&name)
            ))
        })?;
        // HeaderValue refuses CR, LF and other control bytes except tab: no header injection.
        let value = HeaderValue::from_bytes(&value).map_err(|_| {
            PyValueError::new_err(format!(
                "invalid value for header {name}: {:?}",
                String::from_utf8_lossy(&value)
            ))
        })?;
        out.push((name, value));
    }
    Ok(out)
}

impl StartResponse {
    pub(crate) fn new(reply: oneshot::Sender<ResponseHead>, core: u32) -> StartResponse {
        StartResponse {
            st: Mutex::new(SrState {
                status: None,
                headers: Vec::new(),
                reply: Some(reply),
                stream: None,
                core,
            }),
        }
    }

    pub(crate) fn headers_sent(&self) -> bool {
        lock(&self.st).reply.is_none()
    }

    pub(crate) fn status_set(&self) -> bool {
        lock(&self.st).status.is_some()
    }

    fn head(
        st: &mut SrState,
        body: ResponseBody,
        exception: bool,
    ) -> Option<(oneshot::Sender<ResponseHead>, ResponseHead)> {
        let reply = st.reply.take()?;
        let (status, reason) = st.status.clone().unwrap_or((500, None));
        Some((
            reply,
            ResponseHead {
                status,
                reason,
                headers: std::mem::take(&mut st.headers),
                body,
                core: st.core,
                exception,
            },
        ))
    }

    /// Send the head with the whole body. Errors if start_response was not called.
    pub(crate) fn send_full(&self, body: Bytes) -> PyResult<Sent> {
        self.send_body(ResponseBody::Full(body))
    }

    pub(crate) fn send_body(&self, body: ResponseBody) -> PyResult<Sent> {
        let mut st = lock(&self.st);
        if st.status.is_none() {
            return Err(PyRuntimeError::new_err(
                "the application did not call start_response",
            ));
        }
        let Some((reply, head)) = Self::head(&mut st, body, false) else {
            return Err(PyRuntimeError::new_err("headers already sent"));
        };
        drop(st);
        Ok(if reply.send(head).is_ok() {
            Sent::Ok
        } else {
            Sent::Gone
        })
    }

    /// Send an error response if nothing was sent yet; otherwise abort the stream. Never fails.
    pub(crate) fn fail(&self, py: Python<'_>, status: u16, text: &'static str) {
        let mut st = lock(&self.st);
        if let Some(reply) = st.reply.take() {
            let mut head = ResponseHead::error(status, text);
            head.core = st.core;
            head.exception = true;
            let _ = reply.send(head);
        } else if let Some(tx) = st.stream.take() {
            drop(st);
            if let Err(mpsc::error::TrySendError::Full(c)) = tx.try_send(Err(crate::types::Aborted))
            {
                let _ = py.detach(|| tx.blocking_send(c));
            }
        }
    }

    /// The stream sender, sending the head first if needed.
    pub(crate) fn stream(&self) -> PyResult<Option<mpsc::Sender<RespChunk>>> {
        let mut st = lock(&self.st);
        if let Some(tx) = &st.stream {
            return Ok(Some(tx.clone()));
        }
        if st.status.is_none() {
            return Err(PyRuntimeError::new_err(
                "write() or a body item before start_response was called",
            ));
        }
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let Some((reply, head)) = Self::head(&mut st, ResponseBody::Stream(rx), false) else {
            // Head already sent with a non-stream body: cannot happen (full bodies end the response).
            return Err(PyRuntimeError::new_err("headers already sent"));
        };
        st.stream = Some(tx.clone());
        drop(st);
        if reply.send(head).is_err() {
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// End the response: drop the stream sender (end of body), or send an empty body if no
    /// head went out yet.
    pub(crate) fn finish(&self) -> PyResult<Sent> {
        let sent = self.headers_sent();
        if !sent {
            return self.send_full(Bytes::new());
        }
        lock(&self.st).stream = None;
        Ok(Sent::Ok)
    }
}

/// Push one chunk; waits (GIL released) when the channel is full.
pub(crate) fn push(py: Python<'_>, tx: &mpsc::Sender<RespChunk>, chunk: Bytes) -> Sent {
    match tx.try_send(Ok(chunk)) {
        Ok(()) => Sent::Ok,
        Err(mpsc::error::TrySendError::Full(c)) => {
            if py.detach(|| tx.blocking_send(c)).is_ok() {
                Sent::Ok
            } else {
                Sent::Gone
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Sent::Gone,
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Writer> {
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(exc) = exc_info {
            if this.headers_sent() {
                // PEP 3333: re-raise the original exception once headers are out.
                let value = exc.get_item(1)?;
                let tb = exc.get_item(2)?;
                let value = if tb.is_none() {
                    value
                } else {
                    value.call_method1("with_traceback", (tb,))?
                };
                return Err(PyErr::from_value(value));
            }
        } else if this.status_set() {
            return Err(PyRuntimeError::new_err(
                "start_response called a second time without exc_info",
            ));
        }
        let status = parse_status(status)?;
        let headers = parse_headers(headers)?;
        let mut st = lock(&this.st);
        if st.reply.is_none() {
            return Err(PyOSError::new_err("headers already sent"));
        }
        st.status = Some(status);
        st.headers = headers;
        Ok(Writer {
            sr: slf.clone().unbind(),
        })
    }
}

/// The `write(data)` callable returned by `start_response`.
#[pyclass(frozen, module = "liege", name = "Write")]
pub struct Writer {
    sr: Py<StartResponse>,
}

#[pymethods]
impl Writer {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                data.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let bytes = Bytes::copy_from_slice(b.as_bytes());
        let sr = self.sr.get();
        let Some(tx) = sr.stream()? else {
            return Err(PyOSError::new_err("client disconnected"));
        };
        if bytes.is_empty() {
            return Ok(());
        }
        match push(py, &tx, bytes) {
            Sent::Ok => Ok(()),
            Sent::Gone => Err(PyOSError::new_err("client disconnected")),
        }
    }
}

/// `wsgi.file_wrapper(filelike, blksize=8192)`. When returned by the app and `filelike` has
/// a real file descriptor of a regular file, the file is sent by the I/O thread (sendfile on
/// uwsgi sockets); otherwise it iterates `filelike.read(blksize)`.
#[pyclass(frozen, module = "liege", name = "FileWrapper")]
pub struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> FileWrapper {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        if data.is_truthy()? {
            Ok(Some(data))
        } else {
            Ok(None)
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if let Some(close) = f.getattr_opt(pyo3::intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }
}
