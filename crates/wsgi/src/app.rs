//! Loading the WSGI callable (uWSGI semantics §5): `python-path`, `import`, `module`
//! (`pkg.mod`, `pkg.mod:callable`, `pkg.mod:factory()`), `wsgi-file`, `callable`.
//!
//! `chdir` and `env` are applied by the worker before the interpreter starts (so `os.environ`
//! and `"."` already reflect them).

use liege_config::AppConfig;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};
use std::path::Path;

/// Why the app could not be loaded; `traceback` is the formatted Python traceback, if any.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub message: String,
    pub traceback: Option<String>,
}

impl LoadError {
    fn msg(message: impl Into<String>) -> Self {
        LoadError {
            message: message.into(),
            traceback: None,
        }
    }
    fn py(py: Python<'_>, context: String, e: PyErr) -> Self {
        let at = match error_location(py, &e) {
            Some((file, line)) => format!(" ({file} line {line})"),
            None => String::new(),
        };
        LoadError {
            message: format!("{context}: {e}{at}"),
            traceback: Some(format_traceback(py, &e)),
        }
    }
}

/// Where `e` was raised: the `filename`/`lineno` of a SyntaxError, else the innermost frame
/// of its traceback.
fn error_location(py: Python<'_>, e: &PyErr) -> Option<(String, u32)> {
    let value = e.value(py);
    if e.is_instance_of::<pyo3::exceptions::PySyntaxError>(py) {
        let file: Option<String> = value.getattr("filename").ok()?.extract().ok()?;
        let line: Option<u32> = value.getattr("lineno").ok()?.extract().ok()?;
        return Some((file?, line?));
    }
    let tb = e.traceback(py)?;
    let frames = py
        .import("traceback")
        .ok()?
        .call_method1("extract_tb", (tb,))
        .ok()?;
    let last = frames.get_item(-1).ok()?;
    Some((
        last.getattr("filename").ok()?.extract().ok()?,
        last.getattr("lineno").ok()?.extract().ok()?,
    ))
}

/// The formatted traceback of `e` (falls back to its `str`).
pub fn format_traceback(py: Python<'_>, e: &PyErr) -> String {
    let r: PyResult<String> = (|| {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (e.get_type(py), e.value(py), e.traceback(py)),
        )?;
        let s: String = PyModule::import(py, "builtins")?
            .getattr("str")?
            .call_method1("join", ("", lines))?
            .extract()?;
        Ok(s)
    })();
    r.unwrap_or_else(|_| e.to_string())
}

/// uWSGI's `python-path` order: `"."` first, then each entry (glob-expanded) inserted at
/// `sys.path[0]` in turn, so the last entry ends up first.
pub fn python_path_entries(values: &[String]) -> Vec<String> {
    let mut path: Vec<String> = vec![".".to_string()];
    for v in values {
        let mut expanded: Vec<String> = match glob::glob(v) {
            Ok(paths) => paths
                .flatten()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        if expanded.is_empty() {
            expanded.push(v.clone());
        }
        for e in expanded {
            path.insert(0, e);
        }
    }
    path
}

/// One loaded app and where it is mounted (`""` for the main app).
pub struct MountedApp {
    /// Mountpoint without a trailing `/` (`""` = the default app).
    pub mountpoint: String,
    pub app: Py<PyAny>,
}

/// Import the configured apps: `module`, else `wsgi-file` (mounted at `""`), then every
/// `mount = /prefix=target` in order.
pub fn load(py: Python<'_>, cfg: &AppConfig) -> Result<Vec<MountedApp>, LoadError> {
    let sys = py
        .import("sys")
        .map_err(|e| LoadError::py(py, "import sys".into(), e))?;
    let sys_path = sys
        .getattr("path")
        .and_then(|p| Ok(p.cast_into::<PyList>()?))
        .map_err(|e| LoadError::py(py, "sys.path".into(), e))?;
    for entry in python_path_entries(&cfg.python_path).iter().rev() {
        sys_path
            .insert(0, entry)
            .map_err(|e| LoadError::py(py, "sys.path.insert".into(), e))?;
    }
    for m in &cfg.imports {
        py.import(m.as_str())
            .map_err(|e| LoadError::py(py, format!("import {m}"), e))?;
    }

    let default_callable = cfg.callable.as_deref().unwrap_or("application");
    let mut apps = Vec::new();
    if let Some(spec) = &cfg.module {
        apps.push(MountedApp {
            mountpoint: String::new(),
            app: load_target(py, spec, default_callable)?,
        });
    } else if let Some(file) = &cfg.wsgi_file {
        let module = load_file(py, file)?;
        apps.push(MountedApp {
            mountpoint: String::new(),
            app: callable_of(py, &module, default_callable)?,
        });
    }
    for (prefix, target) in &cfg.mounts {
        if target.ends_with(".ini") {
            return Err(LoadError::msg(format!(
                "mount {prefix}={target}: paste .ini apps are not supported"
            )));
        }
        apps.push(MountedApp {
            mountpoint: prefix.trim_end_matches('/').to_string(),
            app: load_target(py, target, default_callable)?,
        });
    }
    if apps.is_empty() {
        return Err(LoadError::msg(
            "no app configured (set wsgi-file, module or mount)",
        ));
    }
    Ok(apps)
}

/// `pkg.mod`, `pkg.mod:callable`, `pkg.mod:factory()`, or a `.py`/`.wsgi` file path.
fn load_target(py: Python<'_>, spec: &str, default_callable: &str) -> Result<Py<PyAny>, LoadError> {
    let (modname, attr) = match spec.split_once(':') {
        Some((m, a)) => (m, a),
        None => (spec, default_callable),
    };
    // `path/app.py` (or `.wsgi`) names a file when such a file exists; otherwise it is a
    // dotted module name (`mysite.wsgi` is Django's).
    let as_file =
        (modname.ends_with(".py") || modname.ends_with(".wsgi")) && Path::new(modname).is_file();
    let module = if as_file {
        load_file(py, Path::new(modname))?
    } else {
        py.import(modname)
            .map_err(|e| LoadError::py(py, format!("import {modname}"), e))?
    };
    callable_of(py, &module, attr)
}

/// `module.attr`, called first when `attr` ends in `()` (a factory); must be callable.
fn callable_of(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    attr: &str,
) -> Result<Py<PyAny>, LoadError> {
    let (name, factory) = match attr.strip_suffix("()") {
        Some(n) => (n, true),
        None => (attr, false),
    };
    let modname: String = module
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    let obj = module
        .getattr(name)
        .map_err(|e| LoadError::py(py, format!("module {modname} has no callable {name:?}"), e))?;
    let app = if factory {
        obj.call0()
            .map_err(|e| LoadError::py(py, format!("{modname}:{name}() raised"), e))?
    } else {
        obj
    };
    if !app.is_callable() {
        return Err(LoadError::msg(format!(
            "{modname}:{attr} is not callable (got {})",
            app.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )));
    }
    if is_asgi(py, &app) {
        return Err(LoadError::msg(format!(
            "{modname}:{name} is an ASGI app (an `async def` taking scope, receive, send); \
             liege serves WSGI only. Wrap it with an ASGI-to-WSGI adapter such as a2wsgi \
             (`from a2wsgi import ASGIMiddleware; application = ASGIMiddleware(app)`), or point \
             `module` at the project's WSGI entry point (Django: `myproject.wsgi`, not `asgi`)"
        )));
    }
    Ok(app.unbind())
}

/// An ASGI app: a coroutine function, or an object whose `__call__` is one (Starlette,
/// FastAPI, Django's `ASGIHandler`). Called with a WSGI environ it would only return a
/// coroutine, so every request would fail.
fn is_asgi(py: Python<'_>, app: &Bound<'_, PyAny>) -> bool {
    let r: PyResult<bool> = (|| {
        let inspect = py.import("inspect")?;
        let is_coro = |o: &Bound<'_, PyAny>| -> PyResult<bool> {
            inspect
                .getattr("iscoroutinefunction")?
                .call1((o,))?
                .extract::<bool>()
        };
        if is_coro(app)? {
            return Ok(true);
        }
        if inspect
            .getattr("isroutine")?
            .call1((app,))?
            .extract::<bool>()?
        {
            return Ok(false);
        }
        match app.get_type().getattr("__call__") {
            Ok(call) => is_coro(&call),
            Err(_) => Ok(false),
        }
    })();
    r.unwrap_or(false)
}

/// Execute a file as a module named like uWSGI does (`uwsgi_file_<mangled path>`).
fn load_file<'py>(py: Python<'py>, file: &Path) -> Result<Bound<'py, PyModule>, LoadError> {
    let path = file.to_string_lossy().into_owned();
    if !file.is_file() {
        return Err(LoadError::msg(format!("wsgi-file {path}: no such file")));
    }
    let mangled: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = format!("uwsgi_file_{mangled}");
    // Compiled from the source on every load, never through the .pyc cache: the cache is
    // keyed on whole-second mtime and size, so an edit of the same size within the same
    // second as the previous one would bring the old code back on reload (uWSGI compiles
    // from source too).
    let r: PyResult<Bound<'py, PyModule>> = (|| {
        let source = std::fs::read(file).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot read {path}: {e}"))
        })?;
        let builtins = py.import("builtins")?;
        let code = builtins.getattr("compile")?.call1((
            pyo3::types::PyBytes::new(py, &source),
            path.as_str(),
            "exec",
        ))?;
        let module = PyModule::new(py, &name)?;
        module.setattr("__file__", path.as_str())?;
        module.setattr("__builtins__", &builtins)?;
        py.import("sys")?
            .getattr("modules")?
            .set_item(name.as_str(), &module)?;
        builtins.getattr("exec")?.call1((code, module.dict()))?;
        Ok(module)
    })();
    r.map_err(|e| LoadError::py(py, format!("wsgi-file {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_path_order_last_first() {
        let v = python_path_entries(&["/nonexistent/a".into(), "/nonexistent/b".into()]);
        assert_eq!(v, vec!["/nonexistent/b", "/nonexistent/a", "."]);
    }
}
