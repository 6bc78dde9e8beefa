//! Pidfiles: plain (`pidfile`, `pidfile2`) and atomic (`safe-pidfile`), removed at exit only
//! if they still hold our pid.

use std::io;
use std::path::Path;

/// Write our pid followed by a newline. Never through a symlink that is not root's (a root
/// master must not overwrite what a user's link points to), and only into a regular file.
pub fn write(path: &Path, pid: u32) -> io::Result<()> {
    use std::io::Write;
    let f = crate::logfile::open_nofollow(path, false)?;
    f.set_len(0)?;
    (&f).write_all(format!("{pid}\n").as_bytes())
}

/// Write atomically: a temp file in the same directory, then rename over `path`.
pub fn write_atomic(path: &Path, pid: u32) -> io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        pid
    ));
    // A stale temp file (or a link planted under its name) is removed, then the temp file is
    // created exclusively: nothing is ever written through a link.
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(format!("{pid}\n").as_bytes())?;
    }
    std::fs::rename(&tmp, path)
}

/// Remove `path` if it holds `pid`. Returns whether it was removed.
pub fn remove_if_ours(path: &Path, pid: u32) -> bool {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim() == pid.to_string() => std::fs::remove_file(path).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn write_and_remove_only_ours() {
        let d = std::env::temp_dir().join(format!("liege-pid-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("x.pid");
        write_atomic(&p, 42).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "42\n");
        assert!(!remove_if_ours(&p, 43));
        assert!(remove_if_ours(&p, 42));
        let _ = std::fs::remove_dir_all(&d);
    }
}
