//! `cheap`: the master binds its sockets but starts no worker until a first connection is
//! waiting; that connection is then served (it waited in the listen queue), and the stats
//! show the slots as "cheap" meanwhile.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn stats(addr: &str) -> Option<serde_json::Value> {
    let raw = raw_tcp(addr, b"", Duration::from_secs(5)).ok()?;
    serde_json::from_slice(&raw).ok()
}

#[test]
fn cheap_spawns_workers_on_the_first_connection() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let st = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .args(["--processes", "2", "--cheap", "--stats", &st]);
    let m = sb.spawn(cmd, "liege");
    m.wait_output(T, "cheap mode: no worker until the first connection");
    // Cheap: both slots show as "cheap" and there is no worker process.
    let v = wait_for(T, "stats with two cheap slots", || {
        stats(&st).filter(|v| {
            v["workers"].as_array().is_some_and(|w| {
                w.len() == 2 && w.iter().all(|w| w["status"] == "cheap" && w["pid"] == 0)
            })
        })
    });
    assert_eq!(v["pid"], m.pid());
    // Give a wrongly eager master time to spawn anyway, then check it did not.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(children_of(m.pid()).is_empty(), "no worker while cheap");
    assert!(tcp_listening(&addr), "the socket is bound");

    // The first connection waits in the listen queue while the workers import the app.
    let b = body(&addr, "/").expect("the first request is served");
    assert!(b.starts_with("v1 "), "{b}");
    m.wait_output(T, "leaving cheap mode");
    wait_workers(&m, 2, T);
    let v = wait_for(T, "stats with two workers", || {
        stats(&st).filter(|v| {
            v["workers"].as_array().is_some_and(|w| {
                w.len() == 2 && w.iter().all(|w| w["status"] != "cheap" && w["pid"] != 0)
            })
        })
    });
    assert_eq!(v["workers"].as_array().unwrap().len(), 2);
    // Later requests are served by the running workers.
    assert!(body(&addr, "/").unwrap().starts_with("v1 "));
}
