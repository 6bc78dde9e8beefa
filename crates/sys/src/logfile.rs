//! Log files for the master: `daemonize`, `logto`, and `log-maxsize` rotation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Open a log file like uWSGI: append, create with mode 0640. Never through a symlink that
/// is not root's (see [`open_nofollow`]).
pub fn open(path: &Path) -> io::Result<File> {
    open_nofollow(path, true)
}

/// Open `path` for writing (creating it 0640 for a log, 0644 otherwise), as a root process
/// may safely do in a directory others can write: the last component is opened with
/// `O_NOFOLLOW`, and a symlink is followed only when root owns the link itself (an admin's
/// link such as `/dev/stdout`). A regular file must have a single link (no hardlink to a
/// file elsewhere) unless it is ours; FIFOs and character devices (`/dev/null`, a tty) are
/// allowed for logs.
pub fn open_nofollow(path: &Path, log: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).write(true);
    if log {
        o.append(true);
    }
    o.mode(if log { 0o640 } else { 0o644 });
    let f = match o
        .clone()
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let link = std::fs::symlink_metadata(path)?;
            if link.uid() != 0 {
                return Err(io::Error::other(format!(
                    "is a symlink owned by uid {} (a link not made by root is never written through)",
                    link.uid()
                )));
            }
            o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)?
        }
        r => r?,
    };
    let meta = f.metadata()?;
    let ft = meta.file_type();
    if ft.is_file() {
        // A second name for a file: as root, any file at all (a user may hard-link a root
        // file such as /etc/shadow into a directory they own where protected_hardlinks is
        // off); otherwise one owned by someone else.
        let euid = nix::unistd::geteuid().as_raw();
        if meta.nlink() > 1 && (euid == 0 || meta.uid() != euid) {
            return Err(io::Error::other(format!(
                "is a hard link ({} names) to a file owned by uid {} (never written into)",
                meta.nlink(),
                meta.uid()
            )));
        }
    } else if !(log && (ft.is_char_device() || ft.is_fifo())) {
        return Err(io::Error::other("is not a regular file"));
    }
    // Back to blocking writes.
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; no memory involved.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(f)
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
