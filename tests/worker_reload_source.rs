//! A reload runs the wsgi-file as it is on disk, even when the edit keeps the file's size and
//! lands within the same second as the previous version (the .pyc cache cannot tell those
//! apart, so the file is compiled from source on every load).

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn same_size_edit_within_a_second_is_picked_up_by_reload() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    // Same length as "v1", written at once, mtime restored to the old one's whole second.
    let app = sb.path().join("app.py");
    let before = std::fs::metadata(&app).unwrap().modified().unwrap();
    write_app(&sb, "v2");
    std::fs::File::options()
        .write(true)
        .open(&app)
        .unwrap()
        .set_modified(before)
        .unwrap();
    m.signal(nix::sys::signal::Signal::SIGHUP);
    wait_version(&addr, "v2", T);
    assert!(
        !sb.path().join("__pycache__").exists(),
        "no bytecode cache is written for the wsgi-file"
    );
}
