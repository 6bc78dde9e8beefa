//! fork+exec of our own binary. Everything the child needs (argv, envp, fd lists) is prepared
//! before `fork`; the child branch only makes async-signal-safe calls and then execs.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Our own executable, opened with `O_PATH` at start so that a package upgrade replacing the
/// file on disk (or a chroot hiding it) cannot change what the workers run.
#[derive(Debug)]
pub struct SelfExe {
    fd: OwnedFd,
}

impl SelfExe {
    pub fn open() -> io::Result<SelfExe> {
        let path = CString::new("/proc/self/exe").expect("no NUL");
        // SAFETY: `path` is a valid NUL-terminated string; the returned fd is owned by us.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(SelfExe {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }
}

/// What a child gets besides argv/envp.
#[derive(Debug, Default)]
pub struct ChildFds<'a> {
    /// Descriptors to inherit under the same number (CLOEXEC cleared in the child only).
    pub inherit: &'a [RawFd],
    /// If set, the child's stdout and stderr are this fd (e.g. the master's log pipe).
    pub stdio: Option<RawFd>,
    /// Signal the child gets when the (single-threaded) parent dies.
    pub pdeathsig: Option<i32>,
}

/// `KEY=value` strings for execve, allocated before fork.
fn env_cstrings(env: &[(String, String)]) -> io::Result<Vec<CString>> {
    env.iter()
        .map(|(k, v)| cstring(OsStr::new(&format!("{k}={v}"))))
        .collect()
}

/// The NULL-terminated pointer array execve wants; valid while `strings` lives.
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
}

/// fork, then exec `exe` with `argv`/`env` and the fds in `fds`. Returns the child pid.
///
/// The caller must be single-threaded (the master is): only the calling thread survives fork.
pub fn spawn_self<A: AsRef<OsStr>>(
    exe: &SelfExe,
    argv: &[A],
    env: &[(String, String)],
    fds: &ChildFds<'_>,
) -> io::Result<i32> {
    // Everything is allocated here, before fork.
    let argv_c: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a.as_ref()))
        .collect::<Result<_, _>>()?;
    let env_c = env_cstrings(env)?;
    let argv_p = null_terminated(&argv_c);
    let env_p = null_terminated(&env_c);
    let empty = c"";
    let exe_fd = exe.fd.as_raw_fd();
    let inherit: Vec<RawFd> = fds.inherit.to_vec();
    let stdio = fds.stdio;
    let pdeathsig = fds.pdeathsig;

    // SAFETY: the parent is single-threaded (documented precondition), so the child's copy of
    // the address space is consistent. The child branch below calls only async-signal-safe
    // functions (fcntl, dup2, prctl, sigprocmask, signal, syscall(execveat), _exit) on data
    // prepared before the fork, and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above: async-signal-safe calls only, then exec or _exit.
        unsafe {
            for &fd in &inherit {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    libc::_exit(126);
                }
            }
            if let Some(out) = stdio {
                if libc::dup2(out, 1) < 0 || libc::dup2(out, 2) < 0 {
                    libc::_exit(126);
                }
            }
            if let Some(sig) = pdeathsig {
                libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            // Rust ignores SIGPIPE; ignored dispositions survive exec, so restore the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::syscall(
                libc::SYS_execveat,
                exe_fd,
                empty.as_ptr(),
                argv_p.as_ptr(),
                env_p.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::_exit(127);
        }
    }
    Ok(pid)
}

/// Who a child runs as: ids and the full group list, prepared before the fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCreds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
}

/// Resource limits for a child that parses untrusted input (the emperor's config check).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildLimits {
    /// `RLIMIT_AS` in bytes.
    pub address_space: Option<u64>,
    /// `RLIMIT_CPU` in seconds.
    pub cpu_secs: Option<u64>,
    /// `RLIMIT_FSIZE` in bytes (0: the child writes no file).
    pub file_size: Option<u64>,
}

/// The one child-side setup of the processes the emperor starts with `Command::pre_exec`
/// (vassals and config checks): everything is prepared before the fork, and [`PreExec::run`]
/// makes only async-signal-safe system calls and allocates nothing (its errors are raw OS
/// error codes).
#[derive(Debug, Clone, Default)]
pub struct PreExec {
    /// Descriptors whose CLOEXEC flag is cleared (inherited under the same number).
    pub keep: Vec<RawFd>,
    /// `fchdir` here (a directory the parent opened and checked), before the credentials.
    pub cwd: Option<RawFd>,
    pub creds: Option<ChildCreds>,
    pub limits: ChildLimits,
    /// `PR_SET_PDEATHSIG` (after the credential change, which clears it).
    pub pdeathsig: Option<i32>,
    /// The parent's pid: if the parent died before the death signal was armed, fail.
    pub parent: Option<libc::pid_t>,
}

impl PreExec {
    /// Run in the forked child, before exec.
    pub fn run(&self) -> io::Result<()> {
        let err = || Err(io::Error::last_os_error());
        // SAFETY: async-signal-safe calls only (fcntl, fchdir, setrlimit, setgroups, setgid,
        // setuid, prctl, getppid) on data owned by `self`, prepared before the fork; nothing
        // is allocated (io::Error from a raw OS error is not boxed).
        unsafe {
            for &fd in &self.keep {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return err();
                }
            }
            if let Some(dir) = self.cwd {
                if libc::fchdir(dir) != 0 {
                    return err();
                }
            }
            let limit = |res, v: Option<u64>| match v {
                Some(v) => {
                    let r = libc::rlimit {
                        rlim_cur: v as libc::rlim_t,
                        rlim_max: v as libc::rlim_t,
                    };
                    libc::setrlimit(res, &r) == 0
                }
                None => true,
            };
            if !limit(libc::RLIMIT_AS, self.limits.address_space)
                || !limit(libc::RLIMIT_CPU, self.limits.cpu_secs)
                || !limit(libc::RLIMIT_FSIZE, self.limits.file_size)
            {
                return err();
            }
            if let Some(c) = &self.creds {
                if libc::setgroups(c.groups.len(), c.groups.as_ptr()) == -1
                    || libc::setgid(c.gid) == -1
                    || libc::setuid(c.uid) == -1
                {
                    return err();
                }
            }
            if let Some(sig) = self.pdeathsig {
                if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) == -1 {
                    return err();
                }
            }
            if let Some(parent) = self.parent {
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
        }
        Ok(())
    }
}

/// The program [`spawn_exec`] runs.
#[derive(Debug, Clone, Copy)]
pub enum Program<'a> {
    /// Our own executable (checked at start, see [`SelfExe`]).
    SelfExe(&'a SelfExe),
    /// A path (`emperor-wrapper`), as execve resolves it.
    Path(&'a std::path::Path),
}

/// The standard descriptors of a [`spawn_exec`] child: `None` is `/dev/null` for stdin and
/// the parent's own for stdout/stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildStdio {
    pub stdin: Option<RawFd>,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

/// fork, then in the child: the standard descriptors, [`PreExec::run`], the default signal
/// mask and SIGPIPE disposition, and exec. The one spawn path of the emperor (vassals and
/// config checks): argv, envp and every path are prepared before the fork and the child
/// allocates nothing. A failure in the child before or at exec is reported back (through a
/// close-on-exec pipe) as the error of this call, and the child is reaped.
pub fn spawn_exec<A: AsRef<OsStr>, K: AsRef<OsStr>, V: AsRef<OsStr>>(
    program: Program<'_>,
    argv: &[A],
    env: &[(K, V)],
    stdio: ChildStdio,
    pre: &PreExec,
) -> io::Result<i32> {
    let argv_c: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a.as_ref()))
        .collect::<Result<_, _>>()?;
    let env_c: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_ref().to_os_string();
            kv.push("=");
            kv.push(v.as_ref());
            cstring(&kv)
        })
        .collect::<Result<_, _>>()?;
    let argv_p = null_terminated(&argv_c);
    let env_p = null_terminated(&env_c);
    let path_c = match program {
        Program::Path(p) => Some(cstring(p.as_os_str())?),
        Program::SelfExe(_) => None,
    };
    let exe_fd = match program {
        Program::SelfExe(e) => e.fd.as_raw_fd(),
        Program::Path(_) => -1,
    };
    let empty = c"";
    let devnull = c"/dev/null";
    let mut report = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into our array.
    if unsafe { libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors we own.
    let (rd, wr) = unsafe {
        (
            OwnedFd::from_raw_fd(report[0]),
            OwnedFd::from_raw_fd(report[1]),
        )
    };
    let wr_fd = wr.as_raw_fd();
    // SAFETY: the child branch only makes async-signal-safe calls (open, dup2, close, the
    // calls of PreExec::run, sigprocmask, signal, write, execve/execveat, _exit) on data
    // prepared above, and never returns into Rust code; so the parent may have other threads.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let fail = |errno: libc::c_int| -> ! {
                let b = errno.to_ne_bytes();
                libc::write(wr_fd, b.as_ptr().cast(), b.len());
                libc::_exit(127)
            };
            let errno = || *libc::__errno_location();
            let stdin = match stdio.stdin {
                Some(fd) => fd,
                None => {
                    // CLOEXEC: only its copy on fd 0 survives exec.
                    let fd = libc::open(devnull.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        fail(errno());
                    }
                    fd
                }
            };
            for (from, to) in [(Some(stdin), 0), (stdio.stdout, 1), (stdio.stderr, 2)] {
                if let Some(from) = from {
                    if from == to {
                        let flags = libc::fcntl(to, libc::F_GETFD);
                        libc::fcntl(to, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                    } else if libc::dup2(from, to) < 0 {
                        fail(errno());
                    }
                }
            }
            if let Err(e) = pre.run() {
                fail(e.raw_os_error().unwrap_or(libc::EINVAL));
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            match &path_c {
                Some(p) => {
                    libc::execve(p.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
                }
                None => {
                    libc::syscall(
                        libc::SYS_execveat,
                        exe_fd,
                        empty.as_ptr(),
                        argv_p.as_ptr(),
                        env_p.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    );
                }
            }
            fail(errno());
        }
    }
    drop(wr);
    let mut b = [0u8; 4];
    let n = loop {
        match nix::unistd::read(&rd, &mut b) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.unwrap_or(0),
        }
    };
    if n == 4 {
        // SAFETY: waitpid on our own child, writing into a local.
        unsafe {
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
        }
        return Err(io::Error::from_raw_os_error(libc::c_int::from_ne_bytes(b)));
    }
    Ok(pid)
}

/// A pidfd for our child `pid` (to wait for its exit with poll/epoll).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a fresh descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `waitpid(pid, WNOHANG)`: the raw wait status once our child `pid` has exited.
pub fn try_wait(pid: i32) -> io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into our local.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match r {
        r if r == pid => Ok(Some(status)),
        0 => Ok(None),
        _ => Err(io::Error::last_os_error()),
    }
}

/// How to run an external command (attached daemons, cron jobs).
#[derive(Debug, Default, Clone)]
pub struct CommandOpts {
    /// New session (and process group), so the whole tree can be signalled with `kill(-pid)`.
    pub setsid: bool,
    pub pdeathsig: Option<i32>,
    pub chdir: Option<std::path::PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Keep our stdin instead of /dev/null.
    pub keep_stdin: bool,
}

/// fork, then exec `/bin/sh -c command` with `env`. Returns the child pid.
/// The caller must be single-threaded (the master is). With `setsid` and `pdeathsig`, the
/// pid is that of a small guard that leads the command's group and kills the whole group
/// when the caller dies (see `guard_group`).
pub fn spawn_shell(command: &str, env: &[(String, String)], opts: &CommandOpts) -> io::Result<i32> {
    let sh = c"/bin/sh";
    let argv_c = [
        CString::new("sh").expect("no NUL"),
        CString::new("-c").expect("no NUL"),
        cstring(OsStr::new(command))?,
    ];
    let env_c = env_cstrings(env)?;
    let argv_p = null_terminated(&argv_c);
    let env_p = null_terminated(&env_c);
    let chdir = opts
        .chdir
        .as_ref()
        .map(|p| cstring(p.as_os_str()))
        .transpose()?;
    let devnull = c"/dev/null";
    let o = opts.clone();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the parent is single-threaded (documented precondition). The child only calls
    // async-signal-safe functions (setsid, open, dup2, close, prctl, chdir, setgroups, setgid,
    // setuid, sigprocmask, signal, execve, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            if o.setsid {
                libc::setsid();
            }
            if o.setsid && o.pdeathsig.is_some() {
                guard_group(parent);
            }
            if !o.keep_stdin {
                let fd = libc::open(devnull.as_ptr(), libc::O_RDONLY);
                if fd >= 0 {
                    libc::dup2(fd, 0);
                    if fd != 0 {
                        libc::close(fd);
                    }
                }
            }
            if let Some(sig) = o.pdeathsig {
                libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
            }
            if let Some(dir) = &chdir {
                if libc::chdir(dir.as_ptr()) != 0 {
                    libc::_exit(126);
                }
            }
            if let Some(gid) = o.gid {
                if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                    libc::_exit(126);
                }
                if libc::setgid(gid) != 0 {
                    libc::_exit(126);
                }
            }
            if let Some(uid) = o.uid {
                if libc::setuid(uid) != 0 {
                    libc::_exit(126);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(sh.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
            libc::_exit(127);
        }
    }
    Ok(pid)
}

/// The signal a group guard gets when the master dies (rarely used for anything else).
const GUARD_DEATH_SIGNAL: libc::c_int = libc::SIGPWR;

/// In a freshly `setsid` child whose parent wants it dead with the parent: fork once more.
/// The grandchild returns and goes on to exec the command; this process stays the session
/// and group leader (its pid is the one the master knows and signals with `kill(-pid)`) with
/// every signal blocked, waits, and then either exits as the command did, or, when the
/// master dies (`GUARD_DEATH_SIGNAL` as its death signal), SIGKILLs the whole group, so that
/// whatever the command started dies with it. A death signal on the command alone would
/// leave its children running.
///
/// # Safety
/// Only in a forked child of a single-threaded parent: async-signal-safe calls only.
unsafe fn guard_group(parent: libc::pid_t) {
    // SAFETY: the caller's contract (a forked child): async-signal-safe calls only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            GUARD_DEATH_SIGNAL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent {
            libc::kill(0, libc::SIGKILL);
            libc::_exit(137);
        }
        let child = libc::fork();
        if child < 0 {
            libc::_exit(126);
        }
        if child == 0 {
            // The command: it dies with its guard (the caller restores the signal mask and
            // sets its own death signal).
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            return;
        }
        let mut wanted: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wanted);
        libc::sigaddset(&mut wanted, libc::SIGCHLD);
        libc::sigaddset(&mut wanted, GUARD_DEATH_SIGNAL);
        loop {
            let sig = libc::sigwaitinfo(&wanted, std::ptr::null_mut());
            if sig == GUARD_DEATH_SIGNAL && libc::getppid() != parent {
                libc::kill(0, libc::SIGKILL);
                libc::_exit(137);
            }
            let mut status: libc::c_int = 0;
            if libc::waitpid(child, &mut status, libc::WNOHANG) == child {
                if libc::WIFEXITED(status) {
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                // Die of the same signal, so that the master reports what killed the command.
                let s = libc::WTERMSIG(status);
                libc::signal(s, libc::SIG_DFL);
                let mut one: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut one);
                libc::sigaddset(&mut one, s);
                libc::sigprocmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                libc::kill(libc::getpid(), s);
                libc::_exit(128 + s);
            }
        }
    }
}

/// Signal a whole process group (a daemon or cron job started with `setsid`).
pub fn kill_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the group; no memory involved.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// `waitpid(-1, WNOHANG)`: one reaped child, if any, as (pid, exit).
pub fn reap_one() -> Option<(i32, Exit)> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into our local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let exit = if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(-1)
    };
    Some((pid, exit))
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {s}"));
                write!(f, "killed by {name}")
            }
        }
    }
}

/// Send `sig` to `pid` (errors such as ESRCH ignored: the child may be gone already).
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_shell_runs_the_command_with_env_and_chdir() {
        let dir = std::env::temp_dir().join(format!("liege-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env = vec![("LIEGE_T".to_string(), "42".to_string())];
        let opts = CommandOpts {
            setsid: true,
            chdir: Some(dir.clone()),
            ..CommandOpts::default()
        };
        let pid = spawn_shell("echo $LIEGE_T > out; exit 3", &env, &opts).unwrap();
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 3)
        );
        assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "42\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn spawn_exec_reports_exec_errors_and_runs_in_the_given_dir() {
        let missing = std::path::Path::new("/nonexistent/liege-wrapper");
        let e = spawn_exec(
            Program::Path(missing),
            &["x"],
            &[] as &[(&str, &str)],
            ChildStdio::default(),
            &PreExec::default(),
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let dir = std::env::temp_dir().join(format!("liege-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = std::fs::File::open(&dir).unwrap();
        let pre = PreExec {
            cwd: Some(d.as_raw_fd()),
            ..PreExec::default()
        };
        let pid = spawn_exec(
            Program::Path(std::path::Path::new("/bin/sh")),
            &["sh", "-c", "echo $LIEGE_T > out; exit 3"],
            &[("LIEGE_T", "7")],
            ChildStdio::default(),
            &pre,
        )
        .unwrap();
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 3)
        );
        assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "7\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn exit_display() {
        assert_eq!(Exit::Code(22).to_string(), "exit code 22");
        assert_eq!(Exit::Signal(9).to_string(), "killed by SIGKILL");
    }
}
