//! `wsgi.input`: the request body as a file-like object (read, readline, readlines,
//! iteration). Bytes come from the request's [`Exchange`]: what the worker already buffered
//! is taken without releasing the GIL; every wait on the socket releases it. A large body is
//! never held whole: each fill takes at most [`FILL`] bytes.

use crate::scope::ExSlot;
use crate::types::Read;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Arc, Mutex};

/// The most bytes one fill asks the connection for.
const FILL: usize = 64 * 1024;

#[pyclass(frozen, module = "liege", name = "Input")]
pub struct Input {
    st: Mutex<InputState>,
    ex: Arc<ExSlot>,
}

#[derive(Default)]
struct InputState {
    /// Unread bytes are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl InputState {
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

fn lock(m: &Mutex<InputState>) -> std::sync::MutexGuard<'_, InputState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Input {
    pub(crate) fn new(ex: Arc<ExSlot>) -> Input {
        Input {
            st: Mutex::new(InputState::default()),
            ex,
        }
    }

    /// Get more bytes (up to about `want`). `Ok(false)` at the end of the body.
    fn fill(&self, py: Python<'_>, want: usize) -> PyResult<bool> {
        let want = want.max(FILL);
        {
            let mut st = lock(&self.st);
            if st.eof {
                return Ok(false);
            }
            st.compact();
            // Bytes the worker already holds: no GIL release, no syscall.
            let buf = &mut st.buf;
            if let Ok(r) = self.ex.try_with(|e| e.read_body(buf, want, false)) {
                match r {
                    Some(Read::WouldBlock) => {}
                    other => return finish(&mut st, other),
                }
            }
        }
        let (st, ex) = (&self.st, &self.ex);
        py.detach(|| {
            let mut st = lock(st);
            let buf = &mut st.buf;
            let r = ex.with(|e| e.read_body(buf, want, true));
            finish(&mut st, r)
        })
    }

    fn take(&self, py: Python<'_>, n: usize) -> Py<PyBytes> {
        let mut st = lock(&self.st);
        let n = n.min(st.len());
        let b = PyBytes::new(py, &st.buf[st.pos..st.pos + n]).unbind();
        st.pos += n;
        if st.pos == st.buf.len() {
            st.buf.clear();
            st.pos = 0;
        }
        b
    }

    fn buffered(&self) -> usize {
        lock(&self.st).len()
    }

    fn read_line(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        let limit = size.filter(|s| *s >= 0).map(|s| s as usize);
        let mut scanned = 0;
        loop {
            let (found, len) = {
                let st = lock(&self.st);
                let unread = &st.buf[st.pos..];
                let found = unread[scanned..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|p| scanned + p + 1);
                (found, unread.len())
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
            if !self.fill(py, FILL)? {
                return Ok(self.take(py, len));
            }
        }
    }
}

/// Record what a read gave.
fn finish(st: &mut InputState, r: Option<Read>) -> PyResult<bool> {
    match r {
        Some(Read::Bytes(0)) | None => {
            st.eof = true;
            Ok(false)
        }
        Some(Read::Bytes(_)) => Ok(true),
        Some(Read::WouldBlock) => Ok(true),
        Some(Read::Err(e)) => {
            st.eof = true;
            Err(PyOSError::new_err(e.to_string()))
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
                while self.buffered() < n {
                    if !self.fill(py, n - self.buffered())? {
                        break;
                    }
                }
                Ok(self.take(py, n))
            }
            _ => {
                while self.fill(py, usize::MAX)? {}
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
