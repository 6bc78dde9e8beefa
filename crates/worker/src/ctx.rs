//! State shared by the serving threads and the control thread: config, counters, the
//! request log.

use liege_config::WorkerConfig;
use liege_protocol::control::WorkerStats;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Body bytes read (by the serving thread, the connection parked while they arrive)
/// before the app is called, unless `post-buffering` asks for more: a body up to this size
/// never makes a thread wait for the client.
pub const PREREAD: usize = 1 << 20;

pub struct Ctx {
    pub cfg: WorkerConfig,
    pub stats: Stats,
    pub exceptions: Arc<AtomicU64>,
    pub trusted: Vec<(IpAddr, u8)>,
    pub trust_unix: bool,
    pub pid: u32,
    pub app_loaded: bool,
    pub preread: usize,
    /// `add-header` entries, parsed once.
    pub add_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Recycle after this many requests (`max-requests` + id × `max-requests-delta`; 0 = never).
    pub max_requests: u64,
    /// Static file serving, when any static option is set.
    pub statics: Option<crate::statics::Statics>,
    /// `log-format`, parsed once.
    pub log_format: Option<crate::logfmt::LogFormat>,
    /// This worker's id (`%(wid)`).
    pub wid: u32,
    /// Per Python thread: unix ms when its current request started, 0 when idle.
    pub busy_since: Vec<AtomicU64>,
    /// This worker's scoreboard slot, where [`Ctx::finish`] publishes the counters for the
    /// master's stats (its own mapping, separate from the acceptor's).
    pub live: Option<LiveSlot>,
}

/// A mapping of the scoreboard and this worker's slot in it.
pub struct LiveSlot {
    sb: liege_sys::scoreboard::Scoreboard,
    slot: u32,
}

impl LiveSlot {
    pub fn open(r: &liege_config::ScoreboardRef) -> std::io::Result<LiveSlot> {
        Ok(LiveSlot {
            sb: liege_sys::scoreboard::Scoreboard::open(r.fd)?,
            slot: r.slot,
        })
    }
}

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub tx: AtomicU64,
    pub running_time: AtomicU64,
    pub avg_rt: AtomicU64,
}

/// Parse `add-header = Name: value` entries.
pub fn parse_add_headers(
    list: &[String],
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    list.iter()
        .map(|h| {
            let (n, v) = h
                .split_once(':')
                .ok_or_else(|| format!("add-header {h:?}: expected `Name: value`"))?;
            let name = http::HeaderName::from_bytes(n.trim().as_bytes())
                .map_err(|_| format!("add-header {h:?}: invalid header name"))?;
            let value = http::HeaderValue::from_str(v.trim())
                .map_err(|_| format!("add-header {h:?}: invalid header value"))?;
            Ok((name, value))
        })
        .collect()
}

impl Ctx {
    pub fn snapshot(&self) -> WorkerStats {
        let (rss, vsz) = memory();
        WorkerStats {
            requests: self.stats.requests.load(Ordering::Relaxed),
            exceptions: self.exceptions.load(Ordering::Relaxed),
            tx: self.stats.tx.load(Ordering::Relaxed),
            running_time: self.stats.running_time.load(Ordering::Relaxed),
            avg_rt: self.stats.avg_rt.load(Ordering::Relaxed),
            rss,
            vsz,
            in_request: self
                .busy_since
                .iter()
                .filter(|b| b.load(Ordering::Relaxed) != 0)
                .count() as u32,
        }
    }

    /// Is `ip` a trusted proxy (`trusted-proxy` list: addresses or CIDR blocks)?
    pub fn is_trusted(&self, ip: Option<IpAddr>) -> bool {
        match ip {
            None => self.trust_unix,
            Some(ip) => self
                .trusted
                .iter()
                .any(|(net, bits)| in_net(ip, *net, *bits)),
        }
    }

    /// Count a finished request: returns its number in this worker.
    pub fn finish(&self, elapsed: Duration, sent: u64) -> u64 {
        let us = elapsed.as_micros() as u64;
        self.stats.tx.fetch_add(sent, Ordering::Relaxed);
        self.stats.running_time.fetch_add(us, Ordering::Relaxed);
        let avg = self.stats.avg_rt.load(Ordering::Relaxed);
        self.stats.avg_rt.store(
            if avg == 0 { us } else { (avg + us) / 2 },
            Ordering::Relaxed,
        );
        let n = self.stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(l) = &self.live {
            l.sb.slot(l.slot).publish(liege_sys::scoreboard::Live {
                requests: n,
                tx: self.stats.tx.load(Ordering::Relaxed),
                running_time: self.stats.running_time.load(Ordering::Relaxed),
                avg_rt: self.stats.avg_rt.load(Ordering::Relaxed),
            });
        }
        n
    }

    /// The start (unix ms) of the oldest request running in Python, if any.
    pub fn oldest_busy(&self) -> Option<u64> {
        self.busy_since
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|&t| t != 0)
            .min()
    }
}

/// Parse `trusted-proxy` entries (`1.2.3.4`, `10.0.0.0/8`, `::1`, `unix`).
pub fn parse_trusted(list: &[String]) -> (Vec<(IpAddr, u8)>, bool) {
    let mut out = Vec::new();
    let mut unix = false;
    for entry in list {
        let e = entry.trim();
        if e == "unix" {
            unix = true;
            continue;
        }
        let (addr, bits) = match e.split_once('/') {
            Some((a, b)) => (a, b.parse::<u8>().ok()),
            None => (e, None),
        };
        match addr.parse::<IpAddr>() {
            Ok(ip) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                out.push((ip, bits.unwrap_or(max).min(max)));
            }
            Err(_) => {
                tracing::warn!("trusted-proxy {e:?} is not an address or CIDR block; ignored")
            }
        }
    }
    (out, unix)
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits as u32)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits as u32)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn memory() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return (0, 0);
    };
    let mut it = s.split_whitespace();
    let vsz: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let rss: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    (rss * page, vsz * page)
}

/// Everything the uWSGI default request log line needs (§9).
pub struct LogRecord {
    pub started: SystemTime,
    pub addr: String,
    pub vars: usize,
    pub vars_bytes: usize,
    pub method: String,
    pub uri: String,
    pub proto: &'static str,
    pub status: u16,
    pub headers: usize,
    pub headers_bytes: usize,
    pub core: u32,
    /// `" via sendfile()"` etc., appended after the timing like uWSGI.
    pub via: &'static str,
    /// For `log-format`: REMOTE_USER, Host, User-Agent, Referer, the request Content-Length,
    /// and the `var.NAME` values the template asks for (in its order).
    pub user: String,
    pub host: String,
    pub uagent: String,
    pub referer: String,
    pub cl: u64,
    pub req_vars: Vec<String>,
}

impl LogRecord {
    /// Fill in what the response head says.
    pub fn set_head(&mut self, h: &liege_wsgi::types::ResponseHead) {
        self.status = h.status;
        self.core = h.core;
        self.headers = h.headers.len();
        self.headers_bytes = h
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
            + 17;
    }

    /// Write the line to stderr in one write.
    pub fn write(&self, ctx: &Ctx, req_no: u64, sent: u64, elapsed: Duration) {
        let line = match &ctx.log_format {
            Some(lf) => lf.render(&crate::logfmt::Fields {
                uri: &self.uri,
                method: &self.method,
                user: &self.user,
                addr: &self.addr,
                host: &self.host,
                proto: self.proto,
                uagent: &self.uagent,
                referer: &self.referer,
                status: self.status,
                rsize: sent,
                hsize: self.headers_bytes,
                cl: self.cl,
                elapsed,
                started: self.started,
                pid: ctx.pid,
                wid: ctx.wid,
                core: self.core,
                vars: self.vars,
                pktsize: self.vars_bytes,
                headers: self.headers,
                req_vars: &self.req_vars,
            }),
            None => {
                let app = if ctx.app_loaded { 0 } else { -1 };
                format!(
                    "[pid: {pid}|app: {app}|req: {n}/{n}] {addr} ({user}) {{{vars} vars in {vb} bytes}} [{ct}] {method} {uri} => generated {sent} bytes in {ms} msecs{via} ({proto} {status}) {h} headers in {hb} bytes (1 switches on core {core})\n",
                    pid = ctx.pid,
                    n = if ctx.app_loaded { req_no as i64 } else { -1 },
                    addr = self.addr,
                    user = self.user,
                    vars = self.vars,
                    vb = self.vars_bytes,
                    ct = cached_ctime(self.started),
                    method = self.method,
                    uri = self.uri,
                    ms = elapsed.as_millis(),
                    via = self.via,
                    proto = self.proto,
                    status = self.status,
                    h = self.headers,
                    hb = self.headers_bytes,
                    core = self.core,
                )
            }
        };
        let line = match &ctx.cfg.log_date {
            None => line,
            Some(f) => format!("{}{line}", liege_sys::log::date_prefix(Some(f))),
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `ctime()` of the request start, formatted once per second per serving thread.
fn cached_ctime(t: SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, crate::logfmt::ctime(t));
        }
        c.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let (nets, unix) = parse_trusted(&["10.0.0.0/8".into(), "::1".into(), "unix".into()]);
        assert!(unix);
        let ctx_match = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            nets.iter().any(|(n, b)| in_net(ip, *n, *b))
        };
        assert!(ctx_match("10.1.2.3"));
        assert!(ctx_match("::ffff:10.1.2.3"));
        assert!(!ctx_match("11.1.2.3"));
        assert!(ctx_match("::1"));
        assert!(!ctx_match("::2"));
    }
}
