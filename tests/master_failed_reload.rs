//! A reload whose new code fails to import (or whose config no longer parses) keeps the old
//! generation serving, logs the error, and the master stays reloadable.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn broken_app_then_broken_config_keep_the_old_workers_and_a_fix_reloads() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let ini = format!("[uwsgi]\nhttp-socket = {addr}\nwsgi-file = app.py\nprocesses = 2\n");
    sb.write("app.ini", &ini);
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--ini", "app.ini"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    wait_ready(&m, 2, T);
    let workers = wait_workers(&m, 2, T);

    // The new code does not import.
    break_app(&sb);
    m.signal(nix::sys::signal::Signal::SIGHUP);
    m.wait_output(T, "reload failed");
    // The app's traceback is in the log.
    m.wait_output(T, "this app is broken on purpose");
    assert!(body(&addr, "/").unwrap().starts_with("v1 "));
    wait_for(T, "the failed worker to be reaped", || {
        (children_of(m.pid()) == workers).then_some(())
    });

    // The config does not parse.
    write_app(&sb, "v2");
    sb.write("app.ini", "[uwsgi]\nprocesses = many\n");
    m.signal(nix::sys::signal::Signal::SIGHUP);
    m.wait_output(T, "reload aborted");
    assert!(body(&addr, "/").unwrap().starts_with("v1 "));
    assert_eq!(children_of(m.pid()), workers);

    // Fixed: the next reload works.
    sb.write("app.ini", &ini);
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_version(&addr, "v2", T);
}
