//! The supervision policy against a fake process layer (no fork).

use super::*;

#[derive(Default)]
struct Fake {
    next_pid: i32,
    spawned: Vec<(i32, u32, u64)>,
    sent: Vec<(i32, ToWorker)>,
    signals: Vec<(i32, i32)>,
    fail_spawn: bool,
}

impl Children for Fake {
    fn spawn(&mut self, id: u32, generation: u64, _cfg: &WorkerConfig) -> std::io::Result<i32> {
        if self.fail_spawn {
            return Err(std::io::Error::other("no"));
        }
        self.next_pid += 1;
        let pid = 100 + self.next_pid;
        self.spawned.push((pid, id, generation));
        Ok(pid)
    }
    fn send(&mut self, pid: i32, msg: &ToWorker) -> bool {
        self.sent.push((pid, msg.clone()));
        true
    }
    fn signal(&mut self, pid: i32, sig: i32) {
        self.signals.push((pid, sig));
    }
}

fn gen(processes: u32) -> Generation {
    Generation {
        worker: WorkerConfig::default(),
        processes,
        reload_batch: 1,
        mercy: Duration::from_secs(60),
        max_lifetime: None,
        cheaper: None,
    }
}

fn pids_of(s: &Supervisor, g: u64) -> Vec<i32> {
    s.workers
        .iter()
        .filter(|w| w.generation == g)
        .map(|w| w.pid)
        .collect()
}

#[test]
fn starts_processes_and_replaces_a_dead_worker() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(2));
    let t = Instant::now();
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 2);
    s.on_ready(101, t, &mut f);
    s.on_ready(102, t, &mut f);
    assert_eq!(
        s.take_notices(),
        vec![
            Notice::FirstReady,
            Notice::Accepting { id: 1 },
            Notice::Accepting { id: 2 }
        ]
    );
    // Killed long after boot: respawned at once, same id.
    let later = t + Duration::from_secs(30);
    s.on_exit(101, Exit::Signal(9), later, &mut f);
    s.tick(later, &mut f);
    assert_eq!(f.spawned.last().unwrap().1, 1);
    assert_eq!(s.workers.len(), 2);
    assert_eq!(s.respawns(1), 1);
}

#[test]
fn boot_loop_backs_off_exponentially_and_never_gives_up() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(1));
    let mut t = Instant::now();
    s.tick(t, &mut f);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let pid = f.spawned.last().unwrap().0;
        s.on_exit(pid, Exit::Code(22), t, &mut f);
        let n = f.spawned.len();
        let wake = s.tick(t, &mut f).expect("a retry is scheduled");
        assert_eq!(f.spawned.len(), n, "no immediate respawn");
        delays.push(wake - t);
        t = wake;
        s.tick(t, &mut f);
        assert_eq!(f.spawned.len(), n + 1, "respawned after the delay");
    }
    assert_eq!(delays[0], Duration::from_secs(1));
    assert_eq!(delays[1], Duration::from_secs(2));
    assert_eq!(delays[2], Duration::from_secs(4));
    assert_eq!(*delays.last().unwrap(), BACKOFF_MAX);
    // Ready resets the back-off.
    let pid = f.spawned.last().unwrap().0;
    s.on_ready(pid, t, &mut f);
    s.on_exit(pid, Exit::Signal(9), t + Duration::from_secs(60), &mut f);
    let n = f.spawned.len();
    s.tick(t + Duration::from_secs(60), &mut f);
    assert_eq!(f.spawned.len(), n + 1);
}

#[test]
fn chain_reload_drains_each_old_worker_only_after_its_replacement_is_ready() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(3));
    let t = Instant::now();
    s.tick(t, &mut f);
    for pid in [101, 102, 103] {
        s.on_ready(pid, t, &mut f);
    }
    s.reload(Some(gen(3)), ReloadKind::Graceful, t, &mut f);
    // One new worker at a time (reload_batch = 1).
    assert_eq!(pids_of(&s, 1), vec![104]);
    assert!(f.sent.is_empty());
    s.on_ready(104, t, &mut f);
    assert_eq!(f.sent, vec![(101, ToWorker::GracefulStop)]);
    s.tick(t, &mut f);
    assert_eq!(pids_of(&s, 1), vec![104, 105]);
    s.on_ready(105, t, &mut f);
    s.tick(t, &mut f);
    s.on_ready(106, t, &mut f);
    s.tick(t, &mut f);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.active_generation(), 1);
    assert!(s
        .take_notices()
        .contains(&Notice::ReloadDone { generation: 1 }));
    assert_eq!(f.sent.len(), 3);
    for pid in [101, 102, 103] {
        s.on_exit(pid, Exit::Code(0), t, &mut f);
    }
    s.tick(t, &mut f);
    assert_eq!(s.workers.len(), 3);
    assert_eq!(f.spawned.len(), 6, "no extra spawns");
}

#[test]
fn failed_reload_keeps_the_old_generation_and_stays_reloadable() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(2));
    let t = Instant::now();
    s.tick(t, &mut f);
    s.on_ready(101, t, &mut f);
    s.on_ready(102, t, &mut f);
    s.reload(Some(gen(2)), ReloadKind::Graceful, t, &mut f);
    assert_eq!(pids_of(&s, 1), vec![103]);
    s.on_exit(103, Exit::Code(22), t, &mut f);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.active_generation(), 0);
    assert!(s
        .take_notices()
        .contains(&Notice::ReloadFailed { generation: 1 }));
    s.tick(t, &mut f);
    // Nothing was drained, nothing else spawned: the old workers keep serving.
    assert!(f.sent.is_empty());
    assert_eq!(f.spawned.len(), 3);
    assert_eq!(pids_of(&s, 0), vec![101, 102]);
    // Fixing the app and reloading again works.
    s.reload(Some(gen(2)), ReloadKind::Graceful, t, &mut f);
    let new = *f.spawned.last().unwrap();
    assert_eq!(new.2, 2);
    s.on_ready(new.0, t, &mut f);
    s.tick(t, &mut f);
    let new2 = f.spawned.last().unwrap().0;
    s.on_ready(new2, t, &mut f);
    s.tick(t, &mut f);
    assert_eq!(s.active_generation(), 2);
    assert_eq!(f.sent.len(), 2);
}

#[test]
fn reload_batches_and_shrinking_process_count() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(3));
    let t = Instant::now();
    s.tick(t, &mut f);
    for pid in [101, 102, 103] {
        s.on_ready(pid, t, &mut f);
    }
    let mut g = gen(2);
    g.reload_batch = 2;
    s.reload(Some(g), ReloadKind::Graceful, t, &mut f);
    assert_eq!(pids_of(&s, 1).len(), 2, "two at a time");
    s.on_ready(104, t, &mut f);
    s.on_ready(105, t, &mut f);
    s.tick(t, &mut f);
    assert_eq!(s.phase, Phase::Running);
    // Worker 3 has no successor: drained when the reload completes.
    let drained: Vec<i32> = f.sent.iter().map(|(p, _)| *p).collect();
    assert_eq!(drained, vec![101, 102, 103]);
}

#[test]
fn graceful_stop_waits_then_kills_after_mercy() {
    let mut f = Fake::default();
    let mut g = gen(2);
    g.mercy = Duration::from_secs(5);
    let mut s = Supervisor::new(g);
    let t = Instant::now();
    s.tick(t, &mut f);
    s.on_ready(101, t, &mut f);
    s.stop(true, t, &mut f);
    // The ready worker drains; the booting one is stopped at once.
    assert!(f.sent.contains(&(101, ToWorker::GracefulStop)));
    assert!(f.signals.contains(&(102, libc::SIGINT)));
    s.on_exit(102, Exit::Code(30), t, &mut f);
    assert_eq!(s.tick(t, &mut f), Some(t + Duration::from_secs(5)));
    s.tick(t + Duration::from_secs(5), &mut f);
    assert!(f.signals.contains(&(101, libc::SIGKILL)));
    s.on_exit(101, Exit::Signal(9), t, &mut f);
    s.tick(t + Duration::from_secs(6), &mut f);
    assert_eq!(s.phase, Phase::Stopped);
    assert!(s.take_notices().contains(&Notice::Stopped));
    assert_eq!(f.spawned.len(), 2, "nothing respawned while stopping");
}

#[test]
fn brutal_reload_stops_old_workers_at_once() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(2));
    let t = Instant::now();
    s.tick(t, &mut f);
    s.on_ready(101, t, &mut f);
    s.on_ready(102, t, &mut f);
    s.reload(None, ReloadKind::Brutal, t, &mut f);
    assert!(f.signals.contains(&(101, libc::SIGINT)));
    assert!(f.signals.contains(&(102, libc::SIGINT)));
    assert_eq!(pids_of(&s, 1).len(), 2);
}

#[test]
fn spawn_errors_are_retried_with_back_off() {
    let mut f = Fake {
        fail_spawn: true,
        ..Fake::default()
    };
    let mut s = Supervisor::new(gen(1));
    let t = Instant::now();
    let wake = s.tick(t, &mut f).unwrap();
    assert_eq!(wake, t + BACKOFF_START);
    f.fail_spawn = false;
    s.tick(wake, &mut f);
    assert_eq!(f.spawned.len(), 1);
}

#[test]
fn an_old_worker_dying_while_its_slot_waits_is_replaced_at_once() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(3));
    let t = Instant::now();
    s.tick(t, &mut f);
    for pid in [101, 102, 103] {
        s.on_ready(pid, t, &mut f);
    }
    s.reload(Some(gen(3)), ReloadKind::Graceful, t, &mut f);
    assert_eq!(pids_of(&s, 1), vec![104]);
    // Worker 3 (pending) dies: its slot gets a new-generation worker right away.
    let later = t + Duration::from_secs(30);
    s.on_exit(103, Exit::Signal(9), later, &mut f);
    s.tick(later, &mut f);
    assert_eq!(pids_of(&s, 1).len(), 2);
    assert!(s.workers.iter().any(|w| w.id == 3 && w.generation == 1));
    // The reload still completes.
    for pid in pids_of(&s, 1) {
        s.on_ready(pid, later, &mut f);
    }
    s.tick(later, &mut f);
    let last = f.spawned.last().unwrap().0;
    s.on_ready(last, later, &mut f);
    s.tick(later, &mut f);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.active_generation(), 1);
}

#[test]
fn harakiri_kills_a_worker_busy_for_too_long() {
    let mut f = Fake::default();
    let mut g = gen(1);
    g.worker.harakiri = Some(Duration::from_secs(5));
    let mut s = Supervisor::new(g);
    let t = Instant::now();
    s.tick(t, &mut f);
    s.on_ready(101, t, &mut f);
    s.on_busy(101, Some(Duration::ZERO), t);
    assert_eq!(s.tick(t, &mut f), Some(t + Duration::from_secs(5)));
    assert!(f.signals.is_empty());
    s.tick(t + Duration::from_secs(5), &mut f);
    assert_eq!(f.signals, vec![(101, libc::SIGKILL)]);
    assert_eq!(s.harakiri_count(1), 1);
    // Idle clears it: no second kill.
    s.on_busy(101, None, t);
    s.tick(t + Duration::from_secs(9), &mut f);
    assert_eq!(f.signals.len(), 1);
}

#[test]
fn max_worker_lifetime_replaces_then_drains() {
    let mut f = Fake::default();
    let mut g = gen(1);
    g.max_lifetime = Some(Duration::from_secs(100));
    let mut s = Supervisor::new(g);
    let t = Instant::now();
    s.tick(t, &mut f);
    s.on_ready(101, t, &mut f);
    assert_eq!(s.tick(t, &mut f), Some(t + Duration::from_secs(100)));
    let later = t + Duration::from_secs(100);
    s.tick(later, &mut f);
    assert_eq!(f.spawned.len(), 2, "a replacement starts first");
    assert!(f.sent.is_empty(), "the old one keeps serving meanwhile");
    s.tick(later, &mut f);
    assert_eq!(f.spawned.len(), 2, "only one replacement");
    // A replacement that fails to boot backs off instead of looping.
    s.on_exit(102, Exit::Code(22), later, &mut f);
    s.tick(later, &mut f);
    assert_eq!(f.spawned.len(), 2, "no immediate retry");
    let retry = later + BACKOFF_START;
    s.tick(retry, &mut f);
    assert_eq!(f.spawned.len(), 3);
    s.on_ready(103, retry, &mut f);
    assert_eq!(f.sent, vec![(101, ToWorker::GracefulStop)]);
}

#[test]
fn cheap_starts_nothing_until_woken_and_going_cheap_drains() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(2));
    let t = Instant::now();
    s.go_cheap(t, &mut f);
    assert!(s.is_cheap());
    s.tick(t, &mut f);
    assert!(f.spawned.is_empty(), "no worker while cheap");
    s.wake();
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 2);
    s.on_ready(101, t, &mut f);
    s.on_ready(102, t, &mut f);
    // Idle: both workers are drained gracefully, none is respawned.
    s.go_cheap(t, &mut f);
    assert!(f.sent.iter().all(|(_, m)| *m == ToWorker::GracefulStop));
    assert_eq!(f.sent.len(), 2);
    s.on_exit(101, Exit::Code(0), t, &mut f);
    s.on_exit(102, Exit::Code(0), t, &mut f);
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 2, "not respawned while cheap");
    // A reload while cheap just switches the generation used next.
    s.reload(None, ReloadKind::Graceful, t, &mut f);
    assert_eq!(s.phase, Phase::Running);
    s.wake();
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 4);
    assert!(f.spawned[2..].iter().all(|&(_, _, g)| g == 1));
}

#[test]
fn first_generation_boot_failure_is_noticed_once_before_any_ready() {
    let mut f = Fake::default();
    let mut s = Supervisor::new(gen(1));
    let t = Instant::now();
    s.tick(t, &mut f);
    s.on_exit(101, Exit::Code(22), t, &mut f);
    assert!(s.take_notices().contains(&Notice::FirstBootFailed {
        id: 1,
        exit: Exit::Code(22)
    }));
    // Once a worker was ready, later failures are ordinary respawns.
    let later = t + Duration::from_secs(5);
    s.tick(later, &mut f);
    s.on_ready(102, later, &mut f);
    s.on_exit(102, Exit::Code(22), later, &mut f);
    assert!(!s
        .take_notices()
        .iter()
        .any(|n| matches!(n, Notice::FirstBootFailed { .. })));
}

#[test]
fn cheaper_spare_grows_on_overload_and_shrinks_when_idle() {
    let mut f = Fake::default();
    let mut g = gen(3);
    g.cheaper = Some(Cheaper {
        min: 1,
        initial: 1,
        step: 1,
        overload: 2,
    });
    let mut s = Supervisor::new(g);
    let t = Instant::now();
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 1, "cheaper-initial workers only");
    assert!(s.is_cheaped(2) && s.is_cheaped(3));
    s.on_ready(101, t, &mut f);
    s.on_busy(101, Some(Duration::ZERO), t);
    for _ in 0..2 {
        s.cheaper_check(t, &mut f);
        s.tick(t, &mut f);
    }
    assert_eq!(
        f.spawned.len(),
        1,
        "not before more than cheaper-overload checks"
    );
    s.cheaper_check(t, &mut f);
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 2);
    assert_eq!(f.spawned[1].1, 2);
    // Booting workers are waited for.
    s.cheaper_check(t, &mut f);
    s.on_ready(102, t, &mut f);
    // Both idle: after cheaper-overload checks the oldest idle one is drained.
    s.on_busy(101, None, t);
    s.cheaper_check(t, &mut f);
    assert!(f.sent.is_empty());
    s.cheaper_check(t, &mut f);
    assert_eq!(f.sent, vec![(101, ToWorker::GracefulStop)]);
    assert!(s.is_cheaped(1));
    s.on_exit(101, Exit::Code(0), t, &mut f);
    s.tick(t, &mut f);
    assert_eq!(f.spawned.len(), 2, "a cheaped slot is not respawned");
    // Never below `cheaper`.
    for _ in 0..10 {
        s.cheaper_check(t, &mut f);
    }
    assert_eq!(f.sent.len(), 1);
}
