//! SIGINT (like SIGQUIT) stops every vassal at once (byte 0) and the emperor exits 0,
//! leaving nothing behind.

use liege_testkit::emperor::{descendants, hello, hello_ini, uwsgi, Emperor};
use liege_testkit::{free_port, pid_alive, tcp_listening, wait_for, Sandbox};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn sigint_stops_everything_fast() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let ports = [free_port(), free_port()];
    for (i, p) in ports.iter().enumerate() {
        std::fs::write(dir.join(format!("app{i}.ini")), hello_ini(*p, "x")).unwrap();
    }
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
        &[],
    );
    for p in ports {
        let a = format!("127.0.0.1:{p}");
        wait_for(Duration::from_secs(20), "vassal answering", || hello(&a));
    }
    let tree = descendants(e.proc.pid());
    let t0 = Instant::now();
    e.proc.signal(Signal::SIGINT);
    let st = e
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("emperor exits");
    assert_eq!(st.code(), Some(0), "{}", e.proc.output());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "fast stop took {:?}",
        t0.elapsed()
    );
    for p in ports {
        assert!(!tcp_listening(&format!("127.0.0.1:{p}")));
    }
    assert!(tree.iter().all(|p| !pid_alive(*p)), "{tree:?}");
    assert!(e.proc.output().contains("stopping 2 vassals now"));
}
