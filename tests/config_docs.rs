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
