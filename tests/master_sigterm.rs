//! SIGTERM: graceful stop. An in-flight slow request finishes; the master exits 0.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn sigterm_finishes_the_in_flight_request_then_exits_0() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"]);
    cmd.args(["--processes", "1", "--worker-reload-mercy", "15"]);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);

    let a = addr.clone();
    let client = std::thread::spawn(move || http_get(&a, "/slow?2"));
    wait_for(T, "the slow request to reach the app", || {
        std::fs::read_dir(sb.path())
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("slow-started"))
            .then_some(())
    });
    let t0 = Instant::now();
    m.signal(nix::sys::signal::Signal::SIGTERM);
    let resp = client
        .join()
        .unwrap()
        .expect("the in-flight request got a response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "slow done v1");
    let st = m.wait_timeout(T).expect("master exits");
    assert_eq!(st.code(), Some(0), "{}", m.output());
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(!tcp_listening(&addr), "the socket is closed after exit");
}
