//! SIGURG retries throttled vassals at once (uWSGI: clear the blacklist) and SIGUSR1 logs the
//! status table.

use liege_testkit::emperor::{app, uwsgi, vassal, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use nix::sys::signal::Signal;
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn sigurg_retries_now_and_sigusr1_logs_the_table() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let ini = dir.join("broken.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nneed-app = true\nhttp-socket = 127.0.0.1:{}\nwsgi-file = {}\n",
            free_port(),
            app("emperor_broken.py").display()
        ),
    )
    .unwrap();
    // A uWSGI vassal that exits (need-app), with a first back-off of 60 s: only SIGURG can
    // bring the retry forward. (A liege master stays up and retries its workers itself.)
    let uwsgi = uwsgi();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-throttle",
            "60",
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[],
    );
    let v = e.wait_state(&ini, "throttled", Duration::from_secs(20));
    assert!(v["next_retry_in_ms"].as_i64().unwrap() > 30_000, "{v}");
    let respawns = v["respawns"].as_i64().unwrap();

    e.proc.signal(Signal::SIGURG);
    wait_for(Duration::from_secs(10), "a retry right away", || {
        e.stats()
            .and_then(|s| vassal(&s, &ini))
            .filter(|v| v["respawns"].as_i64() > Some(respawns))
    });

    e.proc.signal(Signal::SIGUSR1);
    e.proc.wait_output(Duration::from_secs(5), "VASSAL");
    assert!(e.proc.output().contains("broken.ini"));
}
