//! SIGKILL of the emperor leaves no orphans: every vassal master and its workers die
//! (PR_SET_PDEATHSIG in each vassal).

use liege_testkit::emperor::{descendants, hello, hello_ini, uwsgi, Emperor};
use liege_testkit::{free_port, pid_alive, wait_for, Sandbox};
use nix::sys::signal::Signal;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn sigkill_of_the_emperor_kills_every_vassal() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let (p1, p2) = (free_port(), free_port());
    std::fs::write(dir.join("one.ini"), hello_ini(p1, "one")).unwrap();
    std::fs::write(dir.join("two.ini"), hello_ini(p2, "two")).unwrap();
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
    for p in [p1, p2] {
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
}
