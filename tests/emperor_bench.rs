//! Emperor benchmark for docs/performance.md (ignored by default; run it on a quiet machine):
//!
//! ```text
//! cargo test --release --test emperor_bench -- --ignored --nocapture
//! LIEGE_BENCH_VASSALS=200 LIEGE_BENCH_TOUCHES=100 LIEGE_BENCH_VASSAL=liege|uwsgi \
//!     LIEGE_BENCH_COMPARE_UWSGI=1 cargo test --release --test emperor_bench -- --ignored --nocapture
//! ```
//!
//! With N vassal files (each a hello app with 1 worker) it measures: the emperor's RSS, start →
//! every vassal ready, touch → reload begun (the emperor's own timestamp of sending byte 1,
//! p50/p99), touch → a new worker answering, and delete → port refused. With
//! LIEGE_BENCH_COMPARE_UWSGI=1 it runs uWSGI's emperor on the same files for the measures
//! that apply (start → all answering, touch → new worker answering, delete → refused).

use liege_testkit::emperor::{hello, hello_ini, touch, uwsgi, Emperor};
use liege_testkit::{free_port, tcp_listening, wait_for, Sandbox};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

fn env_num(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn second_after_mtime(p: &std::path::Path) {
    let m = std::fs::metadata(p).unwrap().modified().unwrap();
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    while secs(SystemTime::now()) <= secs(m) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Fleet {
    sb: Sandbox,
    files: Vec<PathBuf>,
    addrs: Vec<String>,
}

fn fleet(n: usize) -> Fleet {
    let sb = Sandbox::new();
    let dir = sb.path().join("vassals");
    std::fs::create_dir(&dir).unwrap();
    let mut files = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..n {
        let port = free_port();
        let f = dir.join(format!("app{i:04}.ini"));
        std::fs::write(&f, hello_ini(port, "bench")).unwrap();
        files.push(f);
        addrs.push(format!("127.0.0.1:{port}"));
    }
    Fleet { sb, files, addrs }
}

/// touch → a new worker answers, and delete → refused, for one emperor (any kind).
fn touch_and_delete(f: &Fleet, touches: usize, deletes: usize) -> (Vec<f64>, Vec<f64>) {
    let mut new_worker = Vec::new();
    for k in 0..touches {
        let i = k % f.files.len();
        let (_, before) = wait_for(Duration::from_secs(60), "vassal answering", || {
            hello(&f.addrs[i])
        });
        // uWSGI compares whole-second mtimes: a touch in the same second as the last change
        // is missed. Start each measurement in a later second, for both emperors alike.
        second_after_mtime(&f.files[i]);
        let t = Instant::now();
        touch(&f.files[i]);
        wait_for(Duration::from_secs(60), "a new worker", || {
            hello(&f.addrs[i]).filter(|(_, p)| *p != before)
        });
        new_worker.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut refused = Vec::new();
    for i in (0..f.files.len()).rev().take(deletes) {
        let t = Instant::now();
        std::fs::remove_file(&f.files[i]).unwrap();
        wait_for(Duration::from_secs(60), "port refused", || {
            (!tcp_listening(&f.addrs[i])).then_some(())
        });
        refused.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (new_worker, refused)
}

#[test]
#[ignore = "benchmark: run explicitly (see the file's docs)"]
fn emperor_bench() {
    let n = env_num("LIEGE_BENCH_VASSALS", 200);
    let touches = env_num("LIEGE_BENCH_TOUCHES", 50);
    let deletes = env_num("LIEGE_BENCH_DELETES", 10).min(n);
    let kind = std::env::var("LIEGE_BENCH_VASSAL").unwrap_or_else(|_| "liege".into());
    let uwsgi = uwsgi();
    let f = fleet(n);
    let dir = f.files[0].parent().unwrap().to_str().unwrap().to_string();
    let mut args = vec!["--emperor", dir.as_str()];
    if kind == "uwsgi" {
        args.extend(["--emperor-wrapper", uwsgi.to_str().unwrap()]);
    }

    // liege's emperor.
    let t0 = Instant::now();
    let e = Emperor::start(&f.sb, LIEGE, &args, &[]);
    wait_for(Duration::from_secs(600), "every vassal ready", || {
        let s = e.stats()?;
        let v = s["vassals"].as_array()?;
        (v.len() == n && v.iter().all(|v| v["state"] == "ready")).then_some(())
    });
    let all_ready = t0.elapsed();
    for a in &f.addrs {
        wait_for(Duration::from_secs(60), "vassal answering", || hello(a));
    }
    let all_answering = t0.elapsed();
    let rss = rss_kib(e.proc.pid());

    // touch → reload begun, from the emperor's own timestamp of sending byte 1.
    let mut begun = Vec::new();
    for k in 0..touches {
        let f_i = &f.files[k % n];
        let s = e.stats().unwrap();
        let v = liege_testkit::emperor::vassal(&s, f_i).unwrap();
        let r0 = v["reloads"].as_i64().unwrap();
        let t = now_ms();
        touch(f_i);
        let v = wait_for(Duration::from_secs(60), "reload begun", || {
            liege_testkit::emperor::vassal(&e.stats()?, f_i)
                .filter(|v| v["reloads"].as_i64() > Some(r0))
        });
        begun.push((v["last_reload_ms"].as_i64().unwrap() - t) as f64);
        e.wait_state(f_i, "ready", Duration::from_secs(60));
    }
    let (mut new_worker, mut refused) = touch_and_delete(&f, touches.min(20), deletes);

    println!("\n## liege emperor, {n} vassals ({kind} vassals, 1 worker each)\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| emperor RSS after start | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    println!(
        "| start → every vassal ready (stats) | {:.2} s |",
        all_ready.as_secs_f64()
    );
    println!(
        "| start → every vassal answering HTTP | {:.2} s |",
        all_answering.as_secs_f64()
    );
    println!(
        "| touch → reload begun (n={}) | p50 {:.0} ms, p99 {:.0} ms |",
        begun.len(),
        pct(&mut begun, 0.5),
        pct(&mut begun, 0.99)
    );
    println!(
        "| touch → new worker answering (n={}) | p50 {:.0} ms, p99 {:.0} ms |",
        new_worker.len(),
        pct(&mut new_worker, 0.5),
        pct(&mut new_worker, 0.99)
    );
    println!(
        "| delete → port refused (n={}) | p50 {:.0} ms, max {:.0} ms |",
        refused.len(),
        pct(&mut refused, 0.5),
        pct(&mut refused, 1.0)
    );
    drop(e);

    if std::env::var_os("LIEGE_BENCH_COMPARE_UWSGI").is_some() {
        let f = fleet(n);
        let dir = f.files[0].parent().unwrap().to_path_buf();
        let mut cmd = f.sb.command(&uwsgi);
        cmd.arg("--emperor").arg(&dir);
        let t0 = Instant::now();
        let p = f.sb.spawn(cmd, "uwsgi-emperor");
        for a in &f.addrs {
            wait_for(Duration::from_secs(600), "vassal answering", || hello(a));
        }
        let all_answering = t0.elapsed();
        let rss = rss_kib(p.pid());
        let (mut new_worker, mut refused) = touch_and_delete(&f, touches.min(20), deletes);
        println!("\n## uWSGI 2.0 emperor, {n} uWSGI vassals\n");
        println!("| measure | value |\n|---|---|");
        println!(
            "| emperor RSS after start | {:.1} MiB |",
            rss as f64 / 1024.0
        );
        println!(
            "| start → every vassal answering HTTP | {:.2} s |",
            all_answering.as_secs_f64()
        );
        println!(
            "| touch → new worker answering (n={}) | p50 {:.0} ms, p99 {:.0} ms |",
            new_worker.len(),
            pct(&mut new_worker, 0.5),
            pct(&mut new_worker, 0.99)
        );
        println!(
            "| delete → port refused (n={}) | p50 {:.0} ms, max {:.0} ms |",
            refused.len(),
            pct(&mut refused, 0.5),
            pct(&mut refused, 1.0)
        );
    }
}
