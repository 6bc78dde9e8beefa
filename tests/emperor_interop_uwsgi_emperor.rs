//! The reverse interop: a liege vassal under uWSGI 2.0's own emperor
//! (`uwsgi --emperor DIR --emperor-wrapper liege`) is spawned, reloads on touch, stops on
//! delete; and `liege --status` reads uWSGI's emperor stats.

use liege_testkit::emperor::{hello, hello_ini, touch, uwsgi};
use liege_testkit::{free_port, tcp_listening, wait_for, Sandbox};
use std::time::{Duration, SystemTime};

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(25);

#[test]
fn liege_vassal_under_the_uwsgi_emperor() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("app.ini");
    std::fs::write(&ini, hello_ini(port, "liege")).unwrap();
    let stats = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(uwsgi());
    cmd.args([
        "--emperor",
        dir.to_str().unwrap(),
        "--emperor-wrapper",
        LIEGE,
        "--emperor-stats",
        &stats,
    ]);
    let p = sb.spawn(cmd, "uwsgi-emperor");

    let (_, w1) = wait_for(T, "the liege vassal answering", || hello(&addr));
    assert!(p.output().contains("liege master"), "{}", p.output());

    // `liege --status` understands uWSGI's emperor stats.
    let out = std::process::Command::new(LIEGE)
        .args(["--status", &stats])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && table.contains("app.ini"), "{out:?}");

    // uWSGI compares whole-second mtimes: touch in a later second than the file's creation.
    let created = std::fs::metadata(&ini).unwrap().modified().unwrap();
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    wait_for(Duration::from_secs(3), "the next second", || {
        (secs(SystemTime::now()) > secs(created)).then_some(())
    });
    touch(&ini);
    wait_for(T, "a new worker after touch (byte 1)", || {
        hello(&addr).filter(|(_, p)| *p != w1)
    });

    std::fs::remove_file(&ini).unwrap();
    wait_for(T, "port refused after delete (byte 0)", || {
        (!tcp_listening(&addr)).then_some(())
    });
}
