//! `wsgi.input`: the request body as a file-like object (read, readline, readlines,
//! iteration). Bytes not yet read stay in the I/O thread's channel (bounded), so a large body
//! is never held whole; every wait for more bytes releases the GIL.

use crate::types::{BodyChunk, BodyError, RequestBody};
use bytes::{Bytes, BytesMut};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Mutex;
use tokio::sync::mpsc;

#[pyclass(frozen, module = "liege", name = "Input")]
pub struct Input {
    st: Mutex<InputState>,
}

struct InputState {
    /// Unread bytes: the pre-read body as received (no copy) until more chunks are appended.
    buf: Bytes,
    rx: Option<mpsc::Receiver<BodyChunk>>,
}

impl InputState {
    fn append(&mut self, b: Bytes) {
        if self.buf.is_empty() {
            self.buf = b;
        } else {
            let mut m = BytesMut::with_capacity(self.buf.len() + b.len());
            m.extend_from_slice(&self.buf);
            m.extend_from_slice(&b);
            self.buf = m.freeze();
        }
    }
}

fn lock(m: &Mutex<InputState>) -> std::sync::MutexGuard<'_, InputState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Input {
    pub fn new(body: RequestBody) -> Input {
        Input {
            st: Mutex::new(InputState {
                buf: body.initial,
                rx: body.rest,
            }),
        }
    }

    /// Wait for one more chunk (GIL released). `Ok(false)` at EOF.
    fn fill(&self, py: Python<'_>) -> PyResult<bool> {
        let rx = lock(&self.st).rx.take();
        let Some(mut rx) = rx else {
            return Ok(false);
        };
        let got: Option<Result<Bytes, BodyError>> = match rx.try_recv() {
            Ok(c) => Some(c),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => py.detach(|| rx.blocking_recv()),
        };
        match got {
            Some(Ok(b)) => {
                let mut st = lock(&self.st);
                st.append(b);
                st.rx = Some(rx);
                Ok(true)
            }
            Some(Err(e)) => Err(PyOSError::new_err(e.to_string())),
            None => Ok(false),
        }
    }

    fn take(&self, py: Python<'_>, n: usize) -> Py<PyBytes> {
        let mut st = lock(&self.st);
        let n = n.min(st.buf.len());
        let chunk = st.buf.split_to(n);
        PyBytes::new(py, &chunk).unbind()
    }

    fn read_line(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        let limit = size.filter(|s| *s >= 0).map(|s| s as usize);
        let mut scanned = 0;
        loop {
            let (found, len) = {
                let st = lock(&self.st);
                let found = st.buf[scanned..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|p| scanned + p + 1);
                (found, st.buf.len())
            };
            if let Some(end) = found {
                return Ok(self.take(py, limit.map_or(end, |l| l.min(end))));
            }
            if let Some(l) = limit {
                if len >= l {
                    return Ok(self.take(py, l));
                }
            }
            scanned = len;
            if !self.fill(py)? {
                return Ok(self.take(py, len));
            }
        }
    }
}

#[pymethods]
impl Input {
    /// `read(size=-1)`: up to `size` bytes; all the rest when size is negative or None.
    #[pyo3(signature = (size = None))]
    fn read(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        match size {
            Some(n) if n >= 0 => {
                let n = n as usize;
                while lock(&self.st).buf.len() < n {
                    if !self.fill(py)? {
                        break;
                    }
                }
                Ok(self.take(py, n))
            }
            _ => {
                while self.fill(py)? {}
                Ok(self.take(py, usize::MAX))
            }
        }
    }

    #[pyo3(signature = (size = None))]
    fn readline(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        self.read_line(py, size)
    }

    #[pyo3(signature = (hint = None))]
    fn readlines(&self, py: Python<'_>, hint: Option<isize>) -> PyResult<Vec<Py<PyBytes>>> {
        let mut out = Vec::new();
        let mut total = 0usize;
        loop {
            let line = self.read_line(py, None)?;
            let n = line.bind(py).as_bytes().len();
            if n == 0 {
                break;
            }
            total += n;
            out.push(line);
            if let Some(h) = hint {
                if h > 0 && total >= h as usize {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let line = self.read_line(py, None)?;
        if line.bind(py).as_bytes().is_empty() {
            Ok(None)
        } else {
            Ok(Some(line))
        }
    }
}
