//! Builds (once) the uWSGI venv the emperor interop tests use, and checks it runs.

#[test]
fn uwsgi_from_pypi_is_available() {
    let bin = liege_testkit::emperor::uwsgi();
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("uwsgi --version");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("2.0"),
        "{out:?}"
    );
}
