//! Emperor stats: uWSGI's emperor stats JSON (§7.11, so `uwsgitop` and exporters keep
//! working) plus liege's fields, served on `emperor-stats = ADDR`; and the
//! `liege --status ADDR` client that prints it as a table.

use serde::{Deserialize, Serialize};
use std::io::Read;

/// The whole document (one per connection).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct StatsDoc {
    pub version: String,
    pub pid: i64,
    pub uid: i64,
    pub gid: i64,
    pub cwd: String,
    pub emperor: Vec<String>,
    pub emperor_tyrant: i64,
    pub throttle_level: i64,
    pub vassals: Vec<VassalStats>,
    pub blacklist: Vec<BlacklistEntry>,
}

/// One vassal: uWSGI's keys (integers, epoch seconds) then liege's.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct VassalStats {
    pub id: String,
    pub pid: i64,
    pub born: i64,
    pub last_mod: i64,
    pub last_heartbeat: i64,
    pub loyal: i64,
    pub ready: i64,
    pub accepting: i64,
    pub last_loyal: i64,
    pub last_ready: i64,
    pub last_accepting: i64,
    pub first_run: i64,
    pub last_run: i64,
    pub cursed: i64,
    pub zerg: i64,
    pub on_demand: String,
    pub uid: i64,
    pub gid: i64,
    pub monitor: String,
    pub respawns: i64,
    // liege's own fields
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Hash of the configuration the running process was started/reloaded with.
    #[serde(default)]
    pub config_hash: Option<String>,
    /// Hash of the file on disk now (differs while a broken edit is pending).
    #[serde(default)]
    pub config_hash_disk: Option<String>,
    /// Epoch seconds of the next restart attempt while throttled, else 0.
    #[serde(default)]
    pub next_retry: i64,
    #[serde(default)]
    pub next_retry_in_ms: i64,
    #[serde(default)]
    pub attempts: i64,
    /// Reload requests sent to this vassal (touch, edit, SIGHUP).
    #[serde(default)]
    pub reloads: i64,
    /// Epoch milliseconds of the last reload request (0 = none).
    #[serde(default)]
    pub last_reload_ms: i64,
}

/// A throttled vassal, in uWSGI's blacklist shape.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct BlacklistEntry {
    pub id: String,
    /// Current back-off, in milliseconds.
    pub throttle_level: i64,
    pub attempt: i64,
    pub first_attempt: i64,
    pub last_attempt: i64,
}

/// Render the document like uWSGI: tab-indented, or minified.
pub fn render(doc: &StatsDoc, minified: bool, http: bool) -> Vec<u8> {
    let body = if minified {
        serde_json::to_vec(doc).unwrap_or_default()
    } else {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        let _ = doc.serialize(&mut ser);
        buf.push(b'\n');
        buf
    };
    if http {
        let mut out = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    } else {
        body
    }
}

/// Read until EOF. Stats servers (uWSGI's, ours) write without reading a request; a reset
/// after the document arrived is not an error.
fn read_all(s: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    match s.read_to_end(out) {
        Ok(_) => Ok(()),
        Err(_) if !out.is_empty() => Ok(()),
        Err(e) => Err(e),
    }
}

fn fetch(addr: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let timeout = Some(std::time::Duration::from_secs(5));
    if addr.contains('/') {
        let mut s = std::os::unix::net::UnixStream::connect(addr)?;
        s.set_read_timeout(timeout)?;
        read_all(&mut s, &mut out)?;
    } else if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let mut s = std::os::unix::net::UnixStream::connect_addr(&sa)?;
        s.set_read_timeout(timeout)?;
        read_all(&mut s, &mut out)?;
    } else {
        let a = if addr.starts_with(':') {
            format!("127.0.0.1{addr}")
        } else {
            addr.to_string()
        };
        let mut s = std::net::TcpStream::connect(a)?;
        s.set_read_timeout(timeout)?;
        read_all(&mut s, &mut out)?;
    }
    Ok(out)
}

/// Parse what a stats server sent (with or without HTTP headers).
pub fn parse(raw: &[u8]) -> Result<StatsDoc, String> {
    let body = if raw.starts_with(b"HTTP/") {
        match raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => &raw[i + 4..],
            None => return Err("truncated HTTP response".into()),
        }
    } else {
        raw
    };
    serde_json::from_slice(body).map_err(|e| format!("not emperor stats JSON: {e}"))
}

fn fmt_age(now: i64, t: i64) -> String {
    if t <= 0 {
        return "-".into();
    }
    let d = (now - t).max(0);
    if d < 120 {
        format!("{d}s")
    } else if d < 7200 {
        format!("{}m", d / 60)
    } else {
        format!("{}h", d / 3600)
    }
}

/// Render the table `liege --status` prints.
pub fn table(doc: &StatsDoc, now: i64) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "VASSAL".into(),
        "STATE".into(),
        "PID".into(),
        "UP".into(),
        "RESPAWNS".into(),
        "NEXT RETRY".into(),
        "LAST ERROR".into(),
    ]];
    for v in &doc.vassals {
        let state = if v.state.is_empty() {
            // A uWSGI emperor: derive what we can.
            if v.cursed > 0 {
                "stopping"
            } else if v.ready > 0 || v.accepting > 0 {
                "ready"
            } else {
                "starting"
            }
            .to_string()
        } else {
            v.state.clone()
        };
        let retry = if v.next_retry > 0 {
            format!("in {:.1}s", v.next_retry_in_ms.max(0) as f64 / 1000.0)
        } else {
            "-".into()
        };
        let mut err = v.last_error.clone().unwrap_or_else(|| "-".into());
        if v.config_hash.is_some() && v.config_hash != v.config_hash_disk {
            err = format!("[on-disk config not applied] {err}");
        }
        rows.push([
            v.id.clone(),
            state,
            if v.pid > 0 {
                v.pid.to_string()
            } else {
                "-".into()
            },
            if v.pid > 0 {
                fmt_age(now, v.last_run)
            } else {
                "-".into()
            },
            v.respawns.to_string(),
            retry,
            err,
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(r[i].chars().count());
        }
    }
    let mut out = format!(
        "emperor pid {} ({} vassals; monitors: {})\n",
        doc.pid,
        doc.vassals.len(),
        doc.emperor.join(", ")
    );
    for r in &rows {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}  ", r[i], w = *w));
        }
        out.push_str(&r[6]);
        out.push('\n');
    }
    out
}

/// `liege --status ADDR`.
pub fn status(addr: &str) -> i32 {
    let raw = match fetch(addr) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("liege: cannot read emperor stats from {addr}: {e}");
            return 1;
        }
    };
    match parse(&raw) {
        Ok(doc) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            print!("{}", table(&doc, now));
            0
        }
        Err(e) => {
            eprintln!("liege: {addr}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_table() {
        let doc = StatsDoc {
            pid: 7,
            emperor: vec!["/etc/v".into()],
            vassals: vec![VassalStats {
                id: "/etc/v/app.ini".into(),
                pid: 10,
                state: "throttled".into(),
                next_retry: 100,
                next_retry_in_ms: 2500,
                last_error: Some("died unexpectedly (exit code 22)".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let raw = render(&doc, false, true);
        let back = parse(&raw).unwrap();
        let t = table(&back, 0);
        assert!(t.contains("/etc/v/app.ini"), "{t}");
        assert!(t.contains("throttled"), "{t}");
        assert!(t.contains("in 2.5s"), "{t}");
        assert!(String::from_utf8(render(&doc, false, false))
            .unwrap()
            .contains("\n\t\"version\""));
    }
}
