//! The ini reader with uWSGI expansion (`liege_config::parse_ini_str_env`): the input is the
//! text of `SCRATCH/self.ini`, parsed through every stage (magic variables, config logic,
//! `include`, `$(ENV)`, `@(file)`, `%(name)`, typed Settings). Nothing may panic, hang or
//! run out of memory; parsed Settings survive the JSON trip they make to the workers.
//!
//! The parser reads files (never writes them). Relative paths resolve against a scratch dir
//! (`LIEGE_FUZZ_SCRATCH`, else a fresh dir under the temp dir) holding a few files for
//! `include`/`@()`/`for-readline`/`for-glob`/`if-exists` to find; the input itself is written
//! there as `self.ini` so `include = self.ini` recurses into it. Absolute paths reach the real
//! filesystem read-only: run under `scripts/fuzz.sh` (stdin `/dev/null`, libFuzzer `-timeout`)
//! so that a read that blocks or a walk that never ends is reported as a timeout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_config::Settings;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A fixed environment, so `$(NAME)`, `if-env` and `UWSGI_*` options are exercised.
const ENV: &[(&str, &str)] = &[
    ("HOME", "/nonexistent/home"),
    ("APP", "demo"),
    ("PORT", "8000"),
    ("LOOP", "$(LOOP)"),
    ("CHAIN", "$(APP)-$(PORT)"),
    ("EMPTY", ""),
    ("UWSGI_NEED_APP", "false"),
];

/// Files the input may refer to by relative path.
const FILES: &[(&str, &str)] = &[
    (
        "inc.ini",
        "[uwsgi]\nprocesses = 3\nproject = inc\n[prod]\nthreads = 2\n",
    ),
    ("loop.ini", "[uwsgi]\ninclude = loop.ini\n"),
    ("value.txt", "from-file\n"),
    ("lines.txt", "a\nb\n\nc\r\n"),
    ("sub/x.ini", "[uwsgi]\nmaster = true\n"),
    ("sub/y.ini", "[uwsgi]\nmodule = app:application\n"),
];

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("LIEGE_FUZZ_SCRATCH") {
            Some(d) => PathBuf::from(d),
            None => std::env::temp_dir().join(format!("liege-fuzz-ini-{}", std::process::id())),
        };
        let dir = std::path::absolute(dir).expect("scratch dir path");
        for (name, text) in FILES {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).expect("create scratch dir");
            std::fs::write(&p, text).expect("write scratch file");
        }
        dir
    })
}

fn env() -> &'static [(String, String)] {
    static ENV_OWNED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENV_OWNED.get_or_init(|| {
        ENV.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let text = String::from_utf8_lossy(data);
    let path = dir.join("self.ini");
    std::fs::write(&path, text.as_bytes()).expect("write self.ini");
    match liege_config::parse_ini_str_env(&text, &path, env(), dir) {
        Ok(settings) => {
            let json = serde_json::to_string(&settings).expect("Settings serialize");
            let back: Settings = serde_json::from_str(&json).expect("Settings deserialize");
            assert_eq!(back, settings, "Settings changed across JSON");
            for w in &settings.warnings {
                assert!(!w.is_empty());
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
