//! An on-demand vassal that crashes keeps its socket (same inode, connections queued on it are
//! answered by the next vassal); uWSGI re-bound it and lost the queue. Signals its own tree.

use liege_testkit::emperor::{app, Emperor};
use liege_testkit::{raw_unix, uwsgi_get, wait_for, Sandbox};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

fn ok(raw: &[u8]) -> bool {
    let t = String::from_utf8_lossy(raw);
    t.starts_with("HTTP/1.1 200") && t.contains("\r\n\r\ncrash ")
}

#[test]
fn a_crashed_on_demand_vassal_keeps_its_socket() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    let od = sb.path().join("od");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&od).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-on-demand-directory",
            od.to_str().unwrap(),
            "--emperor-throttle",
            "1",
        ],
        &[],
    );
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nwsgi-file = {}\nprocesses = 1\nenv = MSG=crash\n",
            app("emperor_hello.py").display()
        ),
    )
    .unwrap();
    let sock = od.join("app.socket");
    e.wait_state(&ini, "on-demand", T);
    let inode = std::fs::metadata(&sock).unwrap().ino();
    let raw = raw_unix(&sock, &uwsgi_get(), T).unwrap();
    assert!(ok(&raw), "{:?}", String::from_utf8_lossy(&raw));
    let v = e.wait_state(&ini, "ready", T);
    let master = v["pid"].as_i64().unwrap() as i32;

    // Crash: SIGKILL the vassal's master (its workers follow it).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Throttled, then waiting on the same socket again (not re-bound); the next request
    // wakes a new vassal.
    let v = e.wait_state(&ini, "on-demand", T);
    assert!(
        v["last_error"].as_str().unwrap_or("").contains("signal 9"),
        "{v}"
    );
    let raw = raw_unix(&sock, &uwsgi_get(), T).unwrap();
    assert!(ok(&raw), "{:?}", String::from_utf8_lossy(&raw));
    assert_eq!(
        std::fs::metadata(&sock).unwrap().ino(),
        inode,
        "same socket"
    );
    wait_for(T, "a new vassal", || {
        let v = liege_testkit::emperor::vassal(&e.stats()?, &ini)?;
        (v["pid"].as_i64()? > 0 && v["pid"].as_i64()? != master as i64).then_some(v)
    });
}
