//! An app that cannot import at start: workers are retried with a growing delay (no fork
//! bomb, no silent give-up), and fixing the file brings the service up.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn boot_loop_backs_off_and_recovers_when_fixed() {
    let sb = Sandbox::new();
    break_app(&sb);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "1",
    ]);
    let m = sb.spawn(cmd, "liege");
    let t0 = Instant::now();
    m.wait_output(T, "failed to boot 3 time(s) in a row");
    // 1 s then 2 s between attempts: three failures take at least ~3 s.
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(count_in_output(&m, "spawned worker") <= 4, "{}", m.output());
    assert!(m.output().contains("next attempt in 4s"), "{}", m.output());
    // Fixing the app: the next attempt serves it; the master never gave up.
    write_app(&sb, "v1");
    wait_version(&addr, "v1", T);
}
