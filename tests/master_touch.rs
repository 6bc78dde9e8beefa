//! touch-reload: a newer mtime on the file reloads the app.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::{Duration, SystemTime};

const T: Duration = Duration::from_secs(60);

#[test]
fn touch_reload_reloads_on_a_newer_mtime() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let touch = sb.write("reload.txt", "");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .arg("--touch-reload")
        .arg(&touch);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    write_app(&sb, "v2");
    // Serving the old code until the file is touched.
    assert!(body(&addr, "/").unwrap().starts_with("v1 "));
    let f = std::fs::File::options().write(true).open(&touch).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    wait_version(&addr, "v2", T);
    assert!(pid_alive(m.pid()));
}
