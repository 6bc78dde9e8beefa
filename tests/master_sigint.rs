//! SIGINT: fast stop, without waiting for a slow request.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn sigint_stops_fast_even_with_a_slow_request_in_flight() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "2",
    ]);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let workers = wait_workers(&m, 2, T);

    let a = addr.clone();
    let _client = std::thread::spawn(move || http_get(&a, "/slow?30"));
    wait_for(T, "the slow request to reach the app", || {
        std::fs::read_dir(sb.path())
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("slow-started"))
            .then_some(())
    });
    let t0 = Instant::now();
    m.signal(nix::sys::signal::Signal::SIGINT);
    let st = m.wait_timeout(T).expect("master exits");
    assert_eq!(st.code(), Some(0), "{}", m.output());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "fast stop took {:?}",
        t0.elapsed()
    );
    for w in workers {
        assert!(!pid_alive(w), "worker {w} outlived the master");
    }
}
