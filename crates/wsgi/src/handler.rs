//! Running one request on the thread that read it: build the environ, call the app, return
//! what to send (or what was streamed), always call the result's `close()`.

use crate::app::{format_traceback, MountedApp};
use crate::input::Input;
use crate::response::{FileWrapper, Outcome, Sent, StartResponse};
use crate::scope::ExSlot;
use crate::types::{ConnInfo, Exchange, FileBody, HttpHead, Reply, ResponseBody, UwsgiVars, Vars};
use bytes::{Bytes, BytesMut};
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Static facts that shape every environ.
#[derive(Debug, Clone)]
pub struct EnvironOptions {
    pub multithread: bool,
    pub multiprocess: bool,
    pub file_wrapper: bool,
    /// `manage-script-name`: pick the app by the longest mountpoint prefixing PATH_INFO and
    /// move that prefix to SCRIPT_NAME.
    pub manage_script_name: bool,
}

/// The app (or why there is none) and the cached objects every request uses.
pub struct Handler {
    apps: Result<Vec<MountedApp>, String>,
    /// More than the single default app, or manage-script-name: choose per request.
    select: bool,
    manage_script_name: bool,
    /// A dict with the per-process constant keys; each environ starts as a copy of it.
    base: Py<PyDict>,
    /// Exceptions raised by the app (for stats).
    pub exceptions: Arc<AtomicU64>,
}

/// `uwsgi.version` (uWSGI compatibility level liege follows).
pub const UWSGI_VERSION: &[u8] = b"2.0.31";

impl Handler {
    /// `apps` are the loaded apps, or the reason they could not be loaded (`need-app = false`:
    /// every request then gets a 500 and the reason is logged).
    pub fn new(
        py: Python<'_>,
        apps: Result<Vec<MountedApp>, String>,
        opts: &EnvironOptions,
    ) -> PyResult<Handler> {
        let base = PyDict::new(py);
        base.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        base.set_item("wsgi.errors", py.import("sys")?.getattr("stderr")?)?;
        base.set_item("wsgi.multithread", opts.multithread)?;
        base.set_item("wsgi.multiprocess", opts.multiprocess)?;
        base.set_item("wsgi.run_once", false)?;
        base.set_item("wsgi.url_scheme", intern!(py, "http"))?;
        base.set_item("wsgi.input_terminated", true)?;
        if opts.file_wrapper {
            base.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        }
        base.set_item("uwsgi.version", PyBytes::new(py, UWSGI_VERSION))?;
        base.set_item("liege.version", env!("CARGO_PKG_VERSION"))?;
        let node = nix_hostname();
        base.set_item("uwsgi.node", PyBytes::new(py, node.as_bytes()))?;
        base.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
        let select = match &apps {
            Ok(a) => {
                a.len() > 1 || a.iter().any(|m| !m.mountpoint.is_empty()) || opts.manage_script_name
            }
            Err(_) => false,
        };
        Ok(Handler {
            apps,
            select,
            manage_script_name: opts.manage_script_name,
            base: base.unbind(),
            exceptions: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Run one request to completion on this thread (attaching to the interpreter, which is
    /// cheap on a thread that [`crate::attach_thread`] keeps attached).
    pub fn call(
        &self,
        core: u32,
        vars: &Vars<'_>,
        conn: &ConnInfo,
        ex: &mut dyn Exchange,
    ) -> Reply {
        Python::attach(|py| self.handle(py, core, vars, conn, ex))
    }

    fn handle(
        &self,
        py: Python<'_>,
        core: u32,
        vars: &Vars<'_>,
        conn: &ConnInfo,
        ex: &mut dyn Exchange,
    ) -> Reply {
        let slot = Arc::new(ExSlot::default());
        let scope = slot.enter(ex);
        let failed = |exception: bool| {
            let mut r = Reply::error(500, "Internal Server Error");
            if let Reply::Whole(h, _) = &mut r {
                h.core = core;
                h.exception = exception;
            }
            r
        };
        let sr = match Bound::new(py, StartResponse::new(slot.clone(), core)) {
            Ok(sr) => sr,
            Err(e) => {
                tracing::error!("cannot create start_response: {e}");
                return failed(false);
            }
        };
        let apps = match &self.apps {
            Ok(apps) => apps,
            Err(why) => {
                tracing::error!("no app loaded: {why}");
                return failed(false);
            }
        };
        let environ = match self.environ(py, vars, conn, Input::new(slot.clone())) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("cannot build the environ: {}", format_traceback(py, &e));
                return failed(false);
            }
        };
        let app = if self.select {
            match self.select_app(py, apps, &environ) {
                Ok(Some(app)) => app.bind(py),
                Ok(None) => {
                    tracing::error!(
                        "--- no python application found for this request (no default app) ---"
                    );
                    return failed(false);
                }
                Err(e) => {
                    tracing::error!("choosing the app: {}", format_traceback(py, &e));
                    return failed(false);
                }
            }
        } else {
            apps[0].app.bind(py)
        };
        let body = match app.call1((environ, &sr)) {
            Ok(result) => self.respond(py, &sr, &result),
            Err(e) => {
                self.app_error(py, &sr, &e);
                None
            }
        };
        let reply = match sr.get().outcome() {
            Ok(Outcome::Head(head)) => {
                Reply::Whole(head, body.unwrap_or(ResponseBody::Full(Bytes::new())))
            }
            Ok(Outcome::Failed(status)) => {
                let mut r = failed(true);
                if let Reply::Whole(h, _) = &mut r {
                    h.status = status;
                }
                r
            }
            Ok(Outcome::Streamed(head, sent, complete)) => Reply::Streamed {
                head,
                sent,
                complete,
            },
            Err(e) => {
                self.exceptions.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{}", format_traceback(py, &e).trim_end());
                failed(true)
            }
        };
        drop(scope);
        reply
    }

    /// uWSGI's app choice (§4.5): with manage-script-name the longest mountpoint prefixing
    /// PATH_INFO on a `/` boundary (moved to SCRIPT_NAME); else an exact `UWSGI_APPID` or
    /// `SCRIPT_NAME` match; else the default app (mounted at `""` or `/`).
    fn select_app<'a>(
        &self,
        py: Python<'_>,
        apps: &'a [MountedApp],
        env: &Bound<'_, PyDict>,
    ) -> PyResult<Option<&'a Py<PyAny>>> {
        let get = |k: &Bound<'_, PyString>| -> PyResult<Option<String>> {
            match env.get_item(k)? {
                Some(v) => Ok(v.extract::<String>().ok()),
                None => Ok(None),
            }
        };
        if self.manage_script_name {
            let path = get(intern!(py, "PATH_INFO"))?.unwrap_or_default();
            let best = apps
                .iter()
                .filter(|m| !m.mountpoint.is_empty())
                .filter(|m| {
                    path == m.mountpoint
                        || (path.starts_with(&m.mountpoint)
                            && path.as_bytes().get(m.mountpoint.len()) == Some(&b'/'))
                })
                .max_by_key(|m| m.mountpoint.len());
            if let Some(m) = best {
                env.set_item(intern!(py, "SCRIPT_NAME"), m.mountpoint.as_str())?;
                env.set_item(intern!(py, "PATH_INFO"), &path[m.mountpoint.len()..])?;
                return Ok(Some(&m.app));
            }
        }
        let key = match get(intern!(py, "UWSGI_APPID"))? {
            Some(k) if !k.is_empty() => Some(k),
            _ => get(intern!(py, "SCRIPT_NAME"))?.filter(|k| !k.is_empty()),
        };
        if let Some(k) = key {
            let k = k.trim_end_matches('/');
            if let Some(m) = apps.iter().find(|m| m.mountpoint == k) {
                return Ok(Some(&m.app));
            }
        }
        Ok(apps
            .iter()
            .find(|m| m.mountpoint.is_empty())
            .map(|m| &m.app))
    }

    fn app_error(&self, py: Python<'_>, sr: &Bound<'_, StartResponse>, e: &PyErr) {
        self.exceptions.fetch_add(1, Ordering::Relaxed);
        tracing::error!("{}", format_traceback(py, e).trim_end());
        sr.get().fail(500);
    }

    /// Send the app's result (or return it whole), then call its `close()` (always, on every
    /// path).
    fn respond(
        &self,
        py: Python<'_>,
        sr: &Bound<'_, StartResponse>,
        result: &Bound<'_, PyAny>,
    ) -> Option<ResponseBody> {
        let body = match self.send_result(py, sr, result) {
            Ok(b) => b,
            Err(e) => {
                self.app_error(py, sr, &e);
                None
            }
        };
        if !result.is_exact_instance_of::<PyList>() && !result.is_exact_instance_of::<PyTuple>() {
            match result.getattr_opt(intern!(py, "close")) {
                Ok(Some(close)) => {
                    if let Err(e) = close.call0() {
                        self.exceptions.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "error in the response's close(): {}",
                            format_traceback(py, &e).trim_end()
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!("close lookup: {e}"),
            }
        }
        body
    }

    /// A whole body (list, tuple, bytes, a file wrapper over a real file), or `None` after
    /// streaming every item of any other iterable as the app yields it.
    fn send_result(
        &self,
        py: Python<'_>,
        sr: &Bound<'_, StartResponse>,
        result: &Bound<'_, PyAny>,
    ) -> PyResult<Option<ResponseBody>> {
        let sr_ref = sr.get();
        if !sr_ref.headers_sent() {
            if let Ok(list) = result.cast_exact::<PyList>() {
                return Ok(Some(ResponseBody::Full(join(list.iter())?)));
            }
            if let Ok(t) = result.cast_exact::<PyTuple>() {
                return Ok(Some(ResponseBody::Full(join(t.iter())?)));
            }
            if let Ok(b) = result.cast::<PyBytes>() {
                // Not strictly WSGI (bytes is an iterable of ints); uWSGI sends it as one chunk.
                return Ok(Some(ResponseBody::Full(Bytes::copy_from_slice(
                    b.as_bytes(),
                ))));
            }
            if let Ok(fw) = result.cast::<FileWrapper>() {
                if let Some(file) = file_body(py, fw.get())? {
                    return Ok(Some(ResponseBody::File(file)));
                }
            }
        }
        for item in result.try_iter()? {
            let item = item?;
            let b = item.cast::<PyBytes>().map_err(|_| not_bytes(&item))?;
            let data = b.as_bytes();
            if data.is_empty() {
                continue;
            }
            if sr_ref.stream(py, data)? == Sent::Gone {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn environ<'py>(
        &self,
        py: Python<'py>,
        vars: &Vars<'_>,
        conn: &ConnInfo,
        input: Input,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.base.bind(py).copy()?;
        match vars {
            Vars::Http(head) => http_environ(py, &env, head, conn)?,
            Vars::Uwsgi(u) => uwsgi_environ(py, &env, u, conn)?,
        }
        env.set_item(intern!(py, "wsgi.input"), Bound::new(py, input)?)?;
        Ok(env)
    }
}

fn nix_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a valid buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn not_bytes(item: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "response body items must be bytes, not {}",
        item.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    ))
}

fn join<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>) -> PyResult<Bytes> {
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    for item in items {
        let b = item.cast::<PyBytes>().map_err(|_| not_bytes(&item))?;
        let b = b.as_bytes();
        match (&mut first, &mut buf) {
            (None, None) => first = Some(Bytes::copy_from_slice(b)),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity(f.len() + b.len());
                m.extend_from_slice(f);
                m.extend_from_slice(b);
                buf = Some(m);
                first = None;
            }
            (_, Some(m)) => m.extend_from_slice(b),
        }
    }
    Ok(match (first, buf) {
        (_, Some(m)) => m.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// A regular file behind a file wrapper: dup its fd, from the current position.
fn file_body(py: Python<'_>, fw: &FileWrapper) -> PyResult<Option<FileBody>> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let f = fw.filelike.bind(py);
    let Some(fileno) = f.getattr_opt(intern!(py, "fileno"))? else {
        return Ok(None);
    };
    let fd: i32 = match fileno.call0().and_then(|v| v.extract()) {
        Ok(fd) => fd,
        Err(_) => return Ok(None),
    };
    if fd < 0 {
        return Ok(None);
    }
    let offset: u64 = match f.getattr_opt(intern!(py, "tell"))? {
        Some(tell) => tell.call0().and_then(|v| v.extract()).unwrap_or(0),
        None => 0,
    };
    // SAFETY: fd is open (just returned by fileno()) and stays open while borrowed here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = match borrowed.try_clone_to_owned() {
        Ok(o) => o,
        Err(_) => return Ok(None),
    };
    let file = std::fs::File::from(owned);
    match file.metadata() {
        Ok(m) if m.is_file() => {
            debug_assert!(file.as_raw_fd() != fd);
            let len = m.len().saturating_sub(offset);
            Ok(Some(FileBody {
                file,
                offset,
                len: Some(len),
            }))
        }
        _ => Ok(None),
    }
}

/// Latin-1 bytes as a Python `str` (ASCII fast path).
fn latin1<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyString>> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(PyString::new(py, unsafe {
            std::str::from_utf8_unchecked(b)
        }));
    }
    // SAFETY: the pointer and length describe a valid byte slice; a NULL errors string means
    // strict; the result is a new reference or NULL with an exception set.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(
            b.as_ptr().cast(),
            b.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// Percent-decode a request path, keeping `%2F` (any case, normalized to `%2F`) encoded so
/// an encoded slash stays distinguishable from a path separator in `PATH_INFO`.
pub fn decode_path(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                let v = h * 16 + l;
                if v == b'/' {
                    out.extend_from_slice(b"%2F");
                } else {
                    out.push(v);
                }
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn method_str<'py>(py: Python<'py>, m: &[u8]) -> PyResult<Bound<'py, PyString>> {
    Ok(match m {
        b"GET" => intern!(py, "GET").clone(),
        b"POST" => intern!(py, "POST").clone(),
        b"HEAD" => intern!(py, "HEAD").clone(),
        b"PUT" => intern!(py, "PUT").clone(),
        b"DELETE" => intern!(py, "DELETE").clone(),
        b"OPTIONS" => intern!(py, "OPTIONS").clone(),
        b"PATCH" => intern!(py, "PATCH").clone(),
        _ => latin1(py, m)?,
    })
}

fn http_environ(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    head: &HttpHead<'_>,
    conn: &ConnInfo,
) -> PyResult<()> {
    env.set_item(
        intern!(py, "REQUEST_METHOD"),
        method_str(py, head.get(head.method))?,
    )?;
    env.set_item(
        intern!(py, "PATH_INFO"),
        latin1(py, &decode_path(head.get(head.path)))?,
    )?;
    env.set_item(
        intern!(py, "QUERY_STRING"),
        latin1(py, head.get(head.query))?,
    )?;
    env.set_item(
        intern!(py, "REQUEST_URI"),
        latin1(py, head.get(head.target))?,
    )?;
    let proto = if head.minor == 0 {
        intern!(py, "HTTP/1.0")
    } else {
        intern!(py, "HTTP/1.1")
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), proto)?;
    let mut has_host = false;
    let mut joined: Vec<u8> = Vec::new();
    for (i, (n, v)) in head.headers.iter().enumerate() {
        let name = head.get(*n);
        let is_host = name.eq_ignore_ascii_case(b"host");
        has_host |= is_host;
        let mut value = head.get(*v);
        if head.repeated {
            let same = |(m, _): &(crate::types::Span, crate::types::Span)| {
                head.get(*m).eq_ignore_ascii_case(name)
            };
            if head.headers[..i].iter().any(same) {
                continue; // joined with its first occurrence
            }
            let mut rest = head.headers[i + 1..].iter().filter(|h| same(h)).peekable();
            if rest.peek().is_some() {
                let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                    b"; "
                } else {
                    b", "
                };
                joined.clear();
                joined.extend_from_slice(value);
                for (_, v2) in rest {
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(head.get(*v2));
                }
                value = &joined;
            }
        }
        env.set_item(header_key(py, name)?, latin1(py, value)?)?;
    }
    let server_name: Bound<'_, PyString> = match head.host.map(|h| head.get(h)) {
        Some(h) if !h.is_empty() => latin1(py, strip_port(h))?,
        _ => latin1(py, conn.local_ip.as_bytes())?,
    };
    env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
    if !has_host {
        if let Some(h) = head.host {
            env.set_item(intern!(py, "HTTP_HOST"), latin1(py, head.get(h))?)?;
        }
    }
    env.set_item(intern!(py, "SERVER_PORT"), port_str(py, conn.server_port))?;
    remote(py, env, conn)?;
    let scheme = if conn.https {
        Some("https")
    } else if conn.trusted {
        forwarded_scheme(
            head.header(b"x-forwarded-proto"),
            head.header(b"x-forwarded-ssl"),
        )
    } else {
        None
    };
    if let Some(s) = scheme {
        env.set_item(intern!(py, "wsgi.url_scheme"), s)?;
    }
    Ok(())
}

fn remote(py: Python<'_>, env: &Bound<'_, PyDict>, conn: &ConnInfo) -> PyResult<()> {
    match conn.peer {
        Some(p) => {
            env.set_item(intern!(py, "REMOTE_ADDR"), p.ip().to_string())?;
            env.set_item(intern!(py, "REMOTE_PORT"), port_str(py, p.port()))?;
        }
        None => {
            env.set_item(intern!(py, "REMOTE_ADDR"), intern!(py, ""))?;
        }
    }
    Ok(())
}

fn port_str(py: Python<'_>, port: u16) -> Bound<'_, PyString> {
    match port {
        80 => intern!(py, "80").clone(),
        _ => PyString::new(py, itoa(port).as_str()),
    }
}

fn itoa(n: u16) -> String {
    n.to_string()
}

fn forwarded_scheme(proto: Option<&[u8]>, ssl: Option<&[u8]>) -> Option<&'static str> {
    match proto {
        Some(p) if p.eq_ignore_ascii_case(b"https") => return Some("https"),
        Some(p) if p.eq_ignore_ascii_case(b"http") => return Some("http"),
        _ => {}
    }
    match ssl {
        Some(s) if s.eq_ignore_ascii_case(b"on") || s == b"1" => Some("https"),
        _ => None,
    }
}

/// `Host` without its port (`[v6]:port` keeps the brackets).
fn strip_port(h: &[u8]) -> &[u8] {
    if h.first() == Some(&b'[') {
        return match h.iter().position(|&b| b == b']') {
            Some(end) => &h[..=end],
            None => h,
        };
    }
    match h.iter().rposition(|&b| b == b':') {
        Some(i) => &h[..i],
        None => h,
    }
}

/// `HTTP_FOO_BAR` for `foo-bar`; `CONTENT_TYPE`/`CONTENT_LENGTH` without the prefix.
fn header_key<'py>(py: Python<'py>, name: &[u8]) -> PyResult<Bound<'py, PyString>> {
    macro_rules! known {
        ($($hn:literal => $k:literal),* $(,)?) => {
            $(if name.eq_ignore_ascii_case($hn) { return Ok(intern!(py, $k).clone()); })*
        };
    }
    known!(
        b"host" => "HTTP_HOST",
        b"user-agent" => "HTTP_USER_AGENT",
        b"accept" => "HTTP_ACCEPT",
        b"accept-encoding" => "HTTP_ACCEPT_ENCODING",
        b"accept-language" => "HTTP_ACCEPT_LANGUAGE",
        b"connection" => "HTTP_CONNECTION",
        b"content-type" => "CONTENT_TYPE",
        b"content-length" => "CONTENT_LENGTH",
        b"cookie" => "HTTP_COOKIE",
        b"referer" => "HTTP_REFERER",
        b"authorization" => "HTTP_AUTHORIZATION",
        b"cache-control" => "HTTP_CACHE_CONTROL",
        b"transfer-encoding" => "HTTP_TRANSFER_ENCODING",
        b"expect" => "HTTP_EXPECT",
    );
    let mut k = Vec::with_capacity(5 + name.len());
    k.extend_from_slice(b"HTTP_");
    k.extend(name.iter().map(|&c| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    latin1(py, &k)
}

fn uwsgi_environ(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    vars: &UwsgiVars<'_>,
    conn: &ConnInfo,
) -> PyResult<()> {
    let mut https: Option<&[u8]> = None;
    let mut scheme: Option<&[u8]> = None;
    let mut xfp: Option<&[u8]> = None;
    let mut xssl: Option<&[u8]> = None;
    for (k, v) in vars.iter() {
        match k {
            b"HTTPS" => https = Some(v),
            b"UWSGI_SCHEME" => scheme = Some(v),
            b"HTTP_X_FORWARDED_PROTO" => xfp = Some(v),
            b"HTTP_X_FORWARDED_SSL" => xssl = Some(v),
            // The server's own keys cannot be set by the peer.
            k if k.starts_with(b"wsgi.") || k.starts_with(b"uwsgi.") => continue,
            _ => {}
        }
        env.set_item(latin1(py, k)?, latin1(py, v)?)?;
    }
    let s: Option<Cow<'_, str>> = if let Some(s) = scheme.filter(|s| !s.is_empty()) {
        Some(String::from_utf8_lossy(s))
    } else if https.is_some_and(|h| h.eq_ignore_ascii_case(b"on") || h == b"1") {
        Some(Cow::Borrowed("https"))
    } else if conn.trusted {
        forwarded_scheme(xfp, xssl).map(Cow::Borrowed)
    } else {
        None
    };
    if let Some(s) = s {
        env.set_item(intern!(py, "wsgi.url_scheme"), s.as_ref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_decoding_keeps_encoded_slash() {
        assert_eq!(&*decode_path(b"/a%20b/c"), b"/a b/c");
        assert_eq!(&*decode_path(b"/a%2fb%2Fc"), b"/a%2Fb%2Fc");
        assert_eq!(&*decode_path(b"/caf%E9"), b"/caf\xe9");
        assert_eq!(&*decode_path(b"/bad%zz%4"), b"/bad%zz%4");
        assert_eq!(&*decode_path(b"/end%"), b"/end%");
    }

    #[test]
    fn host_port() {
        assert_eq!(strip_port(b"example.com:8080"), b"example.com");
        assert_eq!(strip_port(b"example.com"), b"example.com");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
    }
}
