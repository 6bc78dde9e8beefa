//! On-demand vassals (uWSGI §7.10): the emperor binds the vassal's socket, spawns the vassal
//! on the first connection with the socket on fd 0, and goes back to waiting when the vassal
//! dies of idleness (byte 22); connections arriving meanwhile wait in the backlog.

use liege_testkit::emperor::{app, vassal, Emperor};
use liege_testkit::{pid_alive, raw_tcp, raw_unix, uwsgi_get, wait_for, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

/// The worker pid from the hello app's answer, if the answer is `MSG pid=N ...`.
fn answer(raw: &[u8], msg: &str) -> Option<i32> {
    let t = String::from_utf8_lossy(raw);
    if !t.starts_with("HTTP/1.1 200") || !t.contains(&format!("\r\n\r\n{msg} ")) {
        return None;
    }
    t.split("pid=").nth(1)?.split(' ').next()?.parse().ok()
}

fn od_ini(msg: &str, extra: &str) -> String {
    format!(
        "[uwsgi]\nmaster = true\nwsgi-file = {}\nprocesses = 1\nenv = MSG={msg}\nidle = 1\ndie-on-idle = true\n{extra}",
        app("emperor_hello.py").display()
    )
}

fn wait_on_demand(e: &Emperor, ini: &Path) -> serde_json::Value {
    let v = e.wait_state(ini, "on-demand", T);
    assert_eq!(v["pid"], -1, "{v}");
    v
}

#[test]
fn unix_on_demand_wakes_idles_and_wakes_again() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    let od = sb.path().join("od");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&od).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-on-demand-directory",
            od.to_str().unwrap(),
        ],
        &[],
    );
    let ini = dir.join("app.ini");
    std::fs::write(&ini, od_ini("od", "chmod-socket = 600\n")).unwrap();
    let sock = od.join("app.socket");

    // Bound by the emperor, with the vassal's chmod-socket, and nothing spawned yet.
    let v = wait_on_demand(&e, &ini);
    assert_eq!(v["on_demand"], sock.to_str().unwrap(), "{v}");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(v["respawns"], 0);

    // The first request wakes it and is answered.
    let t0 = Instant::now();
    let raw = raw_unix(&sock, &uwsgi_get(), T).unwrap();
    let w1 = answer(&raw, "od").unwrap_or_else(|| {
        panic!(
            "first request: {:?}\n{}",
            String::from_utf8_lossy(&raw),
            e.proc.output()
        )
    });
    eprintln!("cold start answered in {:?}", t0.elapsed());
    let v = e.wait_state(&ini, "ready", T);
    let master = v["pid"].as_i64().unwrap() as i32;
    assert!(master > 0);

    // idle = 1 + die-on-idle: it exits and the emperor goes back to waiting on the socket.
    wait_on_demand(&e, &ini);
    wait_for(T, "the idle vassal to exit", || {
        (!pid_alive(master)).then_some(())
    });
    assert!(sock.exists(), "the socket survives the vassal");

    // Several connections at once while nothing runs: all wait in the backlog and are answered.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = sock.clone();
            std::thread::spawn(move || raw_unix(&s, &uwsgi_get(), T).unwrap())
        })
        .collect();
    let mut pids = Vec::new();
    for h in handles {
        let raw = h.join().unwrap();
        pids.push(
            answer(&raw, "od")
                .unwrap_or_else(|| panic!("queued request: {:?}", String::from_utf8_lossy(&raw))),
        );
    }
    assert!(
        pids.iter().all(|p| *p != w1),
        "a new vassal answered: {pids:?} vs {w1}"
    );
    let v = e.wait_state(&ini, "ready", T);
    assert!(v["respawns"].as_i64().unwrap() >= 1, "{v}");
    assert_eq!(v["last_error"], serde_json::Value::Null, "{v}");

    // Removing the file stops the vassal and unlinks the socket (uWSGI left it behind).
    std::fs::remove_file(&ini).unwrap();
    wait_for(T, "the vassal to be forgotten", || {
        e.stats().filter(|s| vassal(s, &ini).is_none())
    });
    wait_for(T, "the socket file to be unlinked", || {
        (!sock.exists()).then_some(())
    });
}

#[test]
fn tcp_on_demand_from_the_extension_file() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-on-demand-extension",
            ".socket",
        ],
        &[],
    );
    let port = liege_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("tcp.ini");
    // Read up to the first control character.
    std::fs::write(dir.join("tcp.ini.socket"), format!("{addr}\nignored\n")).unwrap();
    std::fs::write(&ini, od_ini("tcp", "")).unwrap();
    let v = wait_on_demand(&e, &ini);
    assert_eq!(v["on_demand"], addr.as_str(), "{v}");
    let raw = raw_tcp(&addr, &uwsgi_get(), T).unwrap();
    assert!(
        answer(&raw, "tcp").is_some(),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    wait_on_demand(&e, &ini);
    let raw = raw_tcp(&addr, &uwsgi_get(), T).unwrap();
    assert!(answer(&raw, "tcp").is_some());

    // A vassal without a .socket file is an ordinary one.
    let plain = dir.join("plain.ini");
    std::fs::write(&plain, od_ini("plain", "")).unwrap();
    let v = e.wait_state(&plain, "ready", T);
    assert_eq!(v["on_demand"], "", "{v}");
}

#[test]
fn a_vassal_declaring_its_on_demand_socket_is_refused() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    let od = sb.path().join("od");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&od).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-on-demand-directory",
            od.to_str().unwrap(),
        ],
        &[],
    );
    let ini = dir.join("dup.ini");
    let sock = od.join("dup.socket");
    std::fs::write(
        &ini,
        od_ini("dup", &format!("socket = {}\n", sock.display())),
    )
    .unwrap();
    let v = e.wait_state(&ini, "failed", T);
    let err = v["last_error"].as_str().unwrap_or("");
    assert!(
        err.contains("declares its on-demand socket") && err.contains("remove that line"),
        "{v}"
    );
}

#[test]
fn on_demand_exec_names_the_socket() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let sock = sb.path().join("exec.sock");
    // The command gets the vassal path as its argument; only the first line counts.
    let script = sb.write(
        "name.sh",
        &format!(
            "#!/bin/sh\ncase \"$1\" in */ex.ini) echo {}; echo second;; esac\n",
            sock.display()
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-on-demand-exec",
            script.to_str().unwrap(),
        ],
        &[],
    );
    let ini = dir.join("ex.ini");
    std::fs::write(&ini, od_ini("ex", "")).unwrap();
    let v = wait_on_demand(&e, &ini);
    assert_eq!(v["on_demand"], sock.to_str().unwrap(), "{v}");
    let raw = raw_unix(&sock, &uwsgi_get(), T).unwrap();
    assert!(
        answer(&raw, "ex").is_some(),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn http_on_demand_with_protocol_http() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-on-demand-extension",
            ".socket",
        ],
        &[],
    );
    let port = liege_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let ini = dir.join("web.ini");
    std::fs::write(dir.join("web.ini.socket"), &addr).unwrap();
    std::fs::write(&ini, od_ini("web", "protocol = http\n")).unwrap();
    wait_on_demand(&e, &ini);
    let (msg, w1) = liege_testkit::emperor::hello(&addr).expect("HTTP answer on wake-up");
    assert_eq!(msg, "web");
    wait_on_demand(&e, &ini);
    let (msg, w2) = liege_testkit::emperor::hello(&addr).expect("HTTP answer on the next wake-up");
    assert_eq!(msg, "web");
    assert_ne!(w1, w2);
}
