//! `start_response`, the `write()` callable it returns, and `wsgi.file_wrapper`.
//!
//! The head (status + headers) goes out at most once: with the whole body when the app
//! returns a list, a tuple, bytes or a file wrapper (the worker writes it after the call,
//! without the GIL), or at the first non-empty item of any other iterable / the first
//! `write()` (PEP 3333: not before), through the request's [`Exchange`]. Each streamed
//! chunk is sent when the app produces it, so Server-Sent Events and long polls flush.

use crate::scope::ExSlot;
use crate::types::ResponseHead;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::{Arc, Mutex};

pub(crate) struct SrState {
    status: Option<(u16, Option<Bytes>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The head went out as the start of a stream (kept for the request log).
    streamed: Option<ResponseHead>,
    /// Body bytes streamed.
    sent: u64,
    /// Sending failed (the client went away) or the app failed mid-stream.
    broken: bool,
    /// The app failed before anything was sent: answer this status.
    failed: Option<u16>,
    core: u32,
}

impl SrState {
    /// The status and headers the app gave (`None` before start_response), moved out.
    fn take_head(&mut self) -> Option<ResponseHead> {
        let (status, reason) = self.status.clone()?;
        Some(ResponseHead {
            status,
            reason,
            headers: std::mem::take(&mut self.headers),
            core: self.core,
            exception: false,
        })
    }
}

/// The `start_response` callable of one request.
#[pyclass(frozen, module = "liege", name = "StartResponse")]
pub struct StartResponse {
    st: Mutex<SrState>,
    ex: Arc<ExSlot>,
}

fn lock(m: &Mutex<SrState>) -> std::sync::MutexGuard<'_, SrState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Outcome of trying to send something to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Ok,
    /// The client went away (or the request is over).
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

/// How a request ended on the Python side (see [`StartResponse::outcome`]).
pub(crate) enum Outcome {
    /// Nothing sent: the head to send with a whole body.
    Head(ResponseHead),
    /// The app failed before sending anything: answer this status.
    Failed(u16),
    /// Streamed: the head that went out, the bytes sent, and whether the body is complete.
    Streamed(ResponseHead, u64, bool),
}

impl StartResponse {
    pub(crate) fn new(ex: Arc<ExSlot>, core: u32) -> StartResponse {
        StartResponse {
            st: Mutex::new(SrState {
                status: None,
                headers: Vec::new(),
                streamed: None,
                sent: 0,
                broken: false,
                failed: None,
                core,
            }),
            ex,
        }
    }

    pub(crate) fn headers_sent(&self) -> bool {
        lock(&self.st).streamed.is_some()
    }

    pub(crate) fn status_set(&self) -> bool {
        lock(&self.st).status.is_some()
    }

    /// The app failed: answer `status` if nothing was sent yet, else cut the stream.
    pub(crate) fn fail(&self, status: u16) {
        let mut st = lock(&self.st);
        if st.streamed.is_some() {
            st.broken = true;
        } else {
            st.failed = Some(status);
        }
    }

    /// Send one chunk now, sending the head first if needed (GIL released while writing).
    pub(crate) fn stream(&self, py: Python<'_>, data: &[u8]) -> PyResult<Sent> {
        let mut st = lock(&self.st);
        if st.broken {
            return Ok(Sent::Gone);
        }
        let head = if st.streamed.is_none() {
            Some(st.take_head().ok_or_else(|| {
                PyRuntimeError::new_err("write() or a body item before start_response was called")
            })?)
        } else {
            None
        };
        drop(st);
        let ex = &self.ex;
        let r = py.detach(|| {
            ex.with(|e| {
                if let Some(h) = &head {
                    e.start_stream(h)?;
                }
                if data.is_empty() {
                    Ok(())
                } else {
                    e.send_chunk(data)
                }
            })
        });
        let mut st = lock(&self.st);
        if let Some(h) = head {
            st.streamed = Some(h);
        }
        match r {
            Some(Ok(())) => {
                st.sent += data.len() as u64;
                Ok(Sent::Ok)
            }
            Some(Err(e)) => {
                tracing::debug!("sending a response chunk: {e}");
                st.broken = true;
                Ok(Sent::Gone)
            }
            None => {
                st.broken = true;
                Ok(Sent::Gone)
            }
        }
    }

    /// How the request ended.
    pub(crate) fn outcome(&self) -> PyResult<Outcome> {
        let mut st = lock(&self.st);
        if let Some(h) = st.streamed.take() {
            return Ok(Outcome::Streamed(h, st.sent, !st.broken));
        }
        if let Some(s) = st.failed {
            return Ok(Outcome::Failed(s));
        }
        st.take_head()
            .map(Outcome::Head)
            .ok_or_else(|| PyRuntimeError::new_err("the application did not call start_response"))
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
        if st.streamed.is_some() {
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
        match self.sr.get().stream(py, b.as_bytes())? {
            Sent::Ok => Ok(()),
            Sent::Gone => Err(PyOSError::new_err("client disconnected")),
        }
    }
}

/// `wsgi.file_wrapper(filelike, blksize=8192)`. When returned by the app and `filelike` has
/// a real file descriptor of a regular file, the worker sends it with sendfile(2) after the
/// app returns, without the GIL; otherwise it iterates `filelike.read(blksize)`.
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
