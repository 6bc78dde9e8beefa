//! The option registry: every option liege accepts, defined once.
//!
//! The registry feeds the command-line parser, the ini/env loaders, `liege --help`,
//! `liege --check` and `docs/options.md`. Names and aliases follow uWSGI 2.0
//! (`core/uwsgi.c`'s option table is the compatibility source of truth).
//!
//! [`NOT_IMPLEMENTED`] lists real uWSGI options liege deliberately does not provide: using one is
//! an error that says exactly that (a warning in lenient mode), never a silent no-op.

/// The type of an option's value (for parsing, `--help` and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// uWSGI boolean (false/off/no/0 are false; bare means true).
    Bool,
    /// Non-negative integer.
    Int,
    /// Size in bytes (k/m/g suffixes accepted).
    Size,
    /// Seconds (ms/s/m/h suffixes accepted).
    Duration,
    /// Socket address (§3.1).
    Addr,
    /// Filesystem path.
    Path,
    /// Free text (or a syntax of its own, described in the help).
    Str,
    /// Octal mode.
    Mode,
}

impl Kind {
    /// The word used in `--help` and the docs.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int => "integer",
            Kind::Size => "size",
            Kind::Duration => "seconds",
            Kind::Addr => "address",
            Kind::Path => "path",
            Kind::Str => "string",
            Kind::Mode => "octal",
        }
    }
}

/// How an option takes its argument on the command line (uWSGI uses getopt_long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// `--flag` (liege also accepts `--flag=false`).
    None,
    /// `--opt value` or `--opt=value`.
    Required,
    /// Only `--opt=value`; `--opt` alone is the bare form (e.g. `chmod-socket` = 666).
    Optional,
}

/// Groups for `--help` and the docs, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Commands,
    Config,
    Sockets,
    Processes,
    App,
    Requests,
    Static,
    Reload,
    Privileges,
    Logging,
    Daemons,
    Cheap,
    Stats,
    Emperor,
    Compat,
}

impl Group {
    /// Every group, in display order.
    pub const ALL: [Group; 15] = [
        Group::Commands,
        Group::Config,
        Group::Sockets,
        Group::Processes,
        Group::App,
        Group::Requests,
        Group::Static,
        Group::Reload,
        Group::Privileges,
        Group::Logging,
        Group::Daemons,
        Group::Cheap,
        Group::Stats,
        Group::Emperor,
        Group::Compat,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Commands => "Commands (liege)",
            Group::Config => "Configuration files and placeholders",
            Group::Sockets => "Sockets",
            Group::Processes => "Processes and workers",
            Group::App => "Python application",
            Group::Requests => "Requests",
            Group::Static => "Static files",
            Group::Reload => "Reloading, signals and lifecycle",
            Group::Privileges => "Privileges, pidfiles and paths",
            Group::Logging => "Logging",
            Group::Daemons => "Attached daemons and cron",
            Group::Cheap => "cheap, idle and cheaper",
            Group::Stats => "Stats server",
            Group::Emperor => "Emperor",
            Group::Compat => "Accepted for compatibility (liege always behaves this way)",
        }
    }
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct OptDef {
    /// Canonical (uWSGI) name.
    pub name: &'static str,
    /// Other names, as in uWSGI.
    pub aliases: &'static [&'static str],
    /// uWSGI short flag, if any.
    pub short: Option<char>,
    pub kind: Kind,
    pub arg: Arg,
    /// Repeatable (every occurrence accumulates) rather than last-wins.
    pub repeatable: bool,
    /// Default as shown to users ("" = none / off).
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
    pub group: Group,
    /// False: recognised, but using it is an error "recognised but not implemented yet".
    pub implemented: bool,
}

const fn o(group: Group, name: &'static str, kind: Kind, help: &'static str) -> OptDef {
    OptDef {
        name,
        aliases: &[],
        short: None,
        kind,
        arg: match kind {
            Kind::Bool => Arg::None,
            _ => Arg::Required,
        },
        repeatable: false,
        default: "",
        help,
        group,
        implemented: true,
    }
}

impl OptDef {
    const fn al(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn sh(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }
    const fn rep(mut self) -> Self {
        self.repeatable = true;
        self
    }
    const fn def(mut self, d: &'static str) -> Self {
        self.default = d;
        self
    }
    const fn opt_arg(mut self) -> Self {
        self.arg = Arg::Optional;
        self
    }
    /// Mark an option as recognised but not implemented yet: using it becomes an error saying
    /// so (a warning in lenient mode). For the lead to flip options no role crate implements.
    pub const fn not_yet(mut self) -> Self {
        self.implemented = false;
        self
    }

    /// All names (canonical first).
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

use Group as G;
use Kind as K;

/// Every option liege accepts.
pub const OPTIONS: &[OptDef] = &[
    // --- commands ------------------------------------------------------------------------
    o(G::Commands, "help", K::Bool, "print this help grouped by topic and exit").sh('h').al(&["usage"]),
    o(G::Commands, "version", K::Bool, "print the liege version and exit").sh('V'),
    o(G::Commands, "check", K::Bool, "parse, expand and validate the configuration, print every option with its final value and origin, and exit (liege)"),
    o(G::Commands, "lenient", K::Bool, "turn unknown and unimplemented options into warnings (liege; same as strict = false)"),
    o(G::Commands, "reload", K::Path, "send a graceful reload (SIGHUP) to the pid in PIDFILE and exit"),
    o(G::Commands, "stop", K::Path, "send a stop (SIGINT) to the pid in PIDFILE and exit"),
    o(G::Commands, "status", K::Str, "print an emperor's stats (from ADDR) as a table and exit; also `liege emperor-status ADDR`"),
    // --- configuration ---------------------------------------------------------------------
    o(G::Config, "ini", K::Path, "load FILE[:section] in place (default section [uwsgi]; [liege] is read too)").rep(),
    o(G::Config, "include", K::Path, "splice another ini file in place").rep(),
    o(G::Config, "inherit", K::Path, "append an ini file after all other sources; its values escape $()/@()/%() expansion").rep(),
    o(G::Config, "set-placeholder", K::Str, "define a placeholder: NAME=VALUE, usable as %(NAME)").al(&["set-ph"]).rep(),
    o(G::Config, "set", K::Str, "NAME=VALUE: set option NAME, or a placeholder if NAME is not an option").sh('S').rep(),
    o(G::Config, "declare-option", K::Str, "declare a custom option: NAME=KEY=VALUE[;KEY=VALUE...] with $1, $2... for its arguments").al(&["declare-option2"]).rep(),
    o(G::Config, "strict", K::Bool, "unknown and unimplemented options are errors (liege default: true; strict = false is lenient)").def("true"),
    o(G::Config, "plugins", K::Str, "uWSGI C plugins to load: python/python3x are built into liege; others are an error").al(&["plugin"]).rep(),
    o(G::Config, "plugins-dir", K::Path, "directory of uWSGI plugins (accepted and ignored: liege has Python built in)").al(&["plugin-dir"]).rep(),
    o(G::Config, "for", K::Str, "ini only: repeat the lines up to endfor for each space-separated item, as %(_)"),
    o(G::Config, "for-glob", K::Str, "ini only: repeat the lines up to endfor for each path matching the glob"),
    o(G::Config, "for-times", K::Int, "ini only: repeat the lines up to endfor N times (%(_) = 1..N)"),
    o(G::Config, "for-readline", K::Path, "ini only: repeat the lines up to endfor for each line of the file"),
    o(G::Config, "endfor", K::Bool, "ini only: end a for block").al(&["end-for"]),
    o(G::Config, "if-env", K::Str, "ini only: keep the lines up to endif if NAME (or NAME=VALUE) is in the environment").al(&["ifenv"]),
    o(G::Config, "if-not-env", K::Str, "ini only: keep the lines up to endif unless NAME (or NAME=VALUE) is in the environment"),
    o(G::Config, "if-opt", K::Str, "ini only: keep the lines up to endif if option NAME (or NAME=VALUE) was set above"),
    o(G::Config, "if-not-opt", K::Str, "ini only: keep the lines up to endif unless option NAME (or NAME=VALUE) was set above"),
    o(G::Config, "if-exists", K::Path, "ini only: keep the lines up to endif if the path exists").al(&["ifexists"]),
    o(G::Config, "if-not-exists", K::Path, "ini only: keep the lines up to endif unless the path exists"),
    o(G::Config, "if-file", K::Path, "ini only: keep the lines up to endif if the path is a file"),
    o(G::Config, "if-not-file", K::Path, "ini only: keep the lines up to endif unless the path is a file"),
    o(G::Config, "if-dir", K::Path, "ini only: keep the lines up to endif if the path is a directory").al(&["ifdir", "if-directory"]),
    o(G::Config, "if-not-dir", K::Path, "ini only: keep the lines up to endif unless the path is a directory"),
    o(G::Config, "if-hostname", K::Str, "ini only: keep the lines up to endif on this host"),
    o(G::Config, "if-not-hostname", K::Str, "ini only: keep the lines up to endif except on this host"),
    o(G::Config, "if-plugin", K::Str, "ini only: keep the lines up to endif if liege provides the plugin (python3x, http)").al(&["ifplugin"]),
    o(G::Config, "if-not-plugin", K::Str, "ini only: keep the lines up to endif unless liege provides the plugin"),
    o(G::Config, "endif", K::Bool, "ini only: end an if-* block").al(&["end-if"]),
    o(G::Config, "end", K::Bool, "ini only: end a for or if-* block"),
    // --- sockets ---------------------------------------------------------------------------
    o(G::Sockets, "socket", K::Addr, "bind a uwsgi-protocol socket (:port, host:port, [v6]:port, /path, @abstract, fd://N)").sh('s').rep(),
    o(G::Sockets, "uwsgi-socket", K::Addr, "bind a uwsgi-protocol socket").rep(),
    o(G::Sockets, "http-socket", K::Addr, "bind an HTTP socket served by the workers").rep(),
    o(G::Sockets, "http", K::Addr, "serve HTTP on ADDR (liege: served by the workers; no separate router process)").rep(),
    o(G::Sockets, "listen", K::Int, "listen queue size (uWSGI's default is 100; unset, liege uses the kernel's somaxconn)").sh('l'),
    o(G::Sockets, "protocol", K::Str, "default protocol of `socket` and of inherited sockets (a listening fd 0, systemd's): uwsgi (default) or http"),
    o(G::Sockets, "chmod-socket", K::Mode, "chmod unix sockets after bind; bare means 666").al(&["chmod"]).sh('C').opt_arg(),
    o(G::Sockets, "chown-socket", K::Str, "chown unix sockets to USER[:GROUP] after bind"),
    o(G::Sockets, "vacuum", K::Bool, "remove unix sockets and pidfiles on exit"),
    o(G::Sockets, "reuse-port", K::Bool, "set SO_REUSEPORT on TCP sockets"),
    o(G::Sockets, "socket-timeout", K::Duration, "timeout for socket reads and writes").sh('z').def("4"),
    o(G::Sockets, "no-defer-accept", K::Bool, "do not set TCP_DEFER_ACCEPT (socket-timeout seconds) on TCP listeners: accept connections before their first bytes arrive"),
    o(G::Sockets, "worker-max-connections", K::Int, "most connections one worker holds at once (served, parked or idle keep-alive); at the cap it stops accepting until one closes (liege)").def("10000"),
    o(G::Sockets, "http-keep-underscore-headers", K::Bool, "pass request headers whose names contain `_` to the app (liege drops them by default: `X_Remote_User` would become HTTP_X_REMOTE_USER, like `X-Remote-User` set by a proxy)"),
    o(G::Sockets, "http-keepalive", K::Bool, "keep HTTP/1.1 connections alive on http sockets (liege default: on)").def("true"),
    o(G::Sockets, "trusted-proxy", K::Str, "peer address whose X-Forwarded-Proto/-For headers are trusted (liege)").rep(),
    // --- processes -------------------------------------------------------------------------
    o(G::Processes, "processes", K::Int, "number of worker processes").al(&["workers"]).sh('p').def("1"),
    o(G::Processes, "threads", K::Int, "Python threads per worker").def("1"),
    o(G::Processes, "max-requests", K::Int, "recycle a worker after this many requests (0 = never)").sh('R').def("0"),
    o(G::Processes, "max-requests-delta", K::Int, "add worker_id * delta to max-requests so workers do not recycle together").def("0"),
    o(G::Processes, "harakiri", K::Duration, "kill a worker whose request takes longer than this (0 = off)").sh('t').def("0"),
    o(G::Processes, "min-worker-lifetime", K::Duration, "a worker is not recycled before living this long").def("10"),
    o(G::Processes, "max-worker-lifetime", K::Duration, "recycle a worker after this long (0 = never)").def("0"),
    o(G::Processes, "reload-on-rss", K::Int, "recycle a worker whose RSS exceeds this many MiB after a request").def("0"),
    o(G::Processes, "procname-prefix", K::Str, "prefix for process names (cosmetic)"),
    o(G::Processes, "no-orphans", K::Bool, "workers exit when the master dies (liege: always)"),
    // --- python application ----------------------------------------------------------------
    o(G::App, "module", K::Str, "WSGI module to load: pkg.mod, pkg.mod:callable or pkg.mod:factory()").al(&["wsgi"]).sh('w'),
    o(G::App, "wsgi-file", K::Path, "load the WSGI app from this Python file").al(&["file"]),
    o(G::App, "callable", K::Str, "name of the WSGI callable").def("application"),
    o(G::App, "chdir", K::Path, "chdir before loading the app"),
    o(G::App, "chdir2", K::Path, "chdir after loading the app"),
    o(G::App, "home", K::Path, "virtualenv (PYTHONHOME) of the app").al(&["virtualenv", "venv", "pyhome"]).sh('H'),
    o(G::App, "python-path", K::Str, "add a directory (or glob) to sys.path; the last one ends up first").al(&["pythonpath", "pp"]).rep(),
    o(G::App, "env", K::Str, "set an environment variable: KEY=VALUE").rep(),
    o(G::App, "unenv", K::Str, "unset an environment variable").rep(),
    o(G::App, "need-app", K::Bool, "exit with code 22 if the app cannot be loaded (liege default: on)").def("true").opt_arg(),
    o(G::App, "import", K::Str, "import a Python module in each worker before the app").al(&["pyimport", "py-import", "python-import"]).rep(),
    o(G::App, "pyargv", K::Str, "sys.argv[1:] for the app, split on spaces"),
    o(G::App, "mount", K::Str, "mount an app under a prefix: /prefix=module-or-file").rep(),
    o(G::App, "manage-script-name", K::Bool, "move the mountpoint from PATH_INFO to SCRIPT_NAME"),
    o(G::App, "optimize", K::Int, "Python optimization level").sh('O').def("0"),
    o(G::App, "wsgi-disable-file-wrapper", K::Bool, "do not provide wsgi.file_wrapper"),
    // --- requests --------------------------------------------------------------------------
    o(G::Requests, "buffer-size", K::Size, "maximum size of a request's vars / HTTP head").sh('b').def("4096"),
    o(G::Requests, "limit-post", K::Size, "maximum request body size in bytes (0 = unlimited)").def("0"),
    o(G::Requests, "post-buffering", K::Size, "read this many body bytes before calling the app (0 = off)").def("0"),
    o(G::Requests, "max-vars", K::Int, "maximum number of vars in a uwsgi packet").sh('v').def("64"),
    o(G::Requests, "add-header", K::Str, "add `Name: value` to every response").rep(),
    // --- static files ----------------------------------------------------------------------
    o(G::Static, "static-map", K::Str, "serve /prefix from DIR: /prefix=DIR").rep(),
    o(G::Static, "static-map2", K::Str, "like static-map but append the whole path to DIR").rep(),
    o(G::Static, "check-static", K::Path, "serve files found under this docroot before calling the app").rep(),
    o(G::Static, "static-index", K::Str, "index file names tried for directories").rep(),
    o(G::Static, "static-skip-ext", K::Str, "never serve files with this extension statically").rep(),
    o(G::Static, "static-expires", K::Str, "REGEX SECONDS: Expires for matching file paths").rep(),
    o(G::Static, "static-expires-mtime", K::Str, "REGEX SECONDS: Expires = mtime + seconds, by file path").rep(),
    o(G::Static, "static-expires-uri", K::Str, "REGEX SECONDS: Expires for matching REQUEST_URI").rep(),
    o(G::Static, "static-expires-uri-mtime", K::Str, "REGEX SECONDS: Expires = mtime + seconds, by REQUEST_URI").rep(),
    o(G::Static, "static-expires-path-info", K::Str, "REGEX SECONDS: Expires for matching PATH_INFO").rep(),
    o(G::Static, "static-expires-path-info-mtime", K::Str, "REGEX SECONDS: Expires = mtime + seconds, by PATH_INFO").rep(),
    o(G::Static, "static-expires-type", K::Str, "MIME=SECONDS: Expires by content type").rep(),
    o(G::Static, "static-expires-type-mtime", K::Str, "MIME=SECONDS: Expires = mtime + seconds, by content type").rep(),
    o(G::Static, "offload-threads", K::Int, "accepted: liege always sends static files asynchronously").def("0"),
    // --- reload, signals, lifecycle --------------------------------------------------------
    o(G::Reload, "master-fifo", K::Path, "create a master FIFO accepting one-letter commands").rep(),
    o(G::Reload, "touch-reload", K::Path, "gracefully reload when this file's mtime changes").rep(),
    o(G::Reload, "touch-chain-reload", K::Path, "chain-reload workers when this file's mtime changes").rep(),
    o(G::Reload, "touch-workers-reload", K::Path, "reload only the workers when this file's mtime changes").rep(),
    o(G::Reload, "touch-logreopen", K::Path, "reopen the log file when this file's mtime changes").rep(),
    o(G::Reload, "worker-reload-mercy", K::Duration, "how long a worker may take to stop on reload before SIGKILL").def("60"),
    o(G::Reload, "reload-mercy", K::Duration, "how long the whole reload may take before SIGKILL"),
    o(G::Reload, "die-on-term", K::Bool, "SIGTERM stops the instance (liege: always, unless sigterm-reloads)"),
    o(G::Reload, "sigterm-reloads", K::Bool, "uWSGI 2.0 behaviour: SIGTERM does a brutal reload (liege)"),
    o(G::Reload, "reload-batch", K::Int, "workers replaced at once during a reload (liege; 1 = chain)").def("1"),
    o(G::Reload, "heartbeat", K::Duration, "send a heartbeat to the emperor every N seconds"),
    // --- privileges and files --------------------------------------------------------------
    o(G::Privileges, "uid", K::Str, "drop privileges to this user (name or number)"),
    o(G::Privileges, "gid", K::Str, "drop privileges to this group (name or number)"),
    o(G::Privileges, "no-initgroups", K::Bool, "do not set supplementary groups when dropping privileges"),
    o(G::Privileges, "master-as-root", K::Bool, "the master keeps root; only the workers drop to uid/gid (each before it loads Python)"),
    o(G::Privileges, "chroot", K::Path, "chroot before dropping privileges"),
    o(G::Privileges, "umask", K::Mode, "process umask (octal)"),
    o(G::Privileges, "pidfile", K::Path, "write the master pid here (before dropping privileges)"),
    o(G::Privileges, "pidfile2", K::Path, "write the master pid here (after dropping privileges)"),
    o(G::Privileges, "safe-pidfile", K::Path, "write the pidfile atomically"),
    o(G::Privileges, "daemonize", K::Path, "detach and log to this file").sh('d'),
    // --- logging ---------------------------------------------------------------------------
    o(G::Logging, "logto", K::Path, "log to this file"),
    o(G::Logging, "log-maxsize", K::Size, "rotate the log file when it exceeds this size"),
    o(G::Logging, "log-backupname", K::Path, "name of the rotated log file"),
    o(G::Logging, "log-reopen", K::Bool, "reopen the log file on reload"),
    o(G::Logging, "disable-logging", K::Bool, "no request log lines").sh('L'),
    o(G::Logging, "log-format", K::Str, "request log line format with %(var) variables (an unknown variable is an error)").al(&["logformat"]),
    o(G::Logging, "log-x-forwarded-for", K::Bool, "log X-Forwarded-For as the remote address"),
    o(G::Logging, "log-date", K::Str, "prefix every log line (liege's own and request lines) with a date (bare = default format, or a strftime format)").al(&["logdate"]).opt_arg(),
    // --- daemons and cron ------------------------------------------------------------------
    o(G::Daemons, "attach-daemon", K::Str, "run and respawn a foreground command with the master").rep(),
    o(G::Daemons, "attach-control-daemon", K::Str, "like attach-daemon; its death stops the instance").rep(),
    o(G::Daemons, "smart-attach-daemon", K::Str, "PIDFILE COMMAND: a self-daemonizing command tracked by its pidfile").rep(),
    o(G::Daemons, "smart-attach-daemon2", K::Str, "PIDFILE COMMAND: liege daemonizes the command and writes the pidfile").rep(),
    o(G::Daemons, "attach-daemon2", K::Str, "key=value,... form (cmd, pidfile, daemonize, control, stopsignal, ...)").rep(),
    o(G::Daemons, "cron", K::Str, "MIN HOUR MDAY MONTH WDAY COMMAND (-1 = every, -N = every N)").rep(),
    o(G::Daemons, "unique-cron", K::Str, "like cron, skipped while the previous run is alive").rep(),
    o(G::Daemons, "cron2", K::Str, "key=value,... COMMAND (minute, hour, day, month, week, unique, harakiri)").rep(),
    o(G::Daemons, "cron-harakiri", K::Duration, "kill cron jobs running longer than this"),
    // --- cheap / idle / cheaper ------------------------------------------------------------
    o(G::Cheap, "cheap", K::Bool, "spawn no workers until the first connection"),
    o(G::Cheap, "idle", K::Duration, "go cheap again after this many seconds without requests"),
    o(G::Cheap, "die-on-idle", K::Bool, "stop the instance instead of going cheap when idle"),
    o(G::Cheap, "cheaper", K::Int, "minimum number of workers for adaptive process spawning (0 = off)").def("0"),
    o(G::Cheap, "cheaper-initial", K::Int, "workers started at boot in cheaper mode"),
    o(G::Cheap, "cheaper-step", K::Int, "workers spawned at once in cheaper mode").def("1"),
    o(G::Cheap, "cheaper-overload", K::Int, "cycles (seconds) of overload before spawning").def("3"),
    o(G::Cheap, "cheaper-algo", K::Str, "cheaper algorithm: spare (backlog and manual are not implemented yet)").def("spare"),
    // --- stats -----------------------------------------------------------------------------
    o(G::Stats, "stats", K::Addr, "serve the stats JSON on this address").al(&["stats-server"]),
    o(G::Stats, "stats-http", K::Bool, "prefix the stats JSON with HTTP headers"),
    o(G::Stats, "stats-minified", K::Bool, "minify the stats JSON").al(&["stats-min"]),
    // --- emperor ---------------------------------------------------------------------------
    o(G::Emperor, "emperor", K::Str, "run an emperor watching this directory or glob").rep(),
    o(G::Emperor, "emperor-freq", K::Duration, "rescan interval (inotify does the real work)").def("30"),
    o(G::Emperor, "emperor-tyrant", K::Bool, "run each vassal as the owner of its file"),
    o(G::Emperor, "emperor-tyrant-nofollow", K::Bool, "tyrant mode uses the symlink's owner"),
    o(G::Emperor, "emperor-nofollow", K::Bool, "use the symlink's mtime, not the target's"),
    o(G::Emperor, "emperor-stats", K::Addr, "serve the emperor stats JSON on this address").al(&["emperor-stats-server"]),
    o(G::Emperor, "vassals-include", K::Path, "include this file at the end of every vassal").rep(),
    o(G::Emperor, "vassals-include-before", K::Path, "include this file at the start of every vassal").rep(),
    o(G::Emperor, "vassals-inherit", K::Path, "inherit this file at the end of every vassal").rep(),
    o(G::Emperor, "vassals-inherit-before", K::Path, "inherit this file at the start of every vassal").rep(),
    o(G::Emperor, "vassal-set", K::Str, "KEY=VALUE option for every vassal").al(&["vassals-set"]).rep(),
    o(G::Emperor, "emperor-wrapper", K::Path, "binary vassals are run with (default: liege itself)"),
    o(G::Emperor, "emperor-graceful-shutdown", K::Bool, "stop vassals gracefully (liege: always on SIGTERM)"),
    o(G::Emperor, "emperor-throttle", K::Duration, "initial respawn back-off (liege default 1 s)").def("1"),
    o(G::Emperor, "emperor-max-throttle", K::Duration, "maximum respawn back-off").def("180"),
    o(G::Emperor, "emperor-curse-tolerance", K::Duration, "how long a cursed vassal may take to die").def("30"),
    o(G::Emperor, "emperor-required-heartbeat", K::Duration, "a vassal silent for longer is considered hung").def("30"),
    o(G::Emperor, "emperor-on-demand-extension", K::Str, "read each vassal's on-demand socket from FILE+extension").al(&["emperor-on-demand-ext"]),
    o(G::Emperor, "emperor-on-demand-directory", K::Path, "on-demand unix socket DIR/<vassal>.socket").al(&["emperor-on-demand-dir"]),
    o(G::Emperor, "emperor-on-demand-exec", K::Str, "command printing each vassal's on-demand socket"),
    o(G::Emperor, "emperor-extra-extension", K::Str, "also manage vassal files with this extension").rep(),
    o(G::Emperor, "emperor-pidfile", K::Path, "write the emperor pid here"),
    // --- accepted for compatibility --------------------------------------------------------
    o(G::Compat, "master", K::Bool, "liege always runs a master").sh('M'),
    o(G::Compat, "enable-threads", K::Bool, "liege always enables Python threads").sh('T'),
    o(G::Compat, "lazy-apps", K::Bool, "liege always loads the app in each worker after fork"),
    o(G::Compat, "lazy", K::Bool, "liege always loads the app in each worker after fork"),
    o(G::Compat, "single-interpreter", K::Bool, "liege always uses one interpreter per worker").sh('i'),
    o(G::Compat, "thunder-lock", K::Bool, "liege always serialises accept() sensibly"),
    o(G::Compat, "py-call-osafterfork", K::Bool, "liege forks before initialising Python"),
    o(G::Compat, "auto-procname", K::Bool, "liege always names its processes"),
    o(G::Compat, "memory-report", K::Bool, "liege always samples RSS for the stats").sh('m'),
    o(G::Compat, "catch-exceptions", K::Bool, "accepted; liege logs tracebacks and returns a 500"),
    o(G::Compat, "autoload", K::Bool, "liege has Python and HTTP built in: there are no plugins to autoload"),
];

/// Real uWSGI options liege does not implement, with an optional explanation.
pub const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    ("xml", "liege reads ini files only"),
    ("yaml", "liege reads ini files only"),
    ("yml", "liege reads ini files only"),
    ("json", "liege reads ini files only"),
    ("js", "liege reads ini files only"),
    ("sqlite3", "liege reads ini files only"),
    ("ldap", "liege reads ini files only"),
    ("config", "liege reads ini files only; use ini"),
    ("if-reload", "a reload re-reads the files from scratch"),
    ("if-not-reload", "a reload re-reads the files from scratch"),
    ("if-hostname-match", ""),
    ("if-not-hostname-match", ""),
    ("get", "use liege --check"),
    ("show-config", "use liege --check"),
    ("dump-options", "use liege --help"),
    ("print", ""),
    ("cflags", ""),
    ("dot-h", ""),
    ("build-plugin", ""),
    ("https-socket", "terminate TLS in a proxy in front of liege"),
    ("https", "terminate TLS in a proxy in front of liege"),
    ("http-to", ""),
    ("http-modifier1", ""),
    ("http-timeout", ""),
    (
        "http-auto-chunked",
        "liege's HTTP sockets chunk automatically",
    ),
    (
        "http11-socket",
        "http-socket in liege already speaks HTTP/1.1 with keep-alive",
    ),
    ("fastcgi-socket", ""),
    ("fastcgi-nph-socket", ""),
    ("scgi-socket", ""),
    ("scgi-nph-socket", ""),
    ("puwsgi-socket", ""),
    ("raw-socket", ""),
    ("suwsgi-socket", ""),
    ("shared-socket", ""),
    ("undeferred-shared-socket", ""),
    ("abstract-socket", "use @name addresses"),
    ("socket-protocol", ""),
    ("map-socket", ""),
    ("tcp-nodelay", ""),
    ("so-keepalive", ""),
    ("freebind", ""),
    ("tcp-fast-open", ""),
    ("fastrouter", ""),
    ("rawrouter", ""),
    ("sslrouter", ""),
    ("spooler", ""),
    ("spooler-processes", ""),
    ("spooler-import", ""),
    ("mule", ""),
    ("mules", ""),
    ("farm", ""),
    ("cache", ""),
    ("cache2", ""),
    ("cache-blocksize", ""),
    ("check-cache", ""),
    ("queue", ""),
    ("sharedarea", ""),
    ("snmp", ""),
    ("subscribe-to", ""),
    ("subscribe2", ""),
    ("legion", ""),
    ("legion-node", ""),
    ("route", "routing rules are not supported"),
    ("route-run", "routing rules are not supported"),
    ("route-host", "routing rules are not supported"),
    ("route-uri", "routing rules are not supported"),
    ("route-qs", "routing rules are not supported"),
    ("route-if", "routing rules are not supported"),
    ("route-if-not", "routing rules are not supported"),
    ("response-route", "routing rules are not supported"),
    ("final-route", "routing rules are not supported"),
    ("error-route", "routing rules are not supported"),
    ("gevent", "liege runs threads, not greenlets"),
    ("async", "liege runs threads, not async cores"),
    ("ugreen", "liege runs threads, not green threads"),
    ("greenlet", "liege runs threads, not greenlets"),
    ("asyncio", "liege runs threads"),
    ("logger", ""),
    ("req-logger", ""),
    ("log-route", ""),
    ("log-req-route", ""),
    ("log-encoder", ""),
    ("log-master", "liege's master always collects the logs"),
    ("log-syslog", ""),
    ("log-socket", ""),
    ("log-zeromq", ""),
    ("threaded-logger", ""),
    ("logfile-chown", ""),
    ("logfile-chmod", ""),
    ("log-4xx", ""),
    ("log-5xx", ""),
    ("log-slow", ""),
    ("log-big", ""),
    ("log-sendfile", ""),
    ("log-micros", ""),
    ("log-prefix", ""),
    ("cgi-mode", ""),
    ("reaper", "liege's master always reaps its children"),
    ("test", ""),
    ("evil-reload-on-rss", ""),
    ("evil-reload-on-as", ""),
    ("reload-on-as", ""),
    ("reload-on-uss", ""),
    ("reload-on-pss", ""),
    ("limit-as", ""),
    ("limit-nproc", ""),
    ("cpu-affinity", ""),
    ("cheaper-rss-limit-soft", ""),
    ("cheaper-rss-limit-hard", ""),
    ("cheaper-busyness-max", ""),
    ("cheaper-busyness-min", ""),
    ("harakiri-verbose", ""),
    ("harakiri-graceful-timeout", ""),
    ("harakiri-graceful-signal", ""),
    ("harakiri-queue-threshold", ""),
    ("harakiri-no-arh", ""),
    ("py-tracebacker", ""),
    ("py-autoreload", "use touch-reload"),
    ("python-autoreload", "use touch-reload"),
    ("py-auto-reload", "use touch-reload"),
    ("pymodule-alias", ""),
    ("pyshell", ""),
    ("pyrun", ""),
    ("pyexec", ""),
    ("pecan", ""),
    ("paste", ""),
    ("paste-logger", ""),
    ("web3", ""),
    ("eval", ""),
    ("wsgi-env-behaviour", ""),
    ("wsgi-env-behavior", ""),
    ("wsgi-strict", ""),
    ("wsgi-accept-buffer", ""),
    ("wsgi-manage-chunked-input", ""),
    ("py-sys-executable", ""),
    ("static-gzip", ""),
    ("static-gzip-all", ""),
    ("static-gzip-dir", ""),
    ("static-gzip-prefix", ""),
    ("static-gzip-ext", ""),
    ("static-safe", ""),
    ("static-cache-paths", ""),
    ("static-offload-to-thread", ""),
    ("check-static-docroot", ""),
    ("honour-range", ""),
    ("file-serve-mode", ""),
    ("mime-file", ""),
    ("daemons-honour-stdin", ""),
    ("binsh", ""),
    ("timer", ""),
    ("rbtimer", ""),
    ("emperor-broodlord", ""),
    ("emperor-command-socket", ""),
    ("emperor-use-clone", ""),
    ("emperor-cap", ""),
    ("emperor-collect-attr", ""),
    ("emperor-fork-server", ""),
    ("emperor-subreaper", ""),
    (
        "emperor-tyrant-initgroups",
        "liege's tyrant mode always calls initgroups",
    ),
    ("emperor-procname", ""),
    ("emperor-trigger-socket", ""),
    ("imperial-monitor-list", ""),
    ("zerg", ""),
    ("zerg-server", ""),
    ("zergpool", ""),
    ("jail", ""),
    ("unshare", ""),
    ("setns", ""),
    ("cap", ""),
    ("immediate-uid", ""),
    ("immediate-gid", ""),
    ("early-envdir", ""),
    ("envdir", ""),
    ("hook-accepting1-once", ""),
    ("hook-pre-app", ""),
    ("hook-post-app", ""),
    ("hook-asap", ""),
    ("hook-master-start", ""),
    ("exec-asap", ""),
    ("exec-pre-app", ""),
    ("exec-post-app", ""),
    ("exec-as-root", ""),
    ("exec-as-user", ""),
    ("flock", ""),
    ("flock-wait", ""),
    ("pause", ""),
    ("suspend", ""),
    ("resume", ""),
    ("ksm", ""),
    (
        "dynamic-apps",
        "liege never loads apps named by request variables",
    ),
    ("vhost", ""),
    ("vhost-host", ""),
    ("carbon", ""),
    ("metrics-dir", ""),
    ("enable-metrics", ""),
    ("stats-push", ""),
    ("alarm", ""),
    ("touch-signal", ""),
    ("touch-exec", ""),
    ("fs-reload", "use touch-reload"),
    ("ignore-sigpipe", "liege always ignores SIGPIPE"),
    ("ignore-write-errors", ""),
    ("disable-write-exception", ""),
    ("close-on-exec", ""),
    ("close-on-exec2", ""),
    ("worker-exec", ""),
    ("vassal-sos-backlog", ""),
    ("die-on-no-workers", ""),
];

/// uWSGI short flags of options liege does not implement: (flag, long name, takes a value).
pub const NOT_IMPLEMENTED_SHORT: &[(char, &str, bool)] = &[
    ('x', "xml", true),
    ('y', "yaml", true),
    ('j', "json", true),
    ('c', "cgi-mode", false),
    ('a', "abstract-socket", false),
    ('A', "sharedarea", true),
    ('Q', "spooler", true),
    ('r', "reaper", false),
    ('J', "test", true),
];

/// Find an option by its canonical name or an alias.
pub fn lookup(name: &str) -> Option<&'static OptDef> {
    OPTIONS.iter().find(|d| d.names().any(|n| n == name))
}

/// Find an option by its short flag.
pub fn lookup_short(c: char) -> Option<&'static OptDef> {
    OPTIONS.iter().find(|d| d.short == Some(c))
}

/// If `name` is a uWSGI option liege does not implement, its explanation ("" if none).
pub fn not_implemented(name: &str) -> Option<&'static str> {
    NOT_IMPLEMENTED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// The nearest known option name, when one is a likely typo of `name`.
pub fn suggest(name: &str) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for def in OPTIONS {
        for n in def.names() {
            let d = levenshtein(name, n);
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, def.name));
            }
        }
    }
    let (d, n) = best?;
    // Allow about one edit per four characters, at least one and at most three.
    let limit = (name.len() / 4).clamp(1, 3);
    (d <= limit).then_some(n)
}

/// Edit distance (insert, delete, substitute; an adjacent swap counts as one edit).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_aliases_and_shorts_are_unique() {
        let mut names = HashSet::new();
        let mut shorts = HashSet::new();
        for d in OPTIONS {
            for n in d.names() {
                assert!(names.insert(n), "duplicate option name {n}");
                assert!(
                    not_implemented(n).is_none(),
                    "{n} is both implemented and not"
                );
            }
            if let Some(c) = d.short {
                assert!(shorts.insert(c), "duplicate short flag -{c}");
            }
            assert!(!d.help.is_empty(), "{} has no help", d.name);
        }
        for (c, long, _) in NOT_IMPLEMENTED_SHORT {
            assert!(shorts.insert(*c), "duplicate short flag -{c}");
            assert!(not_implemented(long).is_some(), "{long}");
        }
        let mut ni = HashSet::new();
        for (n, _) in NOT_IMPLEMENTED {
            assert!(ni.insert(n), "duplicate not-implemented {n}");
        }
    }

    #[test]
    fn uwsgi_aliases_resolve() {
        for (alias, canon) in [
            ("workers", "processes"),
            ("wsgi", "module"),
            ("virtualenv", "home"),
            ("venv", "home"),
            ("pyhome", "home"),
            ("pythonpath", "python-path"),
            ("pp", "python-path"),
            ("logdate", "log-date"),
            ("set-ph", "set-placeholder"),
            ("file", "wsgi-file"),
            ("stats-server", "stats"),
        ] {
            assert_eq!(lookup(alias).map(|d| d.name), Some(canon), "{alias}");
        }
        assert_eq!(
            lookup_short('i').map(|d| d.name),
            Some("single-interpreter")
        );
        assert_eq!(lookup_short('p').map(|d| d.name), Some("processes"));
        assert_eq!(lookup_short('s').map(|d| d.name), Some("socket"));
        assert_eq!(lookup_short('w').map(|d| d.name), Some("module"));
        assert_eq!(lookup_short('H').map(|d| d.name), Some("home"));
        assert_eq!(lookup_short('M').map(|d| d.name), Some("master"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("procesess"), Some("processes"));
        assert_eq!(suggest("moduel"), Some("module"));
        assert_eq!(suggest("chmod-sockets"), Some("chmod-socket"));
        assert_eq!(suggest("completely-different"), None);
    }
}
