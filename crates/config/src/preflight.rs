//! `--check`'s look at the machine: what would certainly fail at start is an error naming the
//! option, file and line (a `wsgi-file` or `chdir` that does not exist, a `home` that is not a
//! venv of the embedded Python, a `module` whose top-level package cannot be found, an unknown
//! user or group). Only `--check` runs these; at start the same problems are reported by the
//! step that meets them.

use crate::build::Applied;
use crate::error::ConfigError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `major.minor` of the Python liege embeds (set by the binary; the config crate does not
/// link Python), and the interpreter's executable.
static EMBEDDED: OnceLock<(&'static str, &'static str)> = OnceLock::new();

/// Tell `--check` which Python the workers embed (`major.minor`, executable path).
pub fn set_embedded_python(short: &'static str, executable: &'static str) {
    let _ = EMBEDDED.set((short, executable));
}

/// The last value of a scalar option, with where it was set.
fn last<'a>(applied: &'a [Applied], option: &str) -> Option<&'a Applied> {
    applied.iter().rev().find(|a| a.option == option)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Every problem found; empty when nothing is certain to fail.
pub fn check(applied: &[Applied], cwd: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let err =
        |a: &Applied, reason: String| ConfigError::invalid(a.option, &a.value, &a.origin, reason);

    // The worker applies chdir before it loads anything: later paths are relative to it.
    let mut base = cwd.to_path_buf();
    if let Some(a) = last(applied, "chdir") {
        let dir = resolve(cwd, &a.value);
        if dir.is_dir() {
            base = dir;
        } else {
            errors.push(err(a, format!("no such directory: {}", dir.display())));
        }
    }
    if let Some(a) = last(applied, "wsgi-file") {
        let f = resolve(&base, &a.value);
        if !f.is_file() {
            errors.push(err(a, format!("no such file: {}", f.display())));
        }
    }
    let mut venv_python = None;
    if let Some(a) = last(applied, "home") {
        let home = resolve(&base, &a.value);
        match venv_problem(&home) {
            Ok(p) => venv_python = p,
            Err(reason) => errors.push(err(a, reason)),
        }
    }
    if let Some(a) = last(applied, "module") {
        let top = a
            .value
            .split(':')
            .next()
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("")
            .to_string();
        // A `path/app.py` module names a file (the worker loads it as one).
        let is_file = (a.value.ends_with(".py") || a.value.ends_with(".wsgi"))
            && resolve(&base, a.value.split(':').next().unwrap_or("")).is_file();
        let mut path: Vec<PathBuf> = applied
            .iter()
            .filter(|p| p.option == "python-path")
            .map(|p| resolve(&base, &p.value))
            .collect();
        path.push(base.clone());
        if !top.is_empty() && !is_file && !module_found(&top, &path, venv_python.as_deref()) {
            let shown: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
            errors.push(err(
                a,
                format!(
                    "no top-level module or package `{top}` on python-path/chdir ({}) or in the \
                     interpreter's own path",
                    shown.join(", ")
                ),
            ));
        }
    }
    for opt in ["uid", "gid"] {
        if let Some(a) = last(applied, opt) {
            if let Some(reason) = account_problem(opt == "uid", &a.value) {
                errors.push(err(a, reason));
            }
        }
    }
    if let Some(a) = last(applied, "chown-socket") {
        let (user, group) = match a.value.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (a.value.as_str(), None),
        };
        if let Some(reason) = account_problem(true, user) {
            errors.push(err(a, reason));
        }
        if let Some(reason) = group.and_then(|g| account_problem(false, g)) {
            errors.push(err(a, reason));
        }
    }
    errors
}

/// `Ok(Some(python))` for a venv of the embedded version, `Ok(None)` for a plain Python home
/// (`lib/pythonX.Y` present), `Err(why)` otherwise.
fn venv_problem(home: &Path) -> Result<Option<PathBuf>, String> {
    if !home.is_dir() {
        return Err(format!("no such directory: {}", home.display()));
    }
    let embedded = EMBEDDED.get().map(|e| e.0);
    match std::fs::read_to_string(home.join("pyvenv.cfg")) {
        Ok(cfg) => {
            let version = cfg.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                matches!(k.trim(), "version" | "version_info").then(|| {
                    let mut p = v.trim().split('.');
                    format!("{}.{}", p.next().unwrap_or(""), p.next().unwrap_or(""))
                })
            });
            match (version, embedded) {
                (Some(v), Some(e)) if v != e => Err(format!(
                    "the virtualenv was made with Python {v} but liege embeds Python {e}; \
                     recreate it with python{e} -m venv"
                )),
                _ => Ok(Some(home.join("bin").join("python"))),
            }
        }
        Err(_) => {
            let lib = match embedded {
                Some(e) => home.join("lib").join(format!("python{e}")),
                None => home.join("lib"),
            };
            if lib.is_dir() {
                Ok(None)
            } else {
                Err(format!(
                    "not a virtualenv (no {}) nor a Python home (no {})",
                    home.join("pyvenv.cfg").display(),
                    lib.display()
                ))
            }
        }
    }
}

/// Whether `top` can be found (not imported) on `path` or by the app's interpreter
/// (`importlib.util.find_spec`, which does not import a top-level name).
fn module_found(top: &str, path: &[PathBuf], venv_python: Option<&Path>) -> bool {
    for dir in path {
        let s = dir.to_string_lossy();
        if s.contains(['*', '?', '[']) {
            return true; // a glob: the worker expands it; do not guess
        }
        if dir.join(format!("{top}.py")).is_file() || dir.join(top).is_dir() {
            return true;
        }
        if let Ok(rd) = std::fs::read_dir(dir) {
            let so = rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&format!("{top}.")) && (n.ends_with(".so") || n.ends_with(".pyc"))
            });
            if so {
                return true;
            }
        }
    }
    let python = match (venv_python, EMBEDDED.get()) {
        (Some(p), _) if p.exists() => p.to_path_buf(),
        (_, Some((_, exe))) => PathBuf::from(exe),
        _ => return true, // no interpreter to ask: do not guess
    };
    let probe =
        "import sys, importlib.util\nsys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)";
    match std::process::Command::new(&python)
        .args(["-I", "-c", probe, top])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(st) => st.code() != Some(3),
        Err(_) => true,
    }
}

/// Why `spec` (a name or number) is not a user (`user`) or group, if it is not.
fn account_problem(user: bool, spec: &str) -> Option<String> {
    if spec.is_empty() || spec.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let found = if user {
        nix::unistd::User::from_name(spec).map(|u| u.is_some())
    } else {
        nix::unistd::Group::from_name(spec).map(|g| g.is_some())
    };
    match found {
        Ok(true) | Err(_) => None,
        Ok(false) => Some(format!(
            "no such {} `{spec}` on this machine",
            if user { "user" } else { "group" }
        )),
    }
}
