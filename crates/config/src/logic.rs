//! Config logic in ini files (uWSGI semantics §1.6): `for`, `for-glob`, `for-times`,
//! `for-readline` and the `if-*` conditionals, up to `endfor`/`endif`/`end`.
//!
//! Logic is evaluated while the file is read (uWSGI: immediate options), so conditions see the
//! environment, the filesystem and the options read *so far*. Inside the block `%(_)` is the
//! loop item or the tested value. Blocks do not nest. `if-reload` is not implemented: whether
//! this parse is a reload is not known to the configuration layer.

use crate::source::{Entry, MAX_ENTRIES};
use std::collections::HashMap;
use std::path::Path;

/// What to do with the lines of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Condition false: drop the lines.
    Skip,
    /// Condition true: keep the lines, with `%(_)` in values replaced when there is a value.
    Take(Option<String>),
    /// Loop: each line once per item, `%(_)` in key and value replaced by the item.
    Repeat(Vec<String>),
}

/// Block openers.
pub const OPENERS: &[&str] = &[
    "for",
    "for-glob",
    "for-times",
    "for-readline",
    "if-env",
    "ifenv",
    "if-not-env",
    "if-opt",
    "if-not-opt",
    "if-exists",
    "ifexists",
    "if-not-exists",
    "if-file",
    "if-not-file",
    "if-dir",
    "ifdir",
    "if-directory",
    "if-not-dir",
    "if-hostname",
    "if-not-hostname",
    "if-plugin",
    "ifplugin",
    "if-not-plugin",
];

/// Block terminators (uWSGI does not check which block they close).
pub const ENDS: &[&str] = &["endfor", "end-for", "endif", "end-if", "end"];

pub fn is_opener(key: &str) -> bool {
    OPENERS.contains(&key)
}

pub fn is_end(key: &str) -> bool {
    ENDS.contains(&key)
}

/// What a condition may look at.
pub struct Context<'a> {
    pub cwd: &'a Path,
    pub env: &'a HashMap<String, String>,
    pub hostname: &'a str,
    /// Entries read so far (for `if-opt`).
    pub entries: &'a [Entry],
}

fn cond(taken: bool, subst: Option<String>) -> Body {
    if taken {
        Body::Take(subst)
    } else {
        Body::Skip
    }
}

/// Evaluate an opener with its value.
pub fn open(key: &str, data: &str, cx: &Context<'_>) -> Result<Body, String> {
    let data = data.trim();
    let path = |p: &str| cx.cwd.join(p);
    Ok(match key {
        "for" => Body::Repeat(
            data.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        ),
        "for-times" => {
            let n = crate::value::parse_u64(data)?;
            if n > MAX_ENTRIES as u64 {
                return Err(format!("more than {MAX_ENTRIES} iterations"));
            }
            Body::Repeat((1..=n).map(|i| i.to_string()).collect())
        }
        "for-readline" => {
            let text = crate::source::read_bounded(&path(data))
                .map_err(|e| format!("cannot read {data}: {e}"))?;
            let items: Vec<String> = text
                .lines()
                .map(|l| l.trim_end_matches('\r').to_string())
                .filter(|l| !l.is_empty())
                .take(MAX_ENTRIES + 1)
                .collect();
            if items.len() > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} lines in {data}"));
            }
            Body::Repeat(items)
        }
        "for-glob" => {
            let pattern = path(data);
            let paths = glob::glob(&pattern.to_string_lossy())
                .map_err(|e| format!("bad glob pattern: {e}"))?;
            let prefix = format!("{}/", cx.cwd.display());
            let mut items: Vec<String> = paths
                .filter_map(Result::ok)
                .take(MAX_ENTRIES + 1)
                .map(|p| {
                    let s = p.to_string_lossy().into_owned();
                    // A relative pattern yields relative paths, as glob(3) does.
                    match (Path::new(data).is_relative(), s.strip_prefix(&prefix)) {
                        (true, Some(rel)) => rel.to_string(),
                        _ => s,
                    }
                })
                .collect();
            if items.len() > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} paths match"));
            }
            items.sort();
            Body::Repeat(items)
        }
        "if-env" | "ifenv" | "if-not-env" => {
            let (name, want) = match data.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (data, None),
            };
            let got = cx.env.get(name);
            let matches = got.is_some_and(|g| want.is_none_or(|w| w == g));
            if key == "if-not-env" {
                cond(!matches, None)
            } else {
                cond(matches, got.cloned())
            }
        }
        "if-opt" | "if-not-opt" => {
            let (name, want) = match data.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (data, None),
            };
            let got = cx
                .entries
                .iter()
                .find(|e| e.key == name)
                .map(|e| e.value.clone());
            let matches = got.as_deref().is_some_and(|g| want.is_none_or(|w| w == g));
            if key == "if-not-opt" {
                cond(!matches, None)
            } else {
                cond(matches, got)
            }
        }
        "if-exists" | "ifexists" => cond(path(data).exists(), Some(data.to_string())),
        "if-not-exists" => cond(!path(data).exists(), Some(data.to_string())),
        "if-file" => cond(path(data).is_file(), Some(data.to_string())),
        "if-not-file" => cond(!path(data).is_file(), Some(data.to_string())),
        "if-dir" | "ifdir" | "if-directory" => cond(path(data).is_dir(), Some(data.to_string())),
        "if-not-dir" => cond(!path(data).is_dir(), Some(data.to_string())),
        "if-hostname" => cond(cx.hostname == data, Some(data.to_string())),
        "if-not-hostname" => cond(cx.hostname != data, Some(data.to_string())),
        "if-plugin" | "ifplugin" => cond(
            crate::build::check_plugin(data).is_ok(),
            Some(data.to_string()),
        ),
        "if-not-plugin" => cond(
            crate::build::check_plugin(data).is_err(),
            Some(data.to_string()),
        ),
        other => return Err(format!("`{other}` is not a config logic option")),
    })
}
