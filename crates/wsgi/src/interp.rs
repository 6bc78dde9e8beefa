//! Starting the embedded interpreter.
//!
//! liege embeds the interpreter it was built against (`PYO3_PYTHON`, Debian's
//! `/usr/bin/python3.11` whose `libpython3.11.so` is in the default linker path). The
//! interpreter is configured through `PyConfig` (never `PYTHONHOME` in the environment):
//! - no `home`: `program_name` is the build interpreter's executable, so `sys.prefix` and the
//!   standard library are found exactly as that `python3.11` finds them;
//! - `home` with a `pyvenv.cfg` (a venv): `program_name` is `<home>/bin/python`, so Python's
//!   own venv logic makes the venv's site-packages visible with the base standard library;
//!   the venv's Python version (from `pyvenv.cfg`) must be the embedded one;
//! - `home` without `pyvenv.cfg`: `PyConfig.home`, like uWSGI's `Py_SetPythonHome`.
//!
//! After start-up, [`initialize`] checks that `sys.version` is the version liege was built for.

use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// `sys.version` of the interpreter liege was built against.
pub const BUILT_VERSION: &str = env!("LIEGE_PY_VERSION");
/// `major.minor` of that interpreter.
pub const BUILT_SHORT: &str = env!("LIEGE_PY_SHORT");
/// Its `sys.executable`.
pub const BUILT_EXECUTABLE: &str = env!("LIEGE_PY_EXECUTABLE");

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("home {home}: the virtualenv was made with Python {venv} but liege embeds Python {embedded}; recreate it with python{embedded} -m venv")]
    VenvVersion {
        home: PathBuf,
        venv: String,
        embedded: String,
    },
    #[error("home {home}: {reason}")]
    Home { home: PathBuf, reason: String },
    #[error("cannot initialize Python: {0}")]
    Status(String),
    #[error("the running libpython is {running} but liege was built for {built}")]
    Version { running: String, built: String },
}

/// How to start the interpreter.
#[derive(Debug, Clone, Default)]
pub struct InterpOptions {
    pub home: Option<PathBuf>,
    /// `PyConfig.optimization_level`.
    pub optimize: u32,
    /// `sys.argv`.
    pub argv: Vec<String>,
}

/// The `version` (or `version_info`) line of a `pyvenv.cfg`, as `major.minor`.
fn venv_version(cfg: &str) -> Option<String> {
    for line in cfg.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k == "version" || k == "version_info" {
            let mut parts = v.trim().split('.');
            let major = parts.next()?;
            let minor = parts.next()?;
            return Some(format!("{major}.{minor}"));
        }
    }
    None
}

/// Check a `home` directory and return the `program_name` to use, or `None` for a plain
/// Python home.
fn check_home(home: &Path) -> Result<Option<PathBuf>, InitError> {
    if !home.is_dir() {
        return Err(InitError::Home {
            home: home.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let cfg = home.join("pyvenv.cfg");
    match std::fs::read_to_string(&cfg) {
        Ok(text) => {
            if let Some(v) = venv_version(&text) {
                if v != BUILT_SHORT {
                    return Err(InitError::VenvVersion {
                        home: home.to_path_buf(),
                        venv: v,
                        embedded: BUILT_SHORT.to_string(),
                    });
                }
            }
            Ok(Some(home.join("bin").join("python")))
        }
        Err(_) => {
            // A virtualenv without pyvenv.cfg (old virtualenv) or a real Python home: check the
            // lib/pythonX.Y directory so a version mismatch is still named clearly.
            let lib = home.join("lib");
            if let Ok(rd) = std::fs::read_dir(&lib) {
                let versions: Vec<String> = rd
                    .flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_prefix("python").map(str::to_string)
                    })
                    .filter(|v| v.contains('.'))
                    .collect();
                if !versions.is_empty() && !versions.iter().any(|v| v == BUILT_SHORT) {
                    return Err(InitError::VenvVersion {
                        home: home.to_path_buf(),
                        venv: versions.join(", "),
                        embedded: BUILT_SHORT.to_string(),
                    });
                }
            }
            Ok(None)
        }
    }
}

fn status_ok(st: ffi::PyStatus) -> Result<(), InitError> {
    // SAFETY: PyStatus_Exception only reads the struct.
    if unsafe { ffi::PyStatus_Exception(st) } != 0 {
        let msg = if st.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: err_msg is a static NUL-terminated C string set by CPython.
            unsafe { std::ffi::CStr::from_ptr(st.err_msg) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(InitError::Status(msg));
    }
    Ok(())
}

fn cstring(s: &str) -> Result<CString, InitError> {
    CString::new(s).map_err(|_| InitError::Status(format!("NUL byte in {s:?}")))
}

/// Initialize CPython on the calling thread (which becomes Python's main thread) and release
/// the GIL. Call once, on the process main thread, before any other thread touches Python.
pub fn initialize(opts: &InterpOptions) -> Result<(), InitError> {
    let (program_name, home) = match &opts.home {
        Some(h) => match check_home(h)? {
            Some(venv_python) => (venv_python, None),
            None => (PathBuf::from(BUILT_EXECUTABLE), Some(h.clone())),
        },
        None => (PathBuf::from(BUILT_EXECUTABLE), None),
    };
    let program_name = cstring(&program_name.to_string_lossy())?;
    let home = home.map(|h| cstring(&h.to_string_lossy())).transpose()?;
    let argv: Vec<CString> = if opts.argv.is_empty() {
        vec![cstring("liege")?]
    } else {
        opts.argv
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_, _>>()?
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();

    // SAFETY: PyConfig is a plain C struct that PyConfig_InitPythonConfig fully initializes;
    // every string passed is a valid NUL-terminated C string that outlives the calls (CPython
    // copies them); PyConfig_Clear frees what CPython allocated. Python is not initialized
    // yet and no other thread uses it.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.assume_init_mut();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.optimization_level = opts.optimize as libc::c_int;
        let r = (|| {
            status_ok(ffi::PyConfig_SetBytesString(
                config,
                &mut config.program_name,
                program_name.as_ptr(),
            ))?;
            if let Some(h) = &home {
                status_ok(ffi::PyConfig_SetBytesString(
                    config,
                    &mut config.home,
                    h.as_ptr(),
                ))?;
            }
            status_ok(ffi::PyConfig_SetBytesArgv(
                config,
                argv_ptrs.len() as ffi::Py_ssize_t,
                argv_ptrs.as_mut_ptr(),
            ))?;
            status_ok(ffi::Py_InitializeFromConfig(config))
        })();
        ffi::PyConfig_Clear(config);
        r?;
    }

    let running = Python::attach(|py| -> Result<String, InitError> {
        // Record this thread as threading's main thread, as `python` itself does.
        let _ = py.import("threading");
        Ok(Python::version_str().replace('\n', " "))
    })?;
    // SAFETY: the GIL is held by this thread right after Py_InitializeFromConfig (pyo3's
    // attach above was re-entrant); releasing it lets other threads attach. The thread state
    // stays registered for this thread and is found again by PyGILState_Ensure.
    unsafe {
        ffi::PyEval_SaveThread();
    }
    let running_number = running.split(' ').next().unwrap_or("");
    let built_number = BUILT_VERSION.split(' ').next().unwrap_or("");
    if running_number != built_number {
        if !running_number.starts_with(&format!("{BUILT_SHORT}.")) {
            return Err(InitError::Version {
                running,
                built: BUILT_VERSION.to_string(),
            });
        }
        tracing::warn!(
            "libpython is {running}, liege was built against {BUILT_VERSION} (same minor version, continuing)"
        );
    } else if running != BUILT_VERSION {
        // Same release, another build of it (Debian builds python3.11 and libpython3.11
        // separately): nothing to worry about.
        tracing::debug!("libpython build: {running}; built against: {BUILT_VERSION}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_versions() {
        assert_eq!(
            venv_version(
                "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"
            ),
            Some("3.11".into())
        );
        assert_eq!(
            venv_version("version_info = 3.12.1.final.0\n"),
            Some("3.12".into())
        );
        assert_eq!(venv_version("home = /usr/bin\n"), None);
    }
}
