//! Static files served by the serving thread before the app, without the GIL (uWSGI
//! semantics §6.3): `static-map`, `static-map2`, `check-static`, `static-index`, `static-skip-ext`. GET and HEAD only; a
//! missing file falls through to the app; `Content-Type` from `/etc/mime.types`,
//! `Last-Modified`, and `304` for `If-Modified-Since`; the `static-expires*` family sets
//! `Expires` (plus `Cache-Control: max-age`, a liege addition).
//!
//! Divergences (docs/differences-from-uwsgi.md): prefixes match on path boundaries, and the
//! docroot check compares path components, not string prefixes. Only the first matching
//! expires rule applies (uWSGI can send one `Expires` per rule family), and a 304 carries the
//! same `Expires`/`Cache-Control` as the 200 would.

use liege_config::StaticConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

struct Map {
    prefix: String,
    /// realpath of the directory (or file) mapped.
    root: PathBuf,
}

/// What an expires rule matches against (uWSGI semantics §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// `static-expires-type`: the response's content type, compared exactly.
    Type,
    /// `static-expires`: the real path of the file served.
    File,
    /// `static-expires-path-info`: the decoded `PATH_INFO`.
    PathInfo,
    /// `static-expires-uri`: the raw `REQUEST_URI`.
    Uri,
}

enum Pattern {
    Mime(String),
    Regex(regex::bytes::Regex),
}

/// One `static-expires*` rule, compiled once at worker start.
struct ExpiresRule {
    subject: Subject,
    pattern: Pattern,
    /// `-mtime` variants: Expires = file mtime + seconds, instead of now + seconds.
    from_mtime: bool,
    seconds: u64,
}

/// uWSGI's order: type, file, path-info, uri; within a family the now-based options come
/// before the `-mtime` ones; within an option, config order.
const EXPIRES_ORDER: [(&str, Subject, bool); 8] = [
    ("static-expires-type", Subject::Type, false),
    ("static-expires-type-mtime", Subject::Type, true),
    ("static-expires", Subject::File, false),
    ("static-expires-mtime", Subject::File, true),
    ("static-expires-path-info", Subject::PathInfo, false),
    ("static-expires-path-info-mtime", Subject::PathInfo, true),
    ("static-expires-uri", Subject::Uri, false),
    ("static-expires-uri-mtime", Subject::Uri, true),
];

/// Compile the rules in matching order. The config layer has already rejected invalid
/// regexes (naming the option, file and line), so a failure here is a bug; it is still
/// reported rather than silently dropped.
fn compile_expires(cfg: &[(String, String, u64)]) -> Vec<ExpiresRule> {
    let mut rules = Vec::new();
    for (name, subject, from_mtime) in EXPIRES_ORDER {
        for (_, pat, seconds) in cfg.iter().filter(|(k, _, _)| k == name) {
            let pattern = if subject == Subject::Type {
                Pattern::Mime(pat.clone())
            } else {
                match regex::bytes::Regex::new(pat) {
                    Ok(re) => Pattern::Regex(re),
                    Err(e) => {
                        tracing::error!("{name} = {pat} {seconds}: invalid regex: {e}");
                        continue;
                    }
                }
            };
            rules.push(ExpiresRule {
                subject,
                pattern,
                from_mtime,
                seconds: *seconds,
            });
        }
    }
    for (name, pat, _) in cfg {
        if !EXPIRES_ORDER.iter().any(|(n, _, _)| n == name) {
            tracing::error!("unknown expires option {name} = {pat}: ignored");
        }
    }
    rules
}

/// The request fields a static lookup needs.
pub struct Request<'a> {
    pub method: &'a [u8],
    /// Percent-decoded `PATH_INFO`.
    pub path_info: &'a [u8],
    /// Raw `REQUEST_URI` (path and query, as received).
    pub request_uri: &'a [u8],
    pub if_modified_since: Option<&'a [u8]>,
}

/// `Expires` and the matching `Cache-Control: max-age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub at: SystemTime,
    pub max_age: u64,
}

pub struct Statics {
    expires: Vec<ExpiresRule>,
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
    /// Real path of the file (what `static-expires` matches).
    pub real_path: PathBuf,
    pub expiry: Option<Expiry>,
}

/// What to answer for a static hit.
pub enum Answer {
    /// 200 with the file (the body is skipped for HEAD).
    File(Hit),
    /// 304: `If-Modified-Since` is not older than the file (Last-Modified, expiry).
    NotModified(SystemTime, Option<Expiry>),
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
            expires: compile_expires(&cfg.expires),
            maps: map(&cfg.maps),
            maps2: map(&cfg.maps2),
            check: cfg.check_static.iter().map(|d| real(d)).collect(),
            index: cfg.index.clone(),
            skip_ext: cfg.skip_ext.clone(),
            mime,
        })
    }

    /// Look `path_info` (percent-decoded) up; `None` = go to the app.
    pub fn lookup(&self, req: &Request<'_>) -> Option<Answer> {
        if req.method != b"GET" && req.method != b"HEAD" {
            return None;
        }
        let path = std::str::from_utf8(req.path_info).ok()?;
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
        let mut hit = hit;
        hit.expiry = self.expiry(req, &hit, SystemTime::now());
        if let Some(ims) = req
            .if_modified_since
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
                return Some(Answer::NotModified(hit.last_modified, hit.expiry));
            }
        }
        Some(Answer::File(hit))
    }

    /// The first matching `static-expires*` rule, in uWSGI's order.
    fn expiry(&self, req: &Request<'_>, hit: &Hit, now: SystemTime) -> Option<Expiry> {
        use std::os::unix::ffi::OsStrExt;
        let rule = self
            .expires
            .iter()
            .find(|r| match (&r.pattern, r.subject) {
                (Pattern::Mime(m), _) => *m == hit.content_type,
                (Pattern::Regex(re), Subject::File) => {
                    re.is_match(hit.real_path.as_os_str().as_bytes())
                }
                (Pattern::Regex(re), Subject::PathInfo) => re.is_match(req.path_info),
                (Pattern::Regex(re), Subject::Uri) => re.is_match(req.request_uri),
                (Pattern::Regex(_), Subject::Type) => false,
            })?;
        let base = if rule.from_mtime {
            hit.last_modified
        } else {
            now
        };
        let at = base
            .checked_add(Duration::from_secs(rule.seconds))
            .unwrap_or(base);
        // Whole seconds, as the Expires date has them.
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        let max_age = secs(at).saturating_sub(secs(now));
        Some(Expiry { at, max_age })
    }

    /// `candidate` if it is (or is a directory with an index that is) a regular file
    /// beneath `root`. Opened with `openat2(RESOLVE_BENEATH)` from `root` (the index file too),
    /// then judged by `fstat` of that descriptor: no symlink, `..` or swap can leave `root`.
    fn try_file(&self, root: &Path, candidate: &Path) -> Option<Hit> {
        let rel = candidate.strip_prefix(root).ok()?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let open = |rel: &Path| match liege_sys::fd::open_beneath(root, rel) {
            Ok(f) => Some(f),
            Err(e) => {
                if e.raw_os_error() == Some(libc::EXDEV) {
                    tracing::warn!(
                        "security error: {} is not under {}",
                        root.join(rel).display(),
                        root.display()
                    );
                }
                None
            }
        };
        let file = open(rel)?;
        let meta = file.metadata().ok()?;
        let (file, meta) = if meta.is_dir() {
            self.index.iter().find_map(|i| {
                let f = open(&rel.join(i))?;
                let m = f.metadata().ok()?;
                m.is_file().then_some((f, m))
            })?
        } else {
            (file, meta)
        };
        if !meta.is_file() {
            return None;
        }
        use std::os::fd::AsRawFd;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
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
            real_path: real,
            expiry: None,
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
    let expiry_fields = |e: &Option<Expiry>, v: &mut Vec<_>| {
        if let Some(e) = e {
            v.push((header::EXPIRES, date(e.at)));
            v.push((
                header::CACHE_CONTROL,
                http::HeaderValue::from_str(&format!("max-age={}", e.max_age))
                    .expect("ascii digits"),
            ));
        }
    };
    match a {
        Answer::NotModified(t, e) => {
            let mut v = vec![(header::LAST_MODIFIED, date(*t))];
            expiry_fields(e, &mut v);
            (304, v)
        }
        Answer::File(h) => {
            let mut v = vec![
                (
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_str(&h.content_type)
                        .unwrap_or(http::HeaderValue::from_static("application/octet-stream")),
                ),
                (header::CONTENT_LENGTH, http::HeaderValue::from(h.len)),
                (header::LAST_MODIFIED, date(h.last_modified)),
            ];
            expiry_fields(&h.expiry, &mut v);
            (200, v)
        }
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

/// A static answer as a response head and body (the body is empty for 304 and HEAD).
pub fn into_head(
    a: Answer,
    is_head: bool,
) -> (
    liege_wsgi::types::ResponseHead,
    liege_wsgi::types::ResponseBody,
) {
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
    (
        ResponseHead {
            status,
            reason: None,
            headers,
            core: 0,
            exception: false,
        },
        body,
    )
}

#[cfg(test)]
mod expires_tests {
    use super::*;

    fn statics(rules: &[(&str, &str, u64)]) -> Statics {
        let cfg = StaticConfig {
            check_static: vec!["/".into()],
            expires: rules
                .iter()
                .map(|(k, p, s)| (k.to_string(), p.to_string(), *s))
                .collect(),
            ..Default::default()
        };
        Statics::new(&cfg).unwrap()
    }

    fn hit(ct: &str, path: &str, mtime: u64) -> Hit {
        Hit {
            file: std::fs::File::open("/dev/null").unwrap(),
            len: 0,
            content_type: ct.into(),
            last_modified: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime),
            real_path: path.into(),
            expiry: None,
        }
    }

    fn req<'a>(path_info: &'a str, uri: &'a str) -> Request<'a> {
        Request {
            method: b"GET",
            path_info: path_info.as_bytes(),
            request_uri: uri.as_bytes(),
            if_modified_since: None,
        }
    }

    #[test]
    fn first_match_in_uwsgi_order() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let st = statics(&[
            ("static-expires-uri-mtime", "x", 1),
            ("static-expires-uri", "x", 2),
            ("static-expires-path-info-mtime", "p", 3),
            ("static-expires-path-info", "p", 4),
            ("static-expires-mtime", "f", 5),
            ("static-expires", "f", 6),
            ("static-expires-type-mtime", "text/css", 7),
            ("static-expires-type", "text/css", 8),
        ]);
        let at = |ct: &str, file: &str, pi: &str, uri: &str, mtime: u64| {
            st.expiry(&req(pi, uri), &hit(ct, file, mtime), now)
                .map(|e| {
                    (
                        e.at.duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap()
                            .as_secs(),
                        e.max_age,
                    )
                })
        };
        let all = ("text/css", "/f", "/p", "/x");
        assert_eq!(at(all.0, all.1, all.2, all.3, 100), Some((10_008, 8)));
        assert_eq!(at("a/b", all.1, all.2, all.3, 100), Some((10_006, 6)));
        assert_eq!(at("a/b", "/", all.2, all.3, 100), Some((10_004, 4)));
        assert_eq!(at("a/b", "/", "/", all.3, 100), Some((10_002, 2)));
        assert_eq!(at("a/b", "/", "/", "/", 100), None);
        // Only the -mtime variants: mtime + seconds, max-age from now (0 when past).
        let st = statics(&[
            ("static-expires-type-mtime", "text/css", 20_000),
            ("static-expires-path-info-mtime", "p", 3),
        ]);
        let e = st
            .expiry(&req("/p", "/"), &hit("text/css", "/", 100), now)
            .unwrap();
        assert_eq!(e.at, SystemTime::UNIX_EPOCH + Duration::from_secs(20_100));
        assert_eq!(e.max_age, 10_100);
        let e = st
            .expiry(&req("/p", "/"), &hit("a/b", "/", 100), now)
            .unwrap();
        assert_eq!(e.max_age, 0);
    }
}
