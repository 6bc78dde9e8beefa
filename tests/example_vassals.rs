//! The bundled vassals in `vassals.example/` (the README's main command runs the emperor on
//! them) must stay valid: every `*.ini` passes `liege --check`, and every app file beside them
//! is valid Python for the interpreter liege embeds.

use liege_testkit::{repo_root, PYTHON};
use std::path::PathBuf;
use std::process::Command;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

fn example_files(ext: &str) -> Vec<PathBuf> {
    let dir = repo_root().join("vassals.example");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

#[test]
fn there_are_examples_of_each_kind() {
    let inis = example_files("ini");
    let names: Vec<String> = inis
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["hello.ini", "api.ini", "admin.ini"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from vassals.example/ ({names:?})"
        );
    }
    let nginx = repo_root().join("vassals.example/nginx-api.conf");
    let text = std::fs::read_to_string(&nginx).expect("nginx-api.conf");
    assert!(text.contains("include uwsgi_params;"), "{text}");
    assert!(text.contains("uwsgi_pass unix:"), "{text}");
}

#[test]
fn every_example_vassal_passes_check() {
    let inis = example_files("ini");
    assert!(!inis.is_empty(), "no *.ini in vassals.example/");
    let mut failures = Vec::new();
    for ini in &inis {
        // Run from an unrelated directory: %d must make the files location-independent,
        // as they are when the emperor starts them.
        let out = Command::new(LIEGE)
            .arg("--check")
            .arg(ini)
            .current_dir(std::env::temp_dir())
            .env_remove("UWSGI_INI")
            .output()
            .expect("run liege --check");
        if !out.status.success() {
            failures.push(format!(
                "liege --check {} exited with {:?}\nstdout:\n{}\nstderr:\n{}",
                ini.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_example_app_compiles_with_the_embedded_python() {
    let apps = example_files("py");
    assert!(!apps.is_empty(), "no *.py in vassals.example/");
    for app in &apps {
        // compile() only: nothing is written next to the sources (no __pycache__).
        let out = Command::new(PYTHON)
            .args([
                "-c",
                "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
            ])
            .arg(app)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{} does not compile: {}",
            app.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
