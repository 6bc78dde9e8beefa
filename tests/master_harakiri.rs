//! harakiri end to end: a request running past `harakiri = 2` gets its worker SIGKILLed (a log
//! line names harakiri) and replaced, while other requests keep being served.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[test]
fn harakiri_kills_and_replaces_a_stuck_worker() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let st = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .args(["--processes", "2", "--harakiri", "2", "--stats", &st]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    wait_ready(&m, 2, T);
    let before = wait_workers(&m, 2, T);

    // A request that would sleep 15 s.
    let a = addr.clone();
    let t0 = Instant::now();
    let stuck = std::thread::spawn(move || body(&a, "/slow?15"));
    // Find the worker holding it.
    let victim: i32 = wait_for(T, "the slow request started", || {
        std::fs::read_dir(sb.path())
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("slow-started-")?
                    .parse()
                    .ok()
            })
            .next()
    });
    assert!(before.contains(&victim));

    // Meanwhile the other worker keeps serving. (The stuck worker may also have accepted a
    // connection it cannot serve yet, which then dies with it: retry, as a client would.)
    let b = wait_for(T, "a request served while a worker is stuck", || {
        body(&addr, "/").filter(|b| b.starts_with("v1 "))
    });
    assert!(!b.contains(&format!("pid={victim}")), "{b}");

    m.wait_output(T, "HARAKIRI ON WORKER");
    wait_for(T, "the stuck worker killed", || {
        (!pid_alive(victim)).then_some(())
    });
    let r = stuck.join().unwrap();
    let took = t0.elapsed();
    assert!(
        r.as_deref().is_none_or(|b| !b.starts_with("slow done")),
        "the request was not finished: {r:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "killed after about 2-3 s, not at the end of the sleep: {took:?}"
    );
    // Replaced: two workers again, the victim not among them, and both serve.
    let after = wait_for(T, "a replacement worker", || {
        let c = children_of(m.pid());
        (c.len() == 2 && !c.contains(&victim)).then_some(c)
    });
    assert_ne!(before, after);
    wait_ready(&m, 3, T);
    for _ in 0..4 {
        let b = body(&addr, "/").expect("served after harakiri");
        assert!(b.starts_with("v1 "), "{b}");
    }
    // The stats count it.
    let v = wait_for(T, "harakiri_count in the stats", || {
        let raw = raw_tcp(&st, b"", Duration::from_secs(5)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let n: u64 = v["workers"]
            .as_array()?
            .iter()
            .map(|w| w["harakiri_count"].as_u64().unwrap_or(0))
            .sum();
        (n == 1).then_some(v)
    });
    assert_eq!(v["pid"], m.pid());
}
