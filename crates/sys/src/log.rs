//! Tracing set-up shared by every role: one line per event on stderr, each carrying the
//! role and pid, without ANSI colours (journald-friendly).

use std::sync::OnceLock;

static ROLE: OnceLock<String> = OnceLock::new();

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
        write!(writer, "liege[{}] {role} {level}: ", std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
