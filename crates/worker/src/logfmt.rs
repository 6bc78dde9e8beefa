//! `log-format` templates (uWSGI semantics §9): `%(name)` variables, parsed once.
//!
//! Supported: uri method user addr host proto uagent referer status rsize hsize size cl micros
//! msecs secs tmsecs tmicros time ltime ftime ctime epoch pid wid core switches vars pktsize
//! modifier1 modifier2 headers werr rerr ioerr vsz rss vszM rssM and `var.NAME`
//! (`liege_config::value::LOG_FORMAT_VARS`). The config layer refuses any other name (uWSGI's
//! app-set logvars and metrics); should one get here it renders as `-`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Var(String),
    /// `var.NAME`: index into the record's captured values.
    ReqVar(usize),
}

#[derive(Debug, Clone)]
pub struct LogFormat {
    pieces: Vec<Piece>,
    /// The request variables `var.NAME` asks for, in capture order.
    pub req_vars: Vec<String>,
}

impl LogFormat {
    pub fn parse(fmt: &str) -> LogFormat {
        let mut pieces = Vec::new();
        let mut req_vars: Vec<String> = Vec::new();
        let mut lit = String::new();
        let mut rest = fmt;
        while let Some(i) = rest.find("%(") {
            let Some(end) = rest[i + 2..].find(')') else {
                break;
            };
            lit.push_str(&rest[..i]);
            let name = &rest[i + 2..i + 2 + end];
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            match name.strip_prefix("var.") {
                Some(v) => {
                    let idx = match req_vars.iter().position(|x| x == v) {
                        Some(p) => p,
                        None => {
                            req_vars.push(v.to_string());
                            req_vars.len() - 1
                        }
                    };
                    pieces.push(Piece::ReqVar(idx));
                }
                None => pieces.push(Piece::Var(name.to_string())),
            }
            rest = &rest[i + 2 + end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        LogFormat { pieces, req_vars }
    }

    pub fn render(&self, f: &Fields<'_>) -> String {
        let mut out = String::with_capacity(128);
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::ReqVar(i) => {
                    out.push_str(f.req_vars.get(*i).map(String::as_str).unwrap_or(""))
                }
                Piece::Var(name) => render_var(&mut out, name, f),
            }
        }
        out.push('\n');
        out
    }
}

/// Everything a template can refer to.
pub struct Fields<'a> {
    pub uri: &'a str,
    pub method: &'a str,
    pub user: &'a str,
    pub addr: &'a str,
    pub host: &'a str,
    pub proto: &'a str,
    pub uagent: &'a str,
    pub referer: &'a str,
    pub status: u16,
    pub rsize: u64,
    pub hsize: usize,
    pub cl: u64,
    pub elapsed: Duration,
    pub started: SystemTime,
    pub pid: u32,
    pub wid: u32,
    pub core: u32,
    pub vars: usize,
    pub pktsize: usize,
    pub headers: usize,
    pub req_vars: &'a [String],
}

fn unix(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

pub use liege_sys::log::{ctime, local_strftime};

fn render_var(out: &mut String, name: &str, f: &Fields<'_>) {
    let mem = || {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let mut it = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let vsz = it.next().unwrap_or(0) * page;
        let rss = it.next().unwrap_or(0) * page;
        (vsz, rss)
    };
    let _ = match name {
        "uri" => write!(out, "{}", f.uri),
        "method" => write!(out, "{}", f.method),
        "user" => write!(out, "{}", f.user),
        "addr" => write!(out, "{}", f.addr),
        "host" => write!(out, "{}", f.host),
        "proto" => write!(out, "{}", f.proto),
        "uagent" => write!(out, "{}", f.uagent),
        "referer" => write!(out, "{}", f.referer),
        "status" => write!(out, "{}", f.status),
        "rsize" => write!(out, "{}", f.rsize),
        "hsize" => write!(out, "{}", f.hsize),
        "size" => write!(out, "{}", f.rsize + f.hsize as u64),
        "cl" => write!(out, "{}", f.cl),
        "micros" => write!(out, "{}", f.elapsed.as_micros()),
        "msecs" => write!(out, "{}", f.elapsed.as_millis()),
        "secs" => write!(out, "{:.6}", f.elapsed.as_secs_f64()),
        "tmsecs" => write!(out, "{}", unix(f.started).as_millis()),
        "tmicros" => write!(out, "{}", unix(f.started).as_micros()),
        "time" => write!(out, "{}", unix(f.started).as_secs()),
        "ltime" | "ftime" => write!(out, "{}", local_strftime(f.started, "%d/%b/%Y:%H:%M:%S %z")),
        "ctime" => write!(out, "{}", ctime(f.started)),
        "epoch" => write!(out, "{}", unix(SystemTime::now()).as_secs()),
        "pid" => write!(out, "{}", f.pid),
        "wid" => write!(out, "{}", f.wid),
        "core" => write!(out, "{}", f.core),
        "switches" => write!(out, "1"),
        "vars" => write!(out, "{}", f.vars),
        "pktsize" => write!(out, "{}", f.pktsize),
        "modifier1" | "modifier2" | "werr" | "rerr" | "ioerr" => write!(out, "0"),
        "headers" => write!(out, "{}", f.headers),
        "vsz" => write!(out, "{}", mem().0),
        "rss" => write!(out, "{}", mem().1),
        "vszM" => write!(out, "{}", mem().0 / (1024 * 1024)),
        "rssM" => write!(out, "{}", mem().1 / (1024 * 1024)),
        _ => write!(out, "-"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let lf = LogFormat::parse("%(addr) - %(user) [%(status)] %(method) %(uri) %(var.HTTP_X_ID) %(var.HTTP_X_ID) %(nope) %(rsize)");
        assert_eq!(lf.req_vars, vec!["HTTP_X_ID".to_string()]);
        let vars = vec!["abc".to_string()];
        let f = Fields {
            uri: "/x?y",
            method: "GET",
            user: "",
            addr: "1.2.3.4",
            host: "h",
            proto: "HTTP/1.1",
            uagent: "",
            referer: "",
            status: 200,
            rsize: 11,
            hsize: 40,
            cl: 0,
            elapsed: Duration::from_millis(3),
            started: SystemTime::now(),
            pid: 1,
            wid: 1,
            core: 0,
            vars: 10,
            pktsize: 100,
            headers: 1,
            req_vars: &vars,
        };
        assert_eq!(lf.render(&f), "1.2.3.4 -  [200] GET /x?y abc abc - 11\n");
        let lf = LogFormat::parse("no vars %(unterminated");
        assert_eq!(lf.render(&f), "no vars %(unterminated\n");
    }
}
