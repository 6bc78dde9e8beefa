//! Listening sockets: bind every address form of uWSGI §3.1, adopt inherited ones (fd://N,
//! systemd `LISTEN_FDS`, a listening fd 0), chmod/chown, and the checks behind `vacuum`.

use liege_config::BindAddr;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a socket could not be bound or adopted. Each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("could not resolve {addr}: {source}")]
    Resolve { addr: String, source: io::Error },
    #[error("could not create a socket for {addr}: {source}")]
    Create { addr: String, source: io::Error },
    #[error("could not bind {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("could not listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("{path}: another process is listening on this unix socket; refusing to steal it")]
    InUse { path: String },
    #[error("{path}: exists and is not a socket; refusing to remove it")]
    NotASocket { path: String },
    #[error("could not remove the stale unix socket {path}: {source}")]
    Unlink { path: String, source: io::Error },
    #[error("fd {fd} is not a listening socket")]
    NotListening { fd: i32 },
    #[error("unix socket path {path} is longer than 107 bytes")]
    PathTooLong { path: String },
}

/// The kernel's `net.core.somaxconn` (the cap on any listen backlog), or 4096 if unreadable.
pub fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// The backlog to use for a requested `listen` value, and a warning when the kernel caps it.
pub fn effective_backlog(requested: Option<u32>) -> (u32, Option<String>) {
    let max = somaxconn();
    match requested {
        None => (max, None),
        Some(r) if r > max => (
            max,
            Some(format!(
                "listen = {r} is above the kernel's net.core.somaxconn ({max}); using {max} \
                 (raise it with sysctl net.core.somaxconn)"
            )),
        ),
        Some(r) => (r.max(1), None),
    }
}

/// Options applied to every socket bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct BindOptions {
    pub backlog: u32,
    pub reuse_port: bool,
}

/// A bound (or adopted) listening socket with what is needed to clean it up later.
#[derive(Debug)]
pub struct Bound {
    pub fd: OwnedFd,
    /// The actual local address (e.g. the port chosen for `:0`), for logs.
    pub local: String,
    /// For a unix path socket we created: (dev, inode) of the socket file, for vacuum.
    pub unix_inode: Option<(PathBuf, u64, u64)>,
    /// True for unix and abstract sockets.
    pub unix: bool,
}

fn tcp_addrs(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if host.is_empty() || host == "*" || host == "0.0.0.0" {
        return Ok(vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let all: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    // uWSGI: first A record (IPv4); fall back to whatever resolved.
    let mut v4: Vec<SocketAddr> = all.iter().filter(|a| a.is_ipv4()).cloned().collect();
    if v4.is_empty() {
        v4 = all;
    }
    if v4.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
    }
    Ok(v4)
}

/// Bind a new listening socket for `addr` (CLOEXEC set; cleared per child at spawn time).
/// `BindAddr::Fd` is adopted instead (see [`adopt_fd`]).
pub fn bind(addr: &BindAddr, opts: BindOptions) -> Result<Bound, SocketError> {
    let backlog = opts.backlog.min(i32::MAX as u32) as i32;
    match addr {
        BindAddr::Tcp { host, port } => {
            let shown = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let sa = tcp_addrs(host, *port).map_err(|source| SocketError::Resolve {
                addr: shown.clone(),
                source,
            })?[0];
            let sock =
                Socket::new(Domain::for_address(sa), Type::STREAM, None).map_err(|source| {
                    SocketError::Create {
                        addr: shown.clone(),
                        source,
                    }
                })?;
            let create = |source| SocketError::Create {
                addr: shown.clone(),
                source,
            };
            sock.set_reuse_address(true).map_err(create)?;
            if opts.reuse_port {
                sock.set_reuse_port(true).map_err(create)?;
            }
            if sa.is_ipv6() {
                sock.set_only_v6(true).map_err(create)?;
            }
            sock.bind(&sa.into()).map_err(|source| SocketError::Bind {
                addr: shown.clone(),
                source,
            })?;
            sock.listen(backlog).map_err(|source| SocketError::Listen {
                addr: shown.clone(),
                source,
            })?;
            let local = sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.to_string())
                .unwrap_or(shown);
            Ok(Bound {
                fd: sock.into(),
                local,
                unix_inode: None,
                unix: false,
            })
        }
        BindAddr::Unix(path) => bind_unix(path, backlog),
        BindAddr::Abstract(name) => {
            let shown = format!("@{name}");
            let mut raw = vec![0u8];
            raw.extend_from_slice(name.as_bytes());
            let sa =
                SockAddr::unix(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&raw))
                    .map_err(|source| SocketError::Create {
                        addr: shown.clone(),
                        source,
                    })?;
            let sock = listen_unix(&sa, &shown, backlog)?;
            Ok(Bound {
                fd: sock.into(),
                local: shown,
                unix_inode: None,
                unix: true,
            })
        }
        BindAddr::Fd(fd) => adopt_fd(*fd),
    }
}

/// True if something accepts connections on the unix socket at `path`.
pub fn unix_socket_in_use(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// A unix stream socket bound to `sa` and listening; `shown` names it in errors.
fn listen_unix(sa: &SockAddr, shown: &str, backlog: i32) -> Result<Socket, SocketError> {
    let addr = || shown.to_string();
    let sock =
        Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|source| SocketError::Create {
            addr: addr(),
            source,
        })?;
    sock.bind(sa).map_err(|source| SocketError::Bind {
        addr: addr(),
        source,
    })?;
    sock.listen(backlog).map_err(|source| SocketError::Listen {
        addr: addr(),
        source,
    })?;
    Ok(sock)
}

fn bind_unix(path: &Path, backlog: i32) -> Result<Bound, SocketError> {
    let shown = path.display().to_string();
    if path.as_os_str().len() > 107 {
        return Err(SocketError::PathTooLong { path: shown });
    }
    // Unlike uWSGI, never steal a socket someone is listening on, and never remove a
    // non-socket file.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(SocketError::NotASocket { path: shown });
        }
        if unix_socket_in_use(path) {
            return Err(SocketError::InUse { path: shown });
        }
        std::fs::remove_file(path).map_err(|source| SocketError::Unlink {
            path: shown.clone(),
            source,
        })?;
    }
    let sa = SockAddr::unix(path).map_err(|source| SocketError::Create {
        addr: shown.clone(),
        source,
    })?;
    let sock = listen_unix(&sa, &shown, backlog)?;
    let inode = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (path.to_path_buf(), m.dev(), m.ino()));
    Ok(Bound {
        fd: sock.into(),
        local: shown,
        unix_inode: inode,
        unix: true,
    })
}

/// Adopt an already-open listening socket (fd://N, LISTEN_FDS, fd 0). The fd is duplicated
/// onto a CLOEXEC descriptor; the original number is left alone.
pub fn adopt_fd(fd: RawFd) -> Result<Bound, SocketError> {
    if !crate::fd::is_listening_socket(fd) {
        return Err(SocketError::NotListening { fd });
    }
    let owned = crate::fd::dup_cloexec(fd).map_err(|source| SocketError::Create {
        addr: format!("fd://{fd}"),
        source,
    })?;
    let local = local_addr(owned.as_raw_fd());
    let unix = matches!(local, Some(BindAddr::Unix(_)) | Some(BindAddr::Abstract(_)));
    Ok(Bound {
        fd: owned,
        local: local.map(|a| display(&a)).unwrap_or(format!("fd://{fd}")),
        unix_inode: None,
        unix,
    })
}

/// Human form of an address (the §3.1 syntax).
pub fn display(addr: &BindAddr) -> String {
    match addr {
        BindAddr::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        BindAddr::Tcp { host, port } => format!("{host}:{port}"),
        BindAddr::Unix(p) => p.display().to_string(),
        BindAddr::Abstract(n) => format!("@{n}"),
        BindAddr::Fd(n) => format!("fd://{n}"),
    }
}

/// The local address of a socket, in `BindAddr` form (TCP host is the numeric IP).
pub fn local_addr(fd: RawFd) -> Option<BindAddr> {
    // SAFETY: we borrow `fd` for the duration of the call only; ManuallyDrop keeps the
    // temporary Socket from closing it.
    let sock = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    let a = sock.local_addr().ok()?;
    if let Some(sa) = a.as_socket() {
        return Some(BindAddr::Tcp {
            host: sa.ip().to_string(),
            port: sa.port(),
        });
    }
    if let Some(p) = a.as_pathname() {
        return Some(BindAddr::Unix(p.to_path_buf()));
    }
    if let Some(n) = a.as_abstract_namespace() {
        return Some(BindAddr::Abstract(String::from_utf8_lossy(n).into_owned()));
    }
    None
}

/// Whether an adopted socket's local address is the configured `want` (for matching systemd,
/// fd 0 and emperor-passed sockets to configured listeners).
pub fn addr_matches(local: &BindAddr, want: &BindAddr) -> bool {
    match (local, want) {
        (BindAddr::Tcp { host: lh, port: lp }, BindAddr::Tcp { host: wh, port: wp }) => {
            if lp != wp || *wp == 0 {
                return false;
            }
            match tcp_addrs(wh, *wp) {
                Ok(addrs) => addrs.iter().any(|a| a.ip().to_string() == *lh),
                Err(_) => false,
            }
        }
        (BindAddr::Unix(a), BindAddr::Unix(b)) => {
            a == b || (std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok() && a.exists())
        }
        (BindAddr::Abstract(a), BindAddr::Abstract(b)) => a == b,
        _ => false,
    }
}

/// Sockets passed by systemd socket activation: `(fd, name)` for fds 3.. when `LISTEN_PID`
/// is our pid. The caller removes the variables from children's environments.
pub fn systemd_fds(
    env_pid: Option<&str>,
    env_fds: Option<&str>,
    names: Option<&str>,
) -> Vec<(RawFd, String)> {
    let (Some(pid), Some(n)) = (env_pid, env_fds) else {
        return Vec::new();
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Vec::new();
    }
    let n: i32 = n.trim().parse().unwrap_or(0);
    let names: Vec<&str> = names.map(|s| s.split(':').collect()).unwrap_or_default();
    (0..n.max(0))
        .map(|i| {
            let name = names.get(i as usize).copied().unwrap_or("").to_string();
            (3 + i, name)
        })
        .collect()
}

/// `chmod-socket` on a unix path socket, never through a symlink (a root master must not
/// change the mode of whatever a link swapped in at that path points to): the path is opened
/// with `O_PATH | O_NOFOLLOW` and the mode set on that very inode via `/proc/self/fd`.
pub fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)?;
    if f.metadata()?.file_type().is_symlink() {
        return Err(io::Error::other(
            "is a symlink (its target's mode is never changed)",
        ));
    }
    std::fs::set_permissions(
        format!("/proc/self/fd/{}", f.as_raw_fd()),
        std::fs::Permissions::from_mode(mode),
    )
}

/// `chown-socket` on a unix path socket (`uid`/`gid` already resolved; None = unchanged),
/// never through a symlink (`lchown`).
pub fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::lchown(path, uid, gid)
}

/// [`bind`] with the final mode of a unix path socket set by the umask at `bind` time, so
/// that it never exists with a wider mode, even for an instant. Not for threaded callers that
/// create files meanwhile (the umask is per process).
pub fn bind_with_mode(
    addr: &BindAddr,
    opts: BindOptions,
    mode: Option<u32>,
) -> Result<Bound, SocketError> {
    let Some(mode) = mode.filter(|_| matches!(addr, BindAddr::Unix(_))) else {
        return bind(addr, opts);
    };
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        (!mode & 0o777) as libc::mode_t,
    ));
    let r = bind(addr, opts);
    nix::sys::stat::umask(old);
    r
}

/// Remove the unix socket file at `path` if it is still the one we created (same dev/inode),
/// without the in-use probe of [`vacuum_unix`]: for a socket whose only listener is ours (an
/// emperor's on-demand socket, still held by a task that is being cancelled).
pub fn remove_own_unix(path: &Path, dev: u64, ino: u64) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.dev() == dev && m.ino() == ino && m.file_type().is_socket() => {
            std::fs::remove_file(path).is_ok()
        }
        _ => false,
    }
}

/// Vacuum: remove the unix socket file at `path` if it is still the one we created (same
/// dev/inode) and nobody else is listening on it. Returns whether it was removed.
pub fn vacuum_unix(path: &Path, dev: u64, ino: u64) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.dev() == dev && m.ino() == ino => {
            if unix_socket_in_use(path) {
                return false;
            }
            std::fs::remove_file(path).is_ok()
        }
        _ => false,
    }
}

/// The current accept queue length and its maximum (the backlog) of a listening TCP socket
/// (Linux `TCP_INFO`: `tcpi_unacked` / `tcpi_sacked`). None for non-TCP sockets.
pub fn listen_queue(fd: RawFd) -> Option<(u32, u32)> {
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it and
    // fails (ENOPROTOOPT/EOPNOTSUPP) on non-TCP sockets.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        if r != 0 {
            return None;
        }
        Some((info.tcpi_unacked, info.tcpi_sacked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_and_chown_never_follow_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("liege-chmod-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let victim = d.join("victim");
        std::fs::write(&victim, "x").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.join("app.sock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(chmod(&link, 0o666).is_err());
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let me = nix::unistd::getuid().as_raw();
        chown(&link, Some(me), None).unwrap();
        // A real socket gets its mode.
        let sock = d.join("real.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        chmod(&sock, 0o660).unwrap();
        let mode = std::fs::symlink_metadata(&sock)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o660);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn backlog_defaults_to_somaxconn_and_caps_with_warning() {
        let max = somaxconn();
        assert_eq!(effective_backlog(None), (max, None));
        assert_eq!(effective_backlog(Some(10)).0, 10);
        let (b, w) = effective_backlog(Some(max + 1));
        assert_eq!(b, max);
        assert!(w.unwrap().contains("somaxconn"));
    }

    #[test]
    fn binds_tcp_unix_abstract_and_adopts() {
        let opts = BindOptions {
            backlog: 16,
            reuse_port: false,
        };
        let t = bind(
            &BindAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            opts,
        )
        .unwrap();
        assert!(crate::fd::is_listening_socket(t.fd.as_raw_fd()));
        assert!(crate::fd::is_cloexec(t.fd.as_raw_fd()).unwrap());
        let dir = std::env::temp_dir().join(format!("liege-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.sock");
        let u = bind(&BindAddr::Unix(p.clone()), opts).unwrap();
        assert!(u.unix_inode.is_some());
        // A second bind on a live socket is refused, not stolen.
        assert!(matches!(
            bind(&BindAddr::Unix(p.clone()), opts),
            Err(SocketError::InUse { .. })
        ));
        assert_eq!(
            local_addr(u.fd.as_raw_fd()),
            Some(BindAddr::Unix(p.clone()))
        );
        let a = bind(
            &BindAddr::Abstract(format!("liege-test-{}", std::process::id())),
            opts,
        )
        .unwrap();
        assert!(matches!(
            local_addr(a.fd.as_raw_fd()),
            Some(BindAddr::Abstract(_))
        ));
        let adopted = adopt_fd(t.fd.as_raw_fd()).unwrap();
        assert_eq!(adopted.local, t.local);
        // Vacuum refuses while we still listen, removes after close.
        let (path, dev, ino) = u.unix_inode.clone().unwrap();
        assert!(!vacuum_unix(&path, dev, ino));
        drop(u);
        assert!(vacuum_unix(&path, dev, ino));
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn matching_adopted_addresses() {
        let l = BindAddr::Tcp {
            host: "127.0.0.1".into(),
            port: 8000,
        };
        assert!(addr_matches(
            &l,
            &BindAddr::Tcp {
                host: "localhost".into(),
                port: 8000
            }
        ));
        assert!(!addr_matches(
            &l,
            &BindAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 8001
            }
        ));
        let any = BindAddr::Tcp {
            host: "0.0.0.0".into(),
            port: 9,
        };
        assert!(addr_matches(
            &any,
            &BindAddr::Tcp {
                host: "".into(),
                port: 9
            }
        ));
    }

    #[test]
    fn systemd_fds_only_for_our_pid() {
        let me = std::process::id().to_string();
        assert_eq!(
            systemd_fds(Some(&me), Some("2"), Some("a:b")),
            vec![(3, "a".to_string()), (4, "b".to_string())]
        );
        assert!(systemd_fds(Some("1"), Some("2"), None).is_empty());
        assert!(systemd_fds(None, Some("2"), None).is_empty());
    }
}
