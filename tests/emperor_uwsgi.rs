//! A real uWSGI 2.0 vassal (from PyPI, through `emperor-wrapper`) under liege's emperor:
//! new file → spawned, touch → reload, edit → reload with the new config, save-by-rename →
//! reload, broken edit → the old config keeps running (error visible in the stats),
//! delete → stopped; and a Kubernetes-style `..data` symlink swap.

use liege_testkit::emperor::{hello, hello_ini, touch, uwsgi, vassal, write_atomic, Emperor};
use liege_testkit::{free_port, tcp_listening, wait_for, Sandbox};
use std::time::{Duration, Instant};

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

fn wait_msg(addr: &str, msg: &str) -> i32 {
    wait_for(T, &format!("{msg:?} from {addr}"), || {
        hello(addr).filter(|(m, _)| m == msg).map(|(_, p)| p)
    })
}

#[test]
fn uwsgi_vassal_lifecycle() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let uwsgi = uwsgi();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[],
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("app.ini");

    // New file → spawned, and ready in the stats.
    std::fs::write(&ini, hello_ini(port, "v1")).unwrap();
    let pid1 = wait_msg(&addr, "v1");
    let v = e.wait_state(&ini, "ready", T);
    let master = v["pid"].as_i64().unwrap();
    assert!(master > 0);
    assert_eq!(v["id"], ini.to_str().unwrap());

    // Touch → graceful reload: a new worker, the same master.
    let t0 = Instant::now();
    touch(&ini);
    let pid2 = wait_for(T, "a new worker after touch", || {
        hello(&addr).map(|(_, p)| p).filter(|p| *p != pid1)
    });
    eprintln!("touch → new worker answering: {:?}", t0.elapsed());
    let v = e.wait_state(&ini, "ready", T);
    assert_eq!(
        v["pid"].as_i64().unwrap(),
        master,
        "reload keeps the master"
    );

    // In-place edit → reload with the new config.
    std::fs::write(&ini, hello_ini(port, "v2")).unwrap();
    let pid3 = wait_msg(&addr, "v2");
    assert_ne!(pid3, pid2);

    // Save-by-rename (what editors do) → reload.
    write_atomic(&ini, &hello_ini(port, "v3"));
    let pid4 = wait_msg(&addr, "v3");
    e.wait_state(&ini, "ready", T);

    // Broken edit → nothing happens to the running vassal; the error is visible.
    std::fs::write(&ini, "[uwsgi]\nprocesses = many\nhttp-socket = nowhere\n").unwrap();
    let v = wait_for(T, "the config error in the stats", || {
        e.stats().and_then(|s| vassal(&s, &ini)).filter(|v| {
            v["last_error"]
                .as_str()
                .is_some_and(|m| m.contains("invalid configuration"))
        })
    });
    assert_eq!(v["state"], "ready");
    assert_ne!(v["config_hash"], v["config_hash_disk"], "{v}");
    assert_eq!(
        hello(&addr).unwrap(),
        ("v3".to_string(), pid4),
        "still the old config"
    );
    assert_eq!(
        e.proc
            .output()
            .matches("keeps running its last good configuration")
            .count(),
        1,
        "logged once"
    );

    // Fixed → applied.
    std::fs::write(&ini, hello_ini(port, "v4")).unwrap();
    wait_msg(&addr, "v4");
    let v = e.wait_state(&ini, "ready", T);
    assert_eq!(v["config_hash"], v["config_hash_disk"]);
    assert!(v["last_error"].is_null(), "{v}");

    // Delete → graceful stop, the port is refused, the vassal is gone from the stats.
    std::fs::remove_file(&ini).unwrap();
    wait_for(T, "port refused after delete", || {
        (!tcp_listening(&addr)).then_some(())
    });
    wait_for(T, "vassal gone from stats", || {
        e.stats().filter(|s| vassal(s, &ini).is_none())
    });
    assert!(!liege_testkit::pid_alive(master as i32));
}

#[test]
fn kubernetes_symlink_swap_reloads() {
    let sb = Sandbox::new();
    let dir = sb.path().join("cm");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::create_dir_all(dir.join("..2026_01")).unwrap();
    std::fs::write(dir.join("..2026_01/app.ini"), hello_ini(port, "one")).unwrap();
    std::os::unix::fs::symlink("..2026_01", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/app.ini", dir.join("app.ini")).unwrap();
    let uwsgi = uwsgi();
    let _e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[],
    );
    wait_msg(&addr, "one");

    // What the kubelet does: a new timestamped dir, a temp link, renamed over ..data.
    std::fs::create_dir_all(dir.join("..2026_02")).unwrap();
    std::fs::write(dir.join("..2026_02/app.ini"), hello_ini(port, "two")).unwrap();
    std::os::unix::fs::symlink("..2026_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_01")).unwrap();
    wait_msg(&addr, "two");
}
