//! Settings shared by every vassal: the emperor is configured from an ini file
//! (`liege --ini emperor.ini`, as the service does), `vassals-include` adds a template after
//! each vassal's file, and `UWSGI_VASSAL_X` in the emperor's environment becomes `UWSGI_X`
//! in each vassal; the stats on a unix socket, read with `liege emperor-status PATH`.

use liege_testkit::emperor::{app, hello, uwsgi, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

fn bare_ini(port: u16) -> String {
    format!(
        "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\nprocesses = 1\n",
        app("emperor_hello.py").display()
    )
}

#[test]
fn emperor_ini_with_vassals_include() {
    let sb = Sandbox::new();
    let uwsgi = uwsgi();
    sb.write("common.ini", "[uwsgi]\nenv = MSG=included\n");
    sb.write(
        "emperor.ini",
        &format!(
            "[uwsgi]\nemperor = vassals\nvassals-include = common.ini\nemperor-wrapper = {}\n",
            uwsgi.display()
        ),
    );
    let port = free_port();
    sb.write("vassals/app.ini", &bare_ini(port));
    let _e = Emperor::start(&sb, LIEGE, &["--ini", "emperor.ini"], &[]);
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), "the template applied", || {
        hello(&addr).filter(|(m, _)| m == "included")
    });
}

#[test]
fn uwsgi_vassal_env_is_renamed() {
    let sb = Sandbox::new();
    let uwsgi = uwsgi();
    let port = free_port();
    let dir = sb.path().join("vassals");
    sb.write("vassals/app.ini", &bare_ini(port));
    let _e = Emperor::start(
        &sb,
        LIEGE,
        &[
            "--emperor",
            dir.to_str().unwrap(),
            "--emperor-wrapper",
            uwsgi.to_str().unwrap(),
        ],
        &[("UWSGI_VASSAL_ENV", "MSG=fromenv")],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), "UWSGI_VASSAL_ENV applied", || {
        hello(&addr).filter(|(m, _)| m == "fromenv")
    });
}

#[test]
fn stats_on_a_unix_socket_read_by_emperor_status() {
    let sb = Sandbox::new();
    let sock = sb.path().join("emperor-stats.sock");
    let port = free_port();
    let ini = sb.write(
        "vassals/app.ini",
        &liege_testkit::emperor::hello_ini(port, "u"),
    );
    sb.write(
        "emperor.ini",
        &format!(
            "[uwsgi]\nemperor = vassals\nemperor-stats = {}\n",
            sock.display()
        ),
    );
    let mut cmd = sb.command(LIEGE);
    cmd.args(["--ini", "emperor.ini"]);
    let _p = sb.spawn(cmd, "emperor");
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(20), "the vassal", || hello(&addr));
    let table = wait_for(Duration::from_secs(10), "a ready row", || {
        let out = std::process::Command::new(LIEGE)
            .args(["emperor-status", sock.to_str().unwrap()])
            .output()
            .ok()?;
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && t.contains(ini.to_str().unwrap()) && t.contains(" ready "))
            .then_some(t)
    });
    assert!(table.starts_with("emperor pid "), "{table}");
    assert!(
        table.contains("VASSAL") && table.contains("STATE"),
        "{table}"
    );
}
