//! Static files served by the I/O thread before the app (uWSGI semantics §6.3): `static-map`,
//! `static-map2`, `check-static`, `static-index`, `static-skip-ext`. GET and HEAD only; a
//! missing file falls through to the app; `Content-Type` from `/etc/mime.types`,
//! `Last-Modified`, and `304` for `If-Modified-Since`.
//!
//! Divergences (docs/differences-from-uwsgi.md): prefixes match on path boundaries, and the
//! docroot check compares path components, not string prefixes. The `static-expires*` family
//! is not implemented yet (a warning says so at start-up).

use liege_config::StaticConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

struct Map {
    prefix: String,
    /// realpath of the directory (or file) mapped.
    root: PathBuf,
}

pub struct Statics {
    maps: Vec<Map>,
    maps2: Vec<Map>,
    check: Vec<PathBuf>,
    index: Vec<String>,
    skip_ext: Vec<String>,
    mime: HashMap<String, String>,
}

/// A file to serve.
pub struct Hit {
    pub file: std::fs::File,
    pub len: u64,
    pub content_type: String,
    pub last_modified: SystemTime,
}

/// What to answer for a static hit.
pub enum Answer {
    /// 200 with the file (the body is skipped for HEAD).
    File(Hit),
    /// 304: `If-Modified-Since` is not older than the file.
    NotModified(SystemTime),
}

fn load_mime(path: &Path) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            let Some(ty) = it.next() else { continue };
            for ext in it {
                m.entry(ext.to_ascii_lowercase())
                    .or_insert_with(|| ty.to_string());
            }
        }
    }
    m
}

impl Statics {
    /// `None` when no static option is set.
    pub fn new(cfg: &StaticConfig) -> Option<Statics> {
        if cfg.maps.is_empty() && cfg.maps2.is_empty() && cfg.check_static.is_empty() {
            return None;
        }
        if !cfg.expires.is_empty() {
            tracing::warn!("static-expires* options are not implemented yet: no Expires headers");
        }
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let map = |v: &Vec<liege_config::StaticMap>| {
            v.iter()
                .map(|m| Map {
                    prefix: m.prefix.clone(),
                    root: real(&m.dir),
                })
                .collect()
        };
        let mut mime = load_mime(Path::new("/etc/mime.types"));
        for (ext, ty) in [
            ("html", "text/html"),
            ("css", "text/css"),
            ("js", "text/javascript"),
            ("txt", "text/plain"),
        ] {
            mime.entry(ext.into()).or_insert_with(|| ty.into());
        }
        Some(Statics {
            maps: map(&cfg.maps),
            maps2: map(&cfg.maps2),
            check: cfg.check_static.iter().map(|d| real(d)).collect(),
            index: cfg.index.clone(),
            skip_ext: cfg.skip_ext.clone(),
            mime,
        })
    }

    /// Look `path_info` (percent-decoded) up; `None` = go to the app.
    pub fn lookup(
        &self,
        method: &[u8],
        path_info: &[u8],
        if_modified_since: Option<&[u8]>,
    ) -> Option<Answer> {
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let path = std::str::from_utf8(path_info).ok()?;
        if self.skip_ext.iter().any(|e| path.ends_with(e.as_str())) {
            return None;
        }
        let rel = path.trim_start_matches('/');
        let hit = self
            .check
            .iter()
            .find_map(|root| self.try_file(root, &root.join(rel)))
            .or_else(|| {
                self.maps.iter().find_map(|m| {
                    let rest = strip_prefix_boundary(path, &m.prefix)?;
                    if m.root.is_file() {
                        return self.try_file(m.root.parent()?, &m.root);
                    }
                    self.try_file(&m.root, &m.root.join(rest.trim_start_matches('/')))
                })
            })
            .or_else(|| {
                self.maps2.iter().find_map(|m| {
                    strip_prefix_boundary(path, &m.prefix)?;
                    self.try_file(&m.root, &m.root.join(rel))
                })
            })?;
        if let Some(ims) = if_modified_since
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        {
            // Compare at one-second resolution, as HTTP dates have.
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            };
            if secs(hit.last_modified) <= secs(ims) {
                return Some(Answer::NotModified(hit.last_modified));
            }
        }
        Some(Answer::File(hit))
    }

    /// `candidate` if it is (or is a directory with an index that is) a regular file whose
    /// realpath is under `root`.
    fn try_file(&self, root: &Path, candidate: &Path) -> Option<Hit> {
        let real = std::fs::canonicalize(candidate).ok()?;
        if !real.starts_with(root) {
            tracing::warn!(
                "security error: {} is not under {}",
                real.display(),
                root.display()
            );
            return None;
        }
        let meta = std::fs::metadata(&real).ok()?;
        let (real, meta) = if meta.is_dir() {
            self.index.iter().find_map(|i| {
                let p = real.join(i);
                let m = std::fs::metadata(&p).ok()?;
                m.is_file().then_some((p, m))
            })?
        } else {
            (real, meta)
        };
        if !meta.is_file() {
            return None;
        }
        let file = std::fs::File::open(&real).ok()?;
        let ext = real
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let content_type = self
            .mime
            .get(&ext)
            .cloned()
            .unwrap_or_else(|| "application/octet-stream".to_string());
        Some(Hit {
            file,
            len: meta.len(),
            content_type,
            last_modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

/// `path` minus `prefix`, when the prefix ends on a path boundary.
fn strip_prefix_boundary<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// Status line + headers for a static answer (shared by HTTP and uwsgi listeners).
pub fn head_fields(a: &Answer) -> (u16, Vec<(http::HeaderName, http::HeaderValue)>) {
    use http::header;
    let date = |t: SystemTime| {
        http::HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("http dates are ascii")
    };
    match a {
        Answer::NotModified(t) => (304, vec![(header::LAST_MODIFIED, date(*t))]),
        Answer::File(h) => (
            200,
            vec![
                (
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_str(&h.content_type)
                        .unwrap_or(http::HeaderValue::from_static("application/octet-stream")),
                ),
                (header::CONTENT_LENGTH, http::HeaderValue::from(h.len)),
                (header::LAST_MODIFIED, date(h.last_modified)),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary() {
        assert_eq!(
            strip_prefix_boundary("/static/a.css", "/static"),
            Some("/a.css")
        );
        assert_eq!(strip_prefix_boundary("/static", "/static"), Some(""));
        assert_eq!(strip_prefix_boundary("/staticfoo", "/static"), None);
        assert_eq!(strip_prefix_boundary("/s/a", "/s/"), Some("a"));
    }
}

/// A static answer as a response head (the body is empty for 304 and HEAD).
pub fn into_head(a: Answer, is_head: bool) -> liege_wsgi::types::ResponseHead {
    use liege_wsgi::types::{FileBody, ResponseBody, ResponseHead};
    let (status, headers) = head_fields(&a);
    let body = match a {
        Answer::File(h) if !is_head => ResponseBody::File(FileBody {
            file: h.file,
            offset: 0,
            len: Some(h.len),
        }),
        _ => ResponseBody::Full(bytes::Bytes::new()),
    };
    ResponseHead {
        status,
        reason: None,
        headers,
        body,
        core: 0,
        exception: false,
    }
}
