//! The two lifecycles of the master, each an enum with one transition function:
//! [`WorkerState`] (one per worker process) and [`Phase`] (the master itself).
//!
//! Transitions that make no sense (e.g. `Ready` after `Exited`) leave the state unchanged and
//! are reported by `debug_assert!` in debug builds: they mean the bookkeeping is wrong.

use liege_sys::spawn::Exit;
use std::time::Instant;

/// Where one worker process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Exec'd, importing the app; not yet reported `Ready`.
    Booting { since: Instant },
    /// Reported `Ready`: app imported, accepting on every listener.
    Ready { since: Instant },
    /// Told to stop accepting and finish what it holds (`GracefulStop`); SIGKILLed at `deadline`.
    Draining { since: Instant, deadline: Instant },
    /// Told to stop now (Stop + SIGINT); SIGKILLed at `deadline` if still alive.
    Stopping { since: Instant, deadline: Instant },
    /// Reaped.
    Exited(Exit),
}

/// What can happen to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEvent {
    Ready(Instant),
    GracefulStop { now: Instant, deadline: Instant },
    Stop { now: Instant, deadline: Instant },
    Exited(Exit),
}

impl WorkerState {
    /// The only place a worker's state changes.
    pub fn next(self, ev: WorkerEvent) -> WorkerState {
        use WorkerEvent as E;
        use WorkerState as S;
        match (self, ev) {
            (S::Exited(e), _) => {
                debug_assert!(false, "event {ev:?} for an exited worker");
                S::Exited(e)
            }
            (_, E::Exited(e)) => S::Exited(e),
            (S::Booting { .. }, E::Ready(t)) => S::Ready { since: t },
            // A duplicate Ready, or Ready racing with our stop request: keep the stop.
            (s @ (S::Ready { .. } | S::Draining { .. } | S::Stopping { .. }), E::Ready(_)) => s,
            (S::Booting { .. } | S::Ready { .. }, E::GracefulStop { now, deadline }) => {
                S::Draining {
                    since: now,
                    deadline,
                }
            }
            (s @ (S::Draining { .. } | S::Stopping { .. }), E::GracefulStop { .. }) => s,
            (S::Booting { .. } | S::Ready { .. }, E::Stop { now, deadline }) => S::Stopping {
                since: now,
                deadline,
            },
            // Escalating a drain to a stop keeps the earlier deadline.
            (S::Draining { deadline: d, .. }, E::Stop { now, deadline }) => S::Stopping {
                since: now,
                deadline: d.min(deadline),
            },
            (s @ S::Stopping { .. }, E::Stop { .. }) => s,
        }
    }

    /// Booting or Ready: this worker counts as (about to be) serving its slot.
    pub fn is_serving(&self) -> bool {
        matches!(
            self,
            WorkerState::Booting { .. } | WorkerState::Ready { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            WorkerState::Booting { .. } => "booting",
            WorkerState::Ready { .. } => "ready",
            WorkerState::Draining { .. } => "draining",
            WorkerState::Stopping { .. } => "stopping",
            WorkerState::Exited(_) => "exited",
        }
    }
}

/// A reload in progress: generation `generation` replaces older workers slot by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    pub generation: u64,
    /// The generation to go back to if the new one fails to boot.
    pub previous: u64,
    /// Slots whose new worker has not been started yet, in order.
    pub pending: std::collections::VecDeque<u32>,
    /// How many new workers may boot at once (`reload_batch`).
    pub batch: u32,
    /// Brutal: old workers were stopped at once instead of after their replacement is ready.
    pub brutal: bool,
    pub started: Instant,
}

/// The master's phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Workers of the active generation are (being) kept alive.
    Running,
    /// A new generation is replacing the old one.
    Reloading(Reload),
    /// Shutting down; `graceful` lets workers finish their requests until `deadline`.
    Stopping { graceful: bool, deadline: Instant },
    /// Every worker is gone; the loop exits.
    Stopped,
}

/// What can happen to the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseEvent {
    ReloadStarted(Reload),
    /// The reload finished (every slot replaced) or was abandoned (new code failed to boot).
    ReloadEnded,
    Stop {
        graceful: bool,
        deadline: Instant,
    },
    AllExited,
}

impl Phase {
    /// The only place the master's phase changes.
    pub fn next(self, ev: PhaseEvent) -> Phase {
        use Phase as P;
        use PhaseEvent as E;
        match (self, ev) {
            (P::Stopped, ev) => {
                debug_assert!(false, "event {ev:?} after Stopped");
                P::Stopped
            }
            // A fast stop overrides a graceful one (second SIGINT, Q after q); never the reverse.
            (
                P::Stopping { graceful, deadline },
                E::Stop {
                    graceful: g2,
                    deadline: d2,
                },
            ) => {
                if graceful && !g2 {
                    P::Stopping {
                        graceful: false,
                        deadline: deadline.min(d2),
                    }
                } else {
                    P::Stopping { graceful, deadline }
                }
            }
            (_, E::Stop { graceful, deadline }) => P::Stopping { graceful, deadline },
            (P::Stopping { .. }, E::AllExited) => P::Stopped,
            (s @ P::Stopping { .. }, e @ (E::ReloadStarted(_) | E::ReloadEnded)) => {
                debug_assert!(false, "{e:?} while stopping");
                s
            }
            (P::Running | P::Reloading(_), E::ReloadStarted(r)) => P::Reloading(r),
            (P::Reloading(_), E::ReloadEnded) => P::Running,
            (s, ev) => {
                debug_assert!(false, "unexpected {ev:?} in {s:?}");
                s
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Reloading(_) => "reloading",
            Phase::Stopping { graceful: true, .. } => "stopping (graceful)",
            Phase::Stopping {
                graceful: false, ..
            } => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn worker_transitions() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let s = WorkerState::Booting { since: t0 };
        let s = s.next(WorkerEvent::Ready(t1));
        assert_eq!(s, WorkerState::Ready { since: t1 });
        let d = t1 + Duration::from_secs(60);
        let s = s.next(WorkerEvent::GracefulStop {
            now: t1,
            deadline: d,
        });
        assert!(matches!(s, WorkerState::Draining { .. }));
        assert!(!s.is_serving());
        // A late Ready does not bring a draining worker back.
        assert_eq!(s.next(WorkerEvent::Ready(t1)), s);
        let s = s.next(WorkerEvent::Stop {
            now: t1,
            deadline: t1 + Duration::from_secs(100),
        });
        assert_eq!(
            s,
            WorkerState::Stopping {
                since: t1,
                deadline: d
            }
        );
        let s = s.next(WorkerEvent::Exited(Exit::Code(0)));
        assert_eq!(s, WorkerState::Exited(Exit::Code(0)));
    }

    #[test]
    fn phase_transitions() {
        let t = Instant::now();
        let r = Reload {
            generation: 1,
            previous: 0,
            pending: [1].into(),
            batch: 1,
            brutal: false,
            started: t,
        };
        let p = Phase::Running.next(PhaseEvent::ReloadStarted(r));
        assert_eq!(p.name(), "reloading");
        let p = p.next(PhaseEvent::ReloadEnded);
        assert_eq!(p, Phase::Running);
        let p = p.next(PhaseEvent::Stop {
            graceful: true,
            deadline: t,
        });
        let p = p.next(PhaseEvent::Stop {
            graceful: false,
            deadline: t,
        });
        assert_eq!(
            p,
            Phase::Stopping {
                graceful: false,
                deadline: t
            }
        );
        // Graceful never downgrades a fast stop.
        let p = p.next(PhaseEvent::Stop {
            graceful: true,
            deadline: t,
        });
        assert!(matches!(
            p,
            Phase::Stopping {
                graceful: false,
                ..
            }
        ));
        assert_eq!(p.next(PhaseEvent::AllExited), Phase::Stopped);
    }
}
