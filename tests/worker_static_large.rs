//! A static file larger than several read blocks, with an odd size, arrives byte for byte over
//! HTTP (the file body is streamed to hyper in blocks read on the blocking pool), and through
//! `wsgi.file_wrapper` on the same path.

use liege_testkit::{free_port, raw_tcp, wait_http, Response, Sandbox};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_liege");
const T: Duration = Duration::from_secs(20);

#[test]
fn large_odd_sized_file_arrives_intact_over_http() {
    let sb = Sandbox::new();
    // 1 MB + 3 bytes of a non-repeating pattern (a shifted block would be caught).
    let data: Vec<u8> = (0..1_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::create_dir_all(sb.path().join("pub")).unwrap();
    std::fs::write(sb.path().join("pub/big.bin"), &data).unwrap();
    sb.write(
        "app.py",
        "def application(env, sr):\n    sr('200 OK', [('Content-Type', 'application/octet-stream')])\n    return env['wsgi.file_wrapper'](open('pub/big.bin', 'rb'))\n",
    );
    let http = format!("127.0.0.1:{}", free_port());
    sb.write(
        "app.ini",
        &format!(
            "[uwsgi]\nhttp-socket = {http}\nwsgi-file = app.py\nstatic-map = /s={}\n",
            sb.path().join("pub").display()
        ),
    );
    let mut cmd = sb.command(BIN);
    cmd.args(["--ini", "app.ini"]);
    let _p = sb.spawn(cmd, "liege");
    wait_http(&http, "/", 200, T);
    for path in ["/s/big.bin", "/wrapped"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let r = Response::parse(raw_tcp(&http, req.as_bytes(), T).unwrap()).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body.len(), data.len(), "{path}");
        assert!(r.body == data, "{path}: body differs");
    }
}
