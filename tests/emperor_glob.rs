//! Glob monitors: a directory created after start that matches the glob (a new user's home)
//! is picked up; monitors are resolved on their own and vassals are keyed by full path, so
//! two `app.ini` in different directories are two vassals.

use liege_testkit::emperor::{hello, hello_ini, uwsgi, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

#[test]
fn glob_picks_up_a_new_directory_and_same_names_stay_distinct() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path().join("home")).unwrap();
    std::fs::create_dir(sb.path().join("etc")).unwrap();
    let uwsgi = uwsgi();
    let pattern = format!("{}/home/*/vassals/*.ini", sb.path().display());
    // The second monitor is relative: resolved against the emperor's cwd (the sandbox), not
    // against the first monitor as uWSGI would.
    let e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            &pattern,
            "--emperor",
            "etc",
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[],
    );

    let p1 = free_port();
    let a1 = format!("127.0.0.1:{p1}");
    let etc_ini = sb.write("etc/app.ini", &hello_ini(p1, "etc"));
    wait_for(T, "the etc vassal", || {
        hello(&a1).filter(|(m, _)| m == "etc")
    });

    // A new user appears: home/alice, then home/alice/vassals, then the file.
    let p2 = free_port();
    let a2 = format!("127.0.0.1:{p2}");
    std::fs::create_dir(sb.path().join("home/alice")).unwrap();
    std::fs::create_dir(sb.path().join("home/alice/vassals")).unwrap();
    let alice_ini = sb.write("home/alice/vassals/app.ini", &hello_ini(p2, "alice"));
    wait_for(T, "alice's vassal", || {
        hello(&a2).filter(|(m, _)| m == "alice")
    });

    // Not a vassal: wrong extension.
    sb.write("home/alice/vassals/notes.txt", "hello");

    let s = e.stats().unwrap();
    let ids: Vec<&str> = s["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&etc_ini.to_str().unwrap()), "{ids:?}");
    assert!(ids.contains(&alice_ini.to_str().unwrap()), "{ids:?}");
    assert_eq!(s["emperor"].as_array().unwrap().len(), 2);
}
