//! Parsers for option values (uWSGI semantics §1.3, §3.1).
//!
//! Each returns `Err(reason)`; the caller turns it into a [`crate::ConfigError`] naming the
//! option, the value and its origin. liege is stricter than uWSGI's `atoi`: a malformed number is
//! an error instead of silently becoming 0.

use crate::typed::BindAddr;
use std::path::PathBuf;
use std::time::Duration;

/// uWSGI boolean: false only for (case-insensitive) `false`, `off`, `no`, or exactly `0`.
/// Everything else — including a bare key, `yes`, `1`, the empty string — is true.
pub fn parse_bool(value: &str) -> bool {
    let v = value.trim();
    !(v.eq_ignore_ascii_case("false")
        || v.eq_ignore_ascii_case("off")
        || v.eq_ignore_ascii_case("no")
        || v == "0")
}

/// A non-negative decimal integer.
pub fn parse_u64(value: &str) -> Result<u64, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("expected a non-negative integer, got nothing".into());
    }
    if v.starts_with('-') {
        return Err("must be >= 0".into());
    }
    v.parse::<u64>()
        .map_err(|_| "expected a non-negative integer".to_string())
}

/// A non-negative integer that fits in `u32`.
pub fn parse_u32(value: &str) -> Result<u32, String> {
    let n = parse_u64(value)?;
    u32::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A size in bytes: a plain number, or a number with a `k`/`m`/`g` suffix (powers of 1024;
/// the suffix is a liege addition, uWSGI takes plain numbers).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_lowercase() {
                'k' => 1024,
                'm' => 1024 * 1024,
                'g' => 1024 * 1024 * 1024,
                _ => return Err("expected a size in bytes (optionally with k, m or g)".into()),
            };
            (&v[..i], mult)
        }
        _ => (v, 1),
    };
    let n = parse_u64(num)?;
    n.checked_mul(mult)
        .ok_or_else(|| "size is too large".to_string())
}

/// A duration: integer seconds as in uWSGI; liege also accepts the suffixes `ms`, `s`, `m`, `h`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n = parse_u64(num).map_err(|e| format!("{e} (a number of seconds)"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| "duration is too large".to_string())
    };
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        other => Err(format!(
            "unknown time unit `{other}` (a number of seconds, or with ms/s/m/h)"
        )),
    }
}

/// An octal file mode for `chmod-socket`: bare (or `1`) means 0666 as in uWSGI; otherwise three
/// (or four) octal digits.
pub fn parse_socket_mode(value: &str, bare: bool) -> Result<u32, String> {
    let v = value.trim();
    if bare || v.is_empty() || v == "1" {
        return Ok(0o666);
    }
    if !(3..=4).contains(&v.len()) || !v.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err("expected three octal digits such as 660".into());
    }
    u32::from_str_radix(v, 8).map_err(|e| e.to_string())
}

/// An octal umask such as `022`.
pub fn parse_octal(value: &str) -> Result<u32, String> {
    let v = value.trim();
    if v.is_empty() || !v.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err("expected an octal number such as 022".into());
    }
    u32::from_str_radix(v, 8).map_err(|_| "octal number is too large".to_string())
}

/// A path: any non-empty string.
pub fn parse_path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("expected a path, got nothing".into());
    }
    Ok(PathBuf::from(value))
}

/// A non-empty string.
pub fn parse_nonempty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("expected a value, got nothing".into());
    }
    Ok(value.to_string())
}

/// The `%(name)` variables a `log-format` template may use (besides `var.NAME`); the
/// worker's renderer (liege-worker `logfmt`) implements each.
pub const LOG_FORMAT_VARS: &[&str] = &[
    "uri",
    "method",
    "user",
    "addr",
    "host",
    "proto",
    "uagent",
    "referer",
    "status",
    "rsize",
    "hsize",
    "size",
    "cl",
    "micros",
    "msecs",
    "secs",
    "tmsecs",
    "tmicros",
    "time",
    "ltime",
    "ftime",
    "ctime",
    "epoch",
    "pid",
    "wid",
    "core",
    "switches",
    "vars",
    "pktsize",
    "modifier1",
    "modifier2",
    "headers",
    "werr",
    "rerr",
    "ioerr",
    "vsz",
    "rss",
    "vszM",
    "rssM",
];

/// A `log-format` template: every `%(name)` must be a known variable or `var.NAME`.
pub fn parse_log_format(value: &str) -> Result<String, String> {
    let v = parse_nonempty(value)?;
    let mut rest = v.as_str();
    while let Some(i) = rest.find("%(") {
        let Some(end) = rest[i + 2..].find(')') else {
            break;
        };
        let name = &rest[i + 2..i + 2 + end];
        let known = LOG_FORMAT_VARS.contains(&name)
            || name.strip_prefix("var.").is_some_and(|n| !n.is_empty());
        if !known {
            return Err(format!(
                "unknown log variable `%({name})` (known: {}, and var.NAME for a request variable)",
                LOG_FORMAT_VARS.join(" ")
            ));
        }
        rest = &rest[i + 2 + end + 1..];
    }
    Ok(v)
}

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes including the NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// A socket address (uWSGI semantics §3.1): `:port`, `host:port`, `[v6]:port`, `/path`,
/// `@abstract`, `fd://N`. Any `:` makes it TCP.
pub fn parse_addr(value: &str) -> Result<BindAddr, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("expected a socket address (:port, host:port, /path, @name, fd://N)".into());
    }
    if let Some(n) = v.strip_prefix("fd://") {
        let fd: i32 = n
            .parse()
            .map_err(|_| "fd://N needs a file descriptor number".to_string())?;
        if fd < 0 {
            return Err("fd://N needs a non-negative file descriptor".into());
        }
        return Ok(BindAddr::Fd(fd));
    }
    if let Some(name) = v.strip_prefix('@').or_else(|| v.strip_prefix('\0')) {
        if name.is_empty() {
            return Err("an abstract socket needs a name after @".into());
        }
        return Ok(BindAddr::Abstract(name.to_string()));
    }
    if v.starts_with('=') {
        return Err("shared sockets (=N) are a uWSGI feature liege does not implement".into());
    }
    if v.contains(':') {
        let (host, port) = if let Some(rest) = v.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| "an IPv6 address is written [addr]:port".to_string())?;
            (h, p)
        } else {
            v.rsplit_once(':').expect("contains ':'")
        };
        if host.contains('*') {
            return Err("autoip addresses (prefix*) are not implemented by liege".into());
        }
        if !v.starts_with('[') && host.contains(':') {
            return Err("an IPv6 address must be written in brackets: [addr]:port".into());
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number (0-65535)"))?;
        return Ok(BindAddr::Tcp {
            host: host.to_string(),
            port,
        });
    }
    if v.len() > MAX_UNIX_PATH {
        return Err(format!(
            "a unix socket path may be at most {MAX_UNIX_PATH} bytes long"
        ));
    }
    Ok(BindAddr::Unix(PathBuf::from(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_uwsgi() {
        for f in ["false", "FALSE", "off", "No", "0", " no "] {
            assert!(!parse_bool(f), "{f}");
        }
        for t in ["", "true", "yes", "1", "on", "00", "garbage"] {
            assert!(parse_bool(t), "{t}");
        }
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_u64("42"), Ok(42));
        assert_eq!(parse_u64(" 7 "), Ok(7));
        assert!(parse_u64("4x").is_err());
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("").is_err());
        assert!(parse_u32("99999999999").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("12q").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5").is_err());
    }

    #[test]
    fn duration_too_large_is_an_error() {
        // One more than u64::MAX / 60 minutes (or / 3600 hours) of seconds overflowed: a panic
        // with overflow checks, a wrapped (wrong) duration without them.
        assert!(parse_duration("307445734561825861m").is_err());
        assert!(parse_duration("5124095576030432h").is_err());
        assert_eq!(
            parse_duration("307445734561825860m"),
            Ok(Duration::from_secs(307445734561825860 * 60))
        );
        assert_eq!(
            parse_duration("5124095576030431h"),
            Ok(Duration::from_secs(5124095576030431 * 3600))
        );
    }

    #[test]
    fn socket_modes() {
        assert_eq!(parse_socket_mode("", true), Ok(0o666));
        assert_eq!(parse_socket_mode("1", false), Ok(0o666));
        assert_eq!(parse_socket_mode("660", false), Ok(0o660));
        assert_eq!(parse_socket_mode("644", false), Ok(0o644));
        assert!(parse_socket_mode("66", false).is_err());
        assert!(parse_socket_mode("999", false).is_err());
    }

    #[test]
    fn addresses() {
        let tcp = |h: &str, p| BindAddr::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(parse_addr(":8001"), Ok(tcp("", 8001)));
        assert_eq!(parse_addr("127.0.0.1:3031"), Ok(tcp("127.0.0.1", 3031)));
        assert_eq!(parse_addr("localhost:0"), Ok(tcp("localhost", 0)));
        assert_eq!(parse_addr("[::1]:9000"), Ok(tcp("::1", 9000)));
        assert_eq!(parse_addr("[::]:80"), Ok(tcp("::", 80)));
        assert_eq!(
            parse_addr("/tmp/app.sock"),
            Ok(BindAddr::Unix("/tmp/app.sock".into()))
        );
        assert_eq!(
            parse_addr("relative.sock"),
            Ok(BindAddr::Unix("relative.sock".into()))
        );
        assert_eq!(parse_addr("@app"), Ok(BindAddr::Abstract("app".into())));
        assert_eq!(parse_addr("fd://3"), Ok(BindAddr::Fd(3)));
        assert!(parse_addr(":http").is_err());
        assert!(parse_addr(":70000").is_err());
        assert!(parse_addr("").is_err());
        assert!(parse_addr("@").is_err());
        assert!(parse_addr("fd://x").is_err());
        assert!(parse_addr("=0").is_err());
        assert!(parse_addr("::1:80").is_err());
        assert!(parse_addr(&format!("/{}", "x".repeat(200))).is_err());
    }
}
