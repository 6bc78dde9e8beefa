//! PR_SET_PDEATHSIG: a worker whose master dies stops (gracefully) on its own.

use liege_config::WorkerConfig;
use liege_testkit::worker::{spawn_worker_under_shell, Listen};
use liege_testkit::{pid_alive, repo_root, wait_for, Sandbox};
use std::time::Duration;

#[test]
fn worker_exits_when_its_parent_dies() {
    let sb = Sandbox::new();
    let mut c = WorkerConfig::default();
    c.app.wsgi_file = Some(repo_root().join("tests/apps/hello.py"));
    // A shell plays the master (its pid is master_pid); the test keeps the control socket's
    // other end open, so only PR_SET_PDEATHSIG can tell the worker that its parent died.
    let mut w = spawn_worker_under_shell(
        &sb,
        env!("CARGO_BIN_EXE_liege"),
        &[Listen::HttpTcp],
        &serde_json::to_string(&c).unwrap(),
        "sleep 30",
    );
    w.wait_ready();
    let pidfile = sb.path().join("worker.pid");
    let worker: i32 = wait_for(Duration::from_secs(5), "worker.pid", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    assert!(pid_alive(worker));
    // Kill the shell (the worker's parent) only.
    w.proc.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = w.proc.wait_timeout(Duration::from_secs(5));
    wait_for(
        Duration::from_secs(10),
        "the orphaned worker to exit",
        || (!pid_alive(worker)).then_some(()),
    );
}
