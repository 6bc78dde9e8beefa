//! The uwsgi-protocol codec (`liege_protocol::uwsgi`) and the master↔worker control messages
//! on arbitrary peer bytes: nothing panics, and every parse that succeeds re-encodes to the
//! same bytes.
//!
//! Input: byte 0 picks `buffer-size` (the `max_size` of `check`), byte 1 picks the var limit
//! (`max_vars` of `parse_vars`); the rest is what the peer sent. The control decoders get the
//! whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_protocol::control::{FromWorker, ToWorker};
use liege_protocol::uwsgi::{self, Check, Error, PacketHeader, HEADER_LEN};

/// `buffer-size` values worth covering: 0, uWSGI's default 4096, nginx-sized, the maximum.
const MAX_SIZES: [usize; 8] = [0, 1, 64, 4096, 8192, 32768, 65535, usize::MAX];

fuzz_target!(|data: &[u8]| {
    control(data);
    let [a, b, buf @ ..] = data else {
        return;
    };
    let max_size = MAX_SIZES[usize::from(*a) % MAX_SIZES.len()];
    let max_vars = usize::from(*b);
    packet(buf, max_size, max_vars);
    content_length(buf);
});

fn packet(buf: &[u8], max_size: usize, max_vars: usize) {
    let r = uwsgi::check(buf, max_size);
    match r {
        Ok(Check::Incomplete) => {
            if buf.len() >= HEADER_LEN {
                let size = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
                assert!(size <= max_size, "oversize block reported incomplete");
                assert!(
                    buf.len() < HEADER_LEN + size,
                    "complete packet reported incomplete"
                );
            }
        }
        Err(Error::TooLarge { size, max }) => {
            assert!(buf.len() >= HEADER_LEN);
            assert_eq!(max, max_size);
            assert!(size > max_size);
            assert_eq!(size, usize::from(u16::from_le_bytes([buf[1], buf[2]])));
            // Refused as soon as the header is there, whatever follows.
            assert_eq!(uwsgi::check(&buf[..HEADER_LEN], max_size), r);
        }
        Err(e) => panic!("check returned {e:?}"),
        Ok(Check::Complete { header, head_len }) => {
            assert_eq!(head_len, HEADER_LEN + usize::from(header.datasize));
            assert!(head_len <= buf.len());
            assert!(usize::from(header.datasize) <= max_size);
            assert_eq!(&header.encode()[..], &buf[..HEADER_LEN]);
            assert_eq!(PacketHeader::decode(header.encode()), header);
            // The answer depends only on the head: the body is not the packet's.
            assert_eq!(uwsgi::check(&buf[..head_len], max_size), r);
            assert_eq!(
                uwsgi::check(&buf[..head_len - 1], max_size),
                Ok(Check::Incomplete)
            );
            vars(
                &buf[HEADER_LEN..head_len],
                header,
                max_vars,
                &buf[..head_len],
            );
        }
    }
}

fn vars(block: &[u8], header: PacketHeader, max_vars: usize, head: &[u8]) {
    match uwsgi::parse_vars(block, max_vars) {
        Ok(vars) => {
            assert!(vars.len() <= max_vars);
            assert!(vars.iter().all(|(k, _)| !k.is_empty()));
            // The whole block was consumed, so encoding the vars gives back the same bytes.
            let again = uwsgi::encode(header.modifier1, header.modifier2, &vars)
                .expect("parsed vars always fit in a packet");
            assert_eq!(again, head);
            for (_, v) in &vars {
                content_length(v);
            }
        }
        // `offset` is where the missing length field or value starts (the end, at most).
        Err(Error::Truncated { offset }) => assert!(offset <= block.len()),
        Err(Error::TooManyVars { max }) => assert_eq!(max, max_vars),
        Err(Error::EmptyKey) => {}
        Err(e @ Error::TooLarge { .. }) => panic!("parse_vars returned {e:?}"),
    }
}

/// `CONTENT_LENGTH`: the leading decimal digits, saturating; anything else is 0.
fn content_length(v: &[u8]) {
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    let want = match std::str::from_utf8(&v[..digits]).unwrap() {
        "" => 0,
        d => d.parse::<u64>().unwrap_or(u64::MAX),
    };
    assert_eq!(uwsgi::content_length(v), want);
}

/// Control messages arrive as one SEQPACKET each; a decoded message re-encodes to itself.
fn control(data: &[u8]) {
    if let Ok(m) = FromWorker::decode(data) {
        assert_eq!(FromWorker::decode(&m.encode()).unwrap(), m);
    }
    if let Ok(m) = ToWorker::decode(data) {
        assert_eq!(ToWorker::decode(&m.encode()).unwrap(), m);
    }
}
