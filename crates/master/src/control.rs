//! The master's control inputs besides signals: the emperor pipe, master FIFOs, touch files,
//! and systemd notifications. Each is parsed here into an [`Action`].

use crate::supervisor::ReloadKind;
use liege_protocol::emperor as ep;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

/// Something the master was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `reread`: parse the configuration again first (false for workers-only reloads).
    Reload {
        kind: ReloadKind,
        reread: bool,
    },
    Stop {
        graceful: bool,
    },
    LogStatus,
    RewritePidfiles,
    ReopenLog,
    RotateLog,
}

/// The meaning of one master-FIFO byte (uWSGI §2.5). Digits are handled by [`Fifos`].
pub fn fifo_action(b: u8) -> Option<Action> {
    use ReloadKind::*;
    Some(match b {
        b'r' => Action::Reload {
            kind: Graceful,
            reread: true,
        },
        b'c' => Action::Reload {
            kind: Chain,
            reread: true,
        },
        b'R' => Action::Reload {
            kind: Brutal,
            reread: true,
        },
        b'w' => Action::Reload {
            kind: Graceful,
            reread: false,
        },
        b'W' => Action::Reload {
            kind: Brutal,
            reread: false,
        },
        b'q' => Action::Stop { graceful: true },
        b'Q' => Action::Stop { graceful: false },
        b's' => Action::LogStatus,
        b'P' => Action::RewritePidfiles,
        b'l' => Action::ReopenLog,
        b'L' => Action::RotateLog,
        _ => return None,
    })
}

/// The meaning of one byte from the emperor (uWSGI §7.4).
pub fn emperor_action(b: u8) -> Option<Action> {
    match b {
        ep::TO_VASSAL_STOP => Some(Action::Stop { graceful: false }),
        ep::TO_VASSAL_RELOAD => Some(Action::Reload {
            kind: ReloadKind::Graceful,
            reread: true,
        }),
        ep::TO_VASSAL_GRACEFUL_STOP => Some(Action::Stop { graceful: true }),
        _ => None,
    }
}

/// The master FIFOs. Only the active one is read; digits switch the active slot.
pub struct Fifos {
    paths: Vec<PathBuf>,
    /// (read end, our own write end that keeps the FIFO from reporting EOF).
    open: Vec<Option<(File, File)>>,
    active: usize,
}

impl Fifos {
    pub fn create(paths: &[PathBuf]) -> Fifos {
        let mut open = Vec::new();
        for p in paths {
            let r = liege_sys::make_fifo(p).and_then(|()| {
                let r = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p)?;
                let w = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p)?;
                Ok((r, w))
            });
            match r {
                Ok(pair) => {
                    tracing::info!("master fifo {} ready", p.display());
                    open.push(Some(pair));
                }
                Err(e) => {
                    tracing::error!("master-fifo {}: {e}", p.display());
                    open.push(None);
                }
            }
        }
        Fifos {
            paths: paths.to_vec(),
            open,
            active: 0,
        }
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.open
            .get(self.active)
            .and_then(|o| o.as_ref())
            .map(|(r, _)| r.as_raw_fd())
    }

    /// Read pending command bytes and turn them into actions.
    pub fn read(&mut self) -> Vec<Action> {
        let Some(Some((r, _))) = self.open.get(self.active) else {
            return Vec::new();
        };
        let mut buf = [0u8; 256];
        let mut bytes = Vec::new();
        while let Ok(n @ 1..) = nix::unistd::read(r, &mut buf) {
            bytes.extend_from_slice(&buf[..n]);
        }
        let mut out = Vec::new();
        for b in bytes {
            if b.is_ascii_digit() {
                let slot = (b - b'0') as usize;
                if slot < self.paths.len() {
                    tracing::info!("master fifo: slot {slot} is now active");
                    self.active = slot;
                }
                continue;
            }
            match fifo_action(b) {
                Some(a) => {
                    tracing::info!("master fifo command {:?}: {a:?}", b as char);
                    out.push(a);
                }
                None if b.is_ascii_whitespace() => {}
                None => tracing::warn!("master fifo: unknown command {:?}", b as char),
            }
        }
        out
    }

    pub fn remove(&self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `touch-reload`-style files: fire when the mtime (whole seconds) increases, when a missing
/// file appears, and once when it disappears (uWSGI §2.6).
#[derive(Debug)]
pub struct Touch {
    pub path: PathBuf,
    pub action: Action,
    last: Option<u64>,
}

fn mtime_secs(p: &std::path::Path) -> Option<u64> {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

impl Touch {
    pub fn new(path: PathBuf, action: Action) -> Touch {
        let last = mtime_secs(&path);
        Touch { path, action, last }
    }

    /// Whether the file changed since the last check.
    pub fn check(&mut self) -> bool {
        let now = mtime_secs(&self.path);
        let fired = match (self.last, now) {
            (Some(a), Some(b)) => b > a,
            (None, Some(_)) | (Some(_), None) => true,
            (None, None) => false,
        };
        self.last = now;
        fired
    }
}

/// Write one byte to the emperor (non-blocking; a full pipe drops heartbeats, never blocks).
pub fn emperor_send(fd: RawFd, b: u8) {
    liege_sys::fd::send_byte(fd, b);
}

/// systemd notifications; a no-op unless `NOTIFY_SOCKET` is set (and we are no vassal).
pub struct Notify {
    pub enabled: bool,
}

impl Notify {
    pub fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(states) {
                tracing::warn!("sd_notify: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_emperor_bytes() {
        assert_eq!(
            fifo_action(b'c'),
            Some(Action::Reload {
                kind: ReloadKind::Chain,
                reread: true
            })
        );
        assert_eq!(fifo_action(b'q'), Some(Action::Stop { graceful: true }));
        assert_eq!(fifo_action(b'Q'), Some(Action::Stop { graceful: false }));
        assert_eq!(fifo_action(b'?'), None);
        assert_eq!(emperor_action(0), Some(Action::Stop { graceful: false }));
        assert_eq!(emperor_action(2), Some(Action::Stop { graceful: true }));
        assert!(matches!(emperor_action(1), Some(Action::Reload { .. })));
        assert_eq!(emperor_action(9), None);
    }

    #[test]
    fn touch_fires_on_newer_mtime_appear_and_disappear() {
        let d = std::env::temp_dir().join(format!("liege-touch-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("t");
        let mut t = Touch::new(p.clone(), Action::LogStatus);
        assert!(!t.check());
        std::fs::write(&p, "").unwrap();
        assert!(t.check(), "appeared");
        assert!(!t.check());
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(t.check(), "newer mtime");
        std::fs::remove_file(&p).unwrap();
        assert!(t.check(), "disappeared");
        assert!(!t.check());
        let _ = std::fs::remove_dir_all(&d);
    }
}
