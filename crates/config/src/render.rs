//! Text rendered from the registry and from a parsed configuration: `liege --help`,
//! `docs/options.md` and `liege --check`.

use crate::build::{Applied, Placeholder};
use crate::registry::{Arg, Group, Kind, OptDef, NOT_IMPLEMENTED, OPTIONS};
use crate::typed::Settings;
use std::fmt::Write as _;

fn options_in(group: Group) -> impl Iterator<Item = &'static OptDef> {
    OPTIONS.iter().filter(move |d| d.group == group)
}

fn usage_of(d: &OptDef) -> String {
    let mut s = String::new();
    if let Some(c) = d.short {
        let _ = write!(s, "-{c}, ");
    }
    let _ = write!(s, "--{}", d.name);
    match d.arg {
        Arg::None => {}
        Arg::Required => {
            let _ = write!(s, " <{}>", d.kind.word());
        }
        Arg::Optional => {
            let _ = write!(s, "[=<{}>]", d.kind.word());
        }
    }
    s
}

/// `liege --help`: every option, grouped.
/// What a bare `liege` prints: the commands people need and where the full help is.
pub fn usage() -> String {
    format!(
        "liege {} — a uWSGI-compatible application server for Python\n\n\
         Usage:\n\
         \x20 liege --http :8000 --module myproject.wsgi:application   serve a WSGI app (-w)\n\
         \x20 liege --http :8000 --wsgi-file app.py                    serve a WSGI file\n\
         \x20 liege app.ini                                            run what an ini file says\n\
         \x20 liege --emperor /etc/liege/vassals                       run one master per ini file\n\n\
         \x20 liege --check app.ini    validate a configuration and print it\n\
         \x20 liege --help             every option, grouped by topic\n\
         \x20 liege --version          print the version (also -V)\n",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn help() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "liege {} — a uWSGI-compatible application server for Python\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(
        "Usage: liege [OPTIONS] [FILE.ini[:section]]...\n\
         \x20      liege --ini FILE.ini[:section] [OPTIONS]\n\
         \x20      liege --check FILE.ini          validate and print the effective configuration\n\
         \x20      liege --emperor DIR             run an emperor over the vassal files in DIR\n\
         \x20      liege emperor-status ADDR       print an emperor's stats\n\n\
         Every option can also be given in an ini file ([uwsgi] or [liege] section) as\n\
         `name = value`, or as a UWSGI_NAME / LIEGE_NAME environment variable. Sources are read\n\
         in order: environment, then the command line left to right with ini files spliced in\n\
         place. The last value of a scalar option wins; repeatable options accumulate.\n",
    );
    for g in Group::ALL {
        let _ = writeln!(out, "\n{}:", g.title());
        for d in options_in(g) {
            let _ = writeln!(out, "  {}", usage_of(d));
            let mut line = format!("        {}", d.help);
            if !d.aliases.is_empty() {
                let _ = write!(line, " (also: {})", d.aliases.join(", "));
            }
            if !d.default.is_empty() {
                let _ = write!(line, " [default: {}]", d.default);
            }
            if d.repeatable {
                line.push_str(" [repeatable]");
            }
            if !d.implemented {
                line.push_str(" [not implemented yet]");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(
        out,
        "\nuWSGI options liege does not implement (an error, or a warning with --lenient):"
    );
    let names: Vec<&str> = NOT_IMPLEMENTED.iter().map(|(n, _)| *n).collect();
    let mut line = String::from(" ");
    for n in names {
        if line.len() + n.len() > 92 {
            let _ = writeln!(out, "{line}");
            line = String::from(" ");
        }
        let _ = write!(line, " {n}");
    }
    let _ = writeln!(out, "{line}");
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// `docs/options.md`: generated from the registry (see tests/config_docs.rs).
pub fn options_markdown() -> String {
    let mut out = String::new();
    out.push_str("# liege options\n\n");
    out.push_str(
        "<!-- Generated from crates/config/src/registry.rs. Do not edit: run\n\
         \x20    UPDATE_DOCS=1 cargo test --test config_docs\n\
         \x20    to regenerate. -->\n\n",
    );
    out.push_str(
        "Every option can be written in an ini file (`name = value` in `[uwsgi]` or `[liege]`), on\n\
         the command line (`--name value` or `--name=value`), or as a `UWSGI_NAME` / `LIEGE_NAME`\n\
         environment variable (upper case, `-` written `_`). Booleans are false only for `false`,\n\
         `off`, `no` or `0`; a bare key means true. Sizes accept `k`/`m`/`g`; seconds accept\n\
         `ms`/`s`/`m`/`h`. Values may use magic variables (`%d`, `%n`, ...), `$(ENV)`, `@(file)`\n\
         and `%(placeholder)`.\n",
    );
    let count = OPTIONS.len();
    let _ = writeln!(
        out,
        "\n{count} options; {} uWSGI options recognised as not implemented.",
        NOT_IMPLEMENTED.len()
    );
    for g in Group::ALL {
        let _ = writeln!(out, "\n## {}\n", g.title());
        out.push_str("| option | aliases | short | type | repeatable | default | description |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for d in options_in(g) {
            let aliases = d
                .aliases
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let short = d.short.map(|c| format!("`-{c}`")).unwrap_or_default();
            let kind = match (d.kind, d.arg) {
                (Kind::Bool, _) => "bool".to_string(),
                (k, Arg::Optional) => format!("{} (optional)", k.word()),
                (k, _) => k.word().to_string(),
            };
            let mut help = md_escape(d.help);
            if !d.implemented {
                help.push_str(" **(not implemented yet)**");
            }
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                d.name,
                aliases,
                short,
                kind,
                if d.repeatable { "yes" } else { "" },
                md_escape(d.default),
                help
            );
        }
    }
    out.push_str("\n## uWSGI options liege does not implement\n\n");
    out.push_str("Using one is an error (a warning with `--lenient` or `strict = false`).\n\n");
    for (n, why) in NOT_IMPLEMENTED {
        if why.is_empty() {
            let _ = writeln!(out, "- `{n}`");
        } else {
            let _ = writeln!(out, "- `{n}`: {}", md_escape(why));
        }
    }
    out
}

/// The value shown by `--check` for one applied entry.
fn shown_value(a: &Applied) -> String {
    let def = crate::registry::lookup(a.option).expect("applied options are registered");
    match def.kind {
        Kind::Bool => crate::value::parse_bool(&a.value).to_string(),
        Kind::Mode if a.option == "chmod-socket" => {
            match crate::value::parse_socket_mode(&a.value, a.value.is_empty()) {
                Ok(m) => format!("{m:03o}"),
                Err(_) => a.value.clone(),
            }
        }
        // A bare `log-date` means "the default date format".
        _ if a.option == "log-date" && a.value.is_empty() => "true".to_string(),
        _ => a.value.clone(),
    }
}

/// `liege --check`: every option with its final value and where it came from, then the
/// placeholders and warnings.
pub fn check(settings: &Settings, applied: &[Applied], placeholders: &[Placeholder]) -> String {
    let mut out = String::new();
    out.push_str("; liege --check: configuration is valid\n");
    for f in &settings.files {
        let _ = writeln!(out, "; file: {}", f.display());
    }
    let role = if settings.emperor.is_some() {
        "emperor"
    } else {
        "master"
    };
    let _ = writeln!(out, "; role: {role}");
    out.push_str("[uwsgi]\n");
    // Options in order of first appearance; last-wins options show only their final value.
    let mut order: Vec<&'static str> = Vec::new();
    for a in applied {
        if !order.contains(&a.option) {
            order.push(a.option);
        }
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    for name in order {
        let def = crate::registry::lookup(name).expect("registered");
        let of_it: Vec<&Applied> = applied.iter().filter(|a| a.option == name).collect();
        let shown: Vec<&Applied> = if def.repeatable {
            of_it
        } else {
            vec![*of_it.last().expect("at least one")]
        };
        for a in shown {
            lines.push((
                format!("{} = {}", name, shown_value(a)),
                a.origin.to_string(),
            ));
        }
    }
    let width = lines
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0)
        .min(60);
    for (l, o) in lines {
        let _ = writeln!(out, "{l:width$}  ; {o}");
    }
    if !placeholders.is_empty() {
        out.push_str("; placeholders:\n");
        for p in placeholders {
            let _ = writeln!(out, ";   {} = {}  ({})", p.name, p.value, p.origin);
        }
    }
    for w in &settings.warnings {
        let _ = writeln!(out, "; warning: {w}");
    }
    out
}
