//! Settings shared by every vassal: the emperor is configured from an ini file
//! (`liege --ini emperor.ini`, as the service does), `vassals-include` adds a template after
//! each vassal's file, and `UWSGI_VASSAL_X` in the emperor's environment becomes `UWSGI_X`
//! in each vassal.

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
