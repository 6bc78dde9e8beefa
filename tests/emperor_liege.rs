//! liege vassals (the real master and workers) under liege's emperor: new file → spawned,
//! touch → graceful reload (new workers, same master), edit → new config, broken edit → the
//! old config keeps serving, delete → stopped, port refused.

use liege_testkit::emperor::{hello, hello_ini, touch, vassal, Emperor};
use liege_testkit::{free_port, pid_alive, tcp_listening, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

fn wait_msg(addr: &str, msg: &str) -> i32 {
    wait_for(T, &format!("{msg:?} from {addr}"), || {
        hello(addr).filter(|(m, _)| m == msg).map(|(_, p)| p)
    })
}

#[test]
fn liege_vassal_lifecycle() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let e = Emperor::start(&sb, LIEGE, &["--emperor", dir.to_str().unwrap()], &[]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("app.ini");

    std::fs::write(&ini, hello_ini(port, "v1")).unwrap();
    let w1 = wait_msg(&addr, "v1");
    let v = e.wait_state(&ini, "ready", T);
    let master = v["pid"].as_i64().unwrap();
    assert_eq!(v["accepting"], 1, "{v}");

    touch(&ini);
    wait_for(T, "a new worker after touch", || {
        hello(&addr).filter(|(_, p)| *p != w1)
    });
    let v = e.wait_state(&ini, "ready", T);
    assert_eq!(v["pid"].as_i64().unwrap(), master, "same master");
    assert_eq!(v["reloads"], 1, "{v}");

    std::fs::write(&ini, hello_ini(port, "v2")).unwrap();
    let w2 = wait_msg(&addr, "v2");

    // Broken: an unknown option value the loader rejects.
    std::fs::write(&ini, "[uwsgi]\nprocesses = many\n").unwrap();
    let v = wait_for(T, "the config error in the stats", || {
        e.stats()
            .and_then(|s| vassal(&s, &ini))
            .filter(|v| !v["last_error"].is_null())
    });
    assert!(
        v["last_error"].as_str().unwrap().contains("processes"),
        "{v}"
    );
    assert_ne!(v["config_hash"], v["config_hash_disk"]);
    assert_eq!(
        hello(&addr),
        Some(("v2".into(), w2)),
        "old config still serving"
    );

    std::fs::remove_file(&ini).unwrap();
    wait_for(T, "port refused", || (!tcp_listening(&addr)).then_some(()));
    wait_for(T, "master gone", || {
        (!pid_alive(master as i32)).then_some(())
    });
}
