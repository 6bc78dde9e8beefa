//! A reload re-reads the ini: sockets that appeared are bound, removed ones closed, kept ones
//! untouched; `env` applies to workers only, so a removed `env` line is gone after a reload
//! (uWSGI keeps it: it putenv()s in the master).

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn reload_adds_and_removes_sockets_and_env_does_not_leak() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let a = format!("127.0.0.1:{}", free_port());
    let b = format!("127.0.0.1:{}", free_port());
    sb.write(
        "app.ini",
        &format!("[uwsgi]\nhttp-socket = {a}\nwsgi-file = app.py\nenv = LIEGE_TEST_FOO=bar\n"),
    );
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--ini", "app.ini"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&a, "v1", T);
    assert_eq!(body(&a, "/env?LIEGE_TEST_FOO").unwrap(), "bar");
    assert!(!tcp_listening(&b));

    // Add socket b, drop the env line.
    sb.write(
        "app.ini",
        &format!("[uwsgi]\nhttp-socket = {a}\nhttp-socket = {b}\nwsgi-file = app.py\n"),
    );
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_version(&b, "v1", T);
    m.wait_output(T, "reload done");
    wait_for(T, "the env line to be gone", || {
        (body(&a, "/env?LIEGE_TEST_FOO")? == "<unset>").then_some(())
    });

    // Remove socket a: once the old workers are gone, nothing listens there.
    sb.write(
        "app.ini",
        &format!("[uwsgi]\nhttp-socket = {b}\nwsgi-file = app.py\n"),
    );
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(T, "the second reload", || {
        (count_in_output(&m, "reload done") >= 2).then_some(())
    });
    wait_for(T, "socket a to close", || {
        (!tcp_listening(&a)).then_some(())
    });
    assert!(body(&b, "/").unwrap().starts_with("v1 "));
}
