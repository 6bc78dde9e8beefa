//! Typed configuration: what every process role receives after parsing.
//!
//! This is the contract between the configuration layer and the role crates. Nothing
//! downstream of here sees a raw option string: every value has been parsed, defaulted and
//! validated. Fields may be added; existing fields keep their names and meaning.
//!
//! Every struct is `Serialize + Deserialize` because the master hands the worker its
//! [`WorkerConfig`] (inside [`WorkerBoot`]) as JSON in the environment of the exec'd worker.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where a listening socket is (uWSGI semantics §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BindAddr {
    /// `host:port`, `:port` (host empty = all IPv4 interfaces), `[v6]:port` (host without brackets).
    Tcp { host: String, port: u16 },
    /// `/path/to.sock` (any value without `:` that is not `@name`).
    Unix(PathBuf),
    /// `@name`: Linux abstract namespace (name without the `@`).
    Abstract(String),
    /// `fd://N`: an already-open listening socket.
    Fd(i32),
}

/// The protocol spoken on a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// HTTP/1.x served by the workers themselves (`http`, `http-socket`).
    Http,
    /// The uwsgi binary protocol (`socket`, `uwsgi-socket`, what nginx's `uwsgi_pass` speaks).
    Uwsgi,
}

impl Protocol {
    /// The default protocol (serde default for `inherited_protocol`).
    pub fn uwsgi() -> Protocol {
        Protocol::Uwsgi
    }
}

/// One listening socket the master binds (or adopts) and hands to every worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerSpec {
    pub addr: BindAddr,
    pub protocol: Protocol,
    /// The option that declared it (`http`, `http-socket`, `socket`, ...), for messages.
    pub option: String,
    /// The value exactly as written, for messages and the stats `name` field.
    pub original: String,
}

/// How the Python application is found and loaded (uWSGI semantics §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConfig {
    /// `wsgi-file` / `file`.
    pub wsgi_file: Option<PathBuf>,
    /// `module` / `wsgi` / `-w`: `pkg.mod`, `pkg.mod:callable`, `pkg.mod:factory()`.
    pub module: Option<String>,
    /// `callable`; `None` means `application`.
    pub callable: Option<String>,
    /// `chdir`, applied before the import.
    pub chdir: Option<PathBuf>,
    /// `chdir2`, applied after the import.
    pub chdir2: Option<PathBuf>,
    /// `python-path` / `pythonpath` / `pp`, as written (globs are expanded by the worker).
    pub python_path: Vec<String>,
    /// `home` / `virtualenv` / `venv` / `pyhome`.
    pub home: Option<PathBuf>,
    /// `env = K=V` (or `K` alone), in order.
    pub env: Vec<String>,
    /// `unenv = K`.
    pub unenv: Vec<String>,
    /// `need-app` (liege default: true).
    pub need_app: bool,
    /// `import` / `pyimport`: modules imported before the app.
    pub imports: Vec<String>,
    /// `pyargv`: value of `sys.argv[1:]`, split on spaces.
    pub pyargv: Option<String>,
    /// `mount = /prefix=target`, in order.
    pub mounts: Vec<(String, String)>,
    /// `manage-script-name`.
    pub manage_script_name: bool,
    /// `optimize` (`-O`): PyConfig.optimization_level.
    pub optimize: u32,
}

/// A static-file mapping (`static-map = /prefix=/dir`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticMap {
    pub prefix: String,
    pub dir: PathBuf,
}

/// Static file serving in the worker (uWSGI semantics §6.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticConfig {
    /// `static-map` entries (path-boundary prefix match).
    pub maps: Vec<StaticMap>,
    /// `static-map2` entries (the full request path is appended to dir).
    pub maps2: Vec<StaticMap>,
    /// `check-static` docroots.
    pub check_static: Vec<PathBuf>,
    /// `static-index` file names.
    pub index: Vec<String>,
    /// `static-expires-uri = REGEX SECONDS` etc.: (kind, pattern, seconds); kind is the option name.
    pub expires: Vec<(String, String, u64)>,
    /// `static-skip-ext`.
    pub skip_ext: Vec<String>,
}

/// Everything a worker needs (uWSGI semantics §4–5). Built by the config layer; the master
/// passes it to each worker inside [`WorkerBoot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    pub app: AppConfig,
    /// `threads` (default 1): Python threads per worker.
    pub threads: u32,
    /// `processes` (for `wsgi.multiprocess`).
    pub processes: u32,
    /// `buffer-size` (default 4096): max uwsgi var block / HTTP request head.
    pub buffer_size: usize,
    /// `limit-post` in bytes (0 = no limit).
    pub limit_post: u64,
    /// `post-buffering` in bytes (0 = off): body bytes read before the app is called.
    pub post_buffering: u64,
    /// `harakiri` (None = off).
    pub harakiri: Option<Duration>,
    /// `max-requests` (0 = unlimited).
    pub max_requests: u64,
    /// `socket-timeout` (default 4 s).
    pub socket_timeout: Duration,
    /// `disable-logging`: no request log lines.
    pub disable_logging: bool,
    /// `log-format` / `logformat`.
    pub log_format: Option<String>,
    /// `log-x-forwarded-for`.
    pub log_x_forwarded_for: bool,
    /// `log-date` / `logdate`: None = off, Some("") = default format, Some(fmt) = strftime.
    pub log_date: Option<String>,
    /// `max-vars` (default 64; a uwsgi packet may carry 2×max-vars pairs... see §4.1).
    pub max_vars: u32,
    /// Addresses whose `X-Forwarded-Proto`/`X-Forwarded-For` are trusted (`trusted-proxy`, liege).
    /// uWSGI trusted every peer; liege trusts none unless listed.
    pub trusted_proxies: Vec<String>,
    /// `wsgi-disable-file-wrapper`.
    pub disable_file_wrapper: bool,
    pub statics: StaticConfig,
    /// `http-keepalive` for http sockets (liege default: on).
    pub http_keepalive: bool,
    /// `worker-max-connections`: connections one worker holds at once (default 10000).
    pub max_connections: u32,
    /// `http-keep-underscore-headers`: pass header names with `_` (dropped by default).
    pub keep_underscore_headers: bool,
    /// TCP_DEFER_ACCEPT on TCP listeners (`no-defer-accept` turns it off), as uWSGI.
    pub defer_accept: bool,
    /// `add-header = Name: value` added to every response.
    pub add_headers: Vec<String>,
    /// `max-requests-delta`: this worker recycles after `max_requests + id * delta` requests.
    pub max_requests_delta: u64,
}

/// An `attach-daemon*` / `smart-attach-daemon*` entry (uWSGI semantics §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    pub command: String,
    /// `smart-attach-daemon`: the pidfile the daemon writes.
    pub pidfile: Option<PathBuf>,
    /// `smart-attach-daemon2` / `daemonize=1`: liege forks and writes the pidfile itself.
    pub managed_pidfile: bool,
    /// `attach-control-daemon`: its death stops the instance.
    pub control: bool,
    pub stop_signal: i32,
    pub reload_signal: Option<i32>,
    pub touch: Vec<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub chdir: Option<PathBuf>,
    pub max_throttle: Option<Duration>,
    pub keep_stdin: bool,
}

/// One cron field: `None` = every (-1), `Every(n)` = -n, `At(v)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CronField {
    Any,
    Every(u32),
    At(u32),
}

/// A `cron` / `unique-cron` / `cron2` entry (uWSGI semantics §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSpec {
    pub minute: CronField,
    pub hour: CronField,
    pub mday: CronField,
    pub month: CronField,
    pub wday: CronField,
    pub command: String,
    pub unique: bool,
    /// Per-job harakiri; None = the global `cron-harakiri`.
    pub harakiri: Option<Duration>,
}

/// The master of one app (uWSGI semantics §2–3). One per vassal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterConfig {
    pub listeners: Vec<ListenerSpec>,
    /// `listen` (None = the kernel's somaxconn).
    pub listen: Option<u32>,
    /// `chmod-socket` (bare = 0o666).
    pub chmod_socket: Option<u32>,
    /// `chown-socket = user[:group]` as written.
    pub chown_socket: Option<String>,
    /// `protocol`: what inherited sockets (a listening fd 0 from an on-demand emperor,
    /// systemd's) speak when no configured socket claims them (uWSGI: default uwsgi).
    #[serde(default = "Protocol::uwsgi")]
    pub inherited_protocol: Protocol,
    pub vacuum: bool,
    pub reuse_port: bool,
    /// `uid` / `gid`: name or number as written.
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub no_initgroups: bool,
    /// `master-as-root`: the master keeps root, the workers drop to `uid`/`gid`.
    pub master_as_root: bool,
    pub chroot: Option<PathBuf>,
    /// `processes` / `workers` (default 1).
    pub processes: u32,
    pub pidfile: Option<PathBuf>,
    pub pidfile2: Option<PathBuf>,
    pub safe_pidfile: Option<PathBuf>,
    pub master_fifo: Vec<PathBuf>,
    pub touch_reload: Vec<PathBuf>,
    pub touch_chain_reload: Vec<PathBuf>,
    pub touch_workers_reload: Vec<PathBuf>,
    pub touch_logreopen: Vec<PathBuf>,
    /// `worker-reload-mercy` (default 60 s).
    pub worker_reload_mercy: Duration,
    /// `reload-mercy` (None = unset).
    pub reload_mercy: Option<Duration>,
    /// liege: SIGTERM does uWSGI 2.0's brutal reload instead of a graceful stop.
    pub sigterm_reloads: bool,
    /// `die-on-term` (accepted; SIGTERM already stops in liege).
    pub die_on_term: bool,
    /// liege: how many workers a reload replaces at once (default 1 = chain).
    pub reload_batch: u32,
    pub daemonize: Option<PathBuf>,
    pub logto: Option<PathBuf>,
    pub log_maxsize: Option<u64>,
    pub log_backupname: Option<PathBuf>,
    pub log_reopen: bool,
    /// `stats` / `stats-server`.
    pub stats: Option<BindAddr>,
    pub stats_http: bool,
    pub stats_minified: bool,
    pub daemons: Vec<DaemonSpec>,
    pub crons: Vec<CronSpec>,
    pub cron_harakiri: Option<Duration>,
    pub cheap: bool,
    pub idle: Option<Duration>,
    pub die_on_idle: bool,
    /// `cheaper` (0 = off), `cheaper-initial`, `cheaper-step`, `cheaper-overload`, `cheaper-algo`.
    pub cheaper: u32,
    pub cheaper_initial: Option<u32>,
    pub cheaper_step: u32,
    pub cheaper_overload: u32,
    pub cheaper_algo: Option<String>,
    /// `min-worker-lifetime` (default 10 s).
    pub min_worker_lifetime: Duration,
    pub max_worker_lifetime: Option<Duration>,
    /// `heartbeat` to the emperor.
    pub heartbeat: Option<Duration>,
    pub no_orphans: bool,
    /// `lazy-apps` (liege always loads the app in each worker; accepted for compatibility).
    pub lazy_apps: bool,
    /// `procname-prefix`, `procname`, `procname-master`, ... (cosmetic).
    pub procname_prefix: Option<String>,
    pub umask: Option<u32>,
    pub worker: WorkerConfig,
    /// `reload-on-rss` in bytes (the option is written in MiB): recycle a worker whose RSS
    /// exceeds it after a request.
    pub reload_on_rss: Option<u64>,
}

/// The Emperor (uWSGI semantics §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmperorConfig {
    /// Each `emperor = X` as written, resolved to an absolute path/glob against the cwd.
    pub monitors: Vec<String>,
    /// `emperor-freq` (liege default 30 s: inotify does the real work; the rescan is a safety net).
    pub freq: Duration,
    pub tyrant: bool,
    pub tyrant_nofollow: bool,
    pub nofollow: bool,
    pub stats: Option<BindAddr>,
    pub stats_http: bool,
    pub vassals_include: Vec<PathBuf>,
    pub vassals_include_before: Vec<PathBuf>,
    pub vassals_inherit: Vec<PathBuf>,
    pub vassals_inherit_before: Vec<PathBuf>,
    /// `vassal-set` / `vassals-set = K=V`.
    pub vassal_set: Vec<String>,
    /// `emperor-wrapper`: the binary vassals are exec'd with (default: liege itself).
    pub wrapper: Option<PathBuf>,
    /// `emperor-graceful-shutdown` (liege: always graceful on SIGTERM; accepted).
    pub graceful_shutdown: bool,
    /// `emperor-throttle` initial back-off (liege default 1 s).
    pub throttle: Duration,
    /// `emperor-max-throttle` (default 180 s).
    pub max_throttle: Duration,
    /// `emperor-curse-tolerance` (default 30 s).
    pub curse_tolerance: Duration,
    pub required_heartbeat: Duration,
    pub on_demand_extension: Option<String>,
    pub on_demand_directory: Option<PathBuf>,
    pub on_demand_exec: Option<String>,
    /// Extra extensions besides `.ini`.
    pub extra_extensions: Vec<String>,
    pub pidfile: Option<PathBuf>,
    pub logto: Option<PathBuf>,
    pub daemonize: Option<PathBuf>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub listen: Option<u32>,
}

/// The result of parsing a command line: one process's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Present when any `emperor` option was given: this process is an emperor.
    pub emperor: Option<EmperorConfig>,
    /// The app this process serves (always present; empty listeners for a pure emperor).
    pub master: MasterConfig,
    /// `strict = false` / `--lenient` was in effect.
    pub lenient: bool,
    /// Warnings produced while parsing (lenient mode, capped `listen`, ...), already formatted.
    pub warnings: Vec<String>,
    /// Config files read, in order (for touch/reload bookkeeping and `--check`).
    pub files: Vec<PathBuf>,
    /// The `UWSGI_EMPEROR_FD` handed by an emperor, if any (this process is a vassal).
    pub emperor_fd: Option<i32>,
}

/// What the command line asks the binary to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run an emperor (when `settings.emperor` is set) or a master.
    Run(Box<Settings>),
    /// `--check FILE...`: print the effective configuration (already rendered) and exit 0.
    Check(String),
    /// `--help`: the rendered help text.
    Help(String),
    /// No arguments at all: a short usage (printed to stderr, exit code 2).
    Usage(String),
    /// `--version`.
    Version,
    /// `--reload PIDFILE`: send SIGHUP to the pid in the file.
    Reload(PathBuf),
    /// `--stop PIDFILE`: send SIGINT to the pid in the file (uWSGI: brutal stop).
    Stop(PathBuf),
    /// `--status ADDR` / `emperor-status ADDR`: print the emperor's stats as a table.
    Status(String),
}

/// What the master hands each worker (as JSON in `LIEGE__WORKER_BOOT`).
///
/// The worker reads it once at start, unsets the variable, and never reads a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerBoot {
    /// 1-based worker id (uWSGI's `wid`).
    pub id: u32,
    /// Reload generation this worker belongs to (0 for the first).
    pub generation: u64,
    /// The listening sockets, already open, CLOEXEC cleared, in config order.
    pub listeners: Vec<InheritedListener>,
    /// A SOCK_SEQPACKET control socket to the master (see `liege_protocol::control`).
    pub control_fd: i32,
    /// The master's pid: the worker exits when its parent changes.
    pub master_pid: i32,
    pub config: WorkerConfig,
    /// The shared scoreboard and this worker's slot in it (absent: accept without balancing).
    #[serde(default)]
    pub scoreboard: Option<ScoreboardRef>,
    /// `master-as-root`: the identity the worker drops to first thing (the master stays
    /// root). Resolved by the master (groups included) before any chroot.
    #[serde(default)]
    pub drop_to: Option<DropTo>,
}

/// An identity to switch to: supplementary groups, then gid, then uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropTo {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
}

/// Where a worker finds the master's scoreboard (`liege_sys::scoreboard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreboardRef {
    /// The inherited memfd.
    pub fd: i32,
    /// This worker's slot.
    pub slot: u32,
}

/// One inherited listening fd and what to speak on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InheritedListener {
    pub fd: i32,
    pub protocol: Protocol,
    /// The address as written, for logs.
    pub name: String,
    /// True for unix (and abstract) sockets: REMOTE_ADDR is empty / SERVER_PORT is 80.
    pub unix: bool,
}

/// Name of the environment variable carrying the [`WorkerBoot`] JSON. Its presence selects
/// the worker role. Variables starting with `LIEGE__` are internal and never parsed as options.
pub const WORKER_BOOT_ENV: &str = "LIEGE__WORKER_BOOT";

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            app: AppConfig {
                need_app: true,
                ..AppConfig::default()
            },
            threads: 1,
            processes: 1,
            buffer_size: 4096,
            limit_post: 0,
            post_buffering: 0,
            harakiri: None,
            max_requests: 0,
            socket_timeout: Duration::from_secs(4),
            disable_logging: false,
            log_format: None,
            log_x_forwarded_for: false,
            log_date: None,
            max_vars: 64,
            trusted_proxies: Vec::new(),
            disable_file_wrapper: false,
            statics: StaticConfig::default(),
            http_keepalive: true,
            defer_accept: true,
            keep_underscore_headers: false,
            max_connections: 10_000,
            add_headers: Vec::new(),
            max_requests_delta: 0,
        }
    }
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            listeners: Vec::new(),
            listen: None,
            chmod_socket: None,
            chown_socket: None,
            inherited_protocol: Protocol::Uwsgi,
            vacuum: false,
            reuse_port: false,
            uid: None,
            gid: None,
            no_initgroups: false,
            master_as_root: false,
            chroot: None,
            processes: 1,
            pidfile: None,
            pidfile2: None,
            safe_pidfile: None,
            master_fifo: Vec::new(),
            touch_reload: Vec::new(),
            touch_chain_reload: Vec::new(),
            touch_workers_reload: Vec::new(),
            touch_logreopen: Vec::new(),
            worker_reload_mercy: Duration::from_secs(60),
            reload_mercy: None,
            sigterm_reloads: false,
            die_on_term: false,
            reload_batch: 1,
            daemonize: None,
            logto: None,
            log_maxsize: None,
            log_backupname: None,
            log_reopen: false,
            stats: None,
            stats_http: false,
            stats_minified: false,
            daemons: Vec::new(),
            crons: Vec::new(),
            cron_harakiri: None,
            cheap: false,
            idle: None,
            die_on_idle: false,
            cheaper: 0,
            cheaper_initial: None,
            cheaper_step: 1,
            cheaper_overload: 3,
            cheaper_algo: None,
            min_worker_lifetime: Duration::from_secs(10),
            max_worker_lifetime: None,
            heartbeat: None,
            no_orphans: false,
            lazy_apps: false,
            procname_prefix: None,
            umask: None,
            worker: WorkerConfig::default(),
            reload_on_rss: None,
        }
    }
}

impl Default for EmperorConfig {
    fn default() -> Self {
        EmperorConfig {
            monitors: Vec::new(),
            freq: Duration::from_secs(30),
            tyrant: false,
            tyrant_nofollow: false,
            nofollow: false,
            stats: None,
            stats_http: false,
            vassals_include: Vec::new(),
            vassals_include_before: Vec::new(),
            vassals_inherit: Vec::new(),
            vassals_inherit_before: Vec::new(),
            vassal_set: Vec::new(),
            wrapper: None,
            graceful_shutdown: false,
            throttle: Duration::from_secs(1),
            max_throttle: Duration::from_secs(180),
            curse_tolerance: Duration::from_secs(30),
            required_heartbeat: Duration::from_secs(30),
            on_demand_extension: None,
            on_demand_directory: None,
            on_demand_exec: None,
            extra_extensions: Vec::new(),
            pidfile: None,
            logto: None,
            daemonize: None,
            uid: None,
            gid: None,
            listen: None,
        }
    }
}
