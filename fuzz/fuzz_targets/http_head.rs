//! HTTP/1.x request heads and chunked bodies from a client: `liege_protocol::http1`.
//! The first byte picks the limits (buffer-size, max-vars, underscore rule); the rest is the
//! request as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_protocol::http1::{parse, Chunked, Framing, Parse, Rules};

fuzz_target!(|data: &[u8]| {
    let Some((&knob, raw)) = data.split_first() else {
        return;
    };
    let rules = Rules {
        max_head: [64, 512, 4096, 65535][(knob & 3) as usize],
        max_headers: [1, 16, 64, 200][((knob >> 2) & 3) as usize],
        keep_underscore: knob & 16 != 0,
    };
    let mut hdrs = Vec::new();
    match parse(raw, &rules, &mut hdrs) {
        Parse::Partial => {
            // Only a head that fits the limit may be waited for.
            assert!(raw.len() <= rules.max_head);
        }
        Parse::Refused(r) => {
            assert!(matches!(r.status, 400 | 405 | 431), "{r:?}");
            assert!(!r.why.is_empty());
        }
        Parse::Done(h) => {
            assert!(h.len <= raw.len() && h.len <= rules.max_head);
            assert!(hdrs.len() <= rules.max_headers);
            // Every span lies inside the head.
            let inside = |s: (u32, u32)| s.0 <= s.1 && (s.1 as usize) <= h.len;
            for s in [h.method, h.path, h.query, h.target] {
                assert!(inside(s));
            }
            assert!(h.host.is_none_or(inside));
            for (n, v) in &hdrs {
                assert!(inside(*n) && inside(*v));
                let name = &raw[n.0 as usize..n.1 as usize];
                assert!(rules.keep_underscore || !name.contains(&b'_'));
            }
            // The body: decoding all at once and byte by byte agree.
            if h.framing == Framing::Chunked {
                let body = &raw[h.len..];
                let mut whole = Chunked::default();
                let mut out1 = Vec::new();
                let r1 = whole.decode(body, &mut out1, usize::MAX);
                let mut step = Chunked::default();
                let mut out2 = Vec::new();
                let mut buf = Vec::new();
                let mut r2 = Ok(0);
                for &b in body {
                    buf.push(b);
                    match step.decode(&buf, &mut out2, usize::MAX) {
                        Ok(n) => {
                            buf.drain(..n);
                        }
                        Err(e) => {
                            r2 = Err(e);
                            break;
                        }
                    }
                    if step.is_done() {
                        break;
                    }
                }
                if let (Ok(_), Ok(_)) = (&r1, &r2) {
                    assert_eq!(whole.is_done(), step.is_done());
                    assert_eq!(out1, out2);
                }
            }
        }
    }
});
