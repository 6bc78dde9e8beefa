//! End to end through the real command line: `liege --http … --wsgi-file …` (master + workers),
//! the same app behind nginx on a uwsgi socket, and a Django project through `home` + `module`.

use liege_testkit::{
    free_port, raw_tcp, repo_root, tcp_listening, venv, wait_for, wait_http, Response, Sandbox,
};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");

#[test]
fn http_hello_world_from_the_command_line() {
    let sb = Sandbox::new();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let hello = repo_root().join("tests/apps/hello.py");
    let mut cmd = sb.command(BIN);
    cmd.args(["--http", &addr, "--wsgi-file"])
        .arg(&hello)
        .args(["--processes", "2"]);
    let mut p = sb.spawn(cmd, "liege");
    let r = wait_http(&addr, "/", 200, Duration::from_secs(20));
    assert_eq!(r.text(), "Hello World");
    p.signal(nix::sys::signal::Signal::SIGTERM);
    let st = p
        .wait_timeout(Duration::from_secs(20))
        .expect("liege exits on SIGTERM");
    assert_eq!(st.code(), Some(0), "{}", p.output());
}

#[test]
fn nginx_in_front_of_liege_socket() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is installed by .ci/run (apt-get install -y nginx)");
    let sb = Sandbox::new();
    let sock = sb.path().join("app.sock");
    let mut cmd = sb.command(BIN);
    cmd.arg("--socket")
        .arg(&sock)
        .arg("--wsgi-file")
        .arg(repo_root().join("tests/apps/hello.py"));
    let _liege = sb.spawn(cmd, "liege");
    wait_for(Duration::from_secs(20), "the uwsgi socket", || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    });
    let port = free_port();
    let dir = sb.path().join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        "daemon off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n server {{ listen 127.0.0.1:{port}; location / {{ include /etc/nginx/uwsgi_params; uwsgi_pass unix:{s}; }} }}\n}}\n",
        d = dir.display(),
        s = sock.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut ncmd = sb.command(nginx);
    ncmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    let _nginx = sb.spawn(ncmd, "nginx");
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(10), "nginx", || {
        tcp_listening(&addr).then_some(())
    });
    let r = wait_http(&addr, "/", 200, Duration::from_secs(10));
    assert_eq!(r.text(), "Hello World");
}

#[test]
fn django_through_home_and_module() {
    let v = venv(&["django"]);
    let sb = Sandbox::new();
    let st = Command::new(v.join("bin/django-admin"))
        .args(["startproject", "mysite"])
        .current_dir(sb.path())
        .status()
        .unwrap();
    assert!(st.success());
    let ini = sb.write(
        "django.ini",
        &format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nhome = {home}\nchdir = {dir}\nmodule = mysite.wsgi:application\nprocesses = 1\nthreads = 2\n",
            port = free_port(),
            home = v.display(),
            dir = sb.path().join("mysite").display()
        ),
    );
    let text = std::fs::read_to_string(&ini).unwrap();
    let addr = text
        .lines()
        .find_map(|l| l.strip_prefix("http-socket = "))
        .unwrap()
        .to_string();
    let mut cmd = sb.command(BIN);
    cmd.arg("--ini").arg(&ini);
    let _p = sb.spawn(cmd, "liege");
    wait_for(Duration::from_secs(30), "django answering", || {
        tcp_listening(&addr).then_some(())
    });
    let raw = wait_for(Duration::from_secs(30), "the welcome page", || {
        let raw = raw_tcp(
            &addr,
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        )
        .ok()?;
        Response::parse(raw).filter(|r| r.status == 200)
    });
    assert!(raw
        .text()
        .contains("The install worked successfully! Congratulations!"));
}
