//! Spawning a vassal: fork+exec of liege itself (or `emperor-wrapper`) with uWSGI's argv
//! (§7.3), the vassal's directory as cwd, a socketpair end as `UWSGI_EMPEROR_FD`, stdin on
//! /dev/null, and in the child only async-signal-safe calls (groups/gid/uid in tyrant mode,
//! then `PR_SET_PDEATHSIG(SIGKILL)`) before exec. argv, environment and the group list are
//! all prepared before the fork.

use liege_config::EmperorConfig;
use liege_protocol::emperor::EMPEROR_FD_ENV;
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Everything shared by every spawn: binary, template arguments, environment.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// `emperor-wrapper`, or liege itself.
    pub program: PathBuf,
    /// Arguments before `--ini NAME`.
    pub before: Vec<OsString>,
    /// Arguments after `--ini NAME`.
    pub after: Vec<OsString>,
    /// The vassals' environment (without `UWSGI_EMPEROR_FD`).
    pub env: Vec<(OsString, OsString)>,
    /// Extensions passed with `--config` instead of `--ini`.
    pub extra_extensions: Vec<String>,
}

/// Who a vassal runs as in tyrant mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups of the owner (`getgrouplist`), primary group included.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// The owner's identity: primary gid from the file, supplementary groups from the user
    /// database (like `initgroups`, computed here because the child may not read files).
    pub fn for_owner(uid: u32, gid: u32) -> Credentials {
        let mut groups = vec![gid];
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            if let Ok(name) = CString::new(user.name) {
                if let Ok(list) = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid))
                {
                    groups = list.into_iter().map(|g| g.as_raw()).collect();
                }
            }
        }
        Credentials { uid, gid, groups }
    }
}

impl Launcher {
    /// Build from the emperor configuration and the emperor's own environment.
    pub fn new(
        cfg: &EmperorConfig,
        cwd: &Path,
        env: impl Iterator<Item = (OsString, OsString)>,
    ) -> Self {
        let program = cfg
            .wrapper
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("liege"));
        let abs = |p: &PathBuf| -> OsString { cwd.join(p).into_os_string() };
        let mut before = Vec::new();
        for t in &cfg.vassals_inherit_before {
            before.push("--inherit".into());
            before.push(abs(t));
        }
        for t in &cfg.vassals_include_before {
            before.push("--include".into());
            before.push(abs(t));
        }
        for kv in &cfg.vassal_set {
            before.push("--set".into());
            before.push(kv.into());
        }
        let mut after = Vec::new();
        for t in &cfg.vassals_inherit {
            after.push("--inherit".into());
            after.push(abs(t));
        }
        for t in &cfg.vassals_include {
            after.push("--include".into());
            after.push(abs(t));
        }
        Launcher {
            program,
            before,
            after,
            env: vassal_env(env),
            extra_extensions: cfg.extra_extensions.clone(),
        }
    }

    /// The arguments (without argv[0]) for the vassal file `file`, named as `name`
    /// (the bare file name to spawn from its directory, the absolute path to validate).
    pub fn args(&self, file: &Path, name: &OsString) -> Vec<OsString> {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        let flag = if ext == "ini" { "--ini" } else { "--config" };
        let mut a = self.before.clone();
        a.push(flag.into());
        a.push(name.clone());
        a.extend(self.after.iter().cloned());
        a
    }

    /// Spawn the vassal for `file`. Returns the child and the emperor's end of the pipe.
    pub fn spawn(
        &self,
        file: &Path,
        creds: Option<&Credentials>,
        on_demand: Option<&OwnedFd>,
    ) -> std::io::Result<(tokio::process::Child, UnixStream)> {
        let dir = file.parent().unwrap_or(Path::new("/"));
        let name: OsString = file.file_name().unwrap_or(file.as_os_str()).to_os_string();
        let (ours, theirs) = UnixStream::pair()?;
        let theirs: OwnedFd = theirs.into();
        let fd = theirs.as_raw_fd();
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(self.args(file, &name))
            .current_dir(dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(EMPEROR_FD_ENV, fd.to_string())
            .kill_on_drop(false);
        // stdin: /dev/null, or the on-demand listening socket (the vassal adopts fd 0).
        match on_demand {
            Some(fd) => cmd.stdin(std::process::Stdio::from(fd.try_clone()?)),
            None => cmd.stdin(std::process::Stdio::null()),
        };
        // stderr: a pipe the emperor relays to its own stderr, remembering the last error
        // line so the status can name why a vassal died (`watch_child`).
        cmd.stderr(std::process::Stdio::piped());
        let parent = std::process::id() as libc::pid_t;
        let creds = creds.cloned();
        let groups: Vec<libc::gid_t> = creds.as_ref().map(|c| c.groups.clone()).unwrap_or_default();
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (fcntl, setgroups, setgid, setuid, prctl, getppid);
        // it allocates nothing (the group list and ids were prepared before the fork) and
        // touches no lock.
        unsafe {
            cmd.pre_exec(move || {
                // The vassal's end of the pipe survives exec; every other fd is CLOEXEC.
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(c) = &creds {
                    if libc::setgroups(groups.len(), groups.as_ptr()) == -1
                        || libc::setgid(c.gid) == -1
                        || libc::setuid(c.uid) == -1
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // After the credential change, which clears the death signal.
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The emperor may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("emperor died during spawn"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(theirs);
        Ok((child, ours))
    }
}

/// The environment every vassal gets (§7.3): the emperor's, minus `NOTIFY_SOCKET`,
/// `UWSGI_RELOADS`, the systemd watchdog and socket-activation variables, with
/// `UWSGI_VASSAL_X` renamed to `UWSGI_X`.
pub fn vassal_env(env: impl Iterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    const DROP: &[&str] = &[
        "NOTIFY_SOCKET",
        "UWSGI_RELOADS",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        EMPEROR_FD_ENV,
    ];
    let mut out: Vec<(OsString, OsString)> = Vec::new();
    let mut renamed = Vec::new();
    for (k, v) in env {
        let ks = k.to_string_lossy();
        if DROP.contains(&ks.as_ref()) {
            continue;
        }
        if let Some(rest) = ks.strip_prefix("UWSGI_VASSAL_") {
            if !rest.is_empty() {
                renamed.push((OsString::from(format!("UWSGI_{rest}")), v));
            }
            continue;
        }
        out.push((k, v));
    }
    // A renamed variable wins over one the emperor itself had under that name.
    for (k, v) in renamed {
        out.retain(|(x, _)| x != &k);
        out.push((k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_rules() {
        let env = [
            ("PATH", "/bin"),
            ("NOTIFY_SOCKET", "/run/x"),
            ("UWSGI_RELOADS", "3"),
            ("UWSGI_VASSAL_PROCESSES", "4"),
            ("UWSGI_PROCESSES", "1"),
            ("UWSGI_FOO", "bar"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let out = vassal_env(env.into_iter());
        let s: Vec<(String, String)> = out
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect();
        assert_eq!(
            s,
            vec![
                ("PATH".into(), "/bin".into()),
                ("UWSGI_FOO".into(), "bar".into()),
                ("UWSGI_PROCESSES".into(), "4".into()),
            ]
        );
    }

    #[test]
    fn argv_order_matches_uwsgi() {
        let cfg = EmperorConfig {
            vassals_include: vec!["inc.ini".into()],
            vassals_include_before: vec!["/t/incb.ini".into()],
            vassals_inherit: vec!["/t/inh.ini".into()],
            vassals_inherit_before: vec!["/t/inhb.ini".into()],
            vassal_set: vec!["a=b".into()],
            wrapper: Some("/usr/bin/uwsgi".into()),
            ..EmperorConfig::default()
        };
        let l = Launcher::new(&cfg, Path::new("/etc"), std::iter::empty());
        let a = l.args(Path::new("/v/app.ini"), &"app.ini".into());
        let a: Vec<&str> = a.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            a,
            [
                "--inherit",
                "/t/inhb.ini",
                "--include",
                "/t/incb.ini",
                "--set",
                "a=b",
                "--ini",
                "app.ini",
                "--inherit",
                "/t/inh.ini",
                "--include",
                "/etc/inc.ini"
            ]
        );
        assert_eq!(l.program, PathBuf::from("/usr/bin/uwsgi"));
    }
}
