//! HTTP/1.x requests, sans-io: the request head (parsed by `httparse`, then checked the way a
//! careful origin server does) and the request body framing (Content-Length, or chunked with
//! the decoder below). The worker writes responses (`liege_worker`'s `h1`).
//!
//! Refused with 400: a malformed request line or header, a method that is not an
//! upper-case token, a target that is not origin-form (`*` is allowed for OPTIONS and
//! absolute-form for proxies' sake), two `Host` headers, HTTP/1.1 without `Host`, a
//! Content-Length that is not a number or that two headers disagree on, Transfer-Encoding
//! whose last coding is not `chunked` or together with Content-Length, header names that
//! collide once `-` and `_` are folded (when `http-keep-underscore-headers` lets them
//! through; by default names with `_` are dropped). A head over `buffer-size` or with too
//! many fields is 431. CONNECT is answered 405.

/// A byte range `[start, end)` of the buffer a head was parsed from.
pub type Span = (u32, u32);

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head; spans are offsets into the buffer it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Length of the head in bytes (the body starts there).
    pub len: usize,
    pub method: Span,
    pub path: Span,
    pub query: Span,
    pub target: Span,
    pub minor: u8,
    pub host: Option<Span>,
    pub repeated: bool,
    pub framing: Framing,
    /// The client asked to keep the connection open (HTTP/1.1 default, 1.0 keep-alive).
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub is_head: bool,
}

/// A request that gets an error status instead of reaching the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: &'static str,
}

pub enum Parse {
    Partial,
    Done(Head),
    Refused(Refusal),
}

fn refuse(status: u16, why: &'static str) -> Parse {
    Parse::Refused(Refusal { status, why })
}

/// Headers parsed on the stack up to this many; more (a larger `max-vars`) use the heap.
const STACK_HEADERS: usize = 100;

/// Where `part`, a slice of `buf`, lies in it.
pub fn span(buf: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

fn is_method_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Limits and choices of [`parse`].
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `buffer-size`: the largest head.
    pub max_head: usize,
    /// `max-vars`: the most header fields.
    pub max_headers: usize,
    /// `http-keep-underscore-headers`: else names with `_` are dropped.
    pub keep_underscore: bool,
}

/// Parse the head at the start of `buf`. Header spans go to `hdrs` (cleared first).
pub fn parse(buf: &[u8], rules: &Rules, hdrs: &mut Vec<(Span, Span)>) -> Parse {
    let (max_head, max_headers) = (rules.max_head, rules.max_headers);
    hdrs.clear();
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let headers: &mut [httparse::Header<'_>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_head {
                refuse(431, "request head larger than buffer-size")
            } else {
                Parse::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return refuse(431, "more header fields than max-vars");
        }
        Err(_) => return refuse(400, "malformed request head"),
    };
    if len > max_head {
        return refuse(431, "request head larger than buffer-size");
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return refuse(400, "malformed request line");
    };
    if method.is_empty() || method.len() > 20 || !method.bytes().all(is_method_char) {
        return refuse(400, "invalid method");
    }
    if method == "CONNECT" {
        return refuse(405, "CONNECT is not supported");
    }
    let mbytes = method.as_bytes();
    let t = target.as_bytes();
    let mut host = None;
    let (path, query) = if t.first() == Some(&b'/') {
        split_query(t)
    } else if t == b"*" {
        if method != "OPTIONS" {
            return refuse(400, "asterisk-form target outside OPTIONS");
        }
        (t, &t[t.len()..])
    } else if let Some(rest) = strip_scheme(t) {
        // absolute-form: the authority stands for Host when there is none.
        let end = rest.iter().position(|&c| c == b'/' || c == b'?');
        let (auth, p) = match end {
            Some(i) => rest.split_at(i),
            None => (rest, &rest[rest.len()..]),
        };
        if auth.is_empty() {
            return refuse(400, "absolute-form target without authority");
        }
        host = Some(span(buf, auth));
        split_query(p)
    } else {
        return refuse(400, "authority-form or malformed request target");
    };
    let mut h = Head {
        len,
        method: span(buf, mbytes),
        path: span(buf, path),
        query: span(buf, query),
        target: span(buf, t),
        minor,
        host: None,
        repeated: false,
        framing: Framing::None,
        keep_alive: minor == 1,
        expect_continue: false,
        is_head: method == "HEAD",
    };
    let mut hosts = 0;
    let mut cl: Option<u64> = None;
    let mut te: Option<&[u8]> = None;
    let mut underscore = false;
    for hd in req.headers.iter() {
        let name = hd.name.as_bytes();
        let value = hd.value;
        if name.contains(&b'_') {
            if !rules.keep_underscore {
                // Not passed to the app: in the environ it would pass for the hyphenated
                // header a proxy sets (gunicorn, Apache and nginx drop them too).
                continue;
            }
            underscore = true;
        }
        hdrs.push((span(buf, name), span(buf, value)));
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host = Some(span(buf, value));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_length(value) else {
                return refuse(400, "invalid Content-Length");
            };
            if cl.is_some_and(|c| c != n) {
                return refuse(400, "conflicting Content-Length headers");
            }
            cl = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te.is_some() {
                return refuse(400, "repeated Transfer-Encoding");
            }
            te = Some(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for tok in value.split(|&c| c == b',') {
                let tok = tok.trim_ascii();
                if tok.eq_ignore_ascii_case(b"close") {
                    h.keep_alive = false;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    h.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            h.expect_continue = minor == 1 && value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if hosts > 1 {
        return refuse(400, "more than one Host header");
    }
    if hosts == 0 && minor == 1 && host.is_none() {
        return refuse(400, "HTTP/1.1 request without Host");
    }
    h.host = host;
    if underscore && collision(buf, hdrs) {
        return refuse(400, "colliding header names");
    }
    h.repeated = repeated(buf, hdrs);
    h.framing = match (te, cl) {
        (Some(_), Some(_)) => return refuse(400, "both Transfer-Encoding and Content-Length"),
        (Some(te), None) => {
            let last = te.rsplit(|&c| c == b',').next().unwrap_or_default();
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return refuse(400, "unsupported Transfer-Encoding");
            }
            Framing::Chunked
        }
        (None, Some(0)) | (None, None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };
    Parse::Done(h)
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

fn split_query(t: &[u8]) -> (&[u8], &[u8]) {
    match t.iter().position(|&c| c == b'?') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, &t[t.len()..]),
    }
}

/// Digits only (no sign, no spaces inside), at most 19 of them.
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn get(buf: &[u8], s: Span) -> &[u8] {
    &buf[s.0 as usize..s.1 as usize]
}

/// Two names that are the same once `-` and `_` are folded but differ as sent (`X-Foo` and
/// `X_Foo`): the environ could not tell them apart (a spoofing ambiguity).
fn collision(buf: &[u8], hdrs: &[(Span, Span)]) -> bool {
    let fold = |c: &u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    for (i, (a, _)) in hdrs.iter().enumerate() {
        let a = get(buf, *a);
        for (b, _) in &hdrs[i + 1..] {
            let b = get(buf, *b);
            if a.len() == b.len()
                && a.iter().map(fold).eq(b.iter().map(fold))
                && !a.eq_ignore_ascii_case(b)
            {
                return true;
            }
        }
    }
    false
}

fn repeated(buf: &[u8], hdrs: &[(Span, Span)]) -> bool {
    hdrs.iter().enumerate().any(|(i, (a, _))| {
        hdrs[i + 1..]
            .iter()
            .any(|(b, _)| get(buf, *a).eq_ignore_ascii_case(get(buf, *b)))
    })
}

/// Trailer fields that must not appear after a chunked body (they would change framing or
/// routing after the fact).
const FORBIDDEN_TRAILERS: [&[u8]; 3] = [b"content-length", b"host", b"transfer-encoding"];

/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 8 * 1024;

/// An incremental decoder of a chunked request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Chunked {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// In a chunk: this many data bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line.
    Trailers,
    Done,
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        *self == Chunked::Done
    }

    /// Decode from `input`, appending at most `max` body bytes to `out`. Returns the bytes
    /// of `input` consumed; stops early when it needs more input than `input` has.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<usize, &'static str> {
        let mut i = 0;
        let mut produced = 0;
        loop {
            match *self {
                Chunked::Done => return Ok(i),
                Chunked::Size => {
                    let rest = &input[i..];
                    let Some(lf) = rest.iter().position(|&c| c == b'\n') else {
                        if rest.len() > 1024 {
                            return Err("chunk size line too long");
                        }
                        return Ok(i);
                    };
                    if lf == 0 || rest[lf - 1] != b'\r' {
                        return Err("chunk size line without CRLF");
                    }
                    let line = &rest[..lf - 1];
                    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
                    if digits == 0 || digits > 15 {
                        return Err("invalid chunk size");
                    }
                    let after = &line[digits..];
                    let after_ws = after.trim_ascii_start();
                    if !after_ws.is_empty() && after_ws[0] != b';' {
                        return Err("chunk size with trailing junk");
                    }
                    let n = u64::from_str_radix(
                        std::str::from_utf8(&line[..digits]).map_err(|_| "invalid chunk size")?,
                        16,
                    )
                    .map_err(|_| "invalid chunk size")?;
                    i += lf + 1;
                    *self = if n == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(n)
                    };
                }
                Chunked::Data(left) => {
                    let room = max - produced;
                    let avail = input.len() - i;
                    if room == 0 || avail == 0 {
                        return Ok(i);
                    }
                    let n = (left.min(room as u64) as usize).min(avail);
                    out.extend_from_slice(&input[i..i + n]);
                    produced += n;
                    i += n;
                    *self = if n as u64 == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - n as u64)
                    };
                }
                Chunked::DataEnd => {
                    let rest = &input[i..];
                    if rest.len() < 2 {
                        return Ok(i);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    i += 2;
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let rest = &input[i..];
                    if rest.starts_with(b"\r\n") {
                        i += 2;
                        *self = Chunked::Done;
                        continue;
                    }
                    let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if rest.len() > MAX_TRAILERS {
                            return Err("trailer section too large");
                        }
                        return Ok(i);
                    };
                    for line in rest[..end].split(|&c| c == b'\n') {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        let Some(colon) = line.iter().position(|&c| c == b':') else {
                            return Err("malformed trailer field");
                        };
                        let name = &line[..colon];
                        if name.is_empty() || name.iter().any(|c| c.is_ascii_whitespace()) {
                            return Err("malformed trailer field");
                        }
                        if FORBIDDEN_TRAILERS
                            .iter()
                            .any(|f| name.eq_ignore_ascii_case(f))
                        {
                            return Err("forbidden field in trailers");
                        }
                    }
                    i += end + 4;
                    *self = Chunked::Done;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &[u8]) -> Result<Head, Refusal> {
        let mut h = Vec::new();
        let rules = Rules {
            max_head: 4096,
            max_headers: 64,
            keep_underscore: false,
        };
        match parse(raw, &rules, &mut h) {
            Parse::Done(head) => Ok(head),
            Parse::Refused(r) => Err(r),
            Parse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn heads() {
        let h = p(b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(h.keep_alive);
        assert_eq!(h.framing, Framing::None);
        let h = p(b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.framing, Framing::Length(5));
        let h = p(b"GET http://ex.com:8080/p HTTP/1.1\r\n\r\n").unwrap();
        assert!(h.host.is_some());
        assert_eq!(p(b"GET / HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            p(b"GET ex.com:443 HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            p(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err().status,
            400
        );
        assert!(p(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").is_ok());
        assert_eq!(
            p(b"-bl / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err().status,
            400
        );
        assert_eq!(
            p(b"CONNECT ex.com:443 HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            p(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            p(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    fn dechunk(input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
        let mut d = Chunked::default();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out, usize::MAX)?;
        assert!(n <= input.len());
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n").unwrap(),
            (b"hello world".to_vec(), true)
        );
        assert_eq!(dechunk(b"5\r\nhel").unwrap(), (b"hel".to_vec(), false));
        assert!(dechunk(b"5x\r\nhello\r\n0\r\n\r\n").is_err());
        assert!(dechunk(b"0\r\nContent-Length: 5\r\n\r\n").is_err());
        assert_eq!(dechunk(b"0\r\nX-Sum: 1\r\n\r\n").unwrap(), (vec![], true));
        // byte by byte gives the same
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut d = Chunked::default();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for &b in input.iter() {
            buf.push(b);
            let n = d.decode(&buf, &mut out, usize::MAX).unwrap();
            buf.drain(..n);
        }
        assert!(d.is_done());
        assert_eq!(out, b"abcde");
    }
}
