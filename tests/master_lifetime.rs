//! max-worker-lifetime: workers are replaced start-then-drain, so requests never fail.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn old_workers_are_replaced_without_failing_requests() {
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
        "1",
    ])
    .args(["--max-worker-lifetime", "2"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let first = wait_workers(&m, 1, T)[0];
    let t0 = Instant::now();
    let mut pids = std::collections::BTreeSet::new();
    // Fresh connections for a while: every one is answered, by the old then the new worker.
    while pids.len() < 3 && t0.elapsed() < T {
        let b = body(&addr, "/").expect("no request fails");
        assert!(b.starts_with("v1 "), "{b}");
        pids.insert(b.rsplit('=').next().unwrap().trim().to_string());
    }
    assert!(pids.len() >= 3, "workers replaced twice: {pids:?}");
    assert!(pids.contains(&first.to_string()));
    m.wait_output(T, "max-worker-lifetime");
}
