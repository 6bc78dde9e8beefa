//! Records the version and path of the interpreter liege is built against (PYO3_PYTHON), so
//! the worker can check at start-up that the libpython it loaded is that one.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys; print(sys.version.replace('\\n', ' ')); print(sys.executable); print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{python} failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines();
    let version = lines.next().expect("sys.version");
    let executable = lines.next().expect("sys.executable");
    let short = lines.next().expect("major.minor");
    println!("cargo:rustc-env=LIEGE_PY_VERSION={version}");
    println!("cargo:rustc-env=LIEGE_PY_EXECUTABLE={executable}");
    println!("cargo:rustc-env=LIEGE_PY_SHORT={short}");
}
