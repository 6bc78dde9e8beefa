//! Where vassal files come from: `emperor = DIR` and `emperor = GLOB` monitors, the scan that
//! lists the candidate files with their fingerprints, and the set of directories to watch.
//!
//! A directory monitor `D` is the glob `D/*` with `D` escaped, so both kinds share one code
//! path. Every monitor is resolved on its own against the emperor's starting directory.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// One `emperor = …` value.
#[derive(Debug, Clone)]
pub struct Monitor {
    /// The value as given (for stats and logs).
    pub spec: String,
    /// The glob pattern matching vassal files.
    pattern: String,
    /// Absolute path components of the pattern's directory part.
    dir_components: Vec<String>,
}

/// How a file looked when last scanned. A change in any field is a change of the file
/// (a touch changes `mtime_ns`; save-by-rename and symlink swaps change `ino`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

/// Ownership facts used by tyrant mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// The path itself is a symlink.
    pub symlink: bool,
}

/// A candidate vassal file found by a scan.
#[derive(Debug, Clone)]
pub struct Found {
    /// Index of the monitor that found it (the first one wins when two find the same path).
    pub monitor: usize,
    pub fp: Fingerprint,
    pub owner: Owner,
    /// Epoch seconds of the mtime (for the uWSGI `last_mod` stats field).
    pub mtime_secs: i64,
}

/// Scan options that affect what counts as a vassal file.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// `emperor-nofollow`: symlinks are vassals themselves; their own mtime counts.
    pub nofollow: bool,
    /// `emperor-tyrant-nofollow`: owner from the link itself.
    pub tyrant_nofollow: bool,
    /// Extensions besides `ini` (without the dot).
    pub extra_extensions: Vec<String>,
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Monitor {
    /// Resolve one `emperor` value against `cwd`. `dir://` and `glob://` force the kind;
    /// otherwise a value with glob characters is a glob and anything else a directory
    /// (which may not exist yet: it is watched for from its nearest existing ancestor).
    pub fn resolve(spec: &str, cwd: &Path) -> Monitor {
        let (is_glob, raw) = if let Some(r) = spec.strip_prefix("dir://") {
            (false, r)
        } else if let Some(r) = spec.strip_prefix("glob://") {
            (true, r)
        } else {
            (has_magic(spec), spec)
        };
        let abs = normalize(&cwd.join(raw));
        let pattern = if is_glob {
            abs.to_string_lossy().into_owned()
        } else {
            format!("{}/*", glob::Pattern::escape(&abs.to_string_lossy()))
        };
        let dir_part = Path::new(&pattern)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let dir_components = dir_part
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        Monitor {
            spec: spec.to_string(),
            pattern,
            dir_components,
        }
    }

    /// The glob pattern of vassal files.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The pattern's last literal directory: what the admin named, trusted as it is; vassal
    /// files are opened beneath it one component at a time (tyrant mode checks each).
    pub fn base(&self) -> PathBuf {
        let mut base = PathBuf::from("/");
        for c in self.dir_components.iter().take_while(|c| !has_magic(c)) {
            base.push(c);
        }
        base
    }

    /// Directories to watch so that every change that can add, remove or alter a matching
    /// file wakes us: every existing directory matching each level of the pattern's
    /// directory part from its last literal prefix down; or, when that prefix does not exist,
    /// its nearest existing ancestor (to see it appear).
    pub fn watch_dirs(&self, out: &mut BTreeSet<PathBuf>) {
        let first_magic = self
            .dir_components
            .iter()
            .position(|c| has_magic(c))
            .unwrap_or(self.dir_components.len());
        let base = self.base();
        if !base.is_dir() {
            let mut anc = base.clone();
            while !anc.is_dir() {
                if !anc.pop() {
                    return;
                }
            }
            out.insert(anc);
            return;
        }
        out.insert(base.clone());
        let mut level = glob::Pattern::escape(&base.to_string_lossy());
        for c in &self.dir_components[first_magic..] {
            level = format!("{}/{c}", level.trim_end_matches('/'));
            if let Ok(paths) = glob::glob_with(&level, match_options()) {
                for p in paths.flatten() {
                    if p.is_dir() {
                        out.insert(p);
                    }
                }
            }
        }
    }

    /// List the vassal files this monitor matches now.
    pub fn scan(&self, index: usize, opts: &ScanOptions, out: &mut BTreeMap<PathBuf, Found>) {
        let Ok(paths) = glob::glob_with(&self.pattern, match_options()) else {
            return;
        };
        for path in paths.flatten() {
            if out.contains_key(&path) {
                continue;
            }
            let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if !is_vassal_name(&name, &opts.extra_extensions) {
                tracing::debug!(path = %path.display(), "not a vassal file name: ignored");
                continue;
            }
            if let Some(f) = stat_candidate(&path, index, opts) {
                out.insert(path, f);
            }
        }
    }
}

fn match_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    }
}

/// `*.ini` (or an extra extension), not hidden, shorter than 255 bytes.
pub fn is_vassal_name(name: &str, extra: &[String]) -> bool {
    if name.starts_with('.') || name.len() >= 255 {
        return false;
    }
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty() && (ext == "ini" || extra.iter().any(|e| e.trim_start_matches('.') == ext))
}

/// Stat one candidate: a regular file (following symlinks unless `nofollow`).
pub fn stat_candidate(path: &Path, monitor: usize, opts: &ScanOptions) -> Option<Found> {
    let lmeta = std::fs::symlink_metadata(path).ok()?;
    let symlink = lmeta.file_type().is_symlink();
    let meta = if symlink && !opts.nofollow {
        std::fs::metadata(path).ok()?
    } else {
        lmeta.clone()
    };
    if !(meta.is_file() || (opts.nofollow && symlink)) {
        return None;
    }
    let owner_meta = if opts.tyrant_nofollow { &lmeta } else { &meta };
    Some(Found {
        monitor,
        fp: Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        },
        owner: Owner {
            uid: owner_meta.uid(),
            gid: owner_meta.gid(),
            mode: owner_meta.mode() & 0o7777,
            symlink,
        },
        mtime_secs: meta.mtime(),
    })
}

/// Lexically normalize `.` and `..` (no symlink resolution: a vassal's name is its path).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_vassal_name("app.ini", &[]));
        assert!(!is_vassal_name("app.ini~", &[]));
        assert!(!is_vassal_name(".app.ini", &[]));
        assert!(!is_vassal_name(".ini", &[]));
        assert!(!is_vassal_name("app.yaml", &[]));
        assert!(is_vassal_name("app.conf", &["conf".into()]));
        assert!(!is_vassal_name(&format!("{}.ini", "a".repeat(260)), &[]));
    }

    #[test]
    fn each_monitor_resolves_on_its_own() {
        let a = Monitor::resolve("vassals", Path::new("/srv"));
        let b = Monitor::resolve("other/../more", Path::new("/srv"));
        assert_eq!(a.pattern(), "/srv/vassals/*");
        assert_eq!(b.pattern(), "/srv/more/*");
        let g = Monitor::resolve("/home/*/vassals/*.ini", Path::new("/x"));
        assert_eq!(g.pattern(), "/home/*/vassals/*.ini");
        let d = Monitor::resolve("dir:///we[ird]", Path::new("/"));
        assert_eq!(d.pattern(), "/we[[]ird[]]/*");
    }

    #[test]
    fn scan_and_watch_a_glob() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("alice/vassals")).unwrap();
        std::fs::create_dir_all(root.join("bob")).unwrap();
        std::fs::write(root.join("alice/vassals/a.ini"), "[uwsgi]\n").unwrap();
        std::fs::write(root.join("alice/vassals/a.txt"), "").unwrap();
        let m = Monitor::resolve(
            &format!("{}/*/vassals/*.ini", root.display()),
            Path::new("/"),
        );
        let mut found = BTreeMap::new();
        m.scan(0, &ScanOptions::default(), &mut found);
        assert_eq!(
            found.keys().cloned().collect::<Vec<_>>(),
            vec![root.join("alice/vassals/a.ini")]
        );
        let mut w = BTreeSet::new();
        m.watch_dirs(&mut w);
        let expect: BTreeSet<PathBuf> = [
            root.to_path_buf(),
            root.join("alice"),
            root.join("bob"),
            root.join("alice/vassals"),
        ]
        .into_iter()
        .collect();
        assert_eq!(w, expect);
    }

    #[test]
    fn missing_dir_watches_nearest_ancestor() {
        let t = tempfile::tempdir().unwrap();
        let m = Monitor::resolve(&format!("{}/not/yet", t.path().display()), Path::new("/"));
        let mut w = BTreeSet::new();
        m.watch_dirs(&mut w);
        assert_eq!(
            w.into_iter().collect::<Vec<_>>(),
            vec![t.path().to_path_buf()]
        );
    }

    #[test]
    fn symlink_swap_changes_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir(d.join("v1")).unwrap();
        std::fs::create_dir(d.join("v2")).unwrap();
        std::fs::write(d.join("v1/app.ini"), "[uwsgi]\n").unwrap();
        std::fs::write(d.join("v2/app.ini"), "[uwsgi]\n").unwrap();
        std::os::unix::fs::symlink("v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/app.ini", d.join("app.ini")).unwrap();
        let opts = ScanOptions::default();
        let a = stat_candidate(&d.join("app.ini"), 0, &opts).unwrap();
        std::os::unix::fs::symlink("v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        let b = stat_candidate(&d.join("app.ini"), 0, &opts).unwrap();
        assert_ne!(a.fp, b.fp);
        assert!(a.owner.symlink);
    }
}
