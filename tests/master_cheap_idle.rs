//! `idle = N` without `die-on-idle`: after N seconds without requests the master stops its
//! workers gracefully and goes cheap; the next connection wakes it up and is served. A
//! request in progress is never cut by going idle.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn cheap_slots(addr: &str) -> Option<usize> {
    let raw = raw_tcp(addr, b"", Duration::from_secs(5)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    Some(
        v["workers"]
            .as_array()?
            .iter()
            .filter(|w| w["status"] == "cheap")
            .count(),
    )
}

#[test]
fn idle_goes_cheap_and_wakes_on_the_next_connection() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let st = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .args(["--processes", "1", "--idle", "2", "--stats", &st]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let first = wait_workers(&m, 1, T);

    // A request longer than `idle` is not cut: the worker is busy, so the master is not idle.
    let t0 = Instant::now();
    let b = body(&addr, "/slow?3.5").expect("slow request answered");
    assert!(b.starts_with("slow done"), "{b}");
    assert!(t0.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        count_in_output(&m, "going cheap"),
        0,
        "went cheap during a request:\n{}",
        m.output()
    );

    // Now nothing happens for 2 s: the worker is stopped gracefully and the slot is cheap.
    m.wait_output(T, "idle for 2s: going cheap");
    wait_for(T, "no worker left", || {
        children_of(m.pid()).is_empty().then_some(())
    });
    wait_for(T, "the slot shows as cheap", || {
        cheap_slots(&st).filter(|&n| n == 1)
    });
    assert!(tcp_listening(&addr));

    // The next connection wakes the master; it is served by a new worker.
    let b = body(&addr, "/").expect("served after going cheap");
    assert!(b.starts_with("v1 "), "{b}");
    let second = wait_workers(&m, 1, T);
    assert_ne!(first, second, "a new worker");
    // And it goes cheap again after another idle period.
    wait_for(T, "cheap a second time", || {
        (count_in_output(&m, "going cheap") >= 2).then_some(())
    });
}
