//! uwsgi-protocol listeners (`socket`, what nginx's `uwsgi_pass` speaks): one request per
//! connection, vars block limited by `buffer-size`, body framed by `CONTENT_LENGTH`, response
//! written as raw HTTP, then the connection is closed.
//!
//! Peers can never make the worker load code: `UWSGI_SCRIPT`, `UWSGI_MODULE`, `UWSGI_FILE`
//! and friends are passed to the app as plain environ entries and otherwise ignored.

use crate::ctx::{Ctx, LogRecord};
use crate::http::dispatch;
use bytes::{Bytes, BytesMut};
use liege_protocol::uwsgi::{check, content_length, parse_vars, Check, HEADER_LEN};
use liege_wsgi::types::{BodyChunk, BodyError, ConnInfo, RequestBody, ResponseBody, Vars};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// A stream socket the uwsgi protocol runs on: split into owned halves, and able to
/// `sendfile()` from a file on its write half.
pub trait Sock: Send + 'static {
    type R: AsyncRead + Unpin + Send + 'static;
    type W: AsyncWrite + Unpin + Send + Sync + 'static;
    fn split(self) -> (Self::R, Self::W);
    /// One `sendfile()` of up to `len` bytes at `*offset`, waiting for writability.
    fn sendfile(
        w: &Self::W,
        file: &std::fs::File,
        offset: &mut u64,
        len: usize,
    ) -> impl std::future::Future<Output = std::io::Result<usize>> + Send;
}

macro_rules! sock_impl {
    ($stream:ty, $r:ty, $w:ty) => {
        impl Sock for $stream {
            type R = $r;
            type W = $w;
            fn split(self) -> (Self::R, Self::W) {
                self.into_split()
            }
            async fn sendfile(
                w: &Self::W,
                file: &std::fs::File,
                offset: &mut u64,
                len: usize,
            ) -> std::io::Result<usize> {
                use std::os::fd::AsRawFd;
                let s: &$stream = w.as_ref();
                loop {
                    s.writable().await?;
                    let r = s.try_io(tokio::io::Interest::WRITABLE, || {
                        let mut off = *offset as libc::off_t;
                        // SAFETY: both fds are open for the duration of the call; `off` is a
                        // valid pointer; the kernel copies at most `len` bytes.
                        let n = unsafe {
                            libc::sendfile(s.as_raw_fd(), file.as_raw_fd(), &mut off, len)
                        };
                        if n < 0 {
                            Err(std::io::Error::last_os_error())
                        } else {
                            Ok(n as usize)
                        }
                    });
                    match r {
                        Ok(n) => {
                            *offset += n as u64;
                            return Ok(n);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    };
}

sock_impl!(
    tokio::net::TcpStream,
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf
);
sock_impl!(
    tokio::net::UnixStream,
    tokio::net::unix::OwnedReadHalf,
    tokio::net::unix::OwnedWriteHalf
);

pub async fn serve<S: Sock>(
    stream: S,
    mut conn: ConnInfo,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut rd, mut wr) = stream.split();
    let start = Instant::now();
    let max = ctx.cfg.buffer_size.min(65535);
    let mut buf = BytesMut::with_capacity(max.max(4096) + HEADER_LEN);
    let timeout = ctx
        .cfg
        .socket_timeout
        .max(std::time::Duration::from_millis(100));
    let (header, head_len) = loop {
        match check(&buf, max) {
            Ok(Check::Complete { header, head_len }) => break (header, head_len),
            Ok(Check::Incomplete) => {}
            Err(e) => {
                tracing::warn!("uwsgi: {e}");
                return;
            }
        }
        let read = tokio::select! {
            r = tokio::time::timeout(timeout, rd.read_buf(&mut buf)) => r,
            _ = shutdown.changed() => return,
        };
        match read {
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!("uwsgi read: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("uwsgi: timeout reading the request head");
                return;
            }
        }
    };
    if header.modifier1 != 0 {
        tracing::warn!("-- unavailable modifier requested: {} --", header.modifier1);
        return;
    }
    let head = buf.split_to(head_len).freeze();
    let block = head.slice(HEADER_LEN..);
    let pairs: Vec<(Bytes, Bytes)> = match parse_vars(&block, ctx.cfg.max_vars as usize * 2) {
        Ok(v) => v
            .into_iter()
            .map(|(k, v)| (block.slice_ref(k), block.slice_ref(v)))
            .collect(),
        Err(e) => {
            tracing::warn!("uwsgi: {e}");
            return;
        }
    };
    let var = |name: &[u8]| {
        pairs
            .iter()
            .find(|(k, _)| &k[..] == name)
            .map(|(_, v)| v.clone())
    };
    let cl = var(b"CONTENT_LENGTH")
        .map(|v| content_length(&v))
        .unwrap_or(0);
    let proto = var(b"SERVER_PROTOCOL").filter(|p| !p.is_empty());
    let proto_s: &'static str = match proto.as_deref() {
        Some(b"HTTP/1.0") => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let status_proto: Bytes = proto.unwrap_or_else(|| Bytes::from_static(b"HTTP/1.1"));
    let limit = ctx.cfg.limit_post;
    if limit > 0 && cl > limit {
        tracing::warn!("request body of {cl} bytes exceeds limit-post {limit}");
        let mut out = Vec::new();
        out.extend_from_slice(&status_proto);
        out.extend_from_slice(b" 413 Request Entity Too Large\r\nContent-Type: text/plain\r\n\r\nRequest Entity Too Large\n");
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
        return;
    }
    let remote_addr = var(b"REMOTE_ADDR");
    conn.trusted = remote_addr
        .as_deref()
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|a| a.parse().ok())
        .is_some_and(|ip| ctx.is_trusted(Some(ip)));

    // Body: what already arrived, then up to the pre-read size, then a pump task.
    let mut log = if ctx.cfg.disable_logging {
        None
    } else {
        let s = |name: &[u8]| {
            var(name)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default()
        };
        let addr = if ctx.cfg.log_x_forwarded_for {
            var(b"HTTP_X_FORWARDED_FOR").map(|v| String::from_utf8_lossy(&v).into_owned())
        } else {
            None
        }
        .unwrap_or_else(|| s(b"REMOTE_ADDR"));
        Some(LogRecord {
            started: SystemTime::now(),
            addr,
            vars: pairs.len() * 2,
            vars_bytes: head_len - HEADER_LEN,
            method: s(b"REQUEST_METHOD"),
            uri: s(b"REQUEST_URI"),
            proto: proto_s,
            status: 0,
            headers: 0,
            headers_bytes: 0,
            core: 0,
            via: "",
            user: s(b"REMOTE_USER"),
            host: var(b"HTTP_HOST")
                .or_else(|| var(b"SERVER_NAME"))
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default(),
            uagent: s(b"HTTP_USER_AGENT"),
            referer: s(b"HTTP_REFERER"),
            cl,
            req_vars: ctx
                .log_format
                .as_ref()
                .map(|lf| lf.req_vars.iter().map(|v| s(v.as_bytes())).collect())
                .unwrap_or_default(),
        })
    };

    let mut pump = None;
    let static_answer = ctx.statics.as_ref().and_then(|st| {
        let method = var(b"REQUEST_METHOD").unwrap_or_default();
        let path = var(b"PATH_INFO").unwrap_or_default();
        let ims = var(b"HTTP_IF_MODIFIED_SINCE");
        let uri = var(b"REQUEST_URI").unwrap_or_default();
        st.lookup(&crate::statics::Request {
            method: &method,
            path_info: &path,
            request_uri: &uri,
            if_modified_since: ims.as_deref(),
        })
        .map(|a| (a, &method[..] == b"HEAD"))
    });
    let head = if let Some((answer, is_head)) = static_answer {
        crate::statics::into_head(answer, is_head)
    } else {
        let body = {
            let mut initial = buf;
            initial.truncate(cl.min(initial.len() as u64) as usize);
            let want = cl.min(ctx.preread as u64) as usize;
            while initial.len() < want {
                match tokio::time::timeout(timeout, rd.read_buf(&mut initial)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                        tracing::debug!("uwsgi: client went away while sending the body");
                        return;
                    }
                    Ok(Ok(_)) => {}
                }
            }
            initial.truncate(cl.min(initial.len() as u64) as usize);
            let left = cl - initial.len() as u64;
            let rest = if left > 0 {
                let (tx, rx) = mpsc::channel::<BodyChunk>(4);
                pump = Some(tokio::spawn(async move {
                    let mut left = left;
                    while left > 0 {
                        let mut chunk = BytesMut::with_capacity((left.min(64 * 1024)) as usize);
                        let item =
                            match tokio::time::timeout(timeout, rd.read_buf(&mut chunk)).await {
                                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => Err(BodyError::Disconnected),
                                Ok(Ok(n)) => {
                                    left -= n as u64;
                                    Ok(chunk.freeze())
                                }
                            };
                        let stop = item.is_err();
                        if tx.send(item).await.is_err() || stop {
                            return;
                        }
                    }
                }));
                Some(rx)
            } else {
                None
            };
            RequestBody {
                initial: initial.freeze(),
                rest,
            }
        };

        dispatch(&ctx, Vars::Uwsgi(pairs), conn, body).await
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&status_proto);
    out.push(b' ');
    out.extend_from_slice(head.status.to_string().as_bytes());
    out.push(b' ');
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
    for (k, v) in head.headers.iter().chain(ctx.add_headers.iter()) {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(l) = log.as_mut() {
        l.status = head.status;
        l.core = head.core;
        l.headers = head.headers.len();
        l.headers_bytes = out.len();
    }
    let mut sent: u64 = 0;
    let ok = match head.body {
        ResponseBody::Full(b) => {
            sent = b.len() as u64;
            if b.len() <= 64 * 1024 {
                out.extend_from_slice(&b);
                wr.write_all(&out).await.is_ok()
            } else {
                wr.write_all(&out).await.is_ok() && wr.write_all(&b).await.is_ok()
            }
        }
        ResponseBody::Stream(mut rx) => {
            let mut ok = wr.write_all(&out).await.is_ok();
            while ok {
                match rx.recv().await {
                    Some(Ok(chunk)) => {
                        sent += chunk.len() as u64;
                        ok = wr.write_all(&chunk).await.is_ok();
                    }
                    Some(Err(_)) => {
                        ok = false;
                    }
                    None => break,
                }
            }
            ok
        }
        ResponseBody::File(f) => {
            // sendfile(): the file goes from the page cache to the socket without copies.
            let mut ok = wr.write_all(&out).await.is_ok() && wr.flush().await.is_ok();
            let mut offset = f.offset;
            let mut left = f.len.unwrap_or(u64::MAX);
            while ok && left > 0 {
                let chunk = left.min(1 << 20) as usize;
                match S::sendfile(&wr, &f.file, &mut offset, chunk).await {
                    Ok(0) => break,
                    Ok(n) => {
                        sent += n as u64;
                        left -= n as u64;
                    }
                    Err(e) => {
                        tracing::debug!("sendfile: {e}");
                        ok = false;
                    }
                }
            }
            if let Some(l) = log.as_mut() {
                l.via = " via sendfile()";
            }
            ok
        }
    };
    if ok {
        let _ = wr.shutdown().await;
    }
    if let Some(p) = pump {
        p.abort();
    }
    let elapsed = start.elapsed();
    let n = ctx.finish(elapsed, sent);
    if let Some(l) = log {
        l.write(&ctx, n, sent, elapsed);
    }
}
