//! A vassal that cannot start is restarted with exponential back-off, visibly: state
//! `throttled`, `next_retry`, growing attempts, a blacklist entry, and `liege --status`
//! shows it. It is never given up: fixing the file brings it up at once.

use liege_testkit::emperor::{app, hello, hello_ini, uwsgi, vassal, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

#[test]
fn crashing_vassal_backs_off_and_recovers() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("broken.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nneed-app = true\nhttp-socket = {addr}\nwsgi-file = {}\n",
            app("emperor_broken.py").display()
        ),
    )
    .unwrap();
    let uwsgi = uwsgi();
    let e = Emperor::start(
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

    let first = e.wait_state(&ini, "throttled", T);
    assert!(first["next_retry"].as_i64().unwrap() > 0, "{first}");
    assert!(
        first["last_error"]
            .as_str()
            .unwrap()
            .contains("exit code 22"),
        "{first}"
    );
    let ms1 = first["next_retry_in_ms"].as_i64().unwrap();
    assert!(ms1 <= 1000, "first back-off is about 1 s: {first}");

    // A second failure waits longer (2 s × jitter 0.75–1).
    let second = wait_for(T, "a second throttled attempt", || {
        e.stats()
            .and_then(|s| vassal(&s, &ini))
            .filter(|v| v["state"] == "throttled" && v["attempts"] == 2)
    });
    assert!(
        second["next_retry_in_ms"].as_i64().unwrap() > 1000,
        "{second}"
    );
    assert!(second["respawns"].as_i64().unwrap() >= 1, "{second}");
    let s = e.stats().unwrap();
    assert!(
        s["blacklist"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == ini.to_str().unwrap()),
        "{s}"
    );

    // `liege --status` shows it.
    let out = std::process::Command::new(LIEGE)
        .args(["--status", &e.stats])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        table.contains("broken.ini") && table.contains("throttled") && table.contains("in "),
        "{table}"
    );

    // Fixing the file starts it without waiting for the back-off.
    std::fs::write(&ini, hello_ini(port, "fixed")).unwrap();
    wait_for(Duration::from_secs(10), "the fixed vassal", || {
        hello(&addr).filter(|(m, _)| m == "fixed")
    });
}
