//! The stats server (uWSGI §8): connect, read the JSON until EOF. Served from the master's
//! poll loop without ever blocking it: each client gets a buffer written as the socket
//! accepts it, and is dropped after the socket timeout.

use crate::sockets::Sockets;
use crate::state::WorkerState;
use crate::supervisor::{Supervisor, Worker};
use serde::Serialize;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How long a stats client may take to read its answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Serialize)]
struct Top {
    version: &'static str,
    listen_queue: u32,
    listen_queue_errors: u32,
    signal_queue: u32,
    load: u32,
    pid: u32,
    uid: u32,
    gid: u32,
    cwd: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    daemons: Vec<DaemonStat>,
    locks: Vec<serde_json::Value>,
    sockets: Vec<Sock>,
    workers: Vec<Wk>,
}

#[derive(Serialize)]
struct DaemonStat {
    cmd: String,
    pid: i32,
    respawns: u64,
}

#[derive(Serialize)]
struct Sock {
    name: String,
    proto: &'static str,
    queue: u32,
    max_queue: u32,
    shared: u32,
    can_offload: u32,
}

#[derive(Serialize)]
struct Wk {
    id: u32,
    pid: i32,
    accepting: u32,
    requests: u64,
    delta_requests: u64,
    exceptions: u64,
    harakiri_count: u64,
    signals: u64,
    signal_queue: u32,
    status: &'static str,
    rss: u64,
    vsz: u64,
    running_time: u64,
    last_spawn: u64,
    respawn_count: u64,
    tx: u64,
    avg_rt: u64,
    apps: Vec<serde_json::Value>,
    cores: Vec<Core>,
}

#[derive(Serialize)]
struct Core {
    id: u32,
    requests: u64,
    static_requests: u64,
    routed_requests: u64,
    offloaded_requests: u64,
    write_errors: u64,
    read_errors: u64,
    in_request: u32,
    vars: Vec<serde_json::Value>,
    req_info: serde_json::Map<String, serde_json::Value>,
}

/// A worker's live counters (from its scoreboard slot) by pid.
pub type LiveFn<'a> = &'a dyn Fn(i32) -> Option<liege_sys::scoreboard::Live>;

/// Render the stats JSON (tab-indented like uWSGI, or minified).
///
/// Freshness: `requests`, `tx`, `running_time` and `avg_rt` come from the scoreboard, written
/// by the worker after each request (live); `exceptions`, `rss`, `vsz` and `in_request` come
/// from the worker's `Stats` message (at most a second old while there is traffic); `status`
/// from `Busy`/`Idle` (at most a second old).
pub fn render(
    sup: &Supervisor,
    sockets: &Sockets,
    daemons: &[(String, i32, u64)],
    live: LiveFn<'_>,
    minified: bool,
) -> Vec<u8> {
    let mut listen_queue = 0;
    let socks: Vec<Sock> = sockets
        .listeners
        .iter()
        .map(|l| {
            let (q, max) = liege_sys::net::listen_queue(l.bound.fd.as_raw_fd()).unwrap_or((0, 0));
            listen_queue = listen_queue.max(q);
            Sock {
                name: l.spec.original.clone(),
                proto: match l.spec.protocol {
                    liege_config::Protocol::Http => "http",
                    liege_config::Protocol::Uwsgi => "uwsgi",
                },
                queue: q,
                max_queue: max,
                shared: 0,
                can_offload: 0,
            }
        })
        .collect();
    let mut workers: Vec<&crate::supervisor::Worker> = sup.workers.iter().collect();
    workers.sort_by_key(|w| (w.id, w.generation));
    let wks = workers
        .into_iter()
        .map(|w| {
            let accepting = matches!(w.state, WorkerState::Ready { .. });
            let mut st = w.stats.clone();
            if let Some(l) = live(w.pid).filter(|l| l.requests >= st.requests) {
                st.requests = l.requests;
                st.tx = st.tx.max(l.tx);
                st.running_time = st.running_time.max(l.running_time);
                st.avg_rt = l.avg_rt;
            }
            let w = Worker {
                stats: st,
                ..w.clone()
            };
            Wk {
                id: w.id,
                pid: w.pid,
                accepting: accepting as u32,
                requests: w.stats.requests,
                delta_requests: w.stats.requests,
                exceptions: w.stats.exceptions,
                harakiri_count: sup.harakiri_count(w.id),
                signals: 0,
                signal_queue: 0,
                status: if w.busy || w.stats.in_request > 0 {
                    "busy"
                } else {
                    "idle"
                },
                rss: w.stats.rss,
                vsz: w.stats.vsz,
                running_time: w.stats.running_time,
                last_spawn: w.spawned_unix,
                respawn_count: sup.respawns(w.id),
                tx: w.stats.tx,
                avg_rt: w.stats.avg_rt,
                apps: Vec::new(),
                cores: vec![Core {
                    id: 0,
                    requests: w.stats.requests,
                    static_requests: 0,
                    routed_requests: 0,
                    offloaded_requests: 0,
                    write_errors: 0,
                    read_errors: 0,
                    in_request: w.stats.in_request,
                    vars: Vec::new(),
                    req_info: serde_json::Map::new(),
                }],
            }
        })
        .collect();
    let mut wks: Vec<Wk> = wks;
    // cheap: slots with no serving worker show as "cheap" (uWSGI's status for cheaped workers).
    {
        let processes = sup
            .generation(sup.active_generation())
            .map(|g| g.processes.max(1))
            .unwrap_or(1);
        for id in 1..=processes {
            if !(sup.is_cheap() || sup.is_cheaped(id))
                || sup
                    .workers
                    .iter()
                    .any(|w| w.id == id && w.state.is_serving())
            {
                continue;
            }
            wks.push(Wk {
                id,
                pid: 0,
                accepting: 0,
                requests: 0,
                delta_requests: 0,
                exceptions: 0,
                harakiri_count: sup.harakiri_count(id),
                signals: 0,
                signal_queue: 0,
                status: "cheap",
                rss: 0,
                vsz: 0,
                running_time: 0,
                last_spawn: 0,
                respawn_count: sup.respawns(id),
                tx: 0,
                avg_rt: 0,
                apps: Vec::new(),
                cores: Vec::new(),
            });
        }
        wks.sort_by_key(|w| w.id);
    }
    let top = Top {
        version: concat!("liege ", env!("CARGO_PKG_VERSION")),
        listen_queue,
        listen_queue_errors: 0,
        signal_queue: 0,
        load: listen_queue,
        pid: std::process::id(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        cwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        daemons: daemons
            .iter()
            .map(|(cmd, pid, respawns)| DaemonStat {
                cmd: program_only(cmd),
                pid: *pid,
                respawns: *respawns,
            })
            .collect(),
        locks: Vec::new(),
        sockets: socks,
        workers: wks,
    };
    if minified {
        serde_json::to_vec(&top).expect("stats serialize")
    } else {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        top.serialize(&mut ser).expect("stats serialize");
        out
    }
}

/// A daemon's command line as the stats show it: the program only (its arguments may hold
/// secrets, and the stats may be readable by anyone who can connect).
fn program_only(cmd: &str) -> String {
    let mut words = cmd.split_whitespace();
    match (words.next(), words.next()) {
        (Some(p), Some(_)) => format!("{p} ..."),
        (Some(p), None) => p.to_string(),
        _ => String::new(),
    }
}

/// `0.0.0.0:PORT` or `[::]:PORT`: what `stats = :PORT` binds.
fn is_wildcard(local: &str) -> bool {
    local.starts_with("0.0.0.0:") || local.starts_with("[::]:")
}

struct Client {
    fd: OwnedFd,
    buf: Vec<u8>,
    off: usize,
    deadline: Instant,
}

/// The stats listener and its clients.
pub struct StatsServer {
    listener: liege_sys::net::Bound,
    http: bool,
    minified: bool,
    clients: Vec<Client>,
}

impl StatsServer {
    pub fn new(listener: liege_sys::net::Bound, http: bool, minified: bool) -> StatsServer {
        if is_wildcard(&listener.local) {
            tracing::warn!(
                "the stats server listens on {} (every address): anyone who can reach this host can read it; bind it to 127.0.0.1 or a unix socket",
                listener.local
            );
        }
        let _ = liege_sys::fd::set_nonblocking(listener.fd.as_raw_fd(), true);
        StatsServer {
            listener,
            http,
            minified,
            clients: Vec::new(),
        }
    }

    /// The socket file to vacuum, if it is a unix socket we created (closes the listener).
    pub fn unix_inode(self) -> Option<(std::path::PathBuf, u64, u64)> {
        self.listener.unix_inode.clone()
    }

    /// (fd, events) to poll: the listener, then each client waiting to be written.
    pub fn poll_fds(&self) -> Vec<(RawFd, i16)> {
        let mut v = vec![(self.listener.fd.as_raw_fd(), liege_sys::fd::POLLIN)];
        v.extend(
            self.clients
                .iter()
                .map(|c| (c.fd.as_raw_fd(), liege_sys::fd::POLLOUT)),
        );
        v
    }

    /// Handle readiness: accept new clients, write to ready ones, drop finished/late ones.
    pub fn handle(
        &mut self,
        revents: &[i16],
        sup: &Supervisor,
        sockets: &Sockets,
        daemons: &[(String, i32, u64)],
        live: LiveFn<'_>,
    ) {
        if revents.first().is_some_and(|&r| r != 0) {
            loop {
                let Some(fd) = liege_sys::fd::accept_nonblocking(self.listener.fd.as_raw_fd())
                else {
                    break;
                };
                let body = render(sup, sockets, daemons, live, self.minified);
                let mut buf = Vec::new();
                if self.http {
                    // One read (ignored), as uWSGI does.
                    let mut junk = [0u8; 4096];
                    let _ = nix::unistd::read(&fd, &mut junk);
                    buf.extend_from_slice(
                        b"HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\n\r\n",
                    );
                }
                buf.extend_from_slice(&body);
                self.clients.push(Client {
                    fd,
                    buf,
                    off: 0,
                    deadline: Instant::now() + CLIENT_TIMEOUT,
                });
            }
        }
        let now = Instant::now();
        let mut i = 0;
        let mut k = 1;
        while i < self.clients.len() {
            let ready = revents.get(k).is_some_and(|&r| r != 0);
            k += 1;
            let c = &mut self.clients[i];
            if ready {
                match nix::unistd::write(&c.fd, &c.buf[c.off..]) {
                    Ok(n) => c.off += n,
                    Err(nix::errno::Errno::EAGAIN) => {}
                    Err(_) => c.off = c.buf.len(),
                }
            }
            if c.off >= c.buf.len() || now > c.deadline {
                self.clients.remove(i);
            } else {
                i += 1;
            }
        }
    }
}
