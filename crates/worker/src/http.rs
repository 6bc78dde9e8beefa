//! HTTP/1.1 listeners (`http`, `http-socket`), served by hyper: keep-alive, chunked both
//! ways, pipelining, `Expect: 100-continue`, HEAD, HTTP/1.0, head limits (431).

use crate::body::{preread_http, RespBody};
use crate::ctx::{Ctx, LogRecord};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use liege_wsgi::types::{
    BodyError, ConnInfo, HttpHead, RequestBody, ResponseBody, ResponseHead, Vars,
};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch, Notify};

pub fn builder(ctx: &Ctx) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(ctx.cfg.http_keepalive)
        .max_headers((ctx.cfg.max_vars as usize).max(16))
        .max_header_size(ctx.cfg.buffer_size.max(1024))
        .max_buf_size((ctx.cfg.buffer_size + 4096).max(8192).max(64 * 1024))
        // A request head (or the next one on an idle keep-alive connection) must arrive
        // within 30 s, or the connection is closed.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30).max(ctx.cfg.socket_timeout));
    b
}

/// Serve one HTTP connection until it closes, or until shutdown (then finish the request in
/// flight and close).
pub async fn serve<S>(
    io: S,
    conn: ConnInfo,
    ctx: Arc<Ctx>,
    builder: Arc<http1::Builder>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn);
    let svc_ctx = ctx.clone();
    // Set (and `first` notified) when the connection's first request reaches the service.
    let seen = Arc::new(AtomicBool::new(false));
    let first = Arc::new(Notify::new());
    let (svc_seen, svc_first) = (seen.clone(), first.clone());
    let service = hyper::service::service_fn(move |req| {
        if !svc_seen.load(Ordering::Relaxed) && !svc_seen.swap(true, Ordering::AcqRel) {
            svc_first.notify_one();
        }
        let ctx = svc_ctx.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(req, &conn, ctx).await) }
    });
    let c = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(c);
    // Resolves once the worker stops. A connection we accepted but whose first request has
    // not arrived yet is owed an answer (the client sees an accepted connection, not a
    // refused one): hyper's graceful_shutdown would close it unanswered, so the stop also
    // waits for that first request, up to socket-timeout. Idle keep-alive connections that
    // were already served close at once.
    let stopped = async {
        if !*shutdown.borrow() {
            let _ = shutdown.changed().await;
        }
        if !seen.load(Ordering::Acquire) {
            tokio::select! {
                _ = first.notified() => {}
                _ = tokio::time::sleep(ctx.cfg.socket_timeout) => {}
            }
        }
    };
    let r = tokio::select! {
        r = c.as_mut() => r,
        _ = stopped => {
            c.as_mut().graceful_shutdown();
            c.await
        }
    };
    if let Err(e) = r {
        tracing::debug!("http connection: {e}");
    }
}

fn simple(
    status: StatusCode,
    text: &'static str,
    ctx: &Arc<Ctx>,
    start: Instant,
    mut log: Option<Box<LogRecord>>,
) -> Response<RespBody> {
    if let Some(l) = log.as_mut() {
        l.status = status.as_u16();
        l.headers = 1;
        l.headers_bytes = 44;
    }
    let mut r = Response::new(RespBody::new(
        ResponseBody::Full(Bytes::from_static(text.as_bytes())),
        ctx.clone(),
        start,
        log,
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

/// Headers whose names collide once `-` and `_` are folded (`X-Foo` vs `X_Foo`): a request
/// smuggling ambiguity in the environ; refused with 400.
pub fn header_collision(headers: &http::HeaderMap) -> Option<String> {
    if !headers.keys().any(|k| k.as_str().contains('_')) {
        return None;
    }
    let mut seen = std::collections::HashMap::new();
    for k in headers.keys() {
        let folded = k.as_str().replace('-', "_");
        if let Some(prev) = seen.insert(folded, k.as_str()) {
            return Some(format!("{prev} / {}", k.as_str()));
        }
    }
    None
}

async fn handle(req: Request<Incoming>, conn: &ConnInfo, ctx: Arc<Ctx>) -> Response<RespBody> {
    let start = Instant::now();
    let (parts, incoming) = req.into_parts();
    let log = if ctx.cfg.disable_logging {
        None
    } else {
        let addr = if ctx.cfg.log_x_forwarded_for {
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        } else {
            None
        };
        let addr = addr.unwrap_or_else(|| match conn.peer {
            Some(p) => p.ip().to_string(),
            None => "0.0.0.0".to_string(),
        });
        let hbytes: usize = parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        Some(Box::new(LogRecord {
            started: SystemTime::now(),
            addr,
            vars: (parts.headers.len() + 12) * 2,
            vars_bytes: hbytes + parts.uri.path_and_query().map_or(1, |p| p.as_str().len()) + 16,
            method: parts.method.to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| parts.uri.to_string()),
            proto: match parts.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            status: 0,
            headers: 0,
            headers_bytes: 0,
            core: 0,
            via: "",
            user: String::new(),
            host: hdr(&parts.headers, http::header::HOST),
            uagent: hdr(&parts.headers, http::header::USER_AGENT),
            referer: hdr(&parts.headers, http::header::REFERER),
            cl: hdr(&parts.headers, http::header::CONTENT_LENGTH)
                .parse()
                .unwrap_or(0),
            req_vars: ctx
                .log_format
                .as_ref()
                .map(|lf| {
                    lf.req_vars
                        .iter()
                        .map(|v| http_var(v, &parts, conn))
                        .collect()
                })
                .unwrap_or_default(),
        }))
    };
    if let Some(names) = header_collision(&parts.headers) {
        tracing::warn!("refusing a request with colliding header names: {names}");
        return simple(
            StatusCode::BAD_REQUEST,
            "Bad Request: ambiguous header names\n",
            &ctx,
            start,
            log,
        );
    }
    let limit = ctx.cfg.limit_post;
    if limit > 0 {
        let cl = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if cl.is_some_and(|cl| cl > limit) {
            tracing::warn!(
                "request body of {} bytes exceeds limit-post {limit}",
                cl.unwrap_or(0)
            );
            return simple(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large\n",
                &ctx,
                start,
                log,
            );
        }
    }
    if let Some(st) = &ctx.statics {
        let path = liege_wsgi::handler::decode_path(parts.uri.path().as_bytes());
        let answer = st.lookup(&crate::statics::Request {
            method: parts.method.as_str().as_bytes(),
            path_info: &path,
            request_uri: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().as_bytes())
                .unwrap_or_default(),
            if_modified_since: parts
                .headers
                .get(http::header::IF_MODIFIED_SINCE)
                .map(|v| v.as_bytes()),
        });
        if let Some(a) = answer {
            let is_head = parts.method == http::Method::HEAD;
            return respond(crate::statics::into_head(a, is_head), ctx, start, log);
        }
    }
    let body: RequestBody = match preread_http(incoming, ctx.preread, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => {
            tracing::warn!("request body exceeds limit-post {limit}");
            return simple(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large\n",
                &ctx,
                start,
                log,
            );
        }
        Err(e) => {
            tracing::debug!("{e}");
            return simple(StatusCode::BAD_REQUEST, "Bad Request\n", &ctx, start, log);
        }
    };

    let head = HttpHead {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
    };
    let head = dispatch(&ctx, Vars::Http(head), conn.clone(), body).await;
    respond(head, ctx, start, log)
}

/// Queue a request for Python and wait for its response head.
pub async fn dispatch(
    ctx: &Arc<Ctx>,
    vars: Vars,
    conn: ConnInfo,
    body: RequestBody,
) -> ResponseHead {
    let permit = match ctx.permits.clone().acquire_owned().await {
        Ok(p) => p,
        Err(_) => return ResponseHead::error(503, "Service Unavailable\n"),
    };
    let (tx, rx) = oneshot::channel();
    let req = liege_wsgi::types::Request {
        vars,
        conn,
        body,
        reply: tx,
        permit: Some(Box::new(permit)),
    };
    if ctx.queue.push(req).is_err() {
        return ResponseHead::error(503, "Service Unavailable\n");
    }
    match rx.await {
        Ok(h) => h,
        Err(_) => ResponseHead::error(500, "Internal Server Error\n"),
    }
}

fn respond(
    head: ResponseHead,
    ctx: Arc<Ctx>,
    start: Instant,
    mut log: Option<Box<LogRecord>>,
) -> Response<RespBody> {
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(l) = log.as_mut() {
        l.status = head.status;
        l.core = head.core;
        l.headers = head.headers.len();
        l.headers_bytes = head
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
            + 17;
    }
    let mut r = Response::new(RespBody::new(head.body, ctx.clone(), start, log));
    let ctx = &ctx;
    *r.status_mut() = status;
    if let Some(reason) = head.reason {
        if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(reason) {
            r.extensions_mut().insert(rp);
        }
    }
    let h = r.headers_mut();
    h.reserve(head.headers.len());
    for (k, v) in head.headers {
        h.append(k, v);
    }
    for (k, v) in &ctx.add_headers {
        h.append(k.clone(), v.clone());
    }
    r
}

fn hdr(h: &http::HeaderMap, name: http::header::HeaderName) -> String {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// A request variable by its CGI/environ name, for `%(var.NAME)` in `log-format`.
fn http_var(name: &str, parts: &http::request::Parts, conn: &ConnInfo) -> String {
    if let Some(h) = name.strip_prefix("HTTP_") {
        let h = h.to_ascii_lowercase().replace('_', "-");
        return parts
            .headers
            .get(h.as_str())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
    }
    match name {
        "REQUEST_METHOD" => parts.method.to_string(),
        "REQUEST_URI" => parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        "PATH_INFO" => String::from_utf8_lossy(&liege_wsgi::handler::decode_path(
            parts.uri.path().as_bytes(),
        ))
        .into_owned(),
        "QUERY_STRING" => parts.uri.query().unwrap_or("").to_string(),
        "CONTENT_TYPE" => hdr(&parts.headers, http::header::CONTENT_TYPE),
        "CONTENT_LENGTH" => hdr(&parts.headers, http::header::CONTENT_LENGTH),
        "REMOTE_ADDR" => conn.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        "REMOTE_PORT" => conn.peer.map(|p| p.port().to_string()).unwrap_or_default(),
        "SERVER_PORT" => conn.server_port.to_string(),
        _ => String::new(),
    }
}
