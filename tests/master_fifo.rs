//! master-fifo commands: c (chain reload), w (workers reload), r (reload), q (graceful stop).

use liege_testkit::master::*;
use liege_testkit::*;
use std::io::Write;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn send(fifo: &std::path::Path, cmd: &str) {
    let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    f.write_all(cmd.as_bytes()).unwrap();
}

#[test]
fn fifo_commands_reload_and_stop() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let fifo = sb.path().join("master.fifo");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "2",
    ])
    .arg("--master-fifo")
    .arg(&fifo);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    let w0 = wait_workers(&m, 2, T);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // fd hygiene: the master's FIFO (like everything not meant for them) never reaches a worker.
    for w in &w0 {
        for e in std::fs::read_dir(format!("/proc/{w}/fd"))
            .unwrap()
            .flatten()
        {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            assert_ne!(target, fifo, "worker {w} inherited the master fifo");
        }
    }

    // c: chain reload picks up new code.
    write_app(&sb, "v2");
    send(&fifo, "c");
    wait_version(&addr, "v2", T);
    let w1 = wait_for(T, "chain reload to finish", || {
        let c = children_of(m.pid());
        (c.len() == 2 && c.iter().all(|p| !w0.contains(p))).then_some(c)
    });

    // w: workers-only reload replaces the processes.
    send(&fifo, "w");
    wait_for(T, "workers reload to finish", || {
        let c = children_of(m.pid());
        (c.len() == 2 && c.iter().all(|p| !w1.contains(p))).then_some(())
    });

    // r: full reload.
    write_app(&sb, "v3");
    send(&fifo, "r");
    wait_version(&addr, "v3", T);

    // q: graceful stop, exit 0.
    send(&fifo, "q");
    let st = m.wait_timeout(T).expect("master exits on q");
    assert_eq!(st.code(), Some(0), "{}", m.output());
}

#[test]
fn fifo_capital_q_stops_fast() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let fifo = sb.path().join("master.fifo");
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args(["--http-socket", &addr, "--wsgi-file", "app.py"])
        .arg("--master-fifo")
        .arg(&fifo);
    let mut m = sb.spawn(cmd, "liege");
    wait_version(&addr, "v1", T);
    send(&fifo, "Q");
    let st = m.wait_timeout(T).expect("master exits on Q");
    assert_eq!(st.code(), Some(0));
}
