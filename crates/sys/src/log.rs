//! Tracing set-up shared by every role: one line per event on stderr, each carrying the
//! role and pid, without ANSI colours (journald-friendly).

use std::sync::OnceLock;

static ROLE: OnceLock<String> = OnceLock::new();

/// `log-date`: None = no date, Some("") = `ctime` then ` - ` (uWSGI's default), Some(fmt) =
/// strftime(fmt) as the prefix.
static DATE: OnceLock<Option<String>> = OnceLock::new();

/// Date every line liege writes (`log-date` / `logdate`), as the request log lines are. Call
/// once, right after [`init`], when the configuration is known.
pub fn set_date(fmt: Option<String>) {
    let _ = DATE.set(fmt);
}

/// The `log-date` prefix for a line written now (empty when `log-date` is off).
pub fn date_prefix(fmt: Option<&str>) -> String {
    let now = std::time::SystemTime::now();
    match fmt {
        None => String::new(),
        Some("") => format!("{} - ", ctime(now)),
        Some(f) => local_strftime(now, f),
    }
}

/// strftime of a local time.
pub fn local_strftime(t: std::time::SystemTime, fmt: &str) -> String {
    let secs = t
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as libc::time_t;
    let Ok(cfmt) = std::ffi::CString::new(fmt) else {
        return String::new();
    };
    let mut buf = [0u8; 256];
    // SAFETY: tm is written by localtime_r before use; strftime writes at most buf.len()
    // bytes and returns how many.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// `ctime()` of a time, without the trailing newline.
pub fn ctime(t: std::time::SystemTime) -> String {
    local_strftime(t, "%a %b %e %H:%M:%S %Y")
}

/// Install the global subscriber. `role` is `emperor`, `master`, `worker 3`, ...
/// The level comes from `LIEGE_LOG` (an `EnvFilter` directive), default `info`.
pub fn init(role: &str) {
    let _ = ROLE.set(role.to_string());
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIEGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        // A failed write (stderr a pipe whose reader is gone: an emperor killed, journald
        // restarted) must not panic the thread that logs; tracing-subscriber's own report of
        // it would (eprintln! panics on EPIPE).
        .log_internal_errors(false)
        .event_format(Format)
        .try_init();
}

struct Format;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Format
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let role = ROLE.get().map(String::as_str).unwrap_or("liege");
        let level = event.metadata().level();
        if let Some(Some(f)) = DATE.get() {
            write!(writer, "{}", date_prefix(Some(f)))?;
        }
        write!(writer, "liege[{}] {role} {level}: ", std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
