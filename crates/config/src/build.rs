//! Stage 3: classify the raw entries, expand them (`$()`, `@()`, `%()`), apply them in order to
//! the typed [`Settings`], and validate the result.
//!
//! Scalar options: the last occurrence wins (they are simply applied in order). Repeatable
//! options accumulate. `%(name)` looks up the *first* value ever given to `name` (§1.3).

use crate::error::{ConfigError, Origin};
use crate::expand::{expand_env, expand_files, expand_placeholders, placeholder_refs};
use crate::registry::{self, Group, OptDef};
use crate::source::{Collected, Entry};
use crate::typed::*;
use crate::value::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One option as applied: for `--check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Canonical option name.
    pub option: &'static str,
    /// The key as written (alias, or the option itself).
    pub key: String,
    /// The final value after expansion ("" for a bare flag).
    pub value: String,
    pub origin: Origin,
}

/// A placeholder (from `set-placeholder`, `set`, or an unknown key referenced as `%(key)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

/// The result of stage 3.
#[derive(Debug)]
pub struct Outcome {
    pub settings: Settings,
    pub applied: Vec<Applied>,
    pub placeholders: Vec<Placeholder>,
    pub errors: Vec<ConfigError>,
}

#[derive(Debug, Clone, Copy)]
enum Class {
    Opt(&'static OptDef),
    Placeholder,
    Unknown,
    NotImplemented(&'static str),
}

#[derive(Debug)]
struct Item {
    key: String,
    value: String,
    bare: bool,
    origin: Origin,
    class: Class,
    /// From an inherited file: not expanded.
    late: bool,
}

/// Run stage 3 over what the sources produced.
pub fn build(collected: Collected, env: &[(String, String)], cwd: &Path) -> Outcome {
    let Collected {
        entries,
        files,
        mut warnings,
        mut errors,
        commands,
        emperor_fd,
    } = collected;

    // `strict` is immediate in uWSGI; `strict = false` (last one wins) or --lenient is lenient.
    let strict_false = entries
        .iter()
        .rfind(|e| registry::lookup(&e.key).is_some_and(|d| d.name == "strict"))
        .is_some_and(|e| !parse_bool(&e.value));
    let lenient = commands.lenient || strict_false;

    // 1. classify; `set-placeholder` and `set` are split into their NAME=VALUE.
    // `declare-option` templates are expanded in place into the entries they generate.
    let mut items: Vec<Item> = Vec::with_capacity(entries.len());
    let mut declared: HashMap<String, String> = HashMap::new();
    // Each queued entry carries how many declared expansions produced it.
    let mut queue: std::collections::VecDeque<(Entry, usize)> =
        entries.into_iter().map(|e| (e, 0)).collect();
    let mut generated = 0usize;
    while let Some((e, depth)) = queue.pop_front() {
        if let Some(template) = declared.get(&e.key) {
            generated += 1;
            if generated > MAX_GENERATED || depth >= MAX_DECLARED_DEPTH {
                errors.push(ConfigError::invalid(
                    &e.key,
                    &e.value,
                    &e.origin,
                    "declared options expand into too many entries (a declare-option loop?)",
                ));
                continue;
            }
            match expand_declared(template, &e.value) {
                Ok(new) => {
                    for (k, v) in new.into_iter().rev() {
                        queue.push_front((
                            Entry {
                                key: k,
                                value: v,
                                bare: false,
                                origin: e.origin.clone(),
                                late: e.late,
                            },
                            depth + 1,
                        ));
                    }
                }
                Err(reason) => {
                    errors.push(ConfigError::invalid(&e.key, &e.value, &e.origin, reason))
                }
            }
            continue;
        }
        let def = registry::lookup(&e.key);
        match def.map(|d| d.name) {
            Some("declare-option") => match e.value.split_once('=') {
                Some((name, template)) if !name.trim().is_empty() => {
                    let name = name.trim();
                    if registry::lookup(name).is_some() {
                        errors.push(ConfigError::invalid(
                            &e.key,
                            &e.value,
                            &e.origin,
                            format!("`{name}` is already an option"),
                        ));
                    } else {
                        declared.insert(name.to_string(), template.trim().to_string());
                    }
                }
                _ => errors.push(ConfigError::invalid(
                    &e.key,
                    &e.value,
                    &e.origin,
                    "expected NAME=KEY=VALUE[;KEY=VALUE...]",
                )),
            },
            Some(which @ ("set-placeholder" | "set")) => {
                let Some((k, v)) = e.value.split_once('=') else {
                    errors.push(ConfigError::invalid(
                        &e.key,
                        &e.value,
                        &e.origin,
                        "expected NAME=VALUE",
                    ));
                    continue;
                };
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                let target = registry::lookup(&k);
                if which == "set-placeholder" && target.is_some() {
                    errors.push(ConfigError::invalid(
                        &e.key,
                        &e.value,
                        &e.origin,
                        format!("`{k}` is an option name; use `set = {k}=...` to set an option"),
                    ));
                    continue;
                }
                let class = match target {
                    Some(d) if which == "set" => Class::Opt(d),
                    _ => Class::Placeholder,
                };
                items.push(Item {
                    key: k,
                    value: v,
                    bare: false,
                    origin: e.origin,
                    class,
                    late: e.late,
                });
            }
            _ => {
                let class = match def {
                    Some(d) => Class::Opt(d),
                    None => match registry::not_implemented(&e.key) {
                        Some(why) => Class::NotImplemented(why),
                        None => Class::Unknown,
                    },
                };
                items.push(Item {
                    key: e.key,
                    value: e.value,
                    bare: e.bare,
                    origin: e.origin,
                    class,
                    late: e.late,
                });
            }
        }
    }

    // 2. expansion: `$()` then `@()` on every entry...
    let env_map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let env_lookup = |n: &str| env_map.get(n).map(|v| v.to_string());
    for it in items.iter_mut().filter(|it| !it.late) {
        let v = expand_env(&it.value, &env_lookup);
        let mut read_errors = Vec::new();
        let v = expand_files(&v, &|p: &str| read_file(p, cwd), &mut read_errors);
        for r in read_errors {
            errors.push(ConfigError::invalid(&it.key, &it.value, &it.origin, r));
        }
        it.value = v;
    }
    // ...then `%()`, looking up the first value of each key.
    let mut first: HashMap<String, String> = HashMap::new();
    for it in &items {
        first
            .entry(it.key.clone())
            .or_insert_with(|| it.value.clone());
    }
    let referenced: HashSet<String> = items
        .iter()
        .flat_map(|it| placeholder_refs(&it.value))
        .collect();
    let lookup = |n: &str| first.get(n).cloned();

    let mut settings = Settings {
        emperor: None,
        master: MasterConfig::default(),
        lenient,
        warnings: Vec::new(),
        files,
        emperor_fd,
    };
    let mut applied = Vec::new();
    let mut placeholders = Vec::new();
    let mut cx = Cx {
        cwd: cwd.to_path_buf(),
        warnings: Vec::new(),
        last: HashMap::new(),
    };
    // In lenient mode the would-be errors of classification become warnings.
    let soft = |err: ConfigError, errors: &mut Vec<ConfigError>, warnings: &mut Vec<String>| {
        if lenient {
            warnings.push(format!("{err} (ignored: lenient mode)"));
        } else {
            errors.push(err);
        }
    };

    let mut suggestions = Suggestions::default();
    for it in &items {
        let ex = if it.late {
            crate::expand::Expanded {
                value: it.value.clone(),
                ..Default::default()
            }
        } else {
            expand_placeholders(&it.value, &lookup)
        };
        match it.class {
            Class::Placeholder => placeholders.push(Placeholder {
                name: it.key.clone(),
                value: ex.value,
                origin: it.origin.clone(),
            }),
            Class::Unknown if referenced.contains(&it.key) => placeholders.push(Placeholder {
                name: it.key.clone(),
                value: ex.value,
                origin: it.origin.clone(),
            }),
            Class::Unknown => {
                let suggestion = suggestions
                    .get(&it.key)
                    .map(|s| format!(" — did you mean `{s}`?"))
                    .unwrap_or_default();
                let err = ConfigError::UnknownOption {
                    option: it.key.clone(),
                    value: it.value.clone(),
                    origin: it.origin.clone(),
                    suggestion,
                };
                if matches!(it.origin, Origin::Env(_)) {
                    // The environment is ambient: a stray UWSGI_* variable must not stop a server.
                    warnings.push(format!("{err} (ignored: from the environment)"));
                } else {
                    soft(err, &mut errors, &mut warnings);
                }
            }
            Class::NotImplemented(why) => soft(
                ConfigError::NotImplemented {
                    option: it.key.clone(),
                    value: it.value.clone(),
                    origin: it.origin.clone(),
                    detail: if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    },
                },
                &mut errors,
                &mut warnings,
            ),
            Class::Opt(def) => {
                if def.group == Group::Commands && matches!(it.origin, Origin::Env(_)) {
                    // e.g. LIEGE_VERSION set as image metadata: not a request to print it.
                    warnings.push(format!(
                        "{}: `{}` is a command, only valid on the command line (ignored)",
                        it.origin, def.name
                    ));
                    continue;
                }
                if def.group == Group::Commands {
                    errors.push(ConfigError::invalid(
                        &it.key,
                        &it.value,
                        &it.origin,
                        format!(
                            "`{}` is only valid on the command line (--{})",
                            def.name, def.name
                        ),
                    ));
                    continue;
                }
                if !is_implemented(def) {
                    soft(
                        ConfigError::NotImplementedYet {
                            option: it.key.clone(),
                            value: it.value.clone(),
                            origin: it.origin.clone(),
                        },
                        &mut errors,
                        &mut warnings,
                    );
                    continue;
                }
                let mut bad = false;
                if ex.too_large {
                    bad = true;
                    errors.push(ConfigError::invalid(
                        &it.key,
                        &it.value,
                        &it.origin,
                        format!(
                            "placeholders expand to more than {} bytes or {} look-ups",
                            crate::expand::MAX_EXPANSION,
                            crate::expand::MAX_LOOKUPS
                        ),
                    ));
                }
                for name in &ex.self_referencing {
                    bad = true;
                    errors.push(ConfigError::invalid(
                        &it.key,
                        &it.value,
                        &it.origin,
                        format!("placeholder `%({name})` refers to itself"),
                    ));
                }
                // log-format's own variables are written %(name): unresolved ones are its syntax.
                let own_syntax = def.name == "log-format";
                for name in ex.unresolved.iter().filter(|_| !own_syntax) {
                    let err = ConfigError::UndefinedPlaceholder {
                        option: it.key.clone(),
                        value: it.value.clone(),
                        name: name.clone(),
                        origin: it.origin.clone(),
                    };
                    if lenient {
                        warnings.push(format!("{err} (left verbatim: lenient mode)"));
                    } else {
                        bad = true;
                        errors.push(err);
                    }
                }
                if bad {
                    continue;
                }
                if def.kind != registry::Kind::Str
                    && matches!(it.origin, Origin::File { .. })
                    && (ex.value.contains(" ;") || ex.value.contains(" #"))
                {
                    warnings.push(format!(
                        "{}: the value of `{}` is `{}`: uWSGI ini files have no inline comments, so `;`/`#` and what follows are part of the value",
                        it.origin, it.key, ex.value
                    ));
                }
                match apply(&mut settings, def, &ex.value, it.bare, &mut cx) {
                    Ok(()) => {
                        cx.last
                            .insert(def.name, (ex.value.clone(), it.origin.clone()));
                        // Show the emperor monitor as resolved (absolute), as it will be used.
                        let value = match (def.name, settings.emperor.as_ref()) {
                            ("emperor", Some(e)) => e.monitors.last().cloned().unwrap_or(ex.value),
                            _ => ex.value,
                        };
                        applied.push(Applied {
                            option: def.name,
                            key: it.key.clone(),
                            value,
                            origin: it.origin.clone(),
                        });
                    }
                    Err(reason) => {
                        errors.push(ConfigError::invalid(&it.key, &ex.value, &it.origin, reason))
                    }
                }
            }
        }
    }

    finish(&mut settings, &mut cx, &mut errors);
    warnings.append(&mut cx.warnings);
    settings.warnings = warnings;
    Outcome {
        settings,
        applied,
        placeholders,
        errors,
    }
}

/// Upper bound on declared-option expansions (guards against loops).
const MAX_GENERATED: usize = 10_000;

/// Upper bound on declared options expanding into declared options (a template that invokes
/// itself would otherwise grow its value exponentially).
const MAX_DECLARED_DEPTH: usize = 16;

/// `declare-option = NAME=k1=v1;k2=v2`: invoking `NAME = a b` generates `k1=v1`, `k2=v2` with
/// `$1`, `$2`, ... replaced by the space-separated arguments.
fn expand_declared(template: &str, args: &str) -> Result<Vec<(String, String)>, String> {
    let argv: Vec<&str> = args.split(' ').collect();
    let mut out = Vec::new();
    for part in template.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("declared template part `{part}` is not KEY=VALUE"))?;
        let mut v = v.to_string();
        // Highest numbers first, so `$1` does not eat the start of `$10`.
        for (i, a) in argv.iter().enumerate().rev() {
            v = v.replace(&format!("${}", i + 1), a);
            if v.len() > crate::expand::MAX_EXPANSION {
                return Err("the declared option expands to a value that is too large".into());
            }
        }
        out.push((k.trim().to_string(), v));
    }
    Ok(out)
}

/// The registry's `implemented` flag (tests can flip it for one option on their thread).
fn is_implemented(def: &OptDef) -> bool {
    #[cfg(test)]
    if test_hooks::NOT_YET.with(|n| n.borrow().contains(&def.name)) {
        return false;
    }
    def.implemented
}

#[cfg(test)]
pub(crate) mod test_hooks {
    thread_local! {
        /// Options treated as `implemented: false` by this thread's parses.
        pub static NOT_YET: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
    }
}

/// Distinct unknown keys that get a "did you mean" (each costs an edit distance against every
/// option name; a `for` loop can generate 100 000 unknown keys).
const MAX_SUGGESTED_KEYS: usize = 100;

/// [`registry::suggest`] once per distinct key, for at most [`MAX_SUGGESTED_KEYS`] keys.
#[derive(Default)]
struct Suggestions(HashMap<String, Option<&'static str>>);

impl Suggestions {
    fn get(&mut self, key: &str) -> Option<&'static str> {
        if let Some(s) = self.0.get(key) {
            return *s;
        }
        // A suggestion is at most 3 edits away and option names have at most 30 characters:
        // a key of more than 256 bytes (so more than 64 characters) has none.
        if self.0.len() >= MAX_SUGGESTED_KEYS || key.len() > 256 {
            return None;
        }
        let s = registry::suggest(key);
        self.0.insert(key.to_string(), s);
        s
    }
}

/// `@(path)` reader: plain files only; URI schemes are not implemented (no I/O beyond files).
fn read_file(path: &str, cwd: &Path) -> Result<String, String> {
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(format!("{scheme}:// sources are not implemented by liege"));
    }
    crate::source::read_bounded(&cwd.join(path)).map_err(|e| format!("cannot read {path}: {e}"))
}

/// State carried through application.
struct Cx {
    cwd: PathBuf,
    warnings: Vec<String>,
    /// The last applied value and origin of each option (for cross-option validation).
    last: HashMap<&'static str, (String, Origin)>,
}

fn emperor(s: &mut Settings) -> &mut EmperorConfig {
    s.emperor.get_or_insert_with(EmperorConfig::default)
}

fn nonzero_duration(v: &str) -> Result<Option<Duration>, String> {
    let d = parse_duration(v)?;
    Ok((!d.is_zero()).then_some(d))
}

fn at_least_one(v: &str) -> Result<u32, String> {
    let n = parse_u32(v)?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Apply one option's final value. `Err(reason)` is turned into an error naming the option,
/// value and origin by the caller.
fn apply(s: &mut Settings, def: &OptDef, v: &str, bare: bool, cx: &mut Cx) -> Result<(), String> {
    let m = &mut s.master;
    let w = &mut m.worker;
    let b = parse_bool(v);
    match def.name {
        // configuration
        "strict" => {}
        "plugins" => {
            for p in v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
            {
                check_plugin(p)?;
            }
        }
        "plugins-dir" | "declare-option" => {}
        n if crate::logic::is_opener(n) || crate::logic::is_end(n) => {
            return Err("config logic (for/if-*/end) works only inside ini files".into())
        }
        // sockets
        "socket" | "uwsgi-socket" | "http-socket" | "http" => {
            let addr = parse_addr(v)?;
            let protocol = if def.name.starts_with("http") {
                Protocol::Http
            } else {
                Protocol::Uwsgi
            };
            m.listeners.push(ListenerSpec {
                addr,
                protocol,
                option: def.name.to_string(),
                original: v.to_string(),
            });
        }
        "protocol" => {
            m.inherited_protocol = match v.trim() {
                "http" => Protocol::Http,
                "uwsgi" => Protocol::Uwsgi,
                _ => return Err("expected uwsgi or http".into()),
            }
        }
        "listen" => m.listen = Some(at_least_one(v)?),
        "chmod-socket" => m.chmod_socket = Some(parse_socket_mode(v, bare)?),
        "chown-socket" => {
            let (user, group) = v.split_once(':').unwrap_or((v, "x"));
            if user.is_empty() || group.is_empty() {
                return Err("expected USER or USER:GROUP".into());
            }
            m.chown_socket = Some(v.to_string());
        }
        "vacuum" => m.vacuum = b,
        "reuse-port" => m.reuse_port = b,
        "socket-timeout" => w.socket_timeout = parse_duration(v)?,
        "http-keepalive" => w.http_keepalive = b,
        "no-defer-accept" => w.defer_accept = !b,
        "http-keep-underscore-headers" => w.keep_underscore_headers = b,
        "worker-max-connections" => w.max_connections = at_least_one(v)?,
        "trusted-proxy" => w.trusted_proxies.push(parse_nonempty(v)?),
        // processes
        "processes" => m.processes = at_least_one(v)?,
        "threads" => w.threads = at_least_one(v)?,
        "max-requests" => w.max_requests = parse_u64(v)?,
        "max-requests-delta" => w.max_requests_delta = parse_u64(v)?,
        "harakiri" => w.harakiri = nonzero_duration(v)?,
        "min-worker-lifetime" => m.min_worker_lifetime = parse_duration(v)?,
        "max-worker-lifetime" => m.max_worker_lifetime = nonzero_duration(v)?,
        "reload-on-rss" => {
            let mib = parse_u64(v)?;
            m.reload_on_rss = (mib > 0)
                .then(|| mib.checked_mul(1024 * 1024).ok_or("too large"))
                .transpose()?;
        }
        "procname-prefix" => m.procname_prefix = Some(v.to_string()),
        "no-orphans" => m.no_orphans = b,
        // python application
        "module" => w.app.module = Some(parse_nonempty(v)?),
        "wsgi-file" => w.app.wsgi_file = Some(parse_path(v)?),
        "callable" => w.app.callable = Some(parse_nonempty(v)?),
        "chdir" => w.app.chdir = Some(parse_path(v)?),
        "chdir2" => w.app.chdir2 = Some(parse_path(v)?),
        "home" => w.app.home = Some(parse_path(v)?),
        "python-path" => w.app.python_path.push(parse_nonempty(v)?),
        "env" => {
            let key = v.split_once('=').map_or(v, |(k, _)| k);
            if key.is_empty() {
                return Err("expected KEY=VALUE".into());
            }
            w.app.env.push(v.to_string());
        }
        "unenv" => w.app.unenv.push(parse_nonempty(v)?),
        "need-app" => w.app.need_app = b,
        "import" => w.app.imports.push(parse_nonempty(v)?),
        "pyargv" => w.app.pyargv = Some(v.to_string()),
        "mount" => {
            let (prefix, target) = v.split_once('=').ok_or("expected /prefix=module-or-file")?;
            if target.is_empty() {
                return Err("expected /prefix=module-or-file".into());
            }
            w.app.mounts.push((prefix.to_string(), target.to_string()));
        }
        "manage-script-name" => w.app.manage_script_name = b,
        "optimize" => w.app.optimize = parse_u32(v)?,
        "wsgi-disable-file-wrapper" => w.disable_file_wrapper = b,
        // requests
        "buffer-size" => {
            let n = parse_size(v)?;
            if n == 0 {
                return Err("must be at least 1".into());
            }
            w.buffer_size = usize::try_from(n).map_err(|_| "too large")?;
        }
        "limit-post" => w.limit_post = parse_size(v)?,
        "post-buffering" => w.post_buffering = parse_size(v)?,
        "max-vars" => w.max_vars = at_least_one(v)?,
        "add-header" => {
            match v.split_once(':') {
                Some((n, _)) if !n.trim().is_empty() => {}
                _ => return Err("expected `Name: value`".into()),
            }
            w.add_headers.push(v.to_string());
        }
        // static files
        "static-map" | "static-map2" => {
            let (prefix, dir) = v.split_once('=').ok_or("expected /prefix=DIR")?;
            if prefix.is_empty() || dir.is_empty() {
                return Err("expected /prefix=DIR".into());
            }
            let map = StaticMap {
                prefix: prefix.to_string(),
                dir: PathBuf::from(dir),
            };
            if def.name == "static-map" {
                w.statics.maps.push(map);
            } else {
                w.statics.maps2.push(map);
            }
        }
        "check-static" => w.statics.check_static.push(parse_path(v)?),
        "static-index" => w.statics.index.push(parse_nonempty(v)?),
        "static-skip-ext" => w.statics.skip_ext.push(parse_nonempty(v)?),
        "static-expires"
        | "static-expires-mtime"
        | "static-expires-uri"
        | "static-expires-uri-mtime"
        | "static-expires-path-info"
        | "static-expires-path-info-mtime" => {
            // Split at the first space: the regex cannot contain spaces (as in uWSGI).
            let (re, secs) = v.split_once(' ').ok_or("expected REGEX SECONDS")?;
            let secs = parse_u64(secs).map_err(|e| format!("SECONDS: {e}"))?;
            // Compiled again by the worker; an invalid pattern is a config-time error here.
            regex::Regex::new(re).map_err(|e| format!("invalid regex `{re}`: {e}"))?;
            w.statics
                .expires
                .push((def.name.to_string(), re.to_string(), secs));
        }
        "static-expires-type" | "static-expires-type-mtime" => {
            let (mime, secs) = v.split_once('=').ok_or("expected MIME=SECONDS")?;
            let secs = parse_u64(secs).map_err(|e| format!("SECONDS: {e}"))?;
            w.statics
                .expires
                .push((def.name.to_string(), mime.to_string(), secs));
        }
        "offload-threads" => {
            parse_u32(v)?;
        }
        // reload, signals, lifecycle
        "master-fifo" => m.master_fifo.push(parse_path(v)?),
        "touch-reload" => m.touch_reload.push(parse_path(v)?),
        "touch-chain-reload" => m.touch_chain_reload.push(parse_path(v)?),
        "touch-workers-reload" => m.touch_workers_reload.push(parse_path(v)?),
        "touch-logreopen" => m.touch_logreopen.push(parse_path(v)?),
        "worker-reload-mercy" => m.worker_reload_mercy = parse_duration(v)?,
        "reload-mercy" => m.reload_mercy = nonzero_duration(v)?,
        "die-on-term" => m.die_on_term = b,
        "sigterm-reloads" => m.sigterm_reloads = b,
        "reload-batch" => m.reload_batch = at_least_one(v)?,
        "heartbeat" => m.heartbeat = nonzero_duration(v)?,
        // privileges and files
        "uid" => m.uid = Some(parse_nonempty(v)?),
        "gid" => m.gid = Some(parse_nonempty(v)?),
        "no-initgroups" => m.no_initgroups = b,
        "master-as-root" => m.master_as_root = b,
        "chroot" => m.chroot = Some(parse_path(v)?),
        "umask" => m.umask = Some(parse_octal(v)?),
        "pidfile" => m.pidfile = Some(parse_path(v)?),
        "pidfile2" => m.pidfile2 = Some(parse_path(v)?),
        "safe-pidfile" => m.safe_pidfile = Some(parse_path(v)?),
        "daemonize" => m.daemonize = Some(parse_path(v)?),
        // logging
        "logto" => m.logto = Some(parse_path(v)?),
        "log-maxsize" => m.log_maxsize = Some(parse_size(v)?).filter(|n| *n > 0),
        "log-backupname" => m.log_backupname = Some(parse_path(v)?),
        "log-reopen" => m.log_reopen = b,
        "disable-logging" => w.disable_logging = b,
        "log-format" => w.log_format = Some(parse_log_format(v)?),
        "log-x-forwarded-for" => w.log_x_forwarded_for = b,
        "log-date" => {
            w.log_date = if bare || v.is_empty() || v == "true" || v == "1" {
                Some(String::new())
            } else if !parse_bool(v) {
                None
            } else {
                Some(v.to_string())
            }
        }
        // daemons and cron
        "attach-daemon" | "attach-control-daemon" => {
            let mut d = daemon(parse_nonempty(v)?);
            d.control = def.name == "attach-control-daemon";
            m.daemons.push(d);
        }
        "smart-attach-daemon" | "smart-attach-daemon2" => {
            let (pid, cmd) = v.trim().split_once(' ').ok_or("expected PIDFILE COMMAND")?;
            let (pidfile, freq) = match pid.split_once(',') {
                Some((p, f)) => (p, Some(parse_u32(f).map_err(|e| format!("freq: {e}"))?)),
                None => (pid, None),
            };
            if freq.is_some_and(|f| f != 10) {
                cx.warnings.push(format!(
                    "smart-attach-daemon `{v}`: liege checks the pidfile every second; the freq value is not used"
                ));
            }
            let mut d = daemon(parse_nonempty(cmd.trim())?);
            d.pidfile = Some(parse_path(pidfile)?);
            d.managed_pidfile = def.name == "smart-attach-daemon2";
            m.daemons.push(d);
        }
        "attach-daemon2" => m.daemons.push(daemon2(v, cx)?),
        "cron" | "unique-cron" => {
            let mut c = cron_classic(v)?;
            c.unique = def.name == "unique-cron";
            m.crons.push(c);
        }
        "cron2" => m.crons.push(cron2(v)?),
        "cron-harakiri" => m.cron_harakiri = nonzero_duration(v)?,
        // cheap / idle / cheaper
        "cheap" => m.cheap = b,
        "idle" => m.idle = nonzero_duration(v)?,
        "die-on-idle" => m.die_on_idle = b,
        "cheaper" => m.cheaper = parse_u32(v)?,
        "cheaper-initial" => m.cheaper_initial = Some(at_least_one(v)?),
        "cheaper-step" => m.cheaper_step = at_least_one(v)?,
        "cheaper-overload" => m.cheaper_overload = at_least_one(v)?,
        "cheaper-algo" => match v {
            "spare" => m.cheaper_algo = Some(v.to_string()),
            "backlog" | "manual" | "busyness" | "spare2" => {
                return Err(format!(
                    "the `{v}` algorithm is recognised but not implemented yet by liege (spare)"
                ))
            }
            _ => return Err("expected spare, backlog or manual".into()),
        },
        // stats
        "stats" => m.stats = Some(parse_addr(v)?),
        "stats-http" => {
            m.stats_http = b;
            if let Some(e) = s.emperor.as_mut() {
                e.stats_http = b;
            }
        }
        "stats-minified" => m.stats_minified = b,
        // emperor
        "emperor" => {
            let mon = resolve_monitor(v, &cx.cwd)?;
            emperor(s).monitors.push(mon);
        }
        "emperor-freq" => emperor(s).freq = at_least_one_duration(v)?,
        "emperor-tyrant" => emperor(s).tyrant = b,
        "emperor-tyrant-nofollow" => emperor(s).tyrant_nofollow = b,
        "emperor-nofollow" => emperor(s).nofollow = b,
        "emperor-stats" => emperor(s).stats = Some(parse_addr(v)?),
        "vassals-include" => emperor(s).vassals_include.push(parse_path(v)?),
        "vassals-include-before" => emperor(s).vassals_include_before.push(parse_path(v)?),
        "vassals-inherit" => emperor(s).vassals_inherit.push(parse_path(v)?),
        "vassals-inherit-before" => emperor(s).vassals_inherit_before.push(parse_path(v)?),
        "vassal-set" => {
            if !v.contains('=') {
                return Err("expected KEY=VALUE".into());
            }
            emperor(s).vassal_set.push(v.to_string());
        }
        "emperor-wrapper" => emperor(s).wrapper = Some(parse_path(v)?),
        "emperor-graceful-shutdown" => emperor(s).graceful_shutdown = b,
        "emperor-throttle" => emperor(s).throttle = parse_duration(v)?,
        "emperor-max-throttle" => emperor(s).max_throttle = parse_duration(v)?,
        "emperor-curse-tolerance" => emperor(s).curse_tolerance = parse_duration(v)?,
        "emperor-required-heartbeat" => emperor(s).required_heartbeat = at_least_one_duration(v)?,
        "emperor-on-demand-extension" => emperor(s).on_demand_extension = Some(parse_nonempty(v)?),
        "emperor-on-demand-directory" => emperor(s).on_demand_directory = Some(parse_path(v)?),
        "emperor-on-demand-exec" => emperor(s).on_demand_exec = Some(parse_nonempty(v)?),
        "emperor-extra-extension" => {
            let ext = parse_nonempty(v)?;
            emperor(s)
                .extra_extensions
                .push(ext.trim_start_matches('.').to_string());
        }
        "emperor-pidfile" => emperor(s).pidfile = Some(parse_path(v)?),
        // accepted for compatibility
        "lazy-apps" | "lazy" => m.lazy_apps = b,
        "master"
        | "enable-threads"
        | "single-interpreter"
        | "thunder-lock"
        | "py-call-osafterfork"
        | "auto-procname"
        | "memory-report"
        | "catch-exceptions"
        | "autoload" => {
            if !b {
                cx.warnings
                    .push(format!("`{} = {v}` has no effect: {}", def.name, def.help));
            }
        }
        other => return Err(format!("internal error: option `{other}` has no handler")),
    }
    Ok(())
}

fn at_least_one_duration(v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// Cross-option validation and derived values, once every entry is applied.
fn finish(s: &mut Settings, cx: &mut Cx, errors: &mut Vec<ConfigError>) {
    let m = &mut s.master;
    m.worker.processes = m.processes;
    if m.cheaper > 0 && m.cheaper >= m.processes {
        let (v, o) = cx.last["cheaper"].clone();
        errors.push(ConfigError::invalid(
            "cheaper",
            &v,
            &o,
            format!("must be lower than processes ({})", m.processes),
        ));
    }
    if let Some(initial) = m.cheaper_initial {
        if initial < m.cheaper.max(1) || initial > m.processes {
            let (v, o) = cx.last["cheaper-initial"].clone();
            errors.push(ConfigError::invalid(
                "cheaper-initial",
                &v,
                &o,
                format!(
                    "must be between cheaper ({}) and processes ({})",
                    m.cheaper, m.processes
                ),
            ));
        }
    }
    // `protocol` is the default protocol of `socket` (uWSGI: `uwsgi-socket`/`http-socket` name
    // theirs explicitly) and of inherited sockets.
    let default_protocol = m.inherited_protocol;
    for l in m.listeners.iter_mut().filter(|l| l.option == "socket") {
        l.protocol = default_protocol;
    }
    // A vassal (§7.3): `daemonize` turns into `logto`; the emperor supervises it.
    if s.emperor_fd.is_some() {
        if let Some(d) = m.daemonize.take() {
            m.logto = Some(d);
        }
    }
    if m.die_on_idle && m.idle.is_none() {
        cx.warnings
            .push("die-on-idle has no effect without idle = SECONDS".to_string());
    }
    if let Some(e) = s.emperor.as_mut() {
        let m = &s.master;
        e.stats_http = e.stats_http || m.stats_http;
        if e.pidfile.is_none() {
            e.pidfile = m.pidfile.clone();
        }
        e.logto = m.logto.clone();
        e.daemonize = m.daemonize.clone();
        e.uid = m.uid.clone();
        e.gid = m.gid.clone();
        e.listen = m.listen;
    }
}

fn daemon(command: String) -> DaemonSpec {
    DaemonSpec {
        command,
        pidfile: None,
        managed_pidfile: false,
        control: false,
        stop_signal: 15,
        reload_signal: None,
        touch: Vec::new(),
        uid: None,
        gid: None,
        chdir: None,
        max_throttle: None,
        keep_stdin: false,
    }
}

/// `attach-daemon2 = key=value,...` (§6.1).
fn daemon2(v: &str, cx: &mut Cx) -> Result<DaemonSpec, String> {
    let mut d = daemon(String::new());
    for kv in v.split(',') {
        let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
        let k = k.trim();
        let num = |what: &str| {
            val.trim()
                .parse::<u32>()
                .map_err(|_| format!("{what}: `{val}` is not a number"))
        };
        match k {
            "command" | "cmd" | "exec" => d.command = val.to_string(),
            "pidfile" => d.pidfile = Some(parse_path(val)?),
            "daemonize" | "daemon" => d.managed_pidfile = parse_bool(val),
            "control" => d.control = parse_bool(val),
            "touch" => {
                d.touch = val
                    .split(';')
                    .filter(|t| !t.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            "stopsignal" | "stop_signal" => d.stop_signal = signal_number(val)?,
            "reloadsignal" | "reload_signal" => d.reload_signal = Some(signal_number(val)?),
            "stdin" => d.keep_stdin = parse_bool(val),
            "uid" => d.uid = Some(num("uid (numeric only)")?),
            "gid" => d.gid = Some(num("gid (numeric only)")?),
            "chdir" => d.chdir = Some(parse_path(val)?),
            "max_throttle" => d.max_throttle = nonzero_duration(val)?,
            "freq" => {
                num("freq")?;
                cx.warnings.push(format!(
                    "attach-daemon2 `{v}`: liege checks the pidfile every second; freq is not used"
                ));
            }
            "" => {}
            "ns_pid" | "notifypid" | "legion" => {
                return Err(format!("key `{k}` is not implemented by liege"))
            }
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    if d.command.is_empty() {
        return Err("the command (cmd=...) is required".into());
    }
    if d.managed_pidfile && d.pidfile.is_none() {
        return Err("daemonize=1 needs pidfile=...".into());
    }
    Ok(d)
}

fn signal_number(v: &str) -> Result<i32, String> {
    match v.trim().parse::<i32>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("`{v}` is not a signal number (1-64)")),
    }
}

/// One cron field: -1 = any, -N = every N, N = at N (within `lo..=hi`).
fn cron_field(v: &str, what: &str, lo: i64, hi: i64) -> Result<CronField, String> {
    let n: i64 = v
        .parse()
        .map_err(|_| format!("{what} `{v}` is not an integer (-1 = every, -N = every N)"))?;
    match n {
        -1 => Ok(CronField::Any),
        n if n < -1 => Ok(CronField::Every(
            u32::try_from(n.unsigned_abs()).map_err(|_| format!("{what} out of range"))?,
        )),
        n if (lo..=hi).contains(&n) => Ok(CronField::At(n as u32)),
        _ => Err(format!("{what} {n} is outside {lo}..{hi}")),
    }
}

/// `cron = MIN HOUR MDAY MONTH WDAY command` (§6.2).
fn cron_classic(v: &str) -> Result<CronSpec, String> {
    let mut rest = v.trim_start();
    let mut fields = Vec::new();
    for _ in 0..5 {
        let end = rest
            .find(char::is_whitespace)
            .ok_or("expected MIN HOUR MDAY MONTH WDAY COMMAND")?;
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    if rest.is_empty() {
        return Err("expected MIN HOUR MDAY MONTH WDAY COMMAND".into());
    }
    Ok(CronSpec {
        minute: cron_field(fields[0], "minute", 0, 59)?,
        hour: cron_field(fields[1], "hour", 0, 23)?,
        mday: cron_field(fields[2], "day of month", 1, 31)?,
        month: cron_field(fields[3], "month", 1, 12)?,
        wday: cron_field(fields[4], "day of week", 0, 7)?,
        command: rest.to_string(),
        unique: false,
        harakiri: None,
    })
}

/// `cron2 = key=val,... command` or `cron2 = command` (§6.2).
fn cron2(v: &str) -> Result<CronSpec, String> {
    let v = v.trim();
    let (keys, command) = match v.split_once(' ') {
        Some((first, rest)) if first.contains('=') => (first, rest.trim()),
        _ => ("", v),
    };
    if command.is_empty() {
        return Err("expected [key=value,...] COMMAND".into());
    }
    let mut c = CronSpec {
        minute: CronField::Any,
        hour: CronField::Any,
        mday: CronField::Any,
        month: CronField::Any,
        wday: CronField::Any,
        command: command.to_string(),
        unique: false,
        harakiri: None,
    };
    for kv in keys.split(',').filter(|s| !s.is_empty()) {
        let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "minute" => c.minute = cron_field(val, "minute", 0, 59)?,
            "hour" => c.hour = cron_field(val, "hour", 0, 23)?,
            "day" => c.mday = cron_field(val, "day", 1, 31)?,
            "month" => c.month = cron_field(val, "month", 1, 12)?,
            "week" => c.wday = cron_field(val, "week", 0, 7)?,
            "unique" => c.unique = parse_bool(val),
            // harakiri=0 exempts the job from cron-harakiri.
            "harakiri" => c.harakiri = Some(parse_duration(val)?),
            "legion" => return Err("key `legion` is not implemented by liege".into()),
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    Ok(c)
}

/// `plugins = ...`: liege has Python 3 built in; there are no other plugins to load.
pub(crate) fn check_plugin(name: &str) -> Result<(), String> {
    let n = name.trim();
    let py3 = n.strip_prefix("python3").is_some_and(|rest| {
        rest.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
    });
    if n == "python" || py3 {
        return Ok(());
    }
    if n == "http" {
        return Ok(()); // liege's workers serve HTTP themselves
    }
    if n.starts_with("python2") || n == "python27" {
        return Err(format!("plugin `{n}`: liege embeds Python 3 only"));
    }
    Err(format!(
        "plugin `{n}` is a uWSGI C plugin; liege has Python 3 and HTTP built in and loads no plugins"
    ))
}

/// Resolve an emperor monitor against the current directory (each one on its own).
fn resolve_monitor(v: &str, cwd: &Path) -> Result<String, String> {
    let abs = |p: &str| -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            cwd.join(p).to_string_lossy().into_owned()
        }
    };
    if v.is_empty() {
        return Err("expected a directory or glob".into());
    }
    for scheme in ["dir://", "glob://"] {
        if let Some(rest) = v.strip_prefix(scheme) {
            return Ok(format!("{scheme}{}", abs(rest)));
        }
    }
    if let Some((scheme, _)) = v.split_once("://") {
        return Err(format!(
            "the {scheme}:// monitor is not implemented by liege (directories and globs are)"
        ));
    }
    Ok(abs(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields() {
        let c = cron_classic("-5 -1 -1 -1 -1 /path/to/some/script --arg  x").unwrap();
        assert_eq!(c.minute, CronField::Every(5));
        assert_eq!(c.hour, CronField::Any);
        assert_eq!(c.command, "/path/to/some/script --arg  x");
        let c = cron_classic("30 2 1 12 0 backup").unwrap();
        assert_eq!(
            (c.minute, c.hour, c.mday, c.month, c.wday),
            (
                CronField::At(30),
                CronField::At(2),
                CronField::At(1),
                CronField::At(12),
                CronField::At(0)
            )
        );
        assert!(cron_classic("60 -1 -1 -1 -1 x").is_err());
        assert!(cron_classic("* -1 -1 -1 -1 x").is_err());
        assert!(cron_classic("-1 -1 -1 -1 -1").is_err());
        assert!(cron_classic("-1 -1 -1 -1 8 x").is_err());
    }

    #[test]
    fn cron_field_most_negative_is_an_error() {
        // -i64::MIN overflowed (a panic with overflow checks).
        assert!(cron_classic("-9223372036854775808 -1 -1 -1 -1 x").is_err());
        assert!(cron2("minute=-9223372036854775808 x").is_err());
        assert_eq!(
            cron_field("-4294967295", "minute", 0, 59),
            Ok(CronField::Every(u32::MAX))
        );
        assert!(cron_field("-4294967296", "minute", 0, 59).is_err());
    }

    #[test]
    fn cron2_keys() {
        let c = cron2("minute=-2,unique=1,harakiri=0 /bin/job a").unwrap();
        assert_eq!(c.minute, CronField::Every(2));
        assert!(c.unique);
        assert_eq!(c.harakiri, Some(Duration::ZERO));
        assert_eq!(c.command, "/bin/job a");
        let c = cron2("/bin/every-minute").unwrap();
        assert_eq!(c.minute, CronField::Any);
        assert!(cron2("bogus=1 x").is_err());
    }

    #[test]
    fn attach_daemon2_keys() {
        let mut cx = Cx {
            cwd: "/".into(),
            warnings: vec![],
            last: HashMap::new(),
        };
        let d = daemon2("cmd=/bin/sleep 100,pidfile=/tmp/p,daemonize=1,stopsignal=2,touch=/a;/b,uid=1000,chdir=/tmp", &mut cx).unwrap();
        assert_eq!(d.command, "/bin/sleep 100");
        assert_eq!(d.pidfile, Some("/tmp/p".into()));
        assert!(d.managed_pidfile);
        assert_eq!(d.stop_signal, 2);
        assert_eq!(d.touch, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(d.uid, Some(1000));
        assert!(daemon2("pidfile=/x", &mut cx).is_err());
        assert!(daemon2("cmd=x,uid=www-data", &mut cx).is_err());
        assert!(daemon2("cmd=x,stopsignal=TERM", &mut cx).is_err());
        assert!(daemon2("cmd=x,bogus=1", &mut cx).is_err());
    }

    #[test]
    fn plugins() {
        for ok in [
            "python",
            "python3",
            "python34",
            "python311",
            "python3.11",
            "http",
        ] {
            assert!(check_plugin(ok).is_ok(), "{ok}");
        }
        assert!(check_plugin("python27").unwrap_err().contains("Python 3"));
        assert!(check_plugin("gevent").unwrap_err().contains("C plugin"));
    }

    #[test]
    fn monitors() {
        let cwd = Path::new("/home/u");
        assert_eq!(resolve_monitor("vassals", cwd).unwrap(), "/home/u/vassals");
        assert_eq!(
            resolve_monitor("/etc/v/*.ini", cwd).unwrap(),
            "/etc/v/*.ini"
        );
        assert_eq!(
            resolve_monitor("glob://v/*.ini", cwd).unwrap(),
            "glob:///home/u/v/*.ini"
        );
        assert!(resolve_monitor("pg://x", cwd).is_err());
    }
}
