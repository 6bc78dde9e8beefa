//! HTTP/1.x on `http`/`http-socket` listeners: the request side is
//! [`liege_protocol::http1`] (sans-io: head parsing, strictness, chunked decoding); this module
//! writes response heads.

pub use liege_protocol::http1::{parse, Chunked, Framing, Head, Parse, Rules};
use liege_wsgi::types::ResponseHead;
use std::io::Write;

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// `content-length: n`.
    Exact(u64),
    /// The app's own Content-Length header is sent as is.
    AppLength,
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the connection closes (HTTP/1.0 streams).
    Close,
    /// No body and no length (1xx, 204, 304).
    Nothing,
}

/// What the app's headers say about framing.
pub struct AppFraming {
    pub content_length: bool,
    pub close: bool,
}

pub fn app_framing(head: &ResponseHead) -> AppFraming {
    let mut f = AppFraming {
        content_length: false,
        close: false,
    };
    for (k, v) in &head.headers {
        if k == http::header::CONTENT_LENGTH {
            f.content_length = true;
        } else if k == http::header::CONNECTION {
            f.close |= v
                .as_bytes()
                .split(|&c| c == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    f
}

/// Statuses that never carry a body.
pub fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Write the status line and headers. `keep_alive` is what the server decided.
pub fn write_head(
    out: &mut Vec<u8>,
    minor: u8,
    head: &ResponseHead,
    add: &[(http::HeaderName, http::HeaderValue)],
    len: BodyLen,
    keep_alive: bool,
) {
    out.extend_from_slice(if minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    status_line_rest(out, head);
    for (k, v) in &head.headers {
        if *k == http::header::TRANSFER_ENCODING
            || *k == http::header::CONNECTION
            || (*k == http::header::CONTENT_LENGTH && len != BodyLen::AppLength)
        {
            continue;
        }
        header(out, k.as_str().as_bytes(), v.as_bytes());
    }
    for (k, v) in add {
        header(out, k.as_str().as_bytes(), v.as_bytes());
    }
    date(out);
    match len {
        BodyLen::Exact(n) => {
            out.extend_from_slice(b"content-length: ");
            let _ = write!(out, "{n}");
            out.extend_from_slice(b"\r\n");
        }
        BodyLen::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyLen::AppLength | BodyLen::Close | BodyLen::Nothing => {}
    }
    if minor == 0 && keep_alive {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    } else if minor == 1 && !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `200 OK\r\n` (the status code, the reason, CRLF).
pub fn status_line_rest(out: &mut Vec<u8>, head: &ResponseHead) {
    let _ = write!(out, "{} ", head.status);
    match &head.reason {
        Some(r) => out.extend_from_slice(r),
        None => out.extend_from_slice(
            http::StatusCode::from_u16(head.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .as_bytes(),
        ),
    }
    out.extend_from_slice(b"\r\n");
}

pub fn header(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    out.extend_from_slice(k);
    out.extend_from_slice(b": ");
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

/// `date: <IMF-fixdate>\r\n`, formatted once per second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(c.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}
