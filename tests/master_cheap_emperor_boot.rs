//! A liege vassal whose app cannot be imported at its first boot exits 22 (as uWSGI does), so
//! the emperor's back-off and stats show the failure instead of a vassal "starting" forever;
//! fixing the app file brings it up at the next attempt.

use liege_testkit::emperor::{app, hello, vassal, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

#[test]
fn vassal_with_a_broken_app_exits_22_and_recovers_when_fixed() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let appfile = sb.path().join("app.py");
    std::fs::copy(app("emperor_broken.py"), &appfile).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("broken.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nneed-app = true\nhttp-socket = {addr}\nwsgi-file = {}\nprocesses = 1\nenv = MSG=fixed\n",
            appfile.display()
        ),
    )
    .unwrap();
    let e = Emperor::start(&sb, LIEGE, &["--emperor", dir.to_str().unwrap()], &[]);

    let v = e.wait_state(&ini, "throttled", T);
    assert!(v["next_retry"].as_i64().unwrap() > 0, "a retry time: {v}");
    assert!(
        v["last_error"].as_str().unwrap().contains("exit code 22"),
        "{v}"
    );
    // It keeps failing (and being retried) while the app is broken.
    wait_for(T, "a second failed attempt", || {
        e.stats()
            .and_then(|s| vassal(&s, &ini))
            .filter(|v| v["attempts"].as_i64().unwrap_or(0) >= 2)
    });

    // Fix the app: the next attempt comes up and serves.
    std::fs::copy(app("emperor_hello.py"), &appfile).unwrap();
    let (msg, _) = wait_for(T, "the fixed vassal serving", || hello(&addr));
    assert_eq!(msg, "fixed");
    let v = e.wait_state(&ini, "ready", T);
    assert!(v["pid"].as_i64().unwrap() > 0, "{v}");
}
