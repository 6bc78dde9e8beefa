//! The vassal lifecycle: one enum ([`VassalState`]) and one transition function
//! ([`Vassal::transition`]). Pure: no processes, no clocks, no I/O. The event loop feeds it
//! [`Event`]s with the current time and performs the [`Action`]s it returns, which is what lets
//! the unit tests below drive every path without forking anything.

use liege_protocol::emperor as proto;
use std::time::{Duration, Instant};

/// Where a vassal is in its life. Exactly one per vassal file.
#[derive(Debug, Clone, PartialEq)]
pub enum VassalState {
    /// A process was spawned; waiting for it to say it is up (byte 1, 5 or 17).
    Starting { since: Instant },
    /// Up and serving.
    Ready { since: Instant },
    /// The reload byte was sent; waiting for it to accept again (byte 5, 1 or 17).
    Reloading { since: Instant },
    /// A stop byte was sent; waiting for the process to exit. SIGKILLed at `kill_at`.
    Stopping {
        since: Instant,
        kill_at: Instant,
        then: AfterStop,
    },
    /// Not running after a failure; restarted at `until` (exponential back-off with jitter).
    Throttled { until: Instant },
    /// Cannot run until its file changes (invalid configuration, refused by tyrant mode).
    Failed { reason: String },
    /// On-demand vassal with no process: the emperor holds its listening socket and waits
    /// for the first connection (uWSGI §7.10).
    OnDemand,
}

impl VassalState {
    /// The short name shown in stats, `liege --status` and systemd's STATUS line.
    pub fn name(&self) -> &'static str {
        match self {
            VassalState::Starting { .. } => "starting",
            VassalState::Ready { .. } => "ready",
            VassalState::Reloading { .. } => "reloading",
            VassalState::Stopping { .. } => "stopping",
            VassalState::Throttled { .. } => "throttled",
            VassalState::Failed { .. } => "failed",
            VassalState::OnDemand => "on-demand",
        }
    }

    /// A process exists for this vassal (it may be on its way out).
    pub fn has_process(&self) -> bool {
        matches!(
            self,
            VassalState::Starting { .. }
                | VassalState::Ready { .. }
                | VassalState::Reloading { .. }
                | VassalState::Stopping { .. }
        )
    }

    /// Settled for systemd's READY=1: neither starting nor reloading.
    pub fn settled(&self) -> bool {
        !matches!(
            self,
            VassalState::Starting { .. } | VassalState::Reloading { .. }
        )
    }
}

/// What happens once a stopping vassal's process has exited.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterStop {
    /// Forget the vassal (its file is gone).
    Remove,
    /// Start it again at once (owner changed, voluntary shutdown, restart requested).
    Restart,
    /// Keep the entry, in `Failed` with this reason (refused by tyrant mode).
    Park(String),
    /// The emperor is shutting down: forget it.
    Exit,
}

/// What the event loop tells a vassal.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The process was spawned (after an [`Action::Spawn`]).
    Spawned { pid: i32 },
    /// Spawning failed (exec error, socketpair error...).
    SpawnFailed { error: String },
    /// A byte from the vassal on the emperor pipe.
    Byte(u8),
    /// The process exited; `how` is a human description ("exit code 22", "signal 9").
    Exited { how: String },
    /// Its file changed and is valid, or SIGHUP: reload gracefully (or start now if not running).
    Reload,
    /// Stop it; `graceful` selects byte 2 over byte 0.
    Stop { then: AfterStop, graceful: bool },
    /// Its file became unusable (invalid, refused). A running process keeps running.
    Invalid { reason: String },
    /// Time passed (throttle expiry, kill deadlines, heartbeat).
    Tick,
    /// A connection is waiting on the on-demand socket: spawn the vassal now.
    Activated,
}

/// What the event loop must do for a vassal after a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Spawn a new process (then feed back `Spawned` or `SpawnFailed`).
    Spawn,
    /// Write this byte on the emperor pipe.
    Send(u8),
    /// SIGKILL the process.
    Kill,
    /// Forget this vassal entirely.
    Remove,
    /// Watch the on-demand socket for a connection (then feed back `Activated`).
    Watch,
}

/// Timing policy (from `EmperorConfig`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// First back-off delay (`emperor-throttle`, default 1 s).
    pub throttle: Duration,
    /// Back-off cap (`emperor-max-throttle`, default 180 s).
    pub max_throttle: Duration,
    /// How long a graceful stop may take before SIGKILL (`emperor-curse-tolerance`).
    pub curse_tolerance: Duration,
    /// How long a fast stop may take before SIGKILL.
    pub fast_tolerance: Duration,
    /// Once a heartbeat was seen, the longest gap allowed (`emperor-required-heartbeat`).
    pub required_heartbeat: Duration,
    /// Ready this long → the back-off is reset.
    pub stable_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            throttle: Duration::from_secs(1),
            max_throttle: Duration::from_secs(180),
            curse_tolerance: Duration::from_secs(30),
            fast_tolerance: Duration::from_secs(3),
            required_heartbeat: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// Lifecycle bookkeeping of one vassal (the part the transition function owns).
#[derive(Debug, Clone)]
pub struct Vassal {
    pub state: VassalState,
    /// Pid of the current process, while there is one.
    pub pid: Option<i32>,
    /// Consecutive failures since the last stable run (drives the back-off).
    pub attempts: u32,
    /// Processes spawned after the first one.
    pub respawns: u64,
    pub spawns: u64,
    /// The last failure or refusal, for stats and `liege --status`.
    pub last_error: Option<String>,
    /// Protocol facts of the current process (uWSGI stats fields).
    pub loyal: Option<Instant>,
    pub ready: Option<Instant>,
    pub accepting: Option<Instant>,
    pub last_heartbeat: Option<Instant>,
    pub born: Option<Instant>,
    pub first_run: Option<Instant>,
    pub last_run: Option<Instant>,
    /// When the current (or last) run became ready, for the back-off reset.
    ready_since: Option<Instant>,
    /// It asked to go away (byte 22): not a failure.
    voluntary: bool,
    /// Why we SIGKILLed a running process (missing heartbeat), for its exit's error.
    killed_for: Option<String>,
    /// The emperor holds a listening socket for it: "start" means wait for a connection.
    pub on_demand: bool,
}

impl Vassal {
    /// A new vassal that has not been started yet: the caller follows with `Reload` (start)
    /// or `Invalid` (cannot start).
    pub fn new() -> Self {
        Vassal {
            state: VassalState::Failed {
                reason: "not started yet".into(),
            },
            pid: None,
            attempts: 0,
            respawns: 0,
            spawns: 0,
            last_error: None,
            loyal: None,
            ready: None,
            accepting: None,
            last_heartbeat: None,
            born: None,
            first_run: None,
            last_run: None,
            ready_since: None,
            voluntary: false,
            killed_for: None,
            on_demand: false,
        }
    }

    /// Back-off delay for the current attempt count, before jitter: throttle × 2^(attempts-1),
    /// capped at max_throttle.
    pub fn backoff(policy: &Policy, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(31);
        let d = policy.throttle.saturating_mul(1u32 << exp);
        d.min(policy.max_throttle)
    }

    /// The next instant at which a `Tick` may change something, if any.
    pub fn next_deadline(&self, policy: &Policy) -> Option<Instant> {
        let hb = self
            .last_heartbeat
            .filter(|_| {
                self.state.has_process() && !matches!(self.state, VassalState::Stopping { .. })
            })
            .map(|t| t + policy.required_heartbeat);
        let st = match &self.state {
            VassalState::Throttled { until } => Some(*until),
            VassalState::Stopping { kill_at, .. } => Some(*kill_at),
            _ => None,
        };
        match (hb, st) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Start: spawn now, or (on-demand) wait for the first connection on the socket.
    fn start(&mut self, now: Instant) -> Vec<Action> {
        if self.on_demand {
            self.state = VassalState::OnDemand;
            self.voluntary = false;
            self.killed_for = None;
            return vec![Action::Watch];
        }
        self.spawn_now(now)
    }

    fn spawn_now(&mut self, now: Instant) -> Vec<Action> {
        self.state = VassalState::Starting { since: now };
        self.loyal = None;
        self.ready = None;
        self.accepting = None;
        self.last_heartbeat = None;
        self.ready_since = None;
        self.voluntary = false;
        self.killed_for = None;
        vec![Action::Spawn]
    }

    /// The transition function: the only place `state` changes. `jitter` is a random number
    /// in [0, 1) used to spread restarts (the caller draws it, so tests are deterministic).
    pub fn transition(
        &mut self,
        event: Event,
        now: Instant,
        policy: &Policy,
        jitter: f64,
    ) -> Vec<Action> {
        use VassalState as S;
        match event {
            Event::Spawned { pid } => {
                self.pid = Some(pid);
                self.spawns += 1;
                if self.spawns > 1 {
                    self.respawns += 1;
                }
                self.born = Some(now);
                self.first_run.get_or_insert(now);
                self.last_run = Some(now);
                vec![]
            }
            Event::SpawnFailed { error } => {
                self.pid = None;
                self.last_error = Some(format!("spawn failed: {error}"));
                self.throttle(now, policy, jitter)
            }
            Event::Byte(b) => {
                match b {
                    proto::FROM_VASSAL_SPAWNED
                    | proto::FROM_VASSAL_ACCEPTING
                    | proto::FROM_VASSAL_LOYAL => {
                        match b {
                            proto::FROM_VASSAL_SPAWNED => self.ready = Some(now),
                            proto::FROM_VASSAL_ACCEPTING => self.accepting = Some(now),
                            _ => self.loyal = Some(now),
                        }
                        if matches!(self.state, S::Starting { .. } | S::Reloading { .. }) {
                            self.state = S::Ready { since: now };
                            self.ready_since.get_or_insert(now);
                        }
                        vec![]
                    }
                    proto::FROM_VASSAL_HEARTBEAT => {
                        self.last_heartbeat = Some(now);
                        vec![]
                    }
                    proto::FROM_VASSAL_VOLUNTARY_SHUTDOWN => {
                        // uWSGI: "stop" for a vassal that is not on demand; the file still
                        // exists, so it comes back (here: at once, without a failure mark).
                        self.voluntary = true;
                        if self.state.has_process() && !matches!(self.state, S::Stopping { .. }) {
                            // On demand: a graceful stop (byte 2; uWSGI sends 0), so that a
                            // connection a worker accepted at that very moment is answered.
                            let graceful = self.on_demand;
                            self.stop(now, policy, AfterStop::Restart, graceful)
                        } else {
                            vec![]
                        }
                    }
                    _ => vec![],
                }
            }
            Event::Exited { how } => {
                self.pid = None;
                match std::mem::replace(
                    &mut self.state,
                    S::Failed {
                        reason: String::new(),
                    },
                ) {
                    S::Stopping { then, .. } => match then {
                        AfterStop::Remove | AfterStop::Exit => {
                            self.state = S::Failed {
                                reason: "stopped".into(),
                            };
                            vec![Action::Remove]
                        }
                        AfterStop::Restart => self.start(now),
                        AfterStop::Park(reason) => {
                            self.state = S::Failed { reason };
                            vec![]
                        }
                    },
                    S::Starting { .. } | S::Ready { .. } | S::Reloading { .. } => {
                        if self.voluntary {
                            self.attempts = 0;
                            return self.start(now);
                        }
                        self.last_error = Some(match self.killed_for.take() {
                            Some(why) => format!("{why} ({how})"),
                            None => format!("died unexpectedly ({how})"),
                        });
                        self.throttle(now, policy, jitter)
                    }
                    other => {
                        // Not ours to react to (stale): keep the state as it was.
                        self.state = other;
                        vec![]
                    }
                }
            }
            Event::Reload => match &self.state {
                S::Starting { .. } | S::Ready { .. } | S::Reloading { .. } => {
                    self.state = S::Reloading { since: now };
                    vec![Action::Send(proto::TO_VASSAL_RELOAD)]
                }
                S::Stopping { since, kill_at, .. } => {
                    // The file came back while it was on its way out: start it again after.
                    self.state = S::Stopping {
                        since: *since,
                        kill_at: *kill_at,
                        then: AfterStop::Restart,
                    };
                    vec![]
                }
                S::Throttled { .. } | S::Failed { .. } => self.start(now),
                // Not running: the new file is used at the next activation (uWSGI too).
                S::OnDemand => vec![],
            },
            Event::Activated => match self.state {
                S::OnDemand => self.spawn_now(now),
                _ => vec![],
            },
            Event::Stop { then, graceful } => {
                if self.state.has_process() {
                    if let S::Stopping { kill_at, since, .. } = self.state {
                        // Already stopping: keep the deadline, update the plan (a fast stop
                        // shortens the deadline).
                        let kill_at = if graceful {
                            kill_at
                        } else {
                            kill_at.min(now + policy.fast_tolerance)
                        };
                        self.state = S::Stopping {
                            since,
                            kill_at,
                            then,
                        };
                        return if graceful {
                            vec![]
                        } else {
                            vec![Action::Send(proto::TO_VASSAL_STOP)]
                        };
                    }
                    self.stop(now, policy, then, graceful)
                } else {
                    match then {
                        AfterStop::Remove | AfterStop::Exit => vec![Action::Remove],
                        AfterStop::Restart => self.start(now),
                        AfterStop::Park(reason) => {
                            self.state = S::Failed { reason };
                            vec![]
                        }
                    }
                }
            }
            Event::Invalid { reason } => {
                self.last_error = Some(reason.clone());
                if !self.state.has_process() {
                    self.state = S::Failed { reason };
                }
                vec![]
            }
            Event::Tick => match &mut self.state {
                S::Throttled { until } if now >= *until => self.start(now),
                S::Stopping { kill_at, .. } if now >= *kill_at => {
                    // Again every tolerance period until it is gone (uWSGI does the same).
                    *kill_at = now + policy.curse_tolerance;
                    vec![Action::Kill]
                }
                S::Starting { .. } | S::Ready { .. } | S::Reloading { .. } => {
                    match self.last_heartbeat {
                        Some(t) if now >= t + policy.required_heartbeat => {
                            let why = format!(
                                "no heartbeat for {}s: killed",
                                policy.required_heartbeat.as_secs()
                            );
                            self.last_error = Some(why.clone());
                            self.killed_for = Some(why);
                            self.last_heartbeat = None;
                            vec![Action::Kill]
                        }
                        _ => vec![],
                    }
                }
                _ => vec![],
            },
        }
    }

    fn stop(
        &mut self,
        now: Instant,
        policy: &Policy,
        then: AfterStop,
        graceful: bool,
    ) -> Vec<Action> {
        let tolerance = if graceful {
            policy.curse_tolerance
        } else {
            policy.fast_tolerance
        };
        self.state = VassalState::Stopping {
            since: now,
            kill_at: now + tolerance,
            then,
        };
        vec![Action::Send(if graceful {
            proto::TO_VASSAL_GRACEFUL_STOP
        } else {
            proto::TO_VASSAL_STOP
        })]
    }

    fn throttle(&mut self, now: Instant, policy: &Policy, jitter: f64) -> Vec<Action> {
        if self
            .ready_since
            .is_some_and(|t| now.saturating_duration_since(t) >= policy.stable_after)
        {
            self.attempts = 0;
        }
        self.ready_since = None;
        self.attempts = self.attempts.saturating_add(1);
        let base = Self::backoff(policy, self.attempts);
        // Jitter: between 75 % and 100 % of the delay, so a fleet that crashed together does
        // not come back in lockstep.
        let delay = base.mul_f64(0.75 + 0.25 * jitter.clamp(0.0, 1.0));
        self.state = VassalState::Throttled { until: now + delay };
        vec![]
    }
}

impl Default for Vassal {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Policy {
        Policy::default()
    }

    fn started(now: Instant) -> Vassal {
        let mut v = Vassal::new();
        assert_eq!(
            v.transition(Event::Reload, now, &p(), 0.0),
            vec![Action::Spawn]
        );
        v.transition(Event::Spawned { pid: 42 }, now, &p(), 0.0);
        v
    }

    #[test]
    fn start_then_ready_on_accepting() {
        let t = Instant::now();
        let mut v = started(t);
        assert!(matches!(v.state, VassalState::Starting { .. }));
        v.transition(Event::Byte(proto::FROM_VASSAL_ACCEPTING), t, &p(), 0.0);
        assert!(matches!(v.state, VassalState::Ready { .. }));
        assert_eq!(v.pid, Some(42));
        assert_eq!(v.respawns, 0);
    }

    #[test]
    fn reload_sends_byte_one_and_waits_for_accepting() {
        let t = Instant::now();
        let mut v = started(t);
        v.transition(Event::Byte(proto::FROM_VASSAL_SPAWNED), t, &p(), 0.0);
        let a = v.transition(Event::Reload, t, &p(), 0.0);
        assert_eq!(a, vec![Action::Send(proto::TO_VASSAL_RELOAD)]);
        assert!(matches!(v.state, VassalState::Reloading { .. }));
        v.transition(Event::Byte(proto::FROM_VASSAL_ACCEPTING), t, &p(), 0.0);
        assert!(matches!(v.state, VassalState::Ready { .. }));
    }

    #[test]
    fn crash_backs_off_exponentially_with_cap() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        let mut expected = [1u64, 2, 4, 8, 16, 32, 64, 128, 180, 180].into_iter();
        let mut now = t;
        for _ in 0..10 {
            v.transition(
                Event::Exited {
                    how: "exit code 1".into(),
                },
                now,
                &pol,
                1.0,
            );
            let VassalState::Throttled { until } = v.state else {
                panic!("not throttled: {:?}", v.state)
            };
            assert_eq!((until - now).as_secs(), expected.next().unwrap());
            // Not yet...
            assert!(v
                .transition(Event::Tick, until - Duration::from_millis(1), &pol, 0.0)
                .is_empty());
            now = until;
            assert_eq!(
                v.transition(Event::Tick, now, &pol, 0.0),
                vec![Action::Spawn]
            );
            v.transition(Event::Spawned { pid: 43 }, now, &pol, 0.0);
        }
        assert_eq!(v.respawns, 10);
        assert!(v.last_error.as_deref().unwrap().contains("exit code 1"));
    }

    #[test]
    fn jitter_stays_within_three_quarters_and_full() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(Event::Exited { how: "x".into() }, t, &pol, 0.0);
        let VassalState::Throttled { until } = v.state else {
            panic!()
        };
        assert_eq!(until - t, Duration::from_millis(750));
    }

    #[test]
    fn backoff_resets_after_a_stable_run() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        for _ in 0..5 {
            v.transition(Event::Exited { how: "x".into() }, t, &pol, 1.0);
            v.transition(Event::Reload, t, &pol, 0.0);
            v.transition(Event::Spawned { pid: 1 }, t, &pol, 0.0);
        }
        assert_eq!(v.attempts, 5);
        v.transition(Event::Byte(proto::FROM_VASSAL_ACCEPTING), t, &pol, 0.0);
        let later = t + pol.stable_after;
        v.transition(Event::Exited { how: "x".into() }, later, &pol, 1.0);
        assert_eq!(v.attempts, 1);
        let VassalState::Throttled { until } = v.state else {
            panic!()
        };
        assert_eq!(until - later, Duration::from_secs(1));
    }

    #[test]
    fn graceful_stop_then_remove() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        let a = v.transition(
            Event::Stop {
                then: AfterStop::Remove,
                graceful: true,
            },
            t,
            &pol,
            0.0,
        );
        assert_eq!(a, vec![Action::Send(proto::TO_VASSAL_GRACEFUL_STOP)]);
        assert_eq!(
            v.transition(
                Event::Exited {
                    how: "exit code 0".into()
                },
                t,
                &pol,
                0.0
            ),
            vec![Action::Remove]
        );
    }

    #[test]
    fn stuck_stop_is_killed_after_tolerance_and_again() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(
            Event::Stop {
                then: AfterStop::Remove,
                graceful: true,
            },
            t,
            &pol,
            0.0,
        );
        assert!(v
            .transition(Event::Tick, t + Duration::from_secs(29), &pol, 0.0)
            .is_empty());
        let t1 = t + pol.curse_tolerance;
        assert_eq!(v.transition(Event::Tick, t1, &pol, 0.0), vec![Action::Kill]);
        assert!(v
            .transition(Event::Tick, t1 + Duration::from_secs(1), &pol, 0.0)
            .is_empty());
        assert_eq!(
            v.transition(Event::Tick, t1 + pol.curse_tolerance, &pol, 0.0),
            vec![Action::Kill]
        );
    }

    #[test]
    fn fast_stop_shortens_a_graceful_one() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(
            Event::Stop {
                then: AfterStop::Exit,
                graceful: true,
            },
            t,
            &pol,
            0.0,
        );
        let a = v.transition(
            Event::Stop {
                then: AfterStop::Exit,
                graceful: false,
            },
            t,
            &pol,
            0.0,
        );
        assert_eq!(a, vec![Action::Send(proto::TO_VASSAL_STOP)]);
        let VassalState::Stopping { kill_at, .. } = v.state else {
            panic!()
        };
        assert_eq!(kill_at - t, pol.fast_tolerance);
    }

    #[test]
    fn owner_change_restarts_after_exit() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(
            Event::Stop {
                then: AfterStop::Restart,
                graceful: true,
            },
            t,
            &pol,
            0.0,
        );
        assert_eq!(
            v.transition(Event::Exited { how: "x".into() }, t, &pol, 0.0),
            vec![Action::Spawn]
        );
        assert_eq!(v.attempts, 0);
    }

    #[test]
    fn invalid_keeps_running_process_but_fails_a_stopped_one() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(Event::Byte(proto::FROM_VASSAL_ACCEPTING), t, &pol, 0.0);
        v.transition(
            Event::Invalid {
                reason: "bad".into(),
            },
            t,
            &pol,
            0.0,
        );
        assert!(matches!(v.state, VassalState::Ready { .. }));
        assert_eq!(v.last_error.as_deref(), Some("bad"));
        let mut w = Vassal::new();
        w.transition(
            Event::Invalid {
                reason: "bad".into(),
            },
            t,
            &pol,
            0.0,
        );
        assert_eq!(
            w.state,
            VassalState::Failed {
                reason: "bad".into()
            }
        );
        // A fixed file starts it.
        assert_eq!(
            w.transition(Event::Reload, t, &pol, 0.0),
            vec![Action::Spawn]
        );
    }

    #[test]
    fn missing_heartbeat_kills() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(Event::Byte(proto::FROM_VASSAL_HEARTBEAT), t, &pol, 0.0);
        assert_eq!(v.next_deadline(&pol), Some(t + pol.required_heartbeat));
        assert_eq!(
            v.transition(Event::Tick, t + pol.required_heartbeat, &pol, 0.0),
            vec![Action::Kill]
        );
    }

    #[test]
    fn voluntary_shutdown_restarts_without_penalty() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        let a = v.transition(
            Event::Byte(proto::FROM_VASSAL_VOLUNTARY_SHUTDOWN),
            t,
            &pol,
            0.0,
        );
        assert_eq!(a, vec![Action::Send(proto::TO_VASSAL_STOP)]);
        assert_eq!(
            v.transition(Event::Exited { how: "x".into() }, t, &pol, 0.0),
            vec![Action::Spawn]
        );
        assert_eq!(v.attempts, 0);
    }

    #[test]
    fn throttled_vassal_removed_at_once() {
        let pol = p();
        let t = Instant::now();
        let mut v = started(t);
        v.transition(Event::Exited { how: "x".into() }, t, &pol, 0.0);
        assert_eq!(
            v.transition(
                Event::Stop {
                    then: AfterStop::Remove,
                    graceful: true
                },
                t,
                &pol,
                0.0
            ),
            vec![Action::Remove]
        );
    }

    #[test]
    fn on_demand_waits_spawns_on_activation_and_goes_back_after_idle() {
        let pol = p();
        let t = Instant::now();
        let mut v = Vassal::new();
        v.on_demand = true;
        assert_eq!(
            v.transition(Event::Reload, t, &pol, 0.0),
            vec![Action::Watch]
        );
        assert_eq!(v.state, VassalState::OnDemand);
        assert!(!v.state.has_process());
        // A file change while waiting does nothing (used at the next activation).
        assert!(v.transition(Event::Reload, t, &pol, 0.0).is_empty());
        assert_eq!(
            v.transition(Event::Activated, t, &pol, 0.0),
            vec![Action::Spawn]
        );
        v.transition(Event::Spawned { pid: 7 }, t, &pol, 0.0);
        v.transition(Event::Byte(proto::FROM_VASSAL_ACCEPTING), t, &pol, 0.0);
        let a = v.transition(
            Event::Byte(proto::FROM_VASSAL_VOLUNTARY_SHUTDOWN),
            t,
            &pol,
            0.0,
        );
        assert_eq!(a, vec![Action::Send(proto::TO_VASSAL_GRACEFUL_STOP)]);
        assert_eq!(
            v.transition(Event::Exited { how: "x".into() }, t, &pol, 0.0),
            vec![Action::Watch]
        );
        assert_eq!(v.state, VassalState::OnDemand);
        assert_eq!(v.attempts, 0);
        // A crash: throttled, then back to waiting (the socket is kept).
        v.transition(Event::Activated, t, &pol, 0.0);
        v.transition(Event::Spawned { pid: 8 }, t, &pol, 0.0);
        v.transition(Event::Exited { how: "x".into() }, t, &pol, 1.0);
        let VassalState::Throttled { until } = v.state else {
            panic!()
        };
        assert_eq!(
            v.transition(Event::Tick, until, &pol, 0.0),
            vec![Action::Watch]
        );
        // Removal while waiting: forgotten at once.
        assert_eq!(
            v.transition(
                Event::Stop {
                    then: AfterStop::Remove,
                    graceful: true
                },
                t,
                &pol,
                0.0
            ),
            vec![Action::Remove]
        );
    }
}
