//! Opening a vassal file that a user may control, as root, without trusting its path: a walk
//! from the monitor's base directory, one `openat` per component (with `O_NOFOLLOW` when
//! symlinks are refused), so that what is checked (owner, mode, every directory's owner) is
//! what is read and where the vassal starts. The file is opened once, non-blocking, must be a
//! regular file, and is read from that descriptor within a size budget.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// A directory on the way from the base to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirOwner {
    pub path: PathBuf,
    pub uid: u32,
}

/// A vassal file opened once.
#[derive(Debug)]
pub struct Opened {
    /// The directory holding the file (`O_PATH`), for `fchdir` in the vassal.
    pub dir: OwnedFd,
    /// What `fstat` of the opened file says.
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// Every directory below the base, down to the file's own; with `nofollow`, also the
    /// base and every directory above it.
    pub dirs: Vec<DirOwner>,
    /// The file's content, read from the opened descriptor.
    pub content: Vec<u8>,
    /// The opened file itself: a tyrant emperor hands it to the vassal and to the owner's
    /// config check, which parse the very inode checked here, not whatever the name holds now.
    pub file: OwnedFd,
}

/// Why a vassal file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is a symlink (or a directory on its path is), which is refused here")]
    Symlink(PathBuf),
    #[error("{0} is not a regular file")]
    NotRegular(PathBuf),
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{path} is not beneath {base}")]
    NotBeneath { path: PathBuf, base: PathBuf },
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

impl OpenError {
    /// The file is (probably) just gone or not readable yet: worth a quiet retry.
    pub fn transient(&self) -> bool {
        matches!(self, OpenError::Io(_, e) if e.kind() == io::ErrorKind::NotFound)
    }
}

fn openat(dir: RawFd, name: &std::ffi::OsStr, flags: i32) -> io::Result<OwnedFd> {
    let c = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is NUL-terminated; `dir` is a descriptor we hold (or AT_FDCWD); the result
    // is a fresh descriptor owned by the caller.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat writes into our zeroed local only.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// Open `path` (which must lie beneath `base`), walking one component at a time from `base`.
/// `nofollow`: no component below `base`, the file included, may be a symlink. At most `max`
/// bytes are read.
pub fn open(base: &Path, path: &Path, nofollow: bool, max: u64) -> Result<Opened, OpenError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: io::Error| OpenError::Io(p, e)
    };
    let rel = path.strip_prefix(base).map_err(|_| OpenError::NotBeneath {
        path: path.to_path_buf(),
        base: base.to_path_buf(),
    })?;
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            _ => {
                return Err(OpenError::NotBeneath {
                    path: path.to_path_buf(),
                    base: base.to_path_buf(),
                })
            }
        }
    }
    let Some(file_name) = names.pop() else {
        return Err(OpenError::NotRegular(path.to_path_buf()));
    };
    let follow = if nofollow { libc::O_NOFOLLOW } else { 0 };
    let mut dirs = Vec::new();
    let mut dir = if nofollow {
        open_base(base, &mut dirs)?
    } else {
        openat(
            libc::AT_FDCWD,
            base.as_os_str(),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .map_err(io(base))?
    };
    let mut here = base.to_path_buf();
    for n in names {
        here.push(n);
        dir = openat(
            dir.as_raw_fd(),
            n,
            libc::O_PATH | libc::O_DIRECTORY | follow,
        )
        .map_err(|e| match e.raw_os_error() {
            // O_PATH|O_NOFOLLOW on a symlink opens the link itself: O_DIRECTORY then fails.
            Some(libc::ELOOP | libc::ENOTDIR) if nofollow => OpenError::Symlink(here.clone()),
            _ => OpenError::Io(here.clone(), e),
        })?;
        let st = fstat(dir.as_raw_fd()).map_err(io(&here))?;
        dirs.push(DirOwner {
            path: here.clone(),
            uid: st.st_uid,
        });
    }
    let fd = openat(
        dir.as_raw_fd(),
        file_name,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | follow,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) if nofollow => OpenError::Symlink(path.to_path_buf()),
        _ => OpenError::Io(path.to_path_buf(), e),
    })?;
    let st = fstat(fd.as_raw_fd()).map_err(io(path))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(OpenError::NotRegular(path.to_path_buf()));
    }
    let file = File::from(fd);
    if file.metadata().map(|m| m.size()).unwrap_or(0) > max {
        return Err(OpenError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    let mut content = Vec::new();
    (&file)
        .take(max + 1)
        .read_to_end(&mut content)
        .map_err(io(path))?;
    if content.len() as u64 > max {
        return Err(OpenError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(Opened {
        dir,
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
        dirs,
        content,
        file: file.into(),
    })
}

/// `nofollow`: walk from `/` to the base too, one component at a time, following only
/// symlinks that root owns (an admin's `/home -> /srv/home`), and record every directory (the
/// base's owner matters: a user who owns the base's parent could swap the base itself).
fn open_base(base: &Path, dirs: &mut Vec<DirOwner>) -> Result<OwnedFd, OpenError> {
    let root = Path::new("/");
    let mut dir = openat(
        libc::AT_FDCWD,
        root.as_os_str(),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| OpenError::Io(root.to_path_buf(), e))?;
    let mut here = root.to_path_buf();
    for c in base.components() {
        let Component::Normal(n) = c else { continue };
        here.push(n);
        let at = |e: io::Error| OpenError::Io(here.clone(), e);
        dir = match openat(
            dir.as_raw_fd(),
            n,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        ) {
            Ok(d) => d,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                // A symlink: followed only if root made it.
                let link =
                    openat(dir.as_raw_fd(), n, libc::O_PATH | libc::O_NOFOLLOW).map_err(at)?;
                let st = fstat(link.as_raw_fd()).map_err(at)?;
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK && st.st_uid != 0 {
                    return Err(OpenError::Symlink(here.clone()));
                }
                openat(dir.as_raw_fd(), n, libc::O_PATH | libc::O_DIRECTORY).map_err(at)?
            }
            Err(e) => return Err(at(e)),
        };
        let st = fstat(dir.as_raw_fd()).map_err(|e| OpenError::Io(here.clone(), e))?;
        dirs.push(DirOwner {
            path: here.clone(),
            uid: st.st_uid,
        });
    }
    Ok(dir)
}

/// Open a small file (an on-demand `.socket` name) next to a vassal file: never through a
/// symlink, regular, at most `max` bytes. Returns the owner uid and the bytes.
pub fn read_small_nofollow(path: &Path, max: u64) -> Result<(u32, Vec<u8>), OpenError> {
    let fd = openat(
        libc::AT_FDCWD,
        path.as_os_str(),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => OpenError::Symlink(path.to_path_buf()),
        _ => OpenError::Io(path.to_path_buf(), e),
    })?;
    let st = fstat(fd.as_raw_fd()).map_err(|e| OpenError::Io(path.to_path_buf(), e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(OpenError::NotRegular(path.to_path_buf()));
    }
    let mut content = Vec::new();
    File::from(fd)
        .take(max)
        .read_to_end(&mut content)
        .map_err(|e| OpenError::Io(path.to_path_buf(), e))?;
    Ok((st.st_uid, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_refuses_symlinked_dirs_and_fifos() {
        let t = std::env::temp_dir().join(format!("liege-vf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("a/v")).unwrap();
        std::fs::create_dir_all(t.join("up")).unwrap();
        std::fs::write(t.join("a/v/x.ini"), "[uwsgi]\n").unwrap();
        std::fs::write(t.join("up/evil.ini"), "[uwsgi]\n").unwrap();
        std::os::unix::fs::symlink("up", t.join("b")).unwrap();
        let o = open(&t, &t.join("a/v/x.ini"), true, 100).unwrap();
        assert_eq!(o.content, b"[uwsgi]\n");
        assert_eq!(o.dirs.last().unwrap().path, t.join("a/v"));
        assert!(o.dirs.iter().any(|d| d.path == t));
        let e = open(&t, &t.join("b/evil.ini"), true, 100).unwrap_err();
        assert!(matches!(e, OpenError::Symlink(_)), "{e}");
        assert!(open(&t, &t.join("b/evil.ini"), false, 100).is_ok());
        let e = open(&t, &t.join("a/v/x.ini"), true, 3).unwrap_err();
        assert!(matches!(e, OpenError::TooLarge { .. }), "{e}");
        nix::unistd::mkfifo(
            &t.join("a/v/f.ini"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let e = open(&t, &t.join("a/v/f.ini"), true, 100).unwrap_err();
        assert!(matches!(e, OpenError::NotRegular(_)), "{e}");
        let _ = std::fs::remove_dir_all(&t);
    }
}
