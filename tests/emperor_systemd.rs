//! systemd notify protocol against a real unix datagram socket: READY=1 only once the vassal
//! is up, STATUS= with counts, WATCHDOG=1 pings when WATCHDOG_USEC is set, RELOADING=1 +
//! MONOTONIC_USEC on SIGHUP followed by READY=1, STOPPING=1 on SIGTERM, then a graceful stop
//! of every vassal and exit 0. Vassals do not inherit NOTIFY_SOCKET.

use liege_testkit::emperor::{hello, hello_ini, uwsgi, Emperor};
use liege_testkit::{free_port, tcp_listening, wait_for, Sandbox};
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

/// Every datagram received on the socket, read by a thread so that the emperor's
/// non-blocking sends never find the (10-deep) queue full.
struct Notify {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Notify {
    fn bind(path: &std::path::Path) -> Notify {
        let sock = UnixDatagram::bind(path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Notify {
            rx,
            seen: Vec::new(),
        }
    }

    /// Receive until a message satisfies `f`; returns it.
    fn until(&mut self, timeout: Duration, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} within {timeout:?}; got {:#?}",
                self.seen
            );
            if let Ok(m) = self.rx.recv_timeout(left) {
                self.seen.push(m.clone());
                if f(&m) {
                    return m;
                }
            }
        }
    }
}

#[test]
fn notify_ready_status_watchdog_reloading_stopping() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let sock_path = sb.path().join("notify.sock");
    let mut n = Notify::bind(&sock_path);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(dir.join("app.ini"), hello_ini(port, "up")).unwrap();
    let uwsgi = uwsgi();
    let mut e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );

    let ready = n.until(Duration::from_secs(20), "READY=1", |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(
        hello(&addr).is_some(),
        "READY=1 before the vassal answers: {ready}"
    );
    assert!(
        ready.contains("STATUS=The Emperor is governing 1 vassals: 1 ready"),
        "{ready}"
    );
    let before = n.seen.len();
    n.until(Duration::from_secs(3), "WATCHDOG=1", |m| {
        m == "WATCHDOG=1\n"
    });
    n.until(Duration::from_secs(3), "a second WATCHDOG=1", |m| {
        m == "WATCHDOG=1\n"
    });
    assert!(n.seen.len() >= before + 2);

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, the vassal reloads, READY=1 again.
    let (_, worker) = hello(&addr).unwrap();
    e.proc.signal(Signal::SIGHUP);
    let r = n.until(Duration::from_secs(5), "RELOADING=1", |m| {
        m.contains("RELOADING=1")
    });
    assert!(r.contains("MONOTONIC_USEC="), "{r}");
    n.until(Duration::from_secs(20), "READY=1 after reload", |m| {
        m.lines().any(|l| l == "READY=1")
    });
    wait_for(Duration::from_secs(20), "a new worker after SIGHUP", || {
        hello(&addr).filter(|(_, p)| *p != worker)
    });

    // SIGTERM: STOPPING=1, every vassal stopped gracefully, exit 0.
    e.proc.signal(Signal::SIGTERM);
    n.until(Duration::from_secs(5), "STOPPING=1", |m| {
        m.contains("STOPPING=1")
    });
    let st = e
        .proc
        .wait_timeout(Duration::from_secs(20))
        .expect("emperor exits");
    assert_eq!(st.code(), Some(0), "{}", e.proc.output());
    assert!(!tcp_listening(&addr));
    // uWSGI would announce itself ("uWSGI is ready") if it had inherited NOTIFY_SOCKET.
    assert!(!n.seen.iter().any(|m| m.contains("uWSGI")), "{:#?}", n.seen);
}
