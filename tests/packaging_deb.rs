//! The Debian package: `packaging/build-deb.sh` builds a `.deb` from the binary under test,
//! and what it contains is checked the way an administrator would see it: `dpkg-deb -I/-c/-x`,
//! `systemd-analyze verify` on the unit files, `systemd-tmpfiles` and `logrotate` on their
//! snippets, and `liege --check` on the packaged emperor.ini.

use liege_testkit::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const LIEGE: &str = env!("CARGO_BIN_EXE_liege");

/// The package, built once per test binary, and the tree it unpacks to. Kept under
/// `target/packaging-test/` (a static is never dropped, so a temp dir would leak) and replaced
/// by the next run.
struct Built {
    deb: PathBuf,
    root: PathBuf,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("utf-8 output")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(
            have("dpkg-deb"),
            "dpkg-deb is required (.ci/run installs dpkg-dev)"
        );
        let dir = liege_testkit::target_dir().join("packaging-test");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir target/packaging-test");
        let out = stdout(
            Command::new("bash")
                .arg(repo_root().join("packaging/build-deb.sh"))
                .arg("--out")
                .arg(&dir)
                .arg(LIEGE),
        );
        let deb = PathBuf::from(out.trim());
        assert!(deb.is_file(), "build-deb.sh printed {out:?}, not a file");
        let root = dir.join("root");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        Built { deb, root }
    })
}

fn field(deb: &Path, name: &str) -> String {
    stdout(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
        .trim()
        .to_string()
}

#[test]
fn control_fields_name_the_embedded_python() {
    let b = built();
    let version = field(&b.deb, "Version");
    let arch = field(&b.deb, "Architecture");
    assert_eq!(field(&b.deb, "Package"), "liege");
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let name = b.deb.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, format!("liege_{version}_{arch}.deb"));
    let depends = field(&b.deb, "Depends");
    assert!(depends.contains("libpython3.11"), "Depends: {depends}");
    assert!(depends.contains("libc6"), "Depends: {depends}");
    let size: u64 = field(&b.deb, "Installed-Size").parse().expect("number");
    assert!(size > 100, "Installed-Size {size} KiB");
    assert!(!field(&b.deb, "Description").is_empty());
    assert!(!field(&b.deb, "Maintainer").is_empty());
}

#[test]
fn contents_are_owned_by_root_with_sane_modes() {
    let b = built();
    let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(&b.deb));
    // (path, mode) every installation relies on.
    let expected = [
        ("./usr/bin/liege", "-rwxr-xr-x"),
        ("./etc/liege/emperor.ini", "-rw-r--r--"),
        ("./etc/liege/vassals/", "drwxr-xr-x"),
        ("./etc/liege/vassals/README", "-rw-r--r--"),
        ("./etc/liege/apps/README", "-rw-r--r--"),
        ("./etc/logrotate.d/liege", "-rw-r--r--"),
        ("./usr/lib/tmpfiles.d/liege.conf", "-rw-r--r--"),
        (
            "./usr/lib/systemd/system/liege-emperor.service",
            "-rw-r--r--",
        ),
        ("./usr/lib/systemd/system/liege-status.socket", "-rw-r--r--"),
        (
            "./usr/lib/systemd/system/liege-status@.service",
            "-rw-r--r--",
        ),
        ("./usr/lib/systemd/system/liege-app@.socket", "-rw-r--r--"),
        ("./usr/lib/systemd/system/liege-app@.service", "-rw-r--r--"),
        ("./usr/share/doc/liege/copyright", "-rw-r--r--"),
        ("./usr/share/doc/liege/changelog.Debian.gz", "-rw-r--r--"),
        ("./usr/share/doc/liege/examples/hello.ini", "-rw-r--r--"),
    ];
    for (path, mode) in expected {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().last() == Some(path))
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], mode, "mode of {path}: {line}");
    }
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "root/root", "owner: {line}");
        assert!(
            !cols[0].contains('w') || cols[0].matches('w').count() == 1,
            "group/world-writable: {line}"
        );
        let path = cols.last().unwrap();
        assert!(
            path.starts_with("./etc/") || path.starts_with("./usr/") || *path == "./",
            "installs outside /etc and /usr: {line}"
        );
        assert!(
            !path.starts_with("./lib/"),
            "units belong in /usr/lib: {line}"
        );
    }
}

#[test]
fn conffiles_and_md5sums_match_the_contents() {
    let b = built();
    let ctrl = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&b.deb)
        .arg(ctrl.path()));
    let conffiles = std::fs::read_to_string(ctrl.path().join("conffiles")).expect("conffiles");
    let conffiles: Vec<&str> = conffiles.lines().collect();
    for c in [
        "/etc/liege/emperor.ini",
        "/etc/logrotate.d/liege",
        "/etc/liege/vassals/README",
    ] {
        assert!(conffiles.contains(&c), "{c} not a conffile: {conffiles:?}");
    }
    for c in &conffiles {
        assert!(c.starts_with("/etc/"), "conffile outside /etc: {c}");
        assert!(
            b.root.join(c.trim_start_matches('/')).is_file(),
            "conffile {c} not in the package"
        );
    }
    // md5sums covers the other files, and they are right.
    let sums = std::fs::read_to_string(ctrl.path().join("md5sums")).expect("md5sums");
    assert!(sums.contains("  usr/bin/liege\n"), "{sums}");
    run(Command::new("md5sum")
        .args(["--check", "--quiet", "--strict"])
        .arg(ctrl.path().join("md5sums"))
        .current_dir(&b.root));
    // Maintainer scripts are executable and valid POSIX sh (run by dash on Debian).
    for s in ["postinst", "prerm", "postrm"] {
        let p = ctrl.path().join(s);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o755, "{s} mode {mode:o}");
        let shell = if Path::new("/bin/dash").exists() {
            "/bin/dash"
        } else {
            "sh"
        };
        run(Command::new(shell).arg("-n").arg(&p));
    }
}

#[test]
fn packaged_binary_runs_and_is_stripped() {
    let b = built();
    let bin = b.root.join("usr/bin/liege");
    let out = stdout(Command::new(&bin).arg("--version"));
    assert_eq!(out.trim(), format!("liege {}", env!("CARGO_PKG_VERSION")));
    let unstripped = std::fs::metadata(LIEGE).unwrap().len();
    let stripped = std::fs::metadata(&bin).unwrap().len();
    assert!(
        stripped < unstripped,
        "packaged binary ({stripped} B) not smaller than the debug build ({unstripped} B)"
    );
}

#[test]
fn packaged_emperor_ini_passes_check() {
    let b = built();
    let ini = b.root.join("etc/liege/emperor.ini");
    let out = Command::new(LIEGE)
        .arg("--check")
        .arg(&ini)
        .output()
        .expect("run liege --check");
    assert!(
        out.status.success(),
        "liege --check {} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        ini.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&ini).unwrap();
    assert!(text.contains("emperor = /etc/liege/vassals"));
    assert!(text.contains("emperor = /home/*/liege/vassals/*.ini"));
    assert!(text.contains("emperor-tyrant = true"));
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        eprintln!("SKIPPED: systemd-analyze not installed (package systemd; .ci/run installs it)");
        return;
    }
    let b = built();
    let units_dir = b.root.join("usr/lib/systemd/system");
    // `verify --root` resolves everything under that root: give it the host's units (for
    // sysinit.target & co.), the packaged units and binary, and /bin/kill for ExecReload=.
    let vroot = tempfile::tempdir().expect("tempdir");
    let sys = vroot.path().join("usr/lib/systemd/system");
    std::fs::create_dir_all(&sys).unwrap();
    for host_units in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        if let Ok(rd) = std::fs::read_dir(host_units) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_file() && !sys.join(e.file_name()).exists() {
                    std::fs::copy(&p, sys.join(e.file_name())).unwrap();
                }
            }
        }
    }
    let mut units = Vec::new();
    for e in std::fs::read_dir(&units_dir).unwrap().flatten() {
        std::fs::copy(e.path(), sys.join(e.file_name())).unwrap();
        units.push(e.file_name().to_string_lossy().into_owned());
    }
    units.sort();
    assert_eq!(
        units,
        [
            "liege-app@.service",
            "liege-app@.socket",
            "liege-emperor.service",
            "liege-status.socket",
            "liege-status@.service"
        ]
    );
    for (rel, from) in [
        ("usr/bin/liege", b.root.join("usr/bin/liege")),
        ("bin/kill", PathBuf::from("/bin/kill")),
    ] {
        let to = vroot.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    let mut problems = Vec::new();
    for unit in &units {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", vroot.path().display()))
            .arg(sys.join(unit))
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // verify prints warnings (unknown keys, bad values) without failing: any output is a
        // problem.
        if !out.status.success() || !stderr.trim().is_empty() {
            problems.push(format!("{unit}: exit {:?}\n{stderr}", out.status.code()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The semantics this package promises (README.packaging.md).
    let emperor = std::fs::read_to_string(units_dir.join("liege-emperor.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/liege --ini /etc/liege/emperor.ini",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "RuntimeDirectory=liege",
    ] {
        assert!(
            emperor.lines().any(|l| l.trim() == line),
            "liege-emperor.service lacks {line}"
        );
    }
    assert!(
        !emperor.lines().any(|l| l.starts_with("ProtectHome=")),
        "ProtectHome breaks tyrant-mode vassals in home directories"
    );
}

#[test]
fn tmpfiles_entry_creates_runtime_and_log_dirs() {
    if !have("systemd-tmpfiles") {
        eprintln!("SKIPPED: systemd-tmpfiles not installed (package systemd)");
        return;
    }
    let b = built();
    let troot = tempfile::tempdir().expect("tempdir");
    // Users and groups are resolved inside --root.
    std::fs::create_dir_all(troot.path().join("etc")).unwrap();
    for f in ["passwd", "group"] {
        std::fs::copy(format!("/etc/{f}"), troot.path().join("etc").join(f)).unwrap();
    }
    run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", troot.path().display()))
        .arg("--create")
        .arg(b.root.join("usr/lib/tmpfiles.d/liege.conf")));
    use std::os::unix::fs::MetadataExt;
    let run_dir = std::fs::metadata(troot.path().join("run/liege")).expect("/run/liege made");
    assert!(run_dir.is_dir());
    assert_eq!(run_dir.mode() & 0o7777, 0o775);
    assert_eq!(run_dir.uid(), 0);
    let www = nix::unistd::Group::from_name("www-data")
        .unwrap()
        .expect("group www-data");
    assert_eq!(run_dir.gid(), www.gid.as_raw());
    let log_dir = std::fs::metadata(troot.path().join("var/log/liege")).expect("log dir");
    assert_eq!(log_dir.mode() & 0o7777, 0o755);
}

#[test]
fn logrotate_snippet_parses() {
    if !have("logrotate") {
        eprintln!("SKIPPED: logrotate not installed (.ci/run installs it)");
        return;
    }
    let b = built();
    let state = tempfile::NamedTempFile::new().unwrap();
    // -d: parse and plan only; exits non-zero on any syntax error.
    run(Command::new("logrotate")
        .arg("-d")
        .arg("-s")
        .arg(state.path())
        .arg(b.root.join("etc/logrotate.d/liege")));
}

#[test]
fn build_script_refuses_a_missing_binary() {
    let out = Command::new("bash")
        .arg(repo_root().join("packaging/build-deb.sh"))
        .arg("/nonexistent/liege")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/liege"));
    assert!(out.stdout.is_empty());
}
