//! Stage 1: sources → one ordered list of raw `(key, value, origin)` entries (uWSGI §1.1).
//!
//! Order: `UWSGI_*`/`LIEGE_*` environment variables, then the command line from left to right.
//! `--ini FILE[:section]`, `--include FILE` and positional `*.ini` arguments are read on the spot
//! and their entries spliced in at that position ("top-bottom, expand asap"); so are `ini` and
//! `include` lines inside files.
//!
//! The ini reader is hand-written rather than rust-ini: uWSGI's grammar differs from what
//! rust-ini parses (a bare key with no `=` is valid, `:` is not a separator, quotes are literal),
//! and every entry must carry its line number for error messages. Magic variables (§1.4) are
//! substituted in each line's raw text before it is parsed.

use crate::error::{ConfigError, Origin};
use crate::logic;
use crate::magic::{FileMagic, Magic, ProcessMagic};
use crate::registry::{self, Arg};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One raw configuration entry, before expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key exactly as written (an option name, an alias, or a placeholder name).
    pub key: String,
    /// The value (magic variables already substituted for file entries).
    pub value: String,
    /// A bare key (`master` in an ini file, `--master` on the command line): no value given.
    pub bare: bool,
    pub origin: Origin,
    /// From an `inherit`ed file: appended after every other source and, as in uWSGI, not
    /// subject to `$()`/`@()`/`%()` expansion (only magic variables apply).
    pub late: bool,
}

/// Commands given on the command line (not options of the server itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands {
    pub help: bool,
    pub version: bool,
    pub check: bool,
    pub lenient: bool,
    pub reload: Option<PathBuf>,
    pub stop: Option<PathBuf>,
    pub status: Option<String>,
}

/// Environment variables named `UWSGI_*` that uWSGI reserves for internal use (§1.1).
pub const RESERVED_UWSGI_ENV: &[&str] = &[
    "UWSGI_RELOADS",
    "UWSGI_VASSALS_DIR",
    "UWSGI_EMPEROR_FD",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_BROODLORD_NUM",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_JAIL_PID",
    "UWSGI_ORIGINAL_PROC_NAME",
];

/// `LIEGE_*` variables that configure liege itself rather than name an option.
pub const RESERVED_LIEGE_ENV: &[&str] = &["LIEGE_LOG", "LIEGE_BIN"];

/// What uWSGI's ini reader strips around lines, keys and values.
const INI_BLANKS: [char; 3] = [' ', '\t', '\r'];

/// Maximum nesting of `ini`/`include` (guards against include loops).
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// Maximum number of config files loaded in one parse (guards against a file that includes
/// itself several times, which the depth limit alone would let grow exponentially).
pub const MAX_CONFIG_LOADS: usize = 512;

/// Most bytes of config files (`ini`, `include`, `inherit`) read in one parse, all files
/// together: a budget per vassal, so that a user's file cannot make its parser (the emperor's
/// check, the master) spend seconds and gigabytes (docs/security.md).
pub const MAX_CONFIG_TOTAL: usize = 4 << 20;

/// Set by a tyrant emperor in a vassal's environment: the uid that must own the vassal's
/// `--ini` file, opened without following a symlink (docs/security.md). The `LIEGE__` prefix
/// keeps it from being read as an option.
pub const VASSAL_OWNER_ENV: &str = "LIEGE__VASSAL_OWNER";
/// Set with [`VASSAL_OWNER_ENV`] for a liege vassal (and its config check): the descriptor
/// of the very file the emperor opened and checked, which the first `--ini` is read from.
pub const VASSAL_FILE_FD_ENV: &str = "LIEGE__VASSAL_FILE_FD";
/// Maximum number of entries one parse collects from ini files, and of items in one `for`
/// loop (guards against loops and includes multiplying a small file into millions of entries).
pub const MAX_ENTRIES: usize = 100_000;

/// Everything stage 1 produced.
#[derive(Debug, Default)]
pub struct Collected {
    pub entries: Vec<Entry>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    pub errors: Vec<ConfigError>,
    pub commands: Commands,
    pub emperor_fd: Option<i32>,
}

/// Reads every source in order.
pub struct Loader {
    pub cwd: PathBuf,
    process: ProcessMagic,
    /// The first config loaded with `--ini` (for the uppercase magic variables).
    first: Option<FileMagic>,
    /// The last ini file loaded (for `:section` without a file).
    last_ini: Option<PathBuf>,
    depth: usize,
    /// Config files loaded so far (see [`MAX_CONFIG_LOADS`]).
    loads: usize,
    /// `inherit` files, loaded by [`Loader::finish`] after every other source.
    inherits: Vec<(String, Origin)>,
    /// Entries being read now come from an inherited file.
    late: bool,
    /// [`MAX_ENTRIES`] was reached (reported once); later ini entries are dropped.
    capped: bool,
    /// The environment given to [`Loader::env`] (for `if-env`).
    env_vars: std::collections::HashMap<String, String>,
    /// [`VASSAL_OWNER_ENV`]: the uid the first `--ini` file must belong to.
    owner: Option<u32>,
    /// Text already read for one file (the emperor hands in what it read from its own fd).
    preload: Option<(PathBuf, String)>,
    /// [`VASSAL_FILE_FD_ENV`]: the descriptor to read the owner-checked first `--ini` from.
    handed: Option<i32>,
    /// Config bytes read so far (see [`MAX_CONFIG_TOTAL`]).
    read_total: usize,
    pub out: Collected,
}

impl Loader {
    pub fn new(cwd: PathBuf) -> Loader {
        let process = ProcessMagic::current(&cwd);
        Loader::with_process(cwd, process)
    }

    /// A loader with given process magic values (tests).
    pub fn with_process(cwd: PathBuf, process: ProcessMagic) -> Loader {
        Loader {
            cwd,
            process,
            first: None,
            last_ini: None,
            depth: 0,
            loads: 0,
            inherits: Vec::new(),
            late: false,
            capped: false,
            env_vars: Default::default(),
            owner: None,
            preload: None,
            handed: None,
            read_total: 0,
            out: Collected::default(),
        }
    }

    /// Use `text` as the content of the config file `path` instead of reading it.
    pub fn preload(&mut self, path: PathBuf, text: String) {
        self.preload = Some((path, text));
    }

    /// `UWSGI_<NAME>` and `LIEGE_<NAME>` become option `name` (lower-cased, `_` → `-`).
    pub fn env(&mut self, env: &[(String, String)]) {
        self.env_vars = env.iter().cloned().collect();
        if let Some((var, v)) = env.iter().find(|(k, _)| k == VASSAL_OWNER_ENV) {
            match v.trim().parse::<u32>() {
                Ok(uid) => self.owner = Some(uid),
                Err(_) => self.out.errors.push(ConfigError::invalid(
                    VASSAL_OWNER_ENV,
                    v,
                    &Origin::Env(var.clone()),
                    "expected a uid",
                )),
            }
        }
        if let Some((var, v)) = env.iter().find(|(k, _)| k == VASSAL_FILE_FD_ENV) {
            match v.trim().parse::<i32>() {
                Ok(fd) if fd >= 3 => self.handed = Some(fd),
                _ => self.out.errors.push(ConfigError::invalid(
                    VASSAL_FILE_FD_ENV,
                    v,
                    &Origin::Env(var.clone()),
                    "expected a file descriptor number",
                )),
            }
        }
        for (var, value) in env {
            if var == "UWSGI_EMPEROR_FD" {
                match value.trim().parse::<i32>() {
                    Ok(fd) if fd >= 0 => self.out.emperor_fd = Some(fd),
                    _ => self.out.errors.push(ConfigError::invalid(
                        "UWSGI_EMPEROR_FD",
                        value,
                        &Origin::Env(var.clone()),
                        "expected a file descriptor number",
                    )),
                }
                continue;
            }
            if RESERVED_UWSGI_ENV.contains(&var.as_str())
                || RESERVED_LIEGE_ENV.contains(&var.as_str())
                || var.starts_with("LIEGE__")
                // Emperor templates for vassals (§7.8), read by the emperor itself.
                || var.starts_with("UWSGI_VASSAL_")
            {
                continue;
            }
            let Some(name) = var
                .strip_prefix("UWSGI_")
                .or_else(|| var.strip_prefix("LIEGE_"))
            else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let key = name.to_ascii_lowercase().replace('_', "-");
            let origin = Origin::Env(var.clone());
            if key == "ini" || key == "include" {
                self.load_config_arg(value, &origin, &key, key == "ini");
                continue;
            }
            if key == "inherit" {
                self.inherits.push((value.clone(), origin));
                continue;
            }
            self.out.entries.push(Entry {
                key,
                value: value.clone(),
                bare: false,
                origin,
                late: self.late,
            });
        }
    }

    /// The command line (argv without the program name), left to right.
    pub fn args(&mut self, args: &[OsString]) {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut i = 0;
        let mut only_positional = false;
        while i < args.len() {
            let arg = &args[i];
            let index = i + 1;
            i += 1;
            let origin = Origin::CommandLine {
                index,
                arg: arg.clone(),
            };
            if !only_positional && arg == "--" {
                only_positional = true;
                continue;
            }
            if !only_positional && arg.len() > 2 && arg.starts_with("--") {
                let body = &arg[2..];
                let (name, inline) = match body.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (body, None),
                };
                let value = |i: &mut usize| -> Option<String> {
                    if let Some(v) = &inline {
                        return Some(v.clone());
                    }
                    let v = args.get(*i).cloned();
                    if v.is_some() {
                        *i += 1;
                    }
                    v
                };
                let Some(def) = registry::lookup(name) else {
                    // Unknown: consume a following value-looking argument so that one mistake
                    // gives one error, not a second one about a stray positional argument.
                    let (v, bare) = match &inline {
                        Some(v) => (v.clone(), false),
                        None if args
                            .get(i)
                            .is_some_and(|n| !n.starts_with('-') && !n.ends_with(".ini")) =>
                        {
                            i += 1;
                            (args[i - 1].clone(), false)
                        }
                        None => (String::new(), true),
                    };
                    self.out.entries.push(Entry {
                        key: name.to_string(),
                        value: v,
                        bare,
                        origin,
                        late: self.late,
                    });
                    continue;
                };
                let (v, bare) = match def.arg {
                    Arg::None | Arg::Optional => match &inline {
                        Some(v) => (v.clone(), false),
                        None => (String::new(), true),
                    },
                    Arg::Required => match value(&mut i) {
                        Some(v) => (v, false),
                        None => {
                            self.out.errors.push(ConfigError::CommandLine {
                                origin,
                                message: format!("option `--{name}` requires a value"),
                            });
                            continue;
                        }
                    },
                };
                self.cli_option(def.name, name, v, bare, origin);
                continue;
            }
            if !only_positional && arg.len() > 1 && arg.starts_with('-') {
                // A bundle of short flags, getopt style: `-M`, `-p4`, `-p 4`, `-Mi`.
                let flags: Vec<char> = arg[1..].chars().collect();
                let mut k = 0;
                while k < flags.len() {
                    let c = flags[k];
                    k += 1;
                    let rest: String = flags[k..].iter().collect();
                    let Some(def) = registry::lookup_short(c) else {
                        // A uWSGI short flag of an option liege does not implement: recorded
                        // under its long name so the error says exactly that.
                        if let Some((_, long, takes)) = registry::NOT_IMPLEMENTED_SHORT
                            .iter()
                            .find(|(f, _, _)| *f == c)
                        {
                            let value = if !takes {
                                String::new()
                            } else if !rest.is_empty() {
                                rest
                            } else if i < args.len() {
                                i += 1;
                                args[i - 1].clone()
                            } else {
                                String::new()
                            };
                            self.out.entries.push(Entry {
                                key: long.to_string(),
                                value,
                                bare: !takes,
                                origin: origin.clone(),
                                late: self.late,
                            });
                            if *takes {
                                break;
                            }
                            continue;
                        }
                        self.out.errors.push(ConfigError::CommandLine {
                            origin: origin.clone(),
                            message: format!("unknown short option `-{c}`"),
                        });
                        break;
                    };
                    match def.arg {
                        Arg::None => {
                            self.cli_option(def.name, def.name, String::new(), true, origin.clone())
                        }
                        Arg::Optional => {
                            let bare = rest.is_empty();
                            self.cli_option(def.name, def.name, rest, bare, origin.clone());
                            break;
                        }
                        Arg::Required => {
                            let v = if !rest.is_empty() {
                                Some(rest)
                            } else if i < args.len() {
                                i += 1;
                                Some(args[i - 1].clone())
                            } else {
                                None
                            };
                            match v {
                                Some(v) => {
                                    self.cli_option(def.name, def.name, v, false, origin.clone())
                                }
                                None => self.out.errors.push(ConfigError::CommandLine {
                                    origin: origin.clone(),
                                    message: format!(
                                        "option `-{c}` ({}) requires a value",
                                        def.name
                                    ),
                                }),
                            }
                            break;
                        }
                    }
                }
                continue;
            }
            // Positional arguments.
            if index == 1 && arg == "emperor-status" {
                match args.get(i) {
                    Some(addr) => {
                        self.out.commands.status = Some(addr.clone());
                        i += 1;
                    }
                    None => self.out.errors.push(ConfigError::CommandLine {
                        origin,
                        message: "`emperor-status` needs the emperor's stats address".into(),
                    }),
                }
                continue;
            }
            let (file, _) = split_section(arg);
            let ext = Path::new(file)
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            match ext.as_str() {
                "ini" => self.load_config_arg(arg, &origin, "ini", false),
                "xml" | "yaml" | "yml" | "json" | "js" => {
                    self.out.errors.push(ConfigError::CommandLine {
                        origin,
                        message: format!(
                            "unable to load configuration from `{arg}`: liege reads ini files only"
                        ),
                    })
                }
                "py" | "wsgi" if ext == "py" || self.cwd.join(file).is_file() => self.out.errors.push(ConfigError::CommandLine {
                    origin,
                    message: format!(
                        "unable to load configuration from `{arg}` (positional arguments must be *.ini files; \
                         to serve a Python file use --wsgi-file {arg})"
                    ),
                }),
                _ => self.out.errors.push(ConfigError::CommandLine {
                    origin,
                    message: format!(
                        "unable to load configuration from `{arg}` (positional arguments must be *.ini files; \
                         to serve a Python module or `module:callable` use --module {arg} (-w), \
                         for a file --wsgi-file FILE.py)"
                    ),
                }),
            }
        }
    }

    /// Load the `inherit`ed files (uWSGI: not immediate, so appended after every other source,
    /// and their values escape late expansion). Call once, after [`Loader::env`] and
    /// [`Loader::args`]. Returns the finished collection.
    pub fn finish(mut self) -> Collected {
        self.late = true;
        let mut loaded = 0;
        while loaded < self.inherits.len() {
            let (arg, origin) = self.inherits[loaded].clone();
            loaded += 1;
            if loaded > MAX_INCLUDE_DEPTH {
                self.out.errors.push(ConfigError::invalid(
                    "inherit",
                    &arg,
                    &origin,
                    format!("more than {MAX_INCLUDE_DEPTH} inherited files (an inherit loop?)"),
                ));
                break;
            }
            self.load_config_arg(&arg, &origin, "inherit", false);
        }
        self.out
    }

    /// One `key = value` line of the wanted section, through config logic (§1.6).
    fn ini_line(
        &mut self,
        key: String,
        value: String,
        bare: bool,
        origin: Origin,
        block: &mut Option<Block>,
    ) {
        if logic::is_end(&key) {
            if block.take().is_none() {
                self.out.errors.push(ConfigError::invalid(
                    &key,
                    &value,
                    &origin,
                    "no `for`/`if-*` block is open",
                ));
            }
            return;
        }
        if logic::is_opener(&key) {
            if let Some(b) = block {
                self.out.errors.push(ConfigError::invalid(
                    &key,
                    &value,
                    &origin,
                    format!(
                        "nested config logic is not supported (inside `{}` from {})",
                        b.opener, b.origin
                    ),
                ));
                return;
            }
            let ctx = logic::Context {
                cwd: &self.cwd,
                env: &self.env_vars,
                hostname: &self.process.hostname,
                entries: &self.out.entries,
            };
            *block = Some(match logic::open(&key, &value, &ctx) {
                Ok(body) => Block {
                    opener: key,
                    data: value,
                    origin,
                    body,
                },
                Err(reason) => {
                    self.out
                        .errors
                        .push(ConfigError::invalid(&key, &value, &origin, reason));
                    // Skip the body of a block that could not be evaluated.
                    Block {
                        opener: key,
                        data: value,
                        origin,
                        body: logic::Body::Skip,
                    }
                }
            });
            return;
        }
        match block.as_ref().map(|b| b.body.clone()) {
            None => self.emit(key, value, bare, origin),
            Some(logic::Body::Skip) => {}
            Some(logic::Body::Take(subst)) => {
                let value = match subst {
                    Some(s) => value.replace("%(_)", &s),
                    None => value,
                };
                self.emit(key, value, bare, origin);
            }
            // uWSGI applies each line of a `for` block to every item before the next line.
            Some(logic::Body::Repeat(items)) => {
                for item in items {
                    if self.capped {
                        break;
                    }
                    self.emit(
                        key.replace("%(_)", &item),
                        value.replace("%(_)", &item),
                        bare,
                        origin.clone(),
                    );
                }
            }
        }
    }

    /// One entry from an ini file: config loaders run at once, everything else is recorded.
    fn emit(&mut self, key: String, value: String, bare: bool, origin: Origin) {
        if self.capped || self.out.entries.len() >= MAX_ENTRIES {
            if !self.capped {
                self.capped = true;
                self.out.errors.push(ConfigError::invalid(
                    &key,
                    &value,
                    &origin,
                    format!(
                        "more than {MAX_ENTRIES} config entries (a loop or include that multiplies them?); the rest is not read"
                    ),
                ));
            }
            return;
        }
        if key == "ini" || key == "include" {
            self.load_config_arg(&value, &origin, &key, false);
            return;
        }
        if key == "inherit" {
            self.inherits.push((value, origin));
            return;
        }
        self.out.entries.push(Entry {
            key,
            value,
            bare,
            origin,
            late: self.late,
        });
    }

    /// One recognised command-line option: commands are recorded, config loaders run at once,
    /// everything else becomes an entry.
    fn cli_option(
        &mut self,
        canonical: &str,
        written: &str,
        value: String,
        bare: bool,
        origin: Origin,
    ) {
        let c = &mut self.out.commands;
        match canonical {
            "help" => c.help = true,
            "version" => c.version = true,
            "check" => c.check = crate::value::parse_bool(&value),
            "lenient" => c.lenient = crate::value::parse_bool(&value),
            "reload" => c.reload = Some(PathBuf::from(value)),
            "stop" => c.stop = Some(PathBuf::from(value)),
            "status" => c.status = Some(value),
            "ini" => self.load_config_arg(&value, &origin, "ini", true),
            "include" => self.load_config_arg(&value, &origin, "include", false),
            "inherit" => self.inherits.push((value, origin)),
            _ => self.out.entries.push(Entry {
                key: written.to_string(),
                value,
                bare,
                origin,
                late: self.late,
            }),
        }
    }

    /// Load `FILE[:section]` (from `ini`, `include` or a positional argument) and splice its
    /// entries in. `set_first`: this is a `--ini`, which sets the uppercase magic variables.
    pub fn load_config_arg(&mut self, arg: &str, origin: &Origin, option: &str, set_first: bool) {
        let (file, section) = split_section(arg);
        if file.is_empty() && section.is_none() {
            self.out.errors.push(ConfigError::invalid(
                option,
                arg,
                origin,
                "expected a config file name",
            ));
            return;
        }
        self.loads += 1;
        if self.loads > MAX_CONFIG_LOADS {
            self.out.errors.push(ConfigError::invalid(
                option,
                arg,
                origin,
                format!("more than {MAX_CONFIG_LOADS} config files loaded (an include loop?)"),
            ));
            return;
        }
        let file: PathBuf = if file.is_empty() {
            // `:section` alone: a section of the last ini file loaded.
            match &self.last_ini {
                Some(f) => f.clone(),
                None => {
                    self.out.errors.push(ConfigError::invalid(
                        option,
                        arg,
                        origin,
                        "`:section` needs an ini file loaded before it",
                    ));
                    return;
                }
            }
        } else if let Some((scheme, _)) = file.split_once("://") {
            self.out.errors.push(ConfigError::invalid(
                option,
                arg,
                origin,
                format!(
                    "{scheme}:// config sources are not implemented by liege (plain files are)"
                ),
            ));
            return;
        } else if Path::new(file).is_absolute() {
            PathBuf::from(file)
        } else {
            self.cwd.join(file)
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.out.errors.push(ConfigError::invalid(
                option,
                arg,
                origin,
                format!(
                    "config files nested more than {MAX_INCLUDE_DEPTH} deep (an include loop?)"
                ),
            ));
            return;
        }
        let preloaded = match &self.preload {
            Some((p, _)) if *p == file => self.preload.take().map(|(_, t)| t),
            _ => None,
        };
        let owner = self.owner.filter(|_| set_first && self.first.is_none());
        let handed = owner.and(self.handed.take()).and_then(take_handed);
        let read = match preloaded {
            Some(t) => self.charge(t.len()).map(|()| t).map_err(IniReadError::Io),
            None => match (handed, owner) {
                (Some(f), Some(uid)) => read_file(&f, Some(uid)),
                (_, Some(uid)) => read_checked(&file, true, Some(uid)),
                (_, None) => read_checked(&file, false, None),
            }
            .and_then(|b| self.charge(b.len()).map(|()| b))
            .map_err(IniReadError::Io)
            .and_then(text_of),
        };
        let text = match read.and_then(checked_text) {
            Ok(t) => t,
            Err(IniReadError::NotText { line }) => {
                self.out.errors.push(ConfigError::IniSyntax {
                    origin: Origin::File {
                        path: file.clone(),
                        line,
                    },
                    message:
                        "not an ini file: binary content (invalid UTF-8 or control characters)"
                            .into(),
                });
                return;
            }
            Err(IniReadError::Io(e)) => {
                self.out.errors.push(ConfigError::Read {
                    option: option.to_string(),
                    path: file.display().to_string(),
                    origin: origin.clone(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        let magic = FileMagic::new(&file, arg, section.unwrap_or(""), &self.cwd);
        if set_first && self.first.is_none() {
            self.first = Some(magic.clone());
        }
        let shown = PathBuf::from(&magic.path);
        self.out.files.push(shown.clone());
        self.last_ini = Some(file.clone());
        self.depth += 1;
        self.parse_ini(&text, &shown, section, &magic);
        self.depth -= 1;
    }

    /// Count `n` bytes of config against [`MAX_CONFIG_TOTAL`].
    fn charge(&mut self, n: usize) -> std::io::Result<()> {
        self.read_total += n;
        if self.read_total > MAX_CONFIG_TOTAL {
            Err(std::io::Error::other(format!(
                "more than {} MiB of config files in all (the budget of one parse)",
                MAX_CONFIG_TOTAL >> 20
            )))
        } else {
            Ok(())
        }
    }

    /// Parse ini text (uWSGI 2.0 grammar, §1.2) and append the entries of the wanted section:
    /// `section`, or `[uwsgi]` and `[liege]` when none is given.
    pub fn parse_ini(&mut self, text: &str, path: &Path, section: Option<&str>, file: &FileMagic) {
        let first = self.first.clone();
        let process = self.process.clone();
        let magic = Magic {
            file,
            first: first.as_ref(),
            process: &process,
        };
        let wanted = |s: &str| match section {
            Some(want) => s == want,
            None => s == "uwsgi" || s == "liege",
        };
        let mut current: Option<String> = None;
        let mut found = false;
        let mut block: Option<Block> = None;
        for (n, raw) in text.split('\n').enumerate() {
            let line_no = n + 1;
            let trimmed = raw.trim_matches(INI_BLANKS);
            if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
                continue;
            }
            let (line, deleted) = magic.substitute(trimmed);
            let origin = Origin::File {
                path: path.to_path_buf(),
                line: line_no,
            };
            let line = line.trim_matches(INI_BLANKS);
            if line.starts_with('[') {
                // uWSGI drops the first and last characters and validates nothing else; liege
                // refuses a header that does not end in `]` (a truncated or mangled file
                // would otherwise start with none of its options).
                if !line.ends_with(']') || line.len() < 2 {
                    self.out.errors.push(ConfigError::IniSyntax {
                        origin,
                        message: format!(
                            "broken section header `{line}`: expected `[name]` (not an ini file?)"
                        ),
                    });
                    return;
                }
                let mut chars = line.chars();
                chars.next();
                chars.next_back();
                let name = chars.as_str().to_string();
                found |= wanted(&name);
                current = Some(name);
                continue;
            }
            if !current.as_deref().is_some_and(wanted) {
                continue;
            }
            for d in deleted {
                self.out.warnings.push(format!(
                    "{origin}: unknown magic variable `{d}` was removed as uWSGI does (write `%{d}` for a literal `{d}`)"
                ));
            }
            let (key, value, bare) = match line.split_once('=') {
                Some((k, v)) => (
                    k.trim_matches(INI_BLANKS).to_string(),
                    v.trim_matches(INI_BLANKS).to_string(),
                    false,
                ),
                None => (line.to_string(), String::new(), true),
            };
            self.ini_line(key, value, bare, origin, &mut block);
        }
        if let Some(b) = block {
            self.out.errors.push(ConfigError::invalid(
                &b.opener,
                &b.data,
                &b.origin,
                format!("block not closed before the end of {}", path.display()),
            ));
        }
        if !found {
            let want = section.unwrap_or("uwsgi");
            self.out.warnings.push(format!(
                "{}: can't find section [{want}] in the ini file",
                path.display()
            ));
        }
    }
}

/// An open `for` / `if-*` block in an ini file.
#[derive(Debug)]
struct Block {
    opener: String,
    data: String,
    origin: Origin,
    body: logic::Body,
}

/// Largest file the configuration layer reads (config files, `@(file)`, `for-readline`).
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// Read a text file of at most [`MAX_FILE_SIZE`] bytes (so `/dev/zero` cannot exhaust memory).
/// Only regular files are read, opened non-blocking: a FIFO, device or socket is refused at
/// once instead of stalling the reader.
pub fn read_bounded(path: &Path) -> std::io::Result<String> {
    read_checked(path, false, None).and_then(utf8)
}

fn utf8(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

thread_local! {
    /// See [`with_reader`].
    static READER: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Run `f` (a parse, in this thread) reading config files as if for `uid`: every file read
/// must be owned by `uid` or be world-readable, so that a root process parsing a user's
/// configuration (the emperor, for an on-demand tyrant vassal) reads nothing for that user
/// that the user could not read.
pub fn with_reader<T>(uid: u32, f: impl FnOnce() -> T) -> T {
    let before = READER.with(|r| r.replace(Some(uid)));
    let out = f();
    READER.with(|r| r.set(before));
    out
}

/// Open `path` (with `nofollow`: not through a symlink, as for a tyrant vassal's own file)
/// and [`read_file`] it.
fn read_checked(path: &Path, nofollow: bool, owner: Option<u32>) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if nofollow => std::io::Error::other(
                "is a symlink, and a tyrant vassal's file is never read through one",
            ),
            _ => e,
        })?;
    read_file(&f, owner)
}

/// Judge an opened config file by `fstat` (a regular file; readable for [`with_reader`]'s
/// uid; owned by `owner`, which must be our own uid) and read it from offset 0 with `pread`
/// (a descriptor handed in by the emperor shares its offset with the emperor's).
fn read_file(f: &std::fs::File, owner: Option<u32>) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or socket is never read as configuration)",
        ));
    }
    if let Some(uid) = READER.with(|r| r.get()) {
        if meta.uid() != uid && meta.mode() & 0o004 == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("neither owned by uid {uid} nor world-readable"),
            ));
        }
    }
    if let Some(uid) = owner {
        let me = nix::unistd::getuid().as_raw();
        if meta.uid() != uid || uid != me {
            return Err(std::io::Error::other(format!(
                "owned by uid {}, but this tyrant vassal runs as uid {me} for the owner uid {uid}: the file was replaced after the emperor checked it",
                meta.uid()
            )));
        }
    }
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match f.read_at(&mut chunk, buf.len() as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() as u64 > MAX_FILE_SIZE {
            return Err(std::io::Error::other(format!(
                "larger than {} MiB",
                MAX_FILE_SIZE >> 20
            )));
        }
    }
    Ok(buf)
}

/// Take the vassal file descriptor a tyrant emperor handed in ([`VASSAL_FILE_FD_ENV`]), at
/// most once per process: a master re-parsing its config on reload reads the file by name
/// again (with the owner check), and never trusts a number that may name another descriptor
/// by then.
fn take_handed(fd: i32) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if fd < 3 || TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    // SAFETY: the emperor kept this descriptor open across exec for us alone (the number came
    // from its environment variable); it is taken once per process (TAKEN), so nothing else
    // owns or closes it. If the number is not open, fstat on it fails and the file is refused.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Why a config file could not be read as text.
#[derive(Debug)]
enum IniReadError {
    Io(std::io::Error),
    /// Invalid UTF-8, NUL or another control character (other than tab, CR, LF, form feed)
    /// on this 1-based line.
    NotText {
        line: usize,
    },
}

fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The bytes read as text; invalid UTF-8 is [`IniReadError::NotText`] with the line of the
/// first bad byte.
fn text_of(bytes: Vec<u8>) -> Result<String, IniReadError> {
    String::from_utf8(bytes).map_err(|e| IniReadError::NotText {
        line: line_of(e.as_bytes(), e.utf8_error().valid_up_to()),
    })
}

/// The text of a config file, unless it holds control characters (NUL and the like, other
/// than tab, CR, LF and form feed): then it is not an ini file.
fn checked_text(text: String) -> Result<String, IniReadError> {
    let control = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x0c)) || b == 0x7f;
    match text.bytes().position(control) {
        Some(at) => Err(IniReadError::NotText {
            line: line_of(text.as_bytes(), at),
        }),
        None => Ok(text),
    }
}

/// Split `file.ini:section` at the last `:` after the final `/` (uWSGI §1.2).
pub fn split_section(arg: &str) -> (&str, Option<&str>) {
    let after_slash = arg.rfind('/').map_or(0, |i| i + 1);
    match arg[after_slash..].rfind(':') {
        Some(j) => {
            let at = after_slash + j;
            (&arg[..at], Some(&arg[at + 1..]))
        }
        None => (arg, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader() -> Loader {
        Loader::with_process(PathBuf::from("/srv"), ProcessMagic::default())
    }

    fn ini(text: &str) -> Loader {
        let mut l = loader();
        let fm = FileMagic::new(
            Path::new("/srv/cfg/app.ini"),
            "app.ini",
            "",
            Path::new("/srv"),
        );
        l.parse_ini(text, Path::new("/srv/cfg/app.ini"), None, &fm);
        l
    }

    fn kv(l: &Loader) -> Vec<(String, String, bool)> {
        l.out
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), e.bare))
            .collect()
    }

    fn t(k: &str, v: &str, b: bool) -> (String, String, bool) {
        (k.into(), v.into(), b)
    }

    #[test]
    fn ini_grammar() {
        let l = ini("; comment\n[uwsgi]\n  # also a comment\nmaster\nfoo = bar ; x\na=b=c\n\r\n  key  =  spaced value  \r\n\"q\" = \"v\"\n");
        assert_eq!(
            kv(&l),
            vec![
                t("master", "", true),
                t("foo", "bar ; x", false),
                t("a", "b=c", false),
                t("key", "spaced value", false),
                t("\"q\"", "\"v\"", false),
            ]
        );
        assert_eq!(
            l.out.entries[1].origin,
            Origin::File {
                path: "/srv/cfg/app.ini".into(),
                line: 5
            }
        );
    }

    #[test]
    fn only_wanted_sections_and_repeats_in_order() {
        let l = ini("[other]\nx = 1\n[uwsgi]\np = 1\np = 2\n[liege]\np = 3\n[other]\ny = 2\n");
        assert_eq!(
            kv(&l),
            vec![t("p", "1", false), t("p", "2", false), t("p", "3", false)]
        );
        assert!(l.out.warnings.is_empty());
        let l = ini("[other]\nx = 1\n");
        assert!(l.out.entries.is_empty());
        assert!(l.out.warnings[0].contains("can't find section [uwsgi]"));
    }

    #[test]
    fn magic_applies_to_lines_and_section_names() {
        let l = ini("[uwsgi]\nchdir = %d\nname = %n\n[%n]\nx = 1\nlogdate = %Y\n");
        assert_eq!(
            kv(&l)[..2],
            [t("chdir", "/srv/cfg/", false), t("name", "app", false)]
        );
        assert_eq!(l.out.entries.len(), 2);
        let l = ini("[uwsgi]\nlogdate = %Y-%m\n");
        assert_eq!(kv(&l), vec![t("logdate", "-", false)]);
        assert_eq!(l.out.warnings.len(), 2);
        assert!(l.out.warnings[0].contains("`%Y`"), "{:?}", l.out.warnings);
    }

    #[test]
    fn section_split() {
        assert_eq!(split_section("a.ini"), ("a.ini", None));
        assert_eq!(split_section("a.ini:prod"), ("a.ini", Some("prod")));
        assert_eq!(split_section("/x:y/a.ini"), ("/x:y/a.ini", None));
        assert_eq!(split_section(":prod"), ("", Some("prod")));
    }

    #[test]
    fn env_vars() {
        let mut l = loader();
        l.env(&[
            ("UWSGI_HTTP_SOCKET".into(), ":9000".into()),
            ("LIEGE_PROCESSES".into(), "3".into()),
            ("LIEGE__WORKER_BOOT".into(), "{}".into()),
            ("LIEGE_LOG".into(), "debug".into()),
            ("UWSGI_RELOADS".into(), "2".into()),
            ("UWSGI_EMPEROR_FD".into(), "5".into()),
            ("UWSGI_VASSAL_PROCESSES".into(), "5".into()),
            ("PATH".into(), "/bin".into()),
        ]);
        assert_eq!(
            kv(&l),
            vec![t("http-socket", ":9000", false), t("processes", "3", false)]
        );
        assert_eq!(l.out.emperor_fd, Some(5));
    }

    fn args(a: &[&str]) -> Loader {
        let mut l = loader();
        let v: Vec<OsString> = a.iter().map(OsString::from).collect();
        l.args(&v);
        l
    }

    #[test]
    fn command_line_forms() {
        let l = args(&[
            "--processes",
            "4",
            "--module=app:wsgi",
            "-M",
            "-p8",
            "-w",
            "m",
            "--chmod-socket",
            "-C",
            "--need-app=0",
            "-Mi",
        ]);
        assert_eq!(
            kv(&l),
            vec![
                t("processes", "4", false),
                t("module", "app:wsgi", false),
                t("master", "", true),
                t("processes", "8", false),
                t("module", "m", false),
                t("chmod-socket", "", true),
                t("chmod-socket", "", true),
                t("need-app", "0", false),
                t("master", "", true),
                t("single-interpreter", "", true),
            ]
        );
        assert!(l.out.errors.is_empty(), "{:?}", l.out.errors);
    }

    #[test]
    fn command_line_errors() {
        let l = args(&["--processes"]);
        assert!(l.out.errors[0].to_string().contains("requires a value"));
        let l = args(&["app.py"]);
        assert!(l.out.errors[0]
            .to_string()
            .contains("unable to load configuration from `app.py`"));
        let l = args(&["-Z"]);
        assert!(l.out.errors[0]
            .to_string()
            .contains("unknown short option `-Z`"));
        let l = args(&["--bogus", "val", "--master"]);
        assert_eq!(
            kv(&l),
            vec![t("bogus", "val", false), t("master", "", true)]
        );
        assert!(l.out.errors.is_empty());
    }

    #[test]
    fn commands() {
        let l = args(&[
            "--check",
            "--lenient",
            "--reload",
            "/p",
            "--stop=/q",
            "--status",
            "127.0.0.1:1",
            "--help",
            "--version",
        ]);
        let c = &l.out.commands;
        assert!(c.check && c.lenient && c.help && c.version);
        assert_eq!(c.reload.as_deref(), Some(Path::new("/p")));
        assert_eq!(c.stop.as_deref(), Some(Path::new("/q")));
        assert_eq!(c.status.as_deref(), Some("127.0.0.1:1"));
        let l = args(&["emperor-status", "/run/e.sock"]);
        assert_eq!(l.out.commands.status.as_deref(), Some("/run/e.sock"));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Vec<(String, String, bool)> {
        let mut l = Loader::with_process(PathBuf::from("/"), ProcessMagic::default());
        let fm = FileMagic::new(Path::new("/a.ini"), "/a.ini", "", Path::new("/"));
        l.parse_ini(text, Path::new("/a.ini"), None, &fm);
        l.out
            .entries
            .into_iter()
            .map(|e| (e.key, e.value, e.bare))
            .collect()
    }

    proptest! {
        /// A line splits at the first `=`; key and value are trimmed; nothing else is special
        /// (no inline comments, no quotes, no escapes).
        #[test]
        fn key_value_lines(key in "[a-z][a-z0-9_-]{0,15}", value in "[^\n\r%]*", pad in "[ \t]{0,3}") {
            let text = format!("[uwsgi]\n{pad}{key}{pad}={pad}{value}{pad}\r\n");
            let got = parse(&text);
            prop_assert_eq!(got, vec![(key, value.trim_matches([' ', '\t', '\r']).to_string(), false)]);
        }

        /// Repeated keys are all kept, in order.
        #[test]
        fn repeats_keep_order(values in proptest::collection::vec("[a-z0-9/]{1,8}", 1..10)) {
            let text: String = std::iter::once("[uwsgi]\n".to_string())
                .chain(values.iter().map(|v| format!("k = {v}\n")))
                .collect();
            let got: Vec<String> = parse(&text).into_iter().map(|(_, v, _)| v).collect();
            prop_assert_eq!(got, values);
        }

        /// Whole-line comments are never entries, whatever they contain.
        #[test]
        fn comment_lines_are_ignored(body in "[^\n]*", mark in "[;#]", pad in "[ \t]{0,3}") {
            let text = format!("[uwsgi]\n{pad}{mark}{body}\n");
            prop_assert!(parse(&text).is_empty());
        }

        /// Text without `%` is not changed by magic substitution.
        #[test]
        fn magic_without_percent_is_identity(text in "[^%]*") {
            let fm = FileMagic::default();
            let pm = ProcessMagic::default();
            let m = Magic { file: &fm, first: None, process: &pm };
            prop_assert_eq!(m.substitute(&text).0, text);
        }
    }
}
