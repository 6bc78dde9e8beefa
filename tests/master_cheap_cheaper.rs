//! `cheaper = 1` (algorithm spare) with `processes = 3`: one worker at boot, more when every
//! worker is busy for more than `cheaper-overload` checks, back to one when they are idle. The
//! stats show the cheaped slots as "cheap".

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn statuses(addr: &str) -> Option<Vec<String>> {
    let raw = raw_tcp(addr, b"", Duration::from_secs(5)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    Some(
        v["workers"]
            .as_array()?
            .iter()
            .map(|w| w["status"].as_str().unwrap_or("").to_string())
            .collect(),
    )
}

#[test]
fn cheaper_spare_adapts_the_worker_count() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let st = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .args([
            "--processes",
            "3",
            "--cheaper",
            "1",
            "--cheaper-overload",
            "1",
        ])
        .args(["--stats", &st]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    wait_ready(&m, 1, T);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        children_of(m.pid()).len(),
        1,
        "cheaper-initial = cheaper = 1"
    );
    let s = statuses(&st).unwrap();
    assert_eq!(s.iter().filter(|s| *s == "cheap").count(), 2, "{s:?}");

    // Keep the only worker busy: after more than one overloaded check a second one starts.
    let slow: Vec<_> = (0..2)
        .map(|i| {
            let a = addr.clone();
            std::thread::sleep(Duration::from_millis(200 * i));
            std::thread::spawn(move || body(&a, "/slow?4"))
        })
        .collect();
    m.wait_output(T, "cheaper: every worker busy");
    wait_for(T, "a second worker", || {
        (children_of(m.pid()).len() >= 2).then_some(())
    });
    for h in slow {
        let b = h.join().unwrap().expect("slow request answered");
        assert!(b.starts_with("slow done"), "{b}");
    }
    // Idle again: back down to one worker, never fewer.
    m.wait_output(T, "stopping the oldest idle one");
    wait_for(T, "back to one worker", || {
        (children_of(m.pid()).len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(children_of(m.pid()).len(), 1, "never below cheaper");
    assert!(body(&addr, "/").unwrap().starts_with("v1 "));
}
