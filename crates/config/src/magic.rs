//! Magic variables (`%d`, `%n`, `%p`, ...; uWSGI semantics §1.4), substituted in the raw text
//! of a config file before its lines are parsed.
//!
//! As in uWSGI an unknown `%x` sequence is deleted (so `%Y-%m` becomes `-`); liege also emits a
//! warning about it, because it is almost always a strftime format that needed `%%`.

use std::path::{Path, PathBuf};

/// The per-file values of the magic variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMagic {
    /// `%p`: absolute path (symlinks in the last component kept).
    pub path: String,
    /// `%d`: directory with a trailing slash.
    pub dir: String,
    /// `%s`: file name.
    pub name: String,
    /// `%n`: file name without its last extension.
    pub stem: String,
    /// `%e`: extension.
    pub ext: String,
    /// `%c`: name of the containing directory.
    pub parent: String,
    /// `%0`..`%9`: directory components.
    pub components: Vec<String>,
    /// `%x`: section requested with `file:section` (empty if none).
    pub section: String,
    /// `%i`: inode.
    pub inode: String,
    /// `%j`: djb33x hash of `%p` as 8 hex characters.
    pub hash: String,
    /// `%o`: the config argument exactly as given.
    pub original: String,
}

impl FileMagic {
    /// Compute the variables for `arg` (as given), whose file part is `file` and section `section`.
    pub fn new(file: &Path, original: &str, section: &str, cwd: &Path) -> FileMagic {
        // Absolute path without resolving a symlink in the last component: the emperor's
        // "one skeleton, many symlinks" trick needs %n to be the link's name.
        let abs = if file.is_absolute() {
            file.to_path_buf()
        } else {
            cwd.join(file)
        };
        let abs = normalize(&abs);
        let name = abs
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i + 1..].to_string()),
            _ => (name.clone(), String::new()),
        };
        let dir_path = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut dir = dir_path.to_string_lossy().into_owned();
        if !dir.ends_with('/') {
            dir.push('/');
        }
        let parent = dir_path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let components = dir_path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&abs)
                .map(|m| m.ino().to_string())
                .unwrap_or_default()
        };
        let path = abs.to_string_lossy().into_owned();
        let hash = format!("{:08x}", djb33x(path.as_bytes()));
        FileMagic {
            path,
            dir,
            name,
            stem,
            ext,
            parent,
            components,
            section: section.to_string(),
            inode,
            hash,
            original: original.to_string(),
        }
    }

    fn get(&self, c: char) -> Option<String> {
        Some(match c {
            'p' => self.path.clone(),
            'd' => self.dir.clone(),
            's' => self.name.clone(),
            'n' => self.stem.clone(),
            'e' => self.ext.clone(),
            'c' => self.parent.clone(),
            'x' => self.section.clone(),
            'i' => self.inode.clone(),
            'j' => self.hash.clone(),
            'o' => self.original.clone(),
            '0'..='9' => {
                let i = c as usize - '0' as usize;
                self.components.get(i).cloned().unwrap_or_default()
            }
            _ => return None,
        })
    }
}

/// Process-wide values (`%v %h %k %V %t %T %u %U %g %G`), computed once per parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessMagic {
    pub cwd: String,
    pub hostname: String,
    pub cpus: String,
    pub version: String,
    pub time: String,
    pub time_us: String,
    pub uid: String,
    pub user: String,
    pub gid: String,
    pub group: String,
}

impl ProcessMagic {
    /// Read the values from the running process.
    pub fn current(cwd: &Path) -> ProcessMagic {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        ProcessMagic {
            cwd: cwd.to_string_lossy().into_owned(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            time: now.as_secs().to_string(),
            time_us: now.as_micros().to_string(),
            uid: uid.to_string(),
            user: nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default(),
            gid: gid.to_string(),
            group: nix::unistd::Group::from_gid(gid)
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_default(),
        }
    }

    fn get(&self, c: char) -> Option<String> {
        Some(match c {
            'v' => self.cwd.clone(),
            'h' => self.hostname.clone(),
            'k' => self.cpus.clone(),
            'V' => self.version.clone(),
            't' => self.time.clone(),
            'T' => self.time_us.clone(),
            'u' => self.uid.clone(),
            'U' => self.user.clone(),
            'g' => self.gid.clone(),
            'G' => self.group.clone(),
            _ => return None,
        })
    }
}

/// Everything the substitution needs: the current file, the first config loaded with `--ini`
/// (the uppercase forms) and the process values.
#[derive(Debug, Clone, Copy)]
pub struct Magic<'a> {
    pub file: &'a FileMagic,
    pub first: Option<&'a FileMagic>,
    pub process: &'a ProcessMagic,
}

impl Magic<'_> {
    fn lookup(&self, c: char) -> Option<String> {
        if let Some(v) = self.file.get(c) {
            return Some(v);
        }
        if let Some(v) = self.process.get(c) {
            return Some(v);
        }
        // Uppercase forms of the per-file variables describe the first config (§1.4).
        let lower = match c {
            'O' | 'P' | 'S' | 'D' | 'E' | 'N' | 'C' | 'X' | 'I' | 'J' => c.to_ascii_lowercase(),
            _ => return None,
        };
        Some(self.first.and_then(|f| f.get(lower)).unwrap_or_default())
    }

    /// Substitute the magic variables in `text`. Unknown `%x` sequences are deleted and
    /// reported in the returned list (one entry per deleted sequence, e.g. `%Y`).
    pub fn substitute(&self, text: &str) -> (String, Vec<String>) {
        let mut out = String::with_capacity(text.len());
        let mut deleted = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                None => out.push('%'),
                Some('%') => out.push('%'),
                Some('(') => out.push_str("%("),
                Some('[') => out.push('\u{1b}'),
                Some(n) => match self.lookup(n) {
                    Some(v) => out.push_str(&v),
                    None => deleted.push(format!("%{n}")),
                },
            }
        }
        (out, deleted)
    }
}

/// djb33x (`hash * 33 ^ byte`, from 5381), as uWSGI computes `%j`.
pub fn djb33x(bytes: &[u8]) -> u32 {
    bytes.iter().fold(5381u32, |h, &b| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(b)
    })
}

/// Lexically remove `.` and `..` components (no symlink resolution).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm() -> FileMagic {
        FileMagic::new(
            Path::new("cfg/app.ini"),
            "cfg/app.ini:prod",
            "prod",
            Path::new("/srv"),
        )
    }

    fn pm() -> ProcessMagic {
        ProcessMagic {
            cwd: "/srv".into(),
            hostname: "box".into(),
            cpus: "2".into(),
            version: "0.1.0".into(),
            time: "100".into(),
            time_us: "100000000".into(),
            uid: "1000".into(),
            user: "me".into(),
            gid: "1000".into(),
            group: "us".into(),
        }
    }

    #[test]
    fn per_file_variables() {
        let f = fm();
        let p = pm();
        let m = Magic {
            file: &f,
            first: None,
            process: &p,
        };
        let (s, del) = m.substitute("%p|%d|%s|%n|%e|%c|%0|%1|%2|%x|%o");
        assert_eq!(
            s,
            "/srv/cfg/app.ini|/srv/cfg/|app.ini|app|ini|cfg|srv|cfg||prod|cfg/app.ini:prod"
        );
        assert!(del.is_empty());
    }

    #[test]
    fn d_keeps_trailing_slash() {
        let f = fm();
        let p = pm();
        let m = Magic {
            file: &f,
            first: None,
            process: &p,
        };
        assert_eq!(m.substitute("%dapp.py").0, "/srv/cfg/app.py");
    }

    #[test]
    fn process_variables_and_escapes() {
        let f = fm();
        let p = pm();
        let m = Magic {
            file: &f,
            first: None,
            process: &p,
        };
        assert_eq!(
            m.substitute("%v %h %k %V %t %T %u %U %g %G").0,
            "/srv box 2 0.1.0 100 100000000 1000 me 1000 us"
        );
        assert_eq!(m.substitute("100%% %(x) %[").0, "100% %(x) \u{1b}");
        assert_eq!(m.substitute("end%").0, "end%");
    }

    #[test]
    fn unknown_sequences_are_deleted_and_reported() {
        let f = fm();
        let p = pm();
        let m = Magic {
            file: &f,
            first: None,
            process: &p,
        };
        let (s, del) = m.substitute("%Y-%m");
        assert_eq!(s, "-");
        assert_eq!(del, vec!["%Y".to_string(), "%m".to_string()]);
    }

    #[test]
    fn uppercase_forms_use_the_first_config() {
        let f = fm();
        let first = FileMagic::new(
            Path::new("/etc/main.ini"),
            "/etc/main.ini",
            "",
            Path::new("/"),
        );
        let p = pm();
        let m = Magic {
            file: &f,
            first: Some(&first),
            process: &p,
        };
        assert_eq!(m.substitute("%N %D %n %X").0, "main /etc/ app ");
        let none = Magic {
            file: &f,
            first: None,
            process: &p,
        };
        assert_eq!(none.substitute("[%N]").0, "[]");
    }

    #[test]
    fn hash_is_djb33x() {
        assert_eq!(djb33x(b""), 5381);
        assert_eq!(djb33x(b"a"), (5381u32 * 33) ^ 97);
    }
}
