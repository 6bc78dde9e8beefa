//! Worker supervision, independent of processes: which workers exist, which generation each
//! belongs to, when to start, drain or kill one. The real process layer is behind
//! [`Children`], so the whole policy (respawn back-off, reload batches, failed-reload
//! rollback, stop deadlines) is unit-tested with a fake.
//!
//! Slots are worker ids `1..=processes`. A slot is covered when it has a worker that is
//! Booting or Ready. During a reload a slot briefly has two workers: the old one (Ready) and
//! its replacement (Booting); the old one is drained only when the replacement is Ready.

use crate::state::{Phase, PhaseEvent, Reload, WorkerEvent, WorkerState};
use liege_config::WorkerConfig;
use liege_protocol::control::{ToWorker, WorkerStats};
use liege_sys::spawn::Exit;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a fast stop waits after SIGINT before SIGKILL.
pub const FAST_STOP_GRACE: Duration = Duration::from_secs(5);
/// First respawn delay after a boot failure; doubles on each further failure.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest respawn delay (never a silent give-up: we keep trying at this pace).
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A worker that dies this soon after spawning counts as a boot failure even if it got Ready.
pub const MIN_HEALTHY_LIFETIME: Duration = Duration::from_secs(1);

/// The process layer the supervisor drives.
pub trait Children {
    /// Start worker `id` of `generation`; returns its pid.
    fn spawn(&mut self, id: u32, generation: u64, cfg: &WorkerConfig) -> std::io::Result<i32>;
    /// Send a control message; false if the channel is gone.
    fn send(&mut self, pid: i32, msg: &ToWorker) -> bool;
    /// Send a signal.
    fn signal(&mut self, pid: i32, sig: i32);
}

/// What one reload generation runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub worker: WorkerConfig,
    pub processes: u32,
    pub reload_batch: u32,
    pub mercy: Duration,
    /// `max-worker-lifetime`: replace (start new, then drain) workers older than this.
    pub max_lifetime: Option<Duration>,
    /// `cheaper` (adaptive worker count, algorithm `spare`), if on.
    pub cheaper: Option<Cheaper>,
}

/// The `spare` cheaper algorithm's parameters (see docs/cheap.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cheaper {
    /// `cheaper`: never fewer workers than this.
    pub min: u32,
    /// `cheaper-initial`: workers started at boot (and on waking from cheap).
    pub initial: u32,
    /// `cheaper-step`: workers added at once on overload.
    pub step: u32,
    /// `cheaper-overload`: checks (1 s each) of overload, or of idleness, before acting.
    pub overload: u32,
}

/// One worker process.
#[derive(Debug, Clone)]
pub struct Worker {
    pub id: u32,
    pub pid: i32,
    pub generation: u64,
    pub state: WorkerState,
    pub spawned_at: Instant,
    pub spawned_unix: u64,
    pub stats: WorkerStats,
    pub busy: bool,
    /// When the request in progress started (from `Busy`), for harakiri.
    pub busy_since: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// Consecutive boot failures (reset when a worker of the slot gets ready).
    failures: u32,
    started: bool,
    not_before: Option<Instant>,
    respawns: u64,
    harakiris: u64,
}

impl Slot {
    /// Count one more failure in a row and hold the slot back: BACKOFF_START doubled per
    /// failure, capped at BACKOFF_MAX. Returns the delay.
    fn fail(&mut self, now: Instant) -> Duration {
        self.failures += 1;
        let delay = BACKOFF_START
            .saturating_mul(1u32 << (self.failures - 1).min(10))
            .min(BACKOFF_MAX);
        self.not_before = Some(now + delay);
        delay
    }
}

/// Things the outside world should hear about (emperor bytes, systemd, logs in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The first worker ever became ready.
    FirstReady,
    /// Worker `id` entered its accept loop (uWSGI sends byte 5 for worker 1).
    Accepting {
        id: u32,
    },
    ReloadDone {
        generation: u64,
    },
    ReloadFailed {
        generation: u64,
    },
    /// Every worker is gone after a stop.
    Stopped,
    /// A worker of the first generation exited before any worker was ever ready (the app
    /// cannot boot at all).
    FirstBootFailed {
        id: u32,
        exit: Exit,
    },
}

/// The kinds of reload (see docs/signals.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadKind {
    /// Replace workers `reload_batch` at a time, each old one drained when its replacement is ready.
    Graceful,
    /// Same, one at a time.
    Chain,
    /// Stop the old workers at once, then start the new ones.
    Brutal,
}

pub struct Supervisor {
    pub phase: Phase,
    pub workers: Vec<Worker>,
    generations: BTreeMap<u64, Generation>,
    active: u64,
    slots: BTreeMap<u32, Slot>,
    ever_ready: bool,
    next_generation: u64,
    notices: Vec<Notice>,
    /// `cheap`: no worker is kept alive; the master waits for a connection (see docs/cheap.md).
    cheap: bool,
    /// `cheaper`: slots deliberately left without a worker.
    cheaped: std::collections::BTreeSet<u32>,
    /// `cheaper`: consecutive checks with every worker busy / with spare idle workers.
    overload_cycles: u32,
    idle_cycles: u32,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Supervisor {
    pub fn new(first: Generation) -> Supervisor {
        Supervisor {
            phase: Phase::Running,
            workers: Vec::new(),
            generations: [(0, first)].into(),
            active: 0,
            slots: BTreeMap::new(),
            ever_ready: false,
            next_generation: 1,
            notices: Vec::new(),
            cheap: false,
            cheaped: Default::default(),
            overload_cycles: 0,
            idle_cycles: 0,
        }
        .with_initial_cheaped()
    }

    /// `cheaper`: only `cheaper-initial` slots start; the rest are cheaped.
    fn with_initial_cheaped(mut self) -> Supervisor {
        self.reset_cheaped();
        self
    }

    fn reset_cheaped(&mut self) {
        let g = &self.generations[&self.active];
        self.cheaped = match g.cheaper {
            Some(c) => (c.initial.max(1) + 1..=g.processes.max(1)).collect(),
            None => Default::default(),
        };
        self.overload_cycles = 0;
        self.idle_cycles = 0;
    }

    /// True if slot `id` is cheaped (`cheaper`): it has, and gets, no worker.
    pub fn is_cheaped(&self, id: u32) -> bool {
        self.cheaped.contains(&id)
    }

    /// The `spare` cheaper algorithm, run once a second: if every worker is busy for more than
    /// `cheaper-overload` checks, start up to `cheaper-step` cheaped slots; if two or more
    /// workers are idle for `cheaper-overload` checks, drain the oldest idle one (never below
    /// `cheaper`). Exactly one free worker is the stable state.
    pub fn cheaper_check(&mut self, now: Instant, children: &mut dyn Children) {
        let Some(c) = self.generations[&self.active].cheaper else {
            return;
        };
        if self.cheap || !matches!(self.phase, Phase::Running) {
            return;
        }
        let serving: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.state.is_serving())
            .collect();
        // Wait for booting workers before judging.
        if serving.is_empty()
            || serving
                .iter()
                .any(|w| matches!(w.state, WorkerState::Booting { .. }))
        {
            return;
        }
        // Busy/Idle messages (a request in progress at the worker's last 1-s tick); not the
        // Stats `in_request`, which can be stale.
        let is_busy = |w: &Worker| w.busy;
        let free = serving.iter().filter(|w| !is_busy(w)).count();
        if free == 0 {
            self.idle_cycles = 0;
            self.overload_cycles += 1;
            if self.overload_cycles > c.overload && !self.cheaped.is_empty() {
                self.overload_cycles = 0;
                let add: Vec<u32> = self.cheaped.iter().copied().take(c.step as usize).collect();
                for id in &add {
                    self.cheaped.remove(id);
                }
                tracing::info!(
                    "cheaper: every worker busy for {} checks, spawning {} more (slot(s) {add:?})",
                    c.overload + 1,
                    add.len()
                );
                // The next tick starts them.
            }
            return;
        }
        self.overload_cycles = 0;
        if free == 1 {
            self.idle_cycles = 0;
            return;
        }
        self.idle_cycles += 1;
        if self.idle_cycles < c.overload || serving.len() as u32 <= c.min.max(1) {
            return;
        }
        self.idle_cycles = 0;
        let Some(oldest) = serving
            .iter()
            .filter(|w| !is_busy(w))
            .min_by_key(|w| w.spawned_at)
            .map(|w| (w.pid, w.id))
        else {
            return;
        };
        tracing::info!(
            "cheaper: {free} idle workers for {} checks, stopping the oldest idle one (worker {}, pid {})",
            c.overload,
            oldest.1,
            oldest.0
        );
        self.cheaped.insert(oldest.1);
        let mercy = self.mercy();
        self.graceful_stop_worker(oldest.0, now, mercy, children);
    }

    /// True while the master keeps no worker alive and waits for a first connection.
    pub fn is_cheap(&self) -> bool {
        self.cheap
    }

    /// Start in (or go back to) cheap mode: serving workers are stopped gracefully (they finish
    /// what they hold; connections not yet accepted wait in the listen queue) and no worker is
    /// started until [`Supervisor::wake`].
    pub fn go_cheap(&mut self, now: Instant, children: &mut dyn Children) {
        if !matches!(self.phase, Phase::Running) || self.cheap {
            return;
        }
        self.cheap = true;
        let mercy = self.mercy();
        let pids: Vec<(i32, bool)> = self
            .workers
            .iter()
            .filter(|w| w.state.is_serving())
            .map(|w| (w.pid, matches!(w.state, WorkerState::Ready { .. })))
            .collect();
        for (pid, ready) in pids {
            if ready {
                self.graceful_stop_worker(pid, now, mercy, children);
            } else {
                self.stop_worker(pid, now, children);
            }
        }
    }

    /// Leave cheap mode: the next tick starts every worker.
    pub fn wake(&mut self) {
        self.cheap = false;
        self.reset_cheaped();
    }

    pub fn active_generation(&self) -> u64 {
        self.active
    }

    pub fn generation(&self, g: u64) -> Option<&Generation> {
        self.generations.get(&g)
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    pub fn respawns(&self, id: u32) -> u64 {
        self.slots.get(&id).map(|s| s.respawns).unwrap_or(0)
    }

    fn transition(&mut self, ev: PhaseEvent) {
        let old = self.phase.name();
        self.phase = std::mem::replace(&mut self.phase, Phase::Stopped).next(ev);
        if old != self.phase.name() {
            tracing::debug!("master phase: {old} -> {}", self.phase.name());
        }
    }

    fn worker_mut(&mut self, pid: i32) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.pid == pid)
    }

    /// The generation new and respawned workers get right now.
    fn target_generation(&self) -> u64 {
        match &self.phase {
            Phase::Reloading(r) => r.generation,
            _ => self.active,
        }
    }

    fn mercy(&self) -> Duration {
        self.generations
            .get(&self.active)
            .map(|g| g.mercy)
            .unwrap_or(Duration::from_secs(60))
    }

    /// A worker reported Ready.
    pub fn on_ready(&mut self, pid: i32, now: Instant, children: &mut dyn Children) {
        let Some(w) = self.worker_mut(pid) else {
            return;
        };
        let was_booting = matches!(w.state, WorkerState::Booting { .. });
        w.state = w.state.next(WorkerEvent::Ready(now));
        if !was_booting || !matches!(w.state, WorkerState::Ready { .. }) {
            return;
        }
        let (id, generation, spawned) = (w.id, w.generation, w.spawned_at);
        tracing::info!(
            "worker {id} (pid {pid}, generation {generation}) ready after {:?}",
            now.duration_since(w.spawned_at)
        );
        let slot = self.slots.entry(id).or_default();
        slot.failures = 0;
        slot.not_before = None;
        if !self.ever_ready {
            self.ever_ready = true;
            self.notices.push(Notice::FirstReady);
        }
        self.notices.push(Notice::Accepting { id });
        // Its predecessors in the slot (older generations) can go now.
        let mercy = self.mercy();
        // Older generations, or an older worker of the same generation (max-worker-lifetime).
        let olds: Vec<i32> = self
            .workers
            .iter()
            .filter(|o| {
                o.id == id
                    && o.pid != pid
                    && o.state.is_serving()
                    && (o.generation < generation
                        || (o.generation == generation && o.spawned_at < spawned))
            })
            .map(|o| o.pid)
            .collect();
        for old in olds {
            self.graceful_stop_worker(old, now, mercy, children);
        }
    }

    /// Worker counters.
    pub fn on_stats(&mut self, pid: i32, stats: WorkerStats) {
        if let Some(w) = self.worker_mut(pid) {
            w.stats = stats;
        }
    }

    /// `Busy { since }` (Some: how long ago the request started) or `Idle` (None).
    pub fn on_busy(&mut self, pid: i32, busy_for: Option<Duration>, now: Instant) {
        if let Some(w) = self.worker_mut(pid) {
            w.busy = busy_for.is_some();
            w.busy_since = busy_for.map(|d| now.checked_sub(d).unwrap_or(now));
        }
    }

    pub fn harakiri_count(&self, id: u32) -> u64 {
        self.slots.get(&id).map(|s| s.harakiris).unwrap_or(0)
    }

    /// A worker was reaped.
    pub fn on_exit(&mut self, pid: i32, exit: Exit, now: Instant, children: &mut dyn Children) {
        let Some(idx) = self.workers.iter().position(|w| w.pid == pid) else {
            return;
        };
        let w = self.workers.remove(idx);
        let expected = matches!(
            w.state,
            WorkerState::Draining { .. } | WorkerState::Stopping { .. }
        ) || matches!(self.phase, Phase::Stopping { .. });
        let boot_failure = matches!(w.state, WorkerState::Booting { .. })
            || (!expected && now.duration_since(w.spawned_at) < MIN_HEALTHY_LIFETIME);
        if expected {
            tracing::info!(
                "worker {} (pid {pid}, generation {}) exited: {exit}",
                w.id,
                w.generation
            );
        } else {
            tracing::warn!(
                "worker {} (pid {pid}, generation {}) died unexpectedly ({}): {exit}",
                w.id,
                w.generation,
                w.state.name()
            );
        }
        // A new-generation worker that never got ready: the new code is broken. Keep the old
        // generation serving and stay reloadable.
        if let Phase::Reloading(r) = &self.phase {
            if w.generation == r.generation && matches!(w.state, WorkerState::Booting { .. }) {
                let (g, prev) = (r.generation, r.previous);
                tracing::error!(
                    "reload failed: worker {} of generation {g} exited before it was ready ({exit}); \
                     keeping generation {prev} serving (see the worker's error above)",
                    w.id
                );
                self.abort_reload(now, children);
                return;
            }
        }
        if boot_failure && !expected && !self.ever_ready {
            self.notices
                .push(Notice::FirstBootFailed { id: w.id, exit });
        }
        if boot_failure && !expected {
            let slot = self.slots.entry(w.id).or_default();
            let delay = slot.fail(now);
            tracing::error!(
                "worker {} failed to boot {} time(s) in a row; next attempt in {}s",
                w.id,
                slot.failures,
                delay.as_secs()
            );
        }
    }

    fn abort_reload(&mut self, now: Instant, children: &mut dyn Children) {
        let Phase::Reloading(r) = &self.phase else {
            return;
        };
        let (g, prev) = (r.generation, r.previous);
        let booting: Vec<i32> = self
            .workers
            .iter()
            .filter(|w| w.generation == g && matches!(w.state, WorkerState::Booting { .. }))
            .map(|w| w.pid)
            .collect();
        for pid in booting {
            self.stop_worker(pid, now, children);
        }
        self.active = prev;
        self.transition(PhaseEvent::ReloadEnded);
        self.notices.push(Notice::ReloadFailed { generation: g });
        self.gc_generations();
    }

    fn gc_generations(&mut self) {
        let live: std::collections::BTreeSet<u64> =
            self.workers.iter().map(|w| w.generation).collect();
        let keep_target = self.target_generation();
        let active = self.active;
        self.generations
            .retain(|g, _| *g == active || *g == keep_target || live.contains(g));
    }

    /// Start a reload to `next` (None = same config: a workers-only reload).
    pub fn reload(
        &mut self,
        next: Option<Generation>,
        kind: ReloadKind,
        now: Instant,
        children: &mut dyn Children,
    ) {
        if matches!(self.phase, Phase::Stopping { .. } | Phase::Stopped) {
            return;
        }
        // A reload during a reload: the newer one wins; the unfinished one is abandoned.
        if matches!(self.phase, Phase::Reloading(_)) {
            tracing::warn!("reload requested while reloading: abandoning the reload in progress");
            self.abort_reload(now, children);
        }
        let cfg = match next {
            Some(g) => g,
            None => self.generations[&self.active].clone(),
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        if cfg.cheaper.is_none() {
            self.cheaped.clear();
        }
        if self.cheap {
            // Nothing to replace: the next workers started are of the new generation.
            tracing::info!("reload while cheap: generation {generation} is used from now on");
            self.generations.insert(generation, cfg);
            self.active = generation;
            self.notices.push(Notice::ReloadDone { generation });
            self.gc_generations();
            return;
        }
        let batch = match kind {
            ReloadKind::Chain => 1,
            _ => cfg.reload_batch.max(1),
        };
        let processes = cfg.processes.max(1);
        self.generations.insert(generation, cfg);
        let r = Reload {
            generation,
            previous: self.active,
            pending: (1..=processes)
                .filter(|id| !self.cheaped.contains(id))
                .collect::<VecDeque<u32>>(),
            batch: if kind == ReloadKind::Brutal {
                processes
            } else {
                batch
            },
            brutal: kind == ReloadKind::Brutal,
            started: now,
        };
        tracing::info!(
            "reloading: generation {generation} replaces generation {} ({kind:?}, {} at a time)",
            self.active,
            r.batch
        );
        self.transition(PhaseEvent::ReloadStarted(r));
        if kind == ReloadKind::Brutal {
            let pids: Vec<i32> = self
                .workers
                .iter()
                .filter(|w| w.state.is_serving())
                .map(|w| w.pid)
                .collect();
            for pid in pids {
                self.stop_worker(pid, now, children);
            }
        }
        self.tick(now, children);
    }

    /// Begin a stop.
    pub fn stop(&mut self, graceful: bool, now: Instant, children: &mut dyn Children) {
        if matches!(self.phase, Phase::Stopped) {
            return;
        }
        let deadline = now
            + if graceful {
                self.mercy()
            } else {
                FAST_STOP_GRACE
            };
        self.transition(PhaseEvent::Stop { graceful, deadline });
        let pids: Vec<(i32, bool)> = self
            .workers
            .iter()
            .map(|w| (w.pid, matches!(w.state, WorkerState::Ready { .. })))
            .collect();
        let graceful = matches!(self.phase, Phase::Stopping { graceful: true, .. });
        for (pid, ready) in pids {
            if graceful && ready {
                let mercy = self.mercy();
                self.graceful_stop_worker(pid, now, mercy, children);
            } else {
                self.stop_worker(pid, now, children);
            }
        }
        self.tick(now, children);
    }

    fn graceful_stop_worker(
        &mut self,
        pid: i32,
        now: Instant,
        mercy: Duration,
        children: &mut dyn Children,
    ) {
        let Some(w) = self.worker_mut(pid) else {
            return;
        };
        if !w.state.is_serving() {
            return;
        }
        w.state = w.state.next(WorkerEvent::GracefulStop {
            now,
            deadline: now + mercy,
        });
        if !children.send(pid, &ToWorker::GracefulStop) {
            // The control channel is gone; SIGTERM means the same to a worker.
            children.signal(pid, libc::SIGTERM);
        }
    }

    fn stop_worker(&mut self, pid: i32, now: Instant, children: &mut dyn Children) {
        let Some(w) = self.worker_mut(pid) else {
            return;
        };
        if matches!(
            w.state,
            WorkerState::Stopping { .. } | WorkerState::Exited(_)
        ) {
            return;
        }
        w.state = w.state.next(WorkerEvent::Stop {
            now,
            deadline: now + FAST_STOP_GRACE,
        });
        children.send(pid, &ToWorker::Stop);
        children.signal(pid, libc::SIGINT);
    }

    /// Periodic work: start missing workers, advance the reload, enforce deadlines.
    /// Returns when it next needs to run (None = only on events).
    pub fn tick(&mut self, now: Instant, children: &mut dyn Children) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let at = |t: Instant, wake: &mut Option<Instant>| {
            *wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
        };
        // Deadlines: drains past worker-reload-mercy and stops past their grace get SIGKILL.
        for w in &mut self.workers {
            match w.state {
                WorkerState::Draining { deadline, .. } | WorkerState::Stopping { deadline, .. } => {
                    if now >= deadline {
                        tracing::warn!(
                            "worker {} (pid {}) still alive after its deadline: SIGKILL",
                            w.id,
                            w.pid
                        );
                        children.signal(w.pid, libc::SIGKILL);
                        // Check again in a second (the kill is reaped via SIGCHLD).
                        let next = now + Duration::from_secs(1);
                        w.state = WorkerState::Stopping {
                            since: now,
                            deadline: next,
                        };
                        at(next, &mut wake);
                    } else {
                        at(deadline, &mut wake);
                    }
                }
                _ => {}
            }
        }
        // harakiri (uWSGI §2.8): a request running longer than the limit gets its worker
        // SIGKILLed; the worker is then replaced like any dead worker.
        let mut killed = Vec::new();
        for w in &mut self.workers {
            let limit = self
                .generations
                .get(&w.generation)
                .and_then(|g| g.worker.harakiri);
            if let (Some(limit), Some(since), WorkerState::Ready { .. }) =
                (limit, w.busy_since, w.state)
            {
                if now.duration_since(since) >= limit {
                    tracing::error!(
                        "HARAKIRI ON WORKER {} (pid {}): a request ran for more than {}s",
                        w.id,
                        w.pid,
                        limit.as_secs()
                    );
                    children.signal(w.pid, libc::SIGKILL);
                    w.busy_since = None;
                    killed.push(w.id);
                } else {
                    at(since + limit, &mut wake);
                }
            }
        }
        for id in killed {
            self.slots.entry(id).or_default().harakiris += 1;
        }
        match &self.phase {
            Phase::Stopped => return None,
            Phase::Stopping { deadline, .. } => {
                if self.workers.is_empty() {
                    self.transition(PhaseEvent::AllExited);
                    self.notices.push(Notice::Stopped);
                    return None;
                }
                at(*deadline, &mut wake);
                return wake;
            }
            Phase::Running | Phase::Reloading(_) => {}
        }

        // Reload: start the next batch of replacements.
        if let Phase::Reloading(r) = &self.phase {
            let g = r.generation;
            let batch = r.batch as usize;
            let booting = self
                .workers
                .iter()
                .filter(|w| w.generation == g && matches!(w.state, WorkerState::Booting { .. }))
                .count();
            let mut free = batch.saturating_sub(booting);
            let mut to_start = Vec::new();
            if let Phase::Reloading(r) = &mut self.phase {
                while free > 0 {
                    let Some(slot) = r.pending.pop_front() else {
                        break;
                    };
                    to_start.push(slot);
                    free -= 1;
                }
            }
            for slot in to_start {
                self.start(slot, g, now, children);
            }
        }

        if self.cheap && matches!(self.phase, Phase::Running) {
            // cheap: no worker until the master sees a connection.
            return wake;
        }

        // max-worker-lifetime: start a replacement for an old worker; it is drained when the
        // replacement is ready (no gap in service, unlike uWSGI's SIGWINCH-and-respawn).
        if matches!(self.phase, Phase::Running) {
            if let Some(max) = self.generations[&self.active].max_lifetime {
                let due: Vec<u32> =
                    self.workers
                        .iter()
                        .filter(|w| {
                            matches!(w.state, WorkerState::Ready { .. })
                                && now.duration_since(w.spawned_at) >= max
                        })
                        .map(|w| w.id)
                        .filter(|id| {
                            !self.workers.iter().any(|o| {
                                o.id == *id && matches!(o.state, WorkerState::Booting { .. })
                            })
                        })
                        // A replacement that failed to boot backs off like any other.
                        .filter(|id| {
                            self.slots
                                .get(id)
                                .and_then(|s| s.not_before)
                                .is_none_or(|t| now >= t)
                        })
                        .collect();
                for id in due {
                    tracing::info!("worker {id} reached max-worker-lifetime: replacing it");
                    let g = self.active;
                    self.start(id, g, now, children);
                }
                for w in &self.workers {
                    if matches!(w.state, WorkerState::Ready { .. }) {
                        at(w.spawned_at + max, &mut wake);
                    }
                }
            }
        }

        // Every slot of the target generation must be covered.
        let target = self.target_generation();
        let processes = self.generations[&target].processes.max(1);
        let pending: Vec<u32> = match &self.phase {
            Phase::Reloading(r) => r.pending.iter().copied().collect(),
            _ => Vec::new(),
        };
        for id in 1..=processes {
            let covered = self
                .workers
                .iter()
                .any(|w| w.id == id && w.state.is_serving());
            if covered || self.cheaped.contains(&id) {
                continue;
            }
            if pending.contains(&id) {
                // Its old worker died while waiting for its turn: replace it now.
                if let Phase::Reloading(r) = &mut self.phase {
                    r.pending.retain(|&s| s != id);
                }
            }
            if let Some(t) = self.slots.get(&id).and_then(|s| s.not_before) {
                if now < t {
                    at(t, &mut wake);
                    continue;
                }
            }
            self.start(id, target, now, children);
        }

        for slot in self.slots.values() {
            if let Some(t) = slot.not_before {
                if t > now {
                    at(t, &mut wake);
                }
            }
        }

        // Reload finished: no pending slot and no booting worker of the new generation.
        if let Phase::Reloading(r) = &self.phase {
            let g = r.generation;
            let done = r.pending.is_empty()
                && !self
                    .workers
                    .iter()
                    .any(|w| w.generation == g && matches!(w.state, WorkerState::Booting { .. }));
            if done {
                let took = now.duration_since(r.started);
                self.active = g;
                self.transition(PhaseEvent::ReloadEnded);
                // Old workers beyond the new process count (or left over) are drained too.
                let mercy = self.mercy();
                let olds: Vec<i32> = self
                    .workers
                    .iter()
                    .filter(|w| w.generation < g && w.state.is_serving())
                    .map(|w| w.pid)
                    .collect();
                for pid in olds {
                    self.graceful_stop_worker(pid, now, mercy, children);
                }
                tracing::info!("reload done: generation {g} serving (took {took:?})");
                self.notices.push(Notice::ReloadDone { generation: g });
                self.gc_generations();
            }
        }
        wake
    }

    fn start(&mut self, id: u32, generation: u64, now: Instant, children: &mut dyn Children) {
        let cfg = self.generations[&generation].worker.clone();
        match children.spawn(id, generation, &cfg) {
            Ok(pid) => {
                let slot = self.slots.entry(id).or_default();
                if slot.started {
                    slot.respawns += 1;
                }
                slot.started = true;
                tracing::info!("spawned worker {id} (pid {pid}, generation {generation})");
                self.workers.push(Worker {
                    id,
                    pid,
                    generation,
                    state: WorkerState::Booting { since: now },
                    spawned_at: now,
                    spawned_unix: unix_now(),
                    stats: WorkerStats::default(),
                    busy: false,
                    busy_since: None,
                });
            }
            Err(e) => {
                let delay = self.slots.entry(id).or_default().fail(now);
                tracing::error!(
                    "could not spawn worker {id}: {e}; retrying in {}s",
                    delay.as_secs()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
