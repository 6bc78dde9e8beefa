//! When a vassal fails, the emperor's stats and `liege --status` name the cause: the last
//! error line the vassal logged (the Python exception, a log file it cannot open), not only
//! its exit code. The vassal's output still reaches the emperor's log.

use liege_testkit::emperor::{app, Emperor};
use liege_testkit::{free_port, wait_for, Sandbox};
use std::time::Duration;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(30);

fn last_error(e: &Emperor, ini: &std::path::Path, needle: &str) -> String {
    wait_for(T, &format!("last_error with {needle:?}"), || {
        let s = e.stats()?;
        let v = liege_testkit::emperor::vassal(&s, ini)?;
        let err = v["last_error"].as_str()?.to_string();
        err.contains(needle).then_some(err)
    })
}

#[test]
fn status_names_the_python_exception_and_the_log_file_error() {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let broken = dir.join("broken.ini");
    std::fs::write(
        &broken,
        format!(
            "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:{}\nwsgi-file = {}\n",
            free_port(),
            app("emperor_broken.py").display()
        ),
    )
    .unwrap();
    let nolog = dir.join("nolog.ini");
    std::fs::write(
        &nolog,
        format!(
            "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:{}\nwsgi-file = {}\nlogto = /nonexistent-dir/app.log\n",
            free_port(),
            app("emperor_hello.py").display()
        ),
    )
    .unwrap();
    let e = Emperor::start(&sb, LIEGE, &["--emperor", dir.to_str().unwrap()], &[]);

    let err = last_error(&e, &broken, "RuntimeError");
    assert!(
        err.contains("exit code 22")
            && err.contains("emperor test: this app is broken on purpose")
            && err.contains("emperor_broken.py line"),
        "{err}"
    );
    let err = last_error(&e, &nolog, "log file");
    assert!(
        err.contains("/nonexistent-dir/app.log") && err.contains("No such file or directory"),
        "{err}"
    );

    let out = std::process::Command::new(LIEGE)
        .args(["--status", &e.stats])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("RuntimeError") && table.contains("No such file or directory"),
        "{table}"
    );
    // The vassals' own lines still reach the emperor's output.
    assert!(e.proc.output().contains("GAME OVER"), "{}", e.proc.output());
}
