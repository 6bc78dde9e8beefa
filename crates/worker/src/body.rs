//! Bodies on the I/O side: pre-reading request bodies, streaming the rest, and the response
//! body type given to hyper (which also writes the request log line when it is dropped).

use crate::ctx::{Ctx, LogRecord};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use liege_wsgi::types::{
    Aborted, BodyChunk, BodyError, FileBody, RequestBody, RespChunk, ResponseBody,
};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

/// Request body chunks in flight between the socket and `wsgi.input`.
const BODY_CHANNEL: usize = 4;

/// Read up to `preread` bytes of the body; the rest is pumped by a task into a channel.
/// `limit` is `limit-post` (0 = none).
pub async fn preread_http(
    mut incoming: hyper::body::Incoming,
    preread: usize,
    limit: u64,
) -> Result<RequestBody, BodyError> {
    if incoming.is_end_stream() {
        return Ok(RequestBody::default());
    }
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total: u64 = 0;
    loop {
        let len = buf
            .as_ref()
            .map(|b| b.len())
            .or(first.as_ref().map(|b| b.len()))
            .unwrap_or(0);
        if len >= preread {
            break;
        }
        match incoming.frame().await {
            None => {
                let initial = match (first, buf) {
                    (_, Some(b)) => b.freeze(),
                    (Some(f), None) => f,
                    (None, None) => Bytes::new(),
                };
                return Ok(RequestBody {
                    initial,
                    rest: None,
                });
            }
            Some(Err(e)) => return Err(BodyError::Io(e.to_string())),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                total += data.len() as u64;
                if limit > 0 && total > limit {
                    return Err(BodyError::TooLarge(limit));
                }
                match (&mut first, &mut buf) {
                    (None, None) => first = Some(data),
                    (Some(f), None) => {
                        let mut m = BytesMut::with_capacity(preread.max(f.len() + data.len()));
                        m.extend_from_slice(f);
                        m.extend_from_slice(&data);
                        buf = Some(m);
                        first = None;
                    }
                    (_, Some(m)) => m.extend_from_slice(&data),
                }
            }
        }
    }
    let initial = match (first, buf) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    };
    let (tx, rx) = mpsc::channel(BODY_CHANNEL);
    tokio::spawn(async move {
        loop {
            let item: BodyChunk = match incoming.frame().await {
                None => return,
                Some(Err(e)) => Err(if e.is_incomplete_message() {
                    BodyError::Disconnected
                } else {
                    BodyError::Io(e.to_string())
                }),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => {
                        total += d.len() as u64;
                        if limit > 0 && total > limit {
                            Err(BodyError::TooLarge(limit))
                        } else {
                            Ok(d)
                        }
                    }
                    Err(_) => continue,
                },
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    Ok(RequestBody {
        initial,
        rest: Some(rx),
    })
}

/// Block size for files sent over HTTP (static files, `wsgi.file_wrapper`).
const FILE_BLOCK: u64 = 256 * 1024;

/// Turn a file body into a stream of chunks read on the blocking pool. At most two blocks
/// wait in the channel, so a slow client pins about 512 KiB plus hyper's buffer.
pub fn file_stream(f: FileBody) -> mpsc::Receiver<RespChunk> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut off = f.offset;
        let mut left = f.len.unwrap_or(u64::MAX);
        while left > 0 {
            // Read straight into the chunk handed to hyper (no copy); hyper queues it for
            // writev as is.
            let want = FILE_BLOCK.min(left) as usize;
            let mut buf = vec![0u8; want];
            match f.file.read_at(&mut buf, off) {
                Ok(0) => break,
                Ok(n) => {
                    off += n as u64;
                    left -= n as u64;
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!("reading the file of a file_wrapper: {e}");
                    let _ = tx.blocking_send(Err(Aborted));
                    return;
                }
            }
        }
    });
    rx
}

enum Kind {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<RespChunk>),
}

/// The response body handed to hyper. Counts bytes; on drop, updates stats and logs.
pub struct RespBody {
    kind: Kind,
    sent: u64,
    done: Option<Done>,
    /// The app failed mid-body: answer Pending once (so hyper flushes what it buffered),
    /// then the error that makes hyper close the connection without ending the body.
    aborting: bool,
}

struct Done {
    ctx: Arc<Ctx>,
    start: Instant,
    log: Option<Box<LogRecord>>,
}

impl RespBody {
    pub fn new(
        body: ResponseBody,
        ctx: Arc<Ctx>,
        start: Instant,
        log: Option<Box<LogRecord>>,
    ) -> RespBody {
        let kind = match body {
            ResponseBody::Full(b) => Kind::Full(Some(b)),
            ResponseBody::Stream(rx) => Kind::Stream(rx),
            ResponseBody::File(f) => Kind::Stream(file_stream(f)),
        };
        RespBody {
            kind,
            sent: 0,
            done: Some(Done { ctx, start, log }),
            aborting: false,
        }
    }
}

impl Drop for RespBody {
    fn drop(&mut self) {
        if let Some(d) = self.done.take() {
            let elapsed = d.start.elapsed();
            let n = d.ctx.finish(elapsed, self.sent);
            if let Some(log) = d.log {
                log.write(&d.ctx, n, self.sent, elapsed);
            }
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let this = &mut *self;
        if this.aborting {
            return Poll::Ready(Some(Err(Aborted)));
        }
        match &mut this.kind {
            Kind::Full(b) => match b.take() {
                Some(b) if !b.is_empty() => {
                    this.sent += b.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                _ => Poll::Ready(None),
            },
            Kind::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    this.sent += b.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(_))) => {
                    this.aborting = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(None))
            || matches!(&self.kind, Kind::Full(Some(b)) if b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
