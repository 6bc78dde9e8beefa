//! Attached daemons (uWSGI §6.1) and cron jobs (§6.2), run by the master through
//! `/bin/sh -c` in their own session so the whole process group can be signalled.
//!
//! - Dumb daemons (`attach-daemon`, `attach-daemon2` without pidfile) are respawned when they
//!   exit (throttled when they die within 3 s), stopped on reload and on stop (stop signal to
//!   the group, SIGKILL after `reload-mercy` or 3 s) and started again after a reload.
//! - `attach-control-daemon`: its death stops the instance gracefully.
//! - Smart daemons (`smart-attach-daemon[2]`) are found through their pidfile, adopted if
//!   alive, respawned when dead, and survive reloads and stops; `reload_signal` is sent to
//!   them on reload.
//! - Cron: integer fields (−1 every, −N every N), mday/wday ORed when both set, at most once
//!   per 60 s, `unique` skips while the previous run is alive, `cron-harakiri` kills the group.

use crate::control::Touch;
use liege_config::{CronField, CronSpec, DaemonSpec};
use liege_sys::spawn::{kill_group, spawn_shell, CommandOpts, Exit};
use std::time::{Duration, Instant};

/// A daemon that dies this soon after its start is throttled.
const QUICK_DEATH: Duration = Duration::from_secs(3);
/// How long a dumb daemon may take to stop when `reload-mercy` is unset.
const DEFAULT_STOP_MERCY: Duration = Duration::from_secs(3);
/// Ticks to wait for a smart daemon to write its pidfile before spawning it again.
const SMART_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Daemon {
    spec: DaemonSpec,
    pid: Option<i32>,
    spawned_at: Option<Instant>,
    not_before: Option<Instant>,
    quick_deaths: u32,
    respawns: u64,
    touches: Vec<Touch>,
}

impl Daemon {
    fn new(spec: DaemonSpec) -> Daemon {
        let touches = spec
            .touch
            .iter()
            .map(|p| Touch::new(p.clone(), crate::control::Action::LogStatus))
            .collect();
        Daemon {
            spec,
            pid: None,
            spawned_at: None,
            not_before: None,
            quick_deaths: 0,
            respawns: 0,
            touches,
        }
    }
    fn smart(&self) -> bool {
        self.spec.pidfile.is_some()
    }
}

/// A dumb daemon being stopped (reload or shutdown).
#[derive(Debug)]
struct Retiring {
    pid: i32,
    deadline: Instant,
    killed: bool,
}

pub struct Daemons {
    list: Vec<Daemon>,
    retiring: Vec<Retiring>,
    env: Vec<(String, String)>,
    mercy: Duration,
    stopped: bool,
}

fn read_pidfile(p: &std::path::Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
    liege_sys::pid_exists(pid).then_some(pid)
}

impl Daemons {
    pub fn new(
        specs: &[DaemonSpec],
        env: Vec<(String, String)>,
        mercy: Option<Duration>,
    ) -> Daemons {
        Daemons {
            list: specs.iter().cloned().map(Daemon::new).collect(),
            retiring: Vec::new(),
            env,
            mercy: mercy.unwrap_or(DEFAULT_STOP_MERCY),
            stopped: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.retiring.is_empty()
    }

    fn spawn(&mut self, i: usize, now: Instant) {
        let d = &mut self.list[i];
        let opts = CommandOpts {
            setsid: true,
            pdeathsig: if d.smart() { None } else { Some(libc::SIGKILL) },
            chdir: d.spec.chdir.clone(),
            uid: d.spec.uid,
            gid: d.spec.gid,
            keep_stdin: d.spec.keep_stdin,
        };
        match spawn_shell(&d.spec.command, &self.env, &opts) {
            Ok(pid) => {
                if d.spawned_at.is_some() {
                    d.respawns += 1;
                }
                tracing::info!("spawned daemon {:?} (pid {pid})", d.spec.command);
                d.pid = Some(pid);
                d.spawned_at = Some(now);
                if d.spec.managed_pidfile {
                    if let Some(p) = &d.spec.pidfile {
                        let _ = liege_sys::pidfile::write(p, pid as u32);
                    }
                }
            }
            Err(e) => {
                tracing::error!("could not spawn daemon {:?}: {e}", d.spec.command);
                d.not_before = Some(now + Duration::from_secs(1));
            }
        }
    }

    /// Start, adopt and respawn daemons; stop retiring ones past their deadline.
    pub fn tick(&mut self, now: Instant) {
        for r in &mut self.retiring {
            if !r.killed && now >= r.deadline {
                tracing::warn!("daemon pid {} did not stop in time: SIGKILL", r.pid);
                kill_group(r.pid, libc::SIGKILL);
                r.killed = true;
            }
        }
        if self.stopped || !self.retiring.is_empty() {
            return;
        }
        for i in 0..self.list.len() {
            let d = &mut self.list[i];
            let mut touched = false;
            for t in &mut d.touches {
                // Check every file (each remembers its own mtime).
                touched |= t.check();
            }
            if touched {
                if let Some(pid) = d.pid {
                    tracing::info!(
                        "daemon {:?} touched: signal {}",
                        d.spec.command,
                        d.spec.stop_signal
                    );
                    kill_group(pid, d.spec.stop_signal);
                }
            }
            if d.not_before.is_some_and(|t| now < t) {
                continue;
            }
            if let Some(pidfile) = d.spec.pidfile.clone() {
                if let Some(pid) = read_pidfile(&pidfile) {
                    if d.pid != Some(pid) {
                        tracing::info!(
                            "daemon {:?}: found a live pid {pid} in {}",
                            d.spec.command,
                            pidfile.display()
                        );
                    }
                    d.pid = Some(pid);
                    continue;
                }
                let waiting = d
                    .spawned_at
                    .is_some_and(|t| now.duration_since(t) < SMART_GRACE);
                if !waiting {
                    self.spawn(i, now);
                }
            } else if d.pid.is_none() {
                self.spawn(i, now);
            }
        }
    }

    /// A child was reaped; returns (handled, control daemon died).
    pub fn on_exit(&mut self, pid: i32, exit: Exit, now: Instant) -> (bool, bool) {
        if let Some(i) = self.retiring.iter().position(|r| r.pid == pid) {
            self.retiring.remove(i);
            tracing::info!("daemon pid {pid} stopped: {exit}");
            return (true, false);
        }
        let Some(d) = self.list.iter_mut().find(|d| d.pid == Some(pid)) else {
            return (false, false);
        };
        if d.smart() && !d.spec.managed_pidfile {
            // The launcher of a self-daemonizing command exited; the pidfile tells the rest.
            return (true, false);
        }
        d.pid = None;
        tracing::warn!("daemon {:?} (pid {pid}) exited: {exit}", d.spec.command);
        if d.spec.control && !self.stopped {
            tracing::error!(
                "control daemon {:?} died: stopping the instance",
                d.spec.command
            );
            return (true, true);
        }
        let quick = d
            .spawned_at
            .is_some_and(|t| now.duration_since(t) < QUICK_DEATH);
        if quick {
            d.quick_deaths += 1;
            let cap = d.spec.max_throttle.unwrap_or(Duration::from_secs(300));
            let delay = Duration::from_secs(d.quick_deaths as u64).min(cap);
            tracing::warn!(
                "daemon {:?} died quickly: respawn throttled by {}s",
                d.spec.command,
                delay.as_secs()
            );
            d.not_before = Some(now + delay);
        } else {
            d.quick_deaths = 0;
            d.not_before = None;
        }
        (true, false)
    }

    fn retire_dumb(&mut self, now: Instant) {
        for d in &mut self.list {
            if d.smart() {
                continue;
            }
            if let Some(pid) = d.pid.take() {
                kill_group(pid, d.spec.stop_signal);
                self.retiring.push(Retiring {
                    pid,
                    deadline: now + self.mercy,
                    killed: false,
                });
            }
        }
    }

    /// Reload: dumb daemons are stopped and started again (with the new list) once gone;
    /// smart daemons get their reload signal and keep running.
    pub fn reload(&mut self, specs: &[DaemonSpec], now: Instant) {
        self.retire_dumb(now);
        let mut next: Vec<Daemon> = Vec::new();
        for spec in specs {
            let old = self
                .list
                .iter()
                .position(|d| d.smart() && d.spec.command == spec.command);
            match old {
                Some(i) => {
                    let mut d = self.list.remove(i);
                    if let (Some(pid), Some(sig)) = (d.pid, spec.reload_signal) {
                        kill_group(pid, sig);
                    }
                    d.spec = spec.clone();
                    next.push(d);
                }
                None => next.push(Daemon::new(spec.clone())),
            }
        }
        self.list = next;
    }

    /// Stop: dumb daemons get their stop signal; smart ones survive.
    pub fn stop(&mut self, now: Instant) {
        if !self.stopped {
            self.stopped = true;
            self.retire_dumb(now);
        }
    }

    /// Whether every stopped daemon is gone.
    pub fn all_stopped(&self) -> bool {
        self.retiring.is_empty()
    }

    /// Last resort at exit.
    pub fn kill_remaining(&mut self) {
        for r in self.retiring.drain(..) {
            kill_group(r.pid, libc::SIGKILL);
        }
    }

    /// (command, pid, respawns) for the stats server.
    pub fn stats(&self) -> Vec<(String, i32, u64)> {
        self.list
            .iter()
            .map(|d| (d.spec.command.clone(), d.pid.unwrap_or(0), d.respawns))
            .collect()
    }
}

/// The local time fields cron matches on: (minute, hour, mday, month 1-12, wday 0-6).
pub fn local_fields() -> (u32, u32, u32, u32, u32) {
    liege_sys::local_time_fields()
}

fn field_matches(f: CronField, v: u32, is_wday: bool) -> bool {
    match f {
        CronField::Any => true,
        CronField::Every(n) => n == 0 || v % n == 0,
        CronField::At(x) => x == v || (is_wday && x == 7 && v == 0),
    }
}

/// uWSGI's cron rule: all fields ANDed, except mday/wday ORed when both are set.
pub fn cron_matches(
    s: &CronSpec,
    (min, hour, mday, month, wday): (u32, u32, u32, u32, u32),
) -> bool {
    let day = match (s.mday, s.wday) {
        (CronField::At(_), CronField::At(_)) => {
            field_matches(s.mday, mday, false) || field_matches(s.wday, wday, true)
        }
        _ => field_matches(s.mday, mday, false) && field_matches(s.wday, wday, true),
    };
    field_matches(s.minute, min, false)
        && field_matches(s.hour, hour, false)
        && field_matches(s.month, month, false)
        && day
}

struct CronJob {
    spec: CronSpec,
    last_run: Option<Instant>,
    running: Vec<(i32, Instant)>,
}

pub struct Cron {
    jobs: Vec<CronJob>,
    env: Vec<(String, String)>,
    harakiri: Option<Duration>,
}

impl Cron {
    pub fn new(specs: &[CronSpec], env: Vec<(String, String)>, harakiri: Option<Duration>) -> Cron {
        Cron {
            jobs: specs
                .iter()
                .cloned()
                .map(|spec| CronJob {
                    spec,
                    last_run: None,
                    running: Vec::new(),
                })
                .collect(),
            env,
            harakiri,
        }
    }

    /// Reload: the new list; jobs with the same command keep their last run.
    pub fn reload(&mut self, specs: &[CronSpec], harakiri: Option<Duration>) {
        let mut next = Cron::new(specs, self.env.clone(), harakiri);
        for j in &mut next.jobs {
            if let Some(old) = self
                .jobs
                .iter_mut()
                .find(|o| o.spec.command == j.spec.command)
            {
                j.last_run = old.last_run;
                j.running = std::mem::take(&mut old.running);
            }
        }
        *self = next;
    }

    pub fn tick(&mut self, now: Instant, fields: (u32, u32, u32, u32, u32)) {
        for j in &mut self.jobs {
            let limit = match j.spec.harakiri.or(self.harakiri) {
                Some(d) if !d.is_zero() => Some(d),
                _ => None,
            };
            if let Some(limit) = limit {
                for (pid, started) in &j.running {
                    if now.duration_since(*started) >= limit {
                        tracing::warn!(
                            "cron {:?} (pid {pid}) over its harakiri: SIGKILL",
                            j.spec.command
                        );
                        kill_group(*pid, libc::SIGKILL);
                    }
                }
            }
            if !cron_matches(&j.spec, fields) {
                continue;
            }
            if j.last_run
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
            {
                continue;
            }
            if j.spec.unique && !j.running.is_empty() {
                continue;
            }
            j.last_run = Some(now);
            let opts = CommandOpts {
                setsid: true,
                ..CommandOpts::default()
            };
            match spawn_shell(&j.spec.command, &self.env, &opts) {
                Ok(pid) => {
                    tracing::info!("cron: running {:?} (pid {pid})", j.spec.command);
                    j.running.push((pid, now));
                }
                Err(e) => tracing::error!("cron {:?}: {e}", j.spec.command),
            }
        }
    }

    /// A child was reaped; true if it was a cron job.
    pub fn on_exit(&mut self, pid: i32, exit: Exit) -> bool {
        for j in &mut self.jobs {
            if let Some(i) = j.running.iter().position(|(p, _)| *p == pid) {
                j.running.remove(i);
                tracing::info!("cron {:?} (pid {pid}) finished: {exit}", j.spec.command);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: CronField, mday: CronField, wday: CronField) -> CronSpec {
        CronSpec {
            minute: min,
            hour: CronField::Any,
            mday,
            month: CronField::Any,
            wday,
            command: "true".into(),
            unique: false,
            harakiri: None,
        }
    }

    #[test]
    fn cron_fields() {
        let every = spec(CronField::Any, CronField::Any, CronField::Any);
        assert!(cron_matches(&every, (7, 3, 1, 1, 0)));
        let every5 = spec(CronField::Every(5), CronField::Any, CronField::Any);
        assert!(cron_matches(&every5, (10, 3, 1, 1, 0)));
        assert!(!cron_matches(&every5, (11, 3, 1, 1, 0)));
        // mday and wday both set: ORed.
        let or = spec(CronField::Any, CronField::At(15), CronField::At(1));
        assert!(cron_matches(&or, (0, 0, 15, 1, 3)));
        assert!(cron_matches(&or, (0, 0, 2, 1, 1)));
        assert!(!cron_matches(&or, (0, 0, 2, 1, 3)));
        // Sunday as 7.
        let sun = spec(CronField::Any, CronField::Any, CronField::At(7));
        assert!(cron_matches(&sun, (0, 0, 2, 1, 0)));
    }
}
