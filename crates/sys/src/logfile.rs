//! Log files for the master: `daemonize`, `logto`, and `log-maxsize` rotation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Open a log file like uWSGI: append, create with mode 0640.
pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Redirect our stdout and stderr to `file`.
pub fn redirect_stdio(file: &File) -> io::Result<()> {
    crate::fd::dup_onto(file.as_raw_fd(), 1)?;
    crate::fd::dup_onto(file.as_raw_fd(), 2)
}

/// Detach into the background (fork, setsid) and log to `logfile`. The parent exits 0 once
/// the child has started. Must be called while single-threaded, before anything is bound.
pub fn daemonize(logfile: &Path) -> io::Result<()> {
    let f = open(logfile)?;
    // SAFETY: the process is single-threaded here (documented precondition), so the child
    // is a consistent copy; the parent exits immediately without running destructors.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => {
            // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the child.
            unsafe { libc::_exit(0) }
        }
    }
    nix::unistd::setsid().map_err(io::Error::from)?;
    crate::fd::stdin_devnull()?;
    redirect_stdio(&f)
}

/// The name a rotated log gets: `log-backupname` if set, else `<file>.<unix timestamp>`.
pub fn rotated_name(path: &Path, backup: Option<&Path>, now_unix: u64) -> PathBuf {
    match backup {
        Some(b) => b.to_path_buf(),
        None => {
            let mut s = path.as_os_str().to_owned();
            s.push(format!(".{now_unix}"));
            PathBuf::from(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rotated_names() {
        assert_eq!(
            rotated_name(Path::new("/x/a.log"), None, 17),
            PathBuf::from("/x/a.log.17")
        );
        assert_eq!(
            rotated_name(Path::new("/x/a.log"), Some(Path::new("/x/b")), 17),
            PathBuf::from("/x/b")
        );
    }
}
