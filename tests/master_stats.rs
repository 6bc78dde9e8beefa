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
