//! Spawning a vassal: fork+exec of liege itself (or `emperor-wrapper`) with uWSGI's argv
//! (§7.3), the vassal's directory as cwd, a socketpair end as `UWSGI_EMPEROR_FD`, stdin on
//! /dev/null, and in the child only the async-signal-safe setup of `liege_sys::spawn::PreExec`
//! (groups/gid/uid in tyrant mode, then `PR_SET_PDEATHSIG(SIGKILL)`) before exec. argv,
//! environment and the group list are all prepared before the fork.

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
    /// `program` is an `emperor-wrapper` (uWSGI), not liege.
    pub wrapped: bool,
    /// Arguments before `--ini NAME`.
    pub before: Vec<OsString>,
    /// Arguments after `--ini NAME`.
    pub after: Vec<OsString>,
    /// The vassals' environment (without `UWSGI_EMPEROR_FD`).
    pub env: Vec<(OsString, OsString)>,
    /// Extensions passed with `--config` instead of `--ini`.
    pub extra_extensions: Vec<String>,
    /// Our own executable, for the config checks (opened at start).
    pub exe: Option<std::sync::Arc<liege_sys::spawn::SelfExe>>,
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
            wrapped: cfg.wrapper.is_some(),
            program,
            before,
            after,
            env: vassal_env(env),
            extra_extensions: cfg.extra_extensions.clone(),
            exe: liege_sys::spawn::SelfExe::open()
                .ok()
                .map(std::sync::Arc::new),
        }
    }

    /// The signal a vassal gets when the emperor dies (PR_SET_PDEATHSIG). A liege master
    /// takes SIGKILL: its workers have their own death signal and a guard for its group.
    /// A wrapper (uWSGI) gets SIGINT, its "kill the whole stack now": a SIGKILLed uWSGI
    /// master leaves its workers orphaned, spinning on the closed master pipe.
    fn death_signal(&self) -> i32 {
        if self.wrapped {
            libc::SIGINT
        } else {
            libc::SIGKILL
        }
    }

    /// The environment entry that hands `file` (kept open across exec) to a liege vassal.
    fn handed(file: &OwnedFd) -> (OsString, OsString) {
        (
            liege_config::source::VASSAL_FILE_FD_ENV.into(),
            file.as_raw_fd().to_string().into(),
        )
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
    /// `checked` (tyrant mode): the directory the emperor opened and checked, entered with
    /// `fchdir` so that a path swapped since cannot change where the vassal starts, and the
    /// opened file itself, which a liege vassal parses instead of opening the name again.
    pub fn spawn(
        &self,
        file: &Path,
        creds: Option<&Credentials>,
        checked: Option<(&OwnedFd, &OwnedFd)>,
        on_demand: Option<&OwnedFd>,
    ) -> std::io::Result<(Proc, UnixStream)> {
        let dir = checked.map(|(d, _)| d);
        let name: OsString = file.file_name().unwrap_or(file.as_os_str()).to_os_string();
        // Non-tyrant: the file's directory as named (symlinks followed, as uWSGI does).
        let opened;
        let cwd = match dir {
            Some(d) => d.as_raw_fd(),
            None => {
                opened = std::fs::File::open(file.parent().unwrap_or(Path::new("/")))?;
                opened.as_raw_fd()
            }
        };
        let (ours, theirs) = UnixStream::pair()?;
        let theirs: OwnedFd = theirs.into();
        let fd = theirs.as_raw_fd();
        let mut argv: Vec<OsString> = vec![self.program.clone().into_os_string()];
        argv.extend(self.args(file, &name));
        let mut env = self.env.clone();
        env.push((EMPEROR_FD_ENV.into(), fd.to_string().into()));
        let mut keep = vec![fd];
        if let Some(c) = creds {
            // A liege vassal refuses its file unless this uid owns it (docs/security.md).
            env.push((
                liege_config::source::VASSAL_OWNER_ENV.into(),
                c.uid.to_string().into(),
            ));
            if let Some((_, f)) = checked.filter(|_| !self.wrapped) {
                keep.push(f.as_raw_fd());
                env.push(Self::handed(f));
            }
        }
        let pre = liege_sys::spawn::PreExec {
            // The vassal's end of the pipe (and the checked file) survive exec; every other
            // fd is CLOEXEC.
            keep,
            cwd: Some(cwd),
            creds: creds.map(Credentials::child),
            limits: Default::default(),
            pdeathsig: Some(self.death_signal()),
            parent: Some(std::process::id() as libc::pid_t),
        };
        // stderr: a pipe the emperor relays to its own stderr, remembering the last error
        // line so the status can name why a vassal died (`watch_child`).
        let (err_rd, err_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // stdin: /dev/null, or the on-demand listening socket (the vassal adopts fd 0).
        let stdio = liege_sys::spawn::ChildStdio {
            stdin: on_demand.map(|f| f.as_raw_fd()),
            stderr: Some(err_wr.as_raw_fd()),
            ..Default::default()
        };
        let pid = liege_sys::spawn::spawn_exec(
            liege_sys::spawn::Program::Path(&self.program),
            &argv,
            &env,
            stdio,
            &pre,
        )?;
        drop(theirs);
        drop(err_wr);
        let mut proc = Proc::new(pid)?;
        proc.stderr = Some(err_rd);
        Ok((proc, ours))
    }

    /// Start the check of a tyrant vassal's file: `liege --check` run as the file's owner in
    /// the checked directory, with resource limits, so that everything the file makes the
    /// parser read is read with the owner's rights and a stall or a blow-up costs only that
    /// child. stdout is discarded; the errors come back on the returned pipe (its stderr).
    pub fn spawn_check(
        &self,
        file: &Path,
        creds: &Credentials,
        dir: &OwnedFd,
        opened: &OwnedFd,
    ) -> std::io::Result<(Proc, OwnedFd)> {
        let name: OsString = file.file_name().unwrap_or(file.as_os_str()).to_os_string();
        let mut argv: Vec<OsString> = vec!["liege".into()];
        argv.extend(self.args(file, &name));
        argv.push("--check".into());
        let mut env = self.env.clone();
        env.push((
            liege_config::source::VASSAL_OWNER_ENV.into(),
            creds.uid.to_string().into(),
        ));
        env.push(Self::handed(opened));
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let devnull = std::fs::File::options().write(true).open("/dev/null")?;
        let pre = liege_sys::spawn::PreExec {
            keep: vec![opened.as_raw_fd()],
            cwd: Some(dir.as_raw_fd()),
            creds: Some(creds.child()),
            limits: liege_sys::spawn::ChildLimits {
                address_space: Some(1 << 30),
                cpu_secs: Some(CHECK_CPU_SECS),
                file_size: Some(0),
            },
            pdeathsig: Some(libc::SIGKILL),
            parent: Some(std::process::id() as libc::pid_t),
        };
        let stdio = liege_sys::spawn::ChildStdio {
            stdin: None,
            stdout: Some(devnull.as_raw_fd()),
            stderr: Some(wr.as_raw_fd()),
        };
        let exe = self
            .exe
            .as_deref()
            .ok_or_else(|| std::io::Error::other("cannot open /proc/self/exe"))?;
        let pid = liege_sys::spawn::spawn_exec(
            liege_sys::spawn::Program::SelfExe(exe),
            &argv,
            &env,
            stdio,
            &pre,
        )?;
        drop(wr);
        Ok((Proc::new(pid)?, rd))
    }
}

/// A child of the emperor (vassal or config check), awaited through its pidfd and reaped by
/// `waitpid` on that pid only.
pub struct Proc {
    pub pid: i32,
    pidfd: tokio::io::unix::AsyncFd<OwnedFd>,
    done: Option<std::process::ExitStatus>,
    /// The read end of the vassal's stderr pipe (vassals only), for the caller to relay.
    pub stderr: Option<OwnedFd>,
}

impl Proc {
    fn new(pid: i32) -> std::io::Result<Proc> {
        let registered = liege_sys::spawn::pidfd_open(pid).and_then(|fd| {
            // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open, and is the
            // same descriptor, until the AsyncFd is dropped with the Proc.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            }
            .map_err(std::io::Error::from)
        });
        match registered {
            Ok(pidfd) => Ok(Proc {
                pid,
                pidfd,
                done: None,
                stderr: None,
            }),
            Err(e) => {
                // Not watchable: do not leave it running unsupervised.
                liege_sys::spawn::kill(pid, libc::SIGKILL);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                Err(e)
            }
        }
    }

    /// Wait for the exit (cancel-safe: the status is kept once seen).
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        loop {
            if let Some(s) = self.done {
                return Ok(s);
            }
            if let Some(raw) = liege_sys::spawn::try_wait(self.pid)? {
                self.done = Some(std::process::ExitStatus::from_raw(raw));
                continue;
            }
            let mut ready = self.pidfd.readable().await?;
            ready.clear_ready();
        }
    }

    /// SIGKILL, unless already reaped (the pid could be someone else's by then).
    pub fn kill(&self) {
        if self.done.is_none() {
            liege_sys::spawn::kill(self.pid, libc::SIGKILL);
        }
    }
}

/// CPU seconds a config check may use.
pub const CHECK_CPU_SECS: u64 = 5;

impl Credentials {
    fn child(&self) -> liege_sys::spawn::ChildCreds {
        liege_sys::spawn::ChildCreds {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        }
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
