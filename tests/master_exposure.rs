//! What a master exposes by accident (issue 10, point 12): the scoreboard's memfd is not
//! inherited by programs the app runs; `stats = :PORT` (every address) is warned about; the
//! stats never show a daemon's arguments.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn programs_the_app_runs_do_not_inherit_the_scoreboard() {
    let sb = Sandbox::new();
    sb.write(
        "app.py",
        "import subprocess\n\
         def application(environ, start_response):\n\
         \x20   # close_fds=False: what os.system and plain fork+exec do.\n\
         \x20   out = subprocess.run(['sh', '-c', 'ls -l /proc/$$/fd'], capture_output=True, close_fds=False).stdout\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [b'fds ' + out]\n",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"]);
    let _m = sb.spawn(cmd, "liege");
    let text = wait_version(&addr, "fds", T);
    assert!(text.contains("/proc/") || text.contains("->"), "{text}");
    assert!(!text.contains("scoreboard"), "{text}");
}

#[test]
fn stats_on_every_address_is_warned_about_and_hides_daemon_arguments() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .args(["--stats", &format!(":{port}")])
        .args(["--attach-daemon", "exec sleep 100 # password=hunter2"]);
    let m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let raw = wait_for(T, "the stats", || {
        raw_tcp(&format!("127.0.0.1:{port}"), b"", Duration::from_secs(5)).ok()
    });
    let v: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(v["daemons"][0]["cmd"], "exec ...", "{v}");
    assert!(!String::from_utf8_lossy(&raw).contains("hunter2"));
    assert!(m.output().contains("every address"), "{}", m.output());
}

#[test]
fn emperor_stats_on_every_address_is_warned_about() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path().join("vassals")).unwrap();
    let port = free_port();
    let p = sb.liege(&[
        "--emperor",
        "vassals",
        "--emperor-stats",
        &format!(":{port}"),
    ]);
    p.wait_output(T, "every address");
}
