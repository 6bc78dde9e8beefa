//! The master's table of listening sockets, keyed by address. Bound (or adopted) once, kept
//! across reloads and worker restarts; a reload binds the sockets that appeared and closes
//! the ones that were removed.

use liege_config::{BindAddr, InheritedListener, ListenerSpec, MasterConfig, Protocol};
use liege_sys::net::{self, BindOptions, Bound, SocketError};
use std::os::fd::{AsRawFd, RawFd};

/// One listening socket.
#[derive(Debug)]
pub struct Listener {
    pub spec: ListenerSpec,
    pub bound: Bound,
}

#[derive(Debug, Default)]
pub struct Sockets {
    pub listeners: Vec<Listener>,
}

/// Sockets handed to us before we bind anything: systemd's LISTEN_FDS and a listening fd 0.
#[derive(Debug, Default)]
pub struct Inherited {
    pub fds: Vec<(Bound, String)>,
}

impl Inherited {
    /// Collect systemd sockets (when `LISTEN_PID` is ours) and, failing that, fd 0 if it is
    /// a listening socket (uWSGI §3.3). Removes the systemd variables from our environment
    /// record so workers never see them.
    pub fn collect(env: &[(String, String)], cfg: &MasterConfig) -> Inherited {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mut fds = Vec::new();
        let sd = net::systemd_fds(get("LISTEN_PID"), get("LISTEN_FDS"), get("LISTEN_FDNAMES"));
        for (fd, name) in &sd {
            match net::adopt_fd(*fd) {
                Ok(b) => {
                    // The original number is ours now; close it (the dup is CLOEXEC).
                    liege_sys::fd::close_raw(*fd);
                    tracing::info!("adopted systemd socket fd {fd} ({name}) on {}", b.local);
                    fds.push((b, format!("fd://{fd}")));
                }
                Err(e) => tracing::warn!("ignoring systemd fd {fd}: {e}"),
            }
        }
        let fd0_configured = cfg
            .listeners
            .iter()
            .any(|l| matches!(l.addr, BindAddr::Fd(0)));
        if sd.is_empty() && !fd0_configured && liege_sys::fd::is_listening_socket(0) {
            match net::adopt_fd(0) {
                Ok(b) => {
                    tracing::info!("adopted the listening socket on fd 0 ({})", b.local);
                    let _ = liege_sys::fd::stdin_devnull();
                    fds.push((b, "fd://0".into()));
                }
                Err(e) => tracing::warn!("fd 0: {e}"),
            }
        }
        Inherited { fds }
    }

    /// Take the inherited socket whose address is `addr`, if any.
    fn take_matching(&mut self, addr: &BindAddr) -> Option<Bound> {
        let idx = self.fds.iter().position(|(b, _)| {
            net::local_addr(b.fd.as_raw_fd()).is_some_and(|l| net::addr_matches(&l, addr))
        })?;
        Some(self.fds.remove(idx).0)
    }
}

fn bind_one(
    spec: &ListenerSpec,
    cfg: &MasterConfig,
    opts: BindOptions,
    inherited: &mut Inherited,
    owner: (Option<u32>, Option<u32>),
) -> Result<Bound, SocketError> {
    let bound = match inherited.take_matching(&spec.addr) {
        Some(b) => {
            tracing::info!(
                "{} {}: using the inherited socket",
                spec.option,
                spec.original
            );
            b
        }
        None => net::bind(&spec.addr, opts)?,
    };
    if let BindAddr::Unix(path) = &spec.addr {
        if let Some(mode) = cfg.chmod_socket {
            if mode == 0o666 {
                tracing::warn!("chmod-socket: {} is world-writable (0666)", path.display());
            }
            if let Err(e) = net::chmod(path, mode) {
                tracing::error!("chmod-socket {:o} on {}: {e}", mode, path.display());
            }
        }
        if owner.0.is_some() || owner.1.is_some() {
            if let Err(e) = net::chown(path, owner.0, owner.1) {
                tracing::error!("chown-socket on {}: {e}", path.display());
            }
        }
    }
    let proto = match spec.protocol {
        Protocol::Http => "http",
        Protocol::Uwsgi => "uwsgi",
    };
    tracing::info!(
        "{} {} listening on {} ({proto}, fd {})",
        spec.option,
        spec.original,
        bound.local,
        bound.fd.as_raw_fd()
    );
    Ok(bound)
}

/// Resolve `chown-socket` (errors are logged; the socket keeps its owner).
fn chown_owner(cfg: &MasterConfig) -> (Option<u32>, Option<u32>) {
    match cfg
        .chown_socket
        .as_deref()
        .map(liege_sys::creds::resolve_owner)
    {
        None => (None, None),
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            tracing::error!("chown-socket: {e}");
            (None, None)
        }
    }
}

impl Sockets {
    /// First start: bind (or adopt) every configured socket. Inherited sockets that match no
    /// configured address are served too (uWSGI: as extra uwsgi sockets).
    pub fn open(cfg: &MasterConfig, mut inherited: Inherited) -> Result<Sockets, SocketError> {
        let (backlog, warning) = net::effective_backlog(cfg.listen);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let opts = BindOptions {
            backlog,
            reuse_port: cfg.reuse_port,
        };
        let owner = chown_owner(cfg);
        let mut listeners = Vec::new();
        for spec in &cfg.listeners {
            let bound = bind_one(spec, cfg, opts, &mut inherited, owner)?;
            listeners.push(Listener {
                spec: spec.clone(),
                bound,
            });
        }
        for (bound, name) in inherited.fds {
            let protocol = cfg.inherited_protocol;
            tracing::info!(
                "serving inherited socket {name} ({}) as {}",
                bound.local,
                match protocol {
                    Protocol::Http => "http",
                    Protocol::Uwsgi => "uwsgi",
                }
            );
            listeners.push(Listener {
                spec: ListenerSpec {
                    addr: net::local_addr(bound.fd.as_raw_fd()).unwrap_or(BindAddr::Fd(-1)),
                    protocol,
                    option: "inherited".into(),
                    original: name,
                },
                bound,
            });
        }
        Ok(Sockets { listeners })
    }

    /// Reload: keep sockets whose address is still configured, bind the new ones, close the
    /// removed ones. All or nothing: if a new socket cannot be bound, the table is unchanged.
    pub fn update(&mut self, cfg: &MasterConfig) -> Result<(), SocketError> {
        let (backlog, _) = net::effective_backlog(cfg.listen);
        let opts = BindOptions {
            backlog,
            reuse_port: cfg.reuse_port,
        };
        let owner = chown_owner(cfg);
        // Pass 1: bind what is new, without touching the table (all or nothing).
        let mut fresh: Vec<Option<Bound>> = Vec::new();
        let mut none = Inherited::default();
        for spec in &cfg.listeners {
            if self.listeners.iter().any(|l| l.spec.addr == spec.addr) {
                fresh.push(None);
            } else {
                // On error the sockets bound so far in `fresh` are dropped (closed).
                fresh.push(Some(bind_one(spec, cfg, opts, &mut none, owner)?));
            }
        }
        // Pass 2: build the new table.
        let mut old: Vec<Option<Listener>> = std::mem::take(&mut self.listeners)
            .into_iter()
            .map(Some)
            .collect();
        for (spec, fresh) in cfg.listeners.iter().zip(fresh) {
            let bound = match fresh {
                Some(b) => b,
                None => {
                    let l = old
                        .iter_mut()
                        .find(|l| l.as_ref().is_some_and(|l| l.spec.addr == spec.addr))
                        .and_then(Option::take)
                        .expect("pass 1 found it");
                    l.bound
                }
            };
            self.listeners.push(Listener {
                spec: spec.clone(),
                bound,
            });
        }
        for l in old.into_iter().flatten() {
            if l.spec.option == "inherited" {
                // Sockets handed to us by systemd/the emperor stay, whatever the config says.
                self.listeners.push(l);
                continue;
            }
            tracing::info!(
                "closing removed socket {} {}",
                l.spec.option,
                l.spec.original
            );
            let inode = l.bound.unix_inode.clone();
            drop(l);
            if let Some((path, dev, ino)) = inode {
                net::vacuum_unix(&path, dev, ino);
            }
        }
        Ok(())
    }

    /// What each worker inherits.
    pub fn inherited(&self) -> Vec<InheritedListener> {
        self.listeners
            .iter()
            .map(|l| InheritedListener {
                fd: l.bound.fd.as_raw_fd(),
                protocol: l.spec.protocol,
                name: l.spec.original.clone(),
                unix: l.bound.unix,
            })
            .collect()
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.listeners
            .iter()
            .map(|l| l.bound.fd.as_raw_fd())
            .collect()
    }

    /// Close every socket and (with vacuum) remove unix socket files that are still ours.
    pub fn close(self, vacuum: bool) {
        for l in self.listeners {
            let inode = l.bound.unix_inode.clone();
            drop(l);
            if let (true, Some((path, dev, ino))) = (vacuum, inode) {
                if net::vacuum_unix(&path, dev, ino) {
                    tracing::info!("vacuum: removed {}", path.display());
                }
            }
        }
    }
}
