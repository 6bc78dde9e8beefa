//! A real uWSGI 2.0 vassal (`emperor-wrapper`) on demand under liege's emperor: it picks the
//! listening socket up on fd 0, answers, dies of idleness (byte 22), and is woken again.

use liege_testkit::emperor::{app, uwsgi, Emperor};
use liege_testkit::{raw_unix, uwsgi_get, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(25);

fn pid_of(raw: &[u8]) -> Option<i32> {
    let t = String::from_utf8_lossy(raw);
    if !t.contains("200 OK") || !t.contains("\r\n\r\nuwsgi ") {
        return None;
    }
    t.split("pid=").nth(1)?.split(' ').next()?.parse().ok()
}

#[test]
fn uwsgi_vassal_on_demand() {
    let uwsgi = uwsgi();
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
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[],
    );
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nwsgi-file = {}\nprocesses = 1\nenv = MSG=uwsgi\nidle = 1\ndie-on-idle = true\n",
            app("emperor_hello.py").display()
        ),
    )
    .unwrap();
    let sock = od.join("app.socket");
    let v = e.wait_state(&ini, "on-demand", T);
    assert_eq!(v["pid"], -1);
    let raw = raw_unix(&sock, &uwsgi_get(), T).unwrap();
    let w1 = pid_of(&raw)
        .unwrap_or_else(|| panic!("{:?}\n{}", String::from_utf8_lossy(&raw), e.proc.output()));
    e.wait_state(&ini, "ready", T);
    e.wait_state(&ini, "on-demand", T);
    let raw = raw_unix(&sock, &uwsgi_get(), T).unwrap();
    let w2 = pid_of(&raw)
        .unwrap_or_else(|| panic!("{:?}\n{}", String::from_utf8_lossy(&raw), e.proc.output()));
    assert_ne!(w1, w2);
}
