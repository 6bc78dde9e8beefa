//! pidfile, `liege --reload PIDFILE`, `liege --stop PIDFILE`, and vacuum of the pidfile.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn pidfile_reload_and_stop() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let pidfile = sb.path().join("app.pid");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py", "--vacuum"])
        .arg("--pidfile")
        .arg(&pidfile);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let text = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(text.trim(), m.pid().to_string());

    write_app(&sb, "v2");
    let st = sb
        .command(env!("CARGO_BIN_EXE_liege"))
        .arg("--reload")
        .arg(&pidfile)
        .status()
        .unwrap();
    assert!(st.success());
    wait_version(&addr, "v2", T);
    assert!(pid_alive(m.pid()), "same master after --reload");

    let st = sb
        .command(env!("CARGO_BIN_EXE_liege"))
        .arg("--stop")
        .arg(&pidfile)
        .status()
        .unwrap();
    assert!(st.success());
    let st = m.wait_timeout(T).expect("master exits on --stop");
    assert_eq!(st.code(), Some(0));
    assert!(!pidfile.exists(), "vacuum removes the pidfile");
}
