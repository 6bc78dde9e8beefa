//! docs/options.md and `liege --help` are generated from the same option registry.
//!
//! Regenerate the docs after changing the registry with:
//!     UPDATE_DOCS=1 cargo test --test config_docs

use std::path::Path;
use std::process::Command;

#[test]
fn options_md_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/options.md");
    let expected = liege_config::render::options_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/options.md");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/options.md is stale: run `UPDATE_DOCS=1 cargo test --test config_docs`"
    );
}

#[test]
fn help_lists_every_option_in_the_docs() {
    let o = Command::new(env!("CARGO_BIN_EXE_liege"))
        .arg("--help")
        .output()
        .expect("run liege --help");
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    let docs = liege_config::render::options_markdown();
    let mut n = 0;
    for def in liege_config::registry::OPTIONS {
        assert!(
            docs.contains(&format!("| `{}` |", def.name)),
            "{} not in docs",
            def.name
        );
        assert!(
            help.contains(&format!("--{}", def.name)),
            "{} not in --help",
            def.name
        );
        for a in def.aliases {
            assert!(docs.contains(&format!("`{a}`")), "alias {a} not in docs");
            assert!(help.contains(a), "alias {a} not in --help");
        }
        n += 1;
    }
    for (name, _) in liege_config::registry::NOT_IMPLEMENTED {
        assert!(docs.contains(&format!("- `{name}`")), "{name} not in docs");
        assert!(help.contains(&format!(" {name}")), "{name} not in --help");
    }
    assert!(n > 100, "only {n} options");
}

/// The user-facing docs stand on their own (no pointers to files outside the repository) and
/// do not call implemented features unimplemented.
#[test]
fn docs_stand_on_their_own_and_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<std::path::PathBuf> = ["README.md", "packaging/README.md"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    for dir in ["docs", "vassals.example"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            // performance.md names the benchmark harness it was measured with.
            if p.ends_with("performance.md") {
                continue;
            }
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("md" | "ini" | "conf")
            ) {
                files.push(p);
            }
        }
    }
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lower = text.to_lowercase().replace('\n', " ");
        for bad in [
            "/work/",
            "shared/docs",
            "semantics brief",
            "uwsgi §",
            "not implement cheap",
            "does not stop idle",
        ] {
            assert!(!lower.contains(bad), "{} mentions {bad:?}", f.display());
        }
    }
}
