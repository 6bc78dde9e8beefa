//! SIGKILL of the emperor with liege vassals: every master and every worker exits (the
//! emperor sets PR_SET_PDEATHSIG on each master, each master on its workers).

use liege_testkit::emperor::{descendants, hello, hello_ini, Emperor};
use liege_testkit::{free_port, pid_alive, tcp_listening, wait_for, Sandbox};
use nix::sys::signal::Signal;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn sigkill_of_the_emperor_kills_liege_masters_and_workers() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let ports = [free_port(), free_port()];
    for (i, p) in ports.iter().enumerate() {
        std::fs::write(dir.join(format!("app{i}.ini")), hello_ini(*p, "x")).unwrap();
    }
    let mut e = Emperor::start(&sb, LIEGE, &["--emperor", dir.to_str().unwrap()], &[]);
    for p in ports {
        let a = format!("127.0.0.1:{p}");
        wait_for(Duration::from_secs(20), "vassal answering", || hello(&a));
    }
    let tree = descendants(e.proc.pid());
    assert!(tree.len() >= 4, "two masters and their workers: {tree:?}");
    e.proc.signal(Signal::SIGKILL);
    e.proc
        .wait_timeout(Duration::from_secs(5))
        .expect("emperor dead");
    wait_for(
        Duration::from_secs(5),
        "every vassal process to exit",
        || tree.iter().all(|p| !pid_alive(*p)).then_some(()),
    );
    for p in ports {
        assert!(!tcp_listening(&format!("127.0.0.1:{p}")));
    }
}
