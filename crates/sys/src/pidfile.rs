//! Pidfiles: plain (`pidfile`, `pidfile2`) and atomic (`safe-pidfile`), removed at exit only
//! if they still hold our pid.

use std::io;
use std::path::Path;

/// Write our pid followed by a newline.
pub fn write(path: &Path, pid: u32) -> io::Result<()> {
    std::fs::write(path, format!("{pid}\n"))
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
    std::fs::write(&tmp, format!("{pid}\n"))?;
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
