//! The stats server speaks uWSGI's JSON (the keys uwsgitop reads), raw and with stats-http.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn stats_json_has_the_uwsgi_keys() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let stats = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "2",
    ])
    .args(["--stats", &stats]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    wait_ready(&m, 2, T);
    let raw = raw_tcp(&stats, b"", Duration::from_secs(5)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
    for k in [
        "version",
        "listen_queue",
        "pid",
        "uid",
        "gid",
        "cwd",
        "sockets",
        "workers",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["pid"], m.pid());
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        for k in [
            "id",
            "pid",
            "requests",
            "exceptions",
            "signals",
            "status",
            "avg_rt",
            "rss",
            "vsz",
            "tx",
            "respawn_count",
            "harakiri_count",
            "running_time",
            "last_spawn",
            "cores",
        ] {
            assert!(w.get(k).is_some(), "worker misses {k}");
        }
        assert_eq!(w["accepting"], 1);
    }
    assert_eq!(v["sockets"][0]["proto"], "http");
}

/// The counters are live: read right after N requests, the workers' `requests` sum to N (and
/// `tx` grows with them), without waiting for the workers' once-a-second report.
#[test]
fn stats_count_every_request_right_away() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let stats = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "2",
        "--disable-logging",
    ])
    .args(["--stats", &stats]);
    let m = sb.spawn(cmd, "liege");
    wait_ready(&m, 2, T);
    let sum = |key: &str| -> u64 {
        let raw = raw_tcp(&stats, b"", Duration::from_secs(5)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
        v["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w[key].as_u64().unwrap())
            .sum()
    };
    let mut last_tx = 0;
    for round in 1..=3u64 {
        for _ in 0..7 {
            assert!(body(&addr, "/").unwrap().starts_with("v1 "));
        }
        assert_eq!(sum("requests"), 7 * round);
        let tx = sum("tx");
        assert!(tx > last_tx, "tx {tx} after {last_tx}");
        last_tx = tx;
    }
}
