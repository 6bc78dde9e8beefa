//! Heartbeats: once a vassal has sent one (its `heartbeat = N`), the emperor requires one
//! every `emperor-required-heartbeat`; a hung vassal (here: SIGSTOPped) is SIGKILLed and
//! started again, with the reason in the stats.

use liege_testkit::emperor::{hello, hello_ini, vassal, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn hung_vassal_is_killed_and_restarted() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let ini = dir.join("app.ini");
    std::fs::write(&ini, hello_ini(port, "hb") + "heartbeat = 1\n").unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-required-heartbeat",
            "2",
        ],
        &[],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), "the vassal", || hello(&addr));
    let v = wait_for(Duration::from_secs(10), "a first heartbeat", || {
        e.stats()
            .and_then(|s| vassal(&s, &ini))
            .filter(|v| v["last_heartbeat"].as_i64() > Some(0))
    });
    let master = v["pid"].as_i64().unwrap() as i32;
    kill(Pid::from_raw(master), Signal::SIGSTOP).unwrap();

    let v = wait_for(Duration::from_secs(15), "a new master", || {
        e.stats().and_then(|s| vassal(&s, &ini)).filter(|v| {
            v["pid"]
                .as_i64()
                .is_some_and(|p| p > 0 && p != master as i64)
                && v["state"] == "ready"
        })
    });
    assert!(v["respawns"].as_i64().unwrap() >= 1, "{v}");
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no heartbeat"),
        "{v}"
    );
    assert!(
        e.proc.output().contains("no heartbeat"),
        "{}",
        e.proc.output()
    );
    wait_for(Duration::from_secs(10), "served again", || hello(&addr));
}
