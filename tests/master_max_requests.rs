//! `max-requests = N`: each worker serves exactly N requests, then is replaced (uWSGI with
//! `min-worker-lifetime = 0`). No request fails on the way.

use liege_testkit::master::*;
use liege_testkit::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn each_worker_serves_exactly_max_requests() {
    let sb = Sandbox::new();
    write_app(&sb, "v1");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = sb.command(env!("CARGO_BIN_EXE_liege"));
    cmd.args([
        "--http-socket",
        &addr,
        "--wsgi-file",
        "app.py",
        "--processes",
        "1",
        "--max-requests",
        "3",
        "--disable-logging",
    ]);
    let m = sb.spawn(cmd, "liege");
    wait_ready(&m, 1, T);
    // One request per connection, one after the other, like nginx's uwsgi_pass.
    let mut served: Vec<(String, usize)> = Vec::new();
    for _ in 0..10 {
        let b = body(&addr, "/").expect("no request fails");
        assert!(b.starts_with("v1 "), "{b}");
        let pid = b.rsplit('=').next().unwrap().trim().to_string();
        match served.last_mut() {
            Some((p, n)) if *p == pid => *n += 1,
            _ => served.push((pid, 1)),
        }
    }
    // Every worker but the last one served exactly 3.
    let (_, done) = served.split_last().unwrap();
    assert!(done.len() >= 2, "{served:?}");
    assert!(
        done.iter().all(|(_, n)| *n == 3),
        "{served:?}\n{}",
        m.output()
    );
    assert!(
        count_in_output(&m, "max-requests reached") >= 3,
        "{}",
        m.output()
    );
}
