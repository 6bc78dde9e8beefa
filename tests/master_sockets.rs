//! Every socket form of uWSGI §3.1 at once (TCP v4/v6, `:port`, unix path, abstract, an
//! inherited fd://N), systemd LISTEN_FDS and fd 0 adoption, chmod-socket, the listen cap
//! warning, vacuum, and refusing to steal a live unix socket.

use liege_testkit::master::*;
use liege_testkit::*;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn read_all(mut s: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

fn inheritable(fd: &impl std::os::fd::AsFd) {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
}

fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn every_address_form_at_once_with_chmod_and_vacuum() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let v4 = format!("127.0.0.1:{}", free_port());
    let any = free_port();
    let v6 = free_port();
    let unix_path = sb.path().join("uwsgi.sock");
    let http_unix = sb.path().join("http.sock");
    let abstract_name = format!("liege-test-{}", std::process::id());
    // An inherited listening socket (fd://N).
    let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inherited_addr = inherited.local_addr().unwrap().to_string();
    inheritable(&inherited);

    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--wsgi-file", "app.py", "--processes", "2", "--vacuum"])
        .args(["--chmod-socket=660"])
        .args(["--http-socket", &v4])
        .args(["--http-socket", &format!(":{any}")])
        .arg("--socket")
        .arg(&unix_path)
        .arg("--http-socket")
        .arg(&http_unix)
        .args(["--http-socket", &format!("@{abstract_name}")])
        .args(["--http-socket", &format!("fd://{}", inherited.as_raw_fd())])
        .args(["--listen", "99999999"]);
    if ipv6_loopback() {
        cmd.args(["--http-socket", &format!("[::1]:{v6}")]);
    }
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&v4, "v1", T);

    // :port listens on every IPv4 interface.
    assert!(body(&format!("127.0.0.1:{any}"), "/")
        .unwrap()
        .starts_with("v1 "));
    if ipv6_loopback() {
        assert!(body(&format!("[::1]:{v6}"), "/")
            .unwrap()
            .starts_with("v1 "));
    }
    assert!(body(&inherited_addr, "/").unwrap().starts_with("v1 "));
    // uwsgi protocol on the unix socket.
    let pkt = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/"),
            ("REQUEST_URI", "/"),
            ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "x"),
            ("SERVER_PORT", "80"),
            ("HTTP_HOST", "x"),
        ],
        b"",
    );
    let out = raw_unix(&unix_path, &pkt, Duration::from_secs(5)).unwrap();
    let r = Response::parse(out).expect("uwsgi answer");
    assert!(r.text().starts_with("v1 "), "{}", r.text());
    // HTTP on a unix path and on an abstract socket.
    let r = Response::parse(raw_unix(&http_unix, GET, Duration::from_secs(5)).unwrap()).unwrap();
    assert!(r.text().starts_with("v1 "));
    use std::os::linux::net::SocketAddrExt;
    let a = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    let mut s = UnixStream::connect_addr(&a).unwrap();
    s.write_all(GET).unwrap();
    let r = Response::parse(read_all(s)).unwrap();
    assert!(r.text().starts_with("v1 "));

    // chmod-socket applies to unix path sockets.
    for p in [&unix_path, &http_unix] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{}", p.display());
    }
    // A too-large listen is capped with a warning (uWSGI: fatal).
    assert!(m.output().contains("somaxconn"), "{}", m.output());

    m.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(m.wait_timeout(T).unwrap().code(), Some(0));
    assert!(!unix_path.exists(), "vacuum removed the unix socket");
    assert!(!http_unix.exists());
}

#[test]
fn a_live_unix_socket_is_never_stolen_and_vacuum_leaves_it() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let path = sb.path().join("shared.sock");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--wsgi-file", "app.py", "--vacuum", "--http-socket"])
        .arg(&path);
    let a = sb.spawn(cmd, "a");
    wait_for(T, "first master serving", || {
        let r = Response::parse(raw_unix(&path, GET, Duration::from_secs(5)).ok()?)?;
        r.text().starts_with("v1 ").then_some(())
    });
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--wsgi-file", "app.py", "--vacuum", "--http-socket"])
        .arg(&path);
    let mut b = sb.spawn(cmd, "b");
    let st = b.wait_timeout(T).expect("second master gives up");
    assert_ne!(st.code(), Some(0));
    assert!(b.output().contains("listening"), "{}", b.output());
    // The first one still owns and serves its socket.
    assert!(path.exists());
    let r = Response::parse(raw_unix(&path, GET, Duration::from_secs(5)).unwrap()).unwrap();
    assert!(r.text().starts_with("v1 "));
    drop(a);
}

#[test]
fn systemd_listen_fds_are_adopted() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let raw = l.as_raw_fd();
    // LISTEN_PID must be the liege process: a shell exports its own pid, then execs liege.
    let mut cmd = sb.command("/bin/sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_liege"),
        "--wsgi-file",
        "app.py",
        "--http-socket",
        &addr,
    ]);
    // SAFETY: dup2 and fcntl are async-signal-safe; they put the listener on fd 3 without
    // CLOEXEC (dup2 onto itself would leave CLOEXEC set, hence the fcntl).
    unsafe {
        cmd.pre_exec(move || {
            if raw != 3 && libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    m.wait_output(T, "adopted systemd socket");
    assert!(m.output().contains("inherited socket"), "{}", m.output());
    assert_eq!(body(&addr, "/env?LISTEN_FDS").unwrap(), "<unset>");
}

#[test]
fn a_listening_fd_0_is_adopted() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    // The configured socket has the fd-0 socket's address (the emperor on-demand case): it
    // is used as that socket (binding it again would fail: the address is taken).
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--wsgi-file", "app.py", "--http-socket", &addr]);
    let log = sb.path().join("liege.log");
    let f = std::fs::File::create(&log).unwrap();
    cmd.stdin(Stdio::from(OwnedFd::from(l)))
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0);
    let m = Proc {
        child: cmd.spawn().unwrap(),
        log,
    };
    wait_version(&addr, "v1", T);
    assert!(m.output().contains("fd 0"), "{}", m.output());
    assert!(
        m.output().contains("using the inherited socket"),
        "{}",
        m.output()
    );
}

#[test]
fn reuse_port_lets_two_instances_share_a_port() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let start = |name: &str| {
        let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
        cmd.args([
            "--wsgi-file",
            "app.py",
            "--http-socket",
            &addr,
            "--reuse-port",
        ]);
        sb.spawn(cmd, name)
    };
    let a = start("a");
    wait_version(&addr, "v1", T);
    let mut b = start("b");
    b.wait_output(T, "ready after");
    assert!(
        b.wait_timeout(Duration::from_millis(100)).is_none(),
        "b runs too"
    );
    drop(a);
    // With a gone, b alone answers on the shared port.
    wait_version(&addr, "v1", T);
}
