//! The uwsgi request packet (uWSGI semantics §4.1), sans-io.
//!
//! ```text
//! u8 modifier1 | u16le datasize | u8 modifier2 | vars block (datasize bytes) | raw body
//! vars block := ( u16le key_len | key | u16le val_len | val )*
//! ```
//!
//! Use [`check`] on the bytes received so far; it answers [`Check::Incomplete`] (read more,
//! not an error) or [`Check::Complete`] with the packet geometry. Then [`parse_vars`] splits
//! the vars block. The body is not framed by the packet: its length is `CONTENT_LENGTH`
//! ([`content_length`]).

/// Size of the fixed packet header.
pub const HEADER_LEN: usize = 4;

/// The fixed 4-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    pub modifier1: u8,
    /// Size of the vars block (the body is not counted).
    pub datasize: u16,
    pub modifier2: u8,
}

impl PacketHeader {
    /// Decode the first 4 bytes.
    pub fn decode(b: [u8; 4]) -> PacketHeader {
        PacketHeader {
            modifier1: b[0],
            datasize: u16::from_le_bytes([b[1], b[2]]),
            modifier2: b[3],
        }
    }
    pub fn encode(&self) -> [u8; 4] {
        let d = self.datasize.to_le_bytes();
        [self.modifier1, d[0], d[1], self.modifier2]
    }
}

/// Result of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not enough bytes yet; read more.
    Incomplete,
    /// Header and vars block are present: the vars block is `buf[HEADER_LEN..head_len]` and
    /// the body starts at `head_len`.
    Complete {
        header: PacketHeader,
        head_len: usize,
    },
}

/// A packet that must be refused (the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `datasize` exceeds `buffer-size` (uWSGI logs "invalid request block size").
    #[error("invalid request block size: {size} (max {max})...skip")]
    TooLarge { size: usize, max: usize },
    /// A key of length zero (uWSGI drops the request).
    #[error("empty key in the uwsgi vars block")]
    EmptyKey,
    /// A length field points past the end of the vars block.
    #[error("truncated var in the uwsgi vars block at offset {offset}")]
    Truncated { offset: usize },
    /// More variables than allowed (uWSGI: "max vec size reached").
    #[error("max vec size reached: more than {max} vars")]
    TooManyVars { max: usize },
}

/// Check whether `buf` starts with a complete packet header and vars block.
/// `max_size` is `buffer-size`: a larger vars block is refused as soon as the header is seen.
pub fn check(buf: &[u8], max_size: usize) -> Result<Check, Error> {
    if buf.len() < HEADER_LEN {
        return Ok(Check::Incomplete);
    }
    let header = PacketHeader::decode([buf[0], buf[1], buf[2], buf[3]]);
    let size = header.datasize as usize;
    if size > max_size {
        return Err(Error::TooLarge {
            size,
            max: max_size,
        });
    }
    let head_len = HEADER_LEN + size;
    if buf.len() < head_len {
        return Ok(Check::Incomplete);
    }
    Ok(Check::Complete { header, head_len })
}

/// One `(key, value)` pair borrowed from a vars block.
pub type Var<'a> = (&'a [u8], &'a [u8]);

/// Split a vars block into `(key, value)` pairs, in order, duplicates kept. `max_vars` is the
/// maximum number of pairs (uWSGI drops a packet with more than 2 × `max-vars` variables:
/// pass `max-vars * 2`).
pub fn parse_vars(block: &[u8], max_vars: usize) -> Result<Vec<Var<'_>>, Error> {
    let mut out = Vec::with_capacity(24);
    let mut i = 0;
    while i < block.len() {
        if out.len() >= max_vars {
            return Err(Error::TooManyVars { max: max_vars });
        }
        let (key, next) = take(block, i)?;
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        let (val, next) = take(block, next)?;
        out.push((key, val));
        i = next;
    }
    Ok(out)
}

fn take(block: &[u8], at: usize) -> Result<(&[u8], usize), Error> {
    let len_bytes = block
        .get(at..at + 2)
        .ok_or(Error::Truncated { offset: at })?;
    let len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
    let start = at + 2;
    let s = block
        .get(start..start + len)
        .ok_or(Error::Truncated { offset: at })?;
    Ok((s, start + len))
}

/// Encode a packet (header + vars block). Keys and values longer than 65535 bytes, or a
/// block longer than 65535 bytes, cannot be encoded and return `None`.
pub fn encode(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Option<Vec<u8>> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&u16::try_from(k.len()).ok()?.to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&u16::try_from(v.len()).ok()?.to_le_bytes());
        block.extend_from_slice(v);
    }
    let header = PacketHeader {
        modifier1,
        datasize: u16::try_from(block.len()).ok()?,
        modifier2,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + block.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&block);
    Some(out)
}

/// `CONTENT_LENGTH` as uWSGI reads it: the leading decimal digits; empty or non-numeric is 0.
/// Saturates instead of overflowing.
pub fn content_length(v: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add((b - b'0') as u64);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_packet() {
        // modifier1 0, datasize 14, modifier2 0, one var "A"="bcd" and "E"=""
        let pkt = encode(0, 0, &[(b"A", b"bcd"), (b"E", b"")]).unwrap();
        assert_eq!(
            pkt,
            vec![0, 13, 0, 0, 1, 0, b'A', 3, 0, b'b', b'c', b'd', 1, 0, b'E', 0, 0]
        );
        match check(&pkt, 4096).unwrap() {
            Check::Complete { header, head_len } => {
                assert_eq!(header.datasize, 13);
                assert_eq!(head_len, 17);
                let vars = parse_vars(&pkt[HEADER_LEN..head_len], 128).unwrap();
                assert_eq!(vars, vec![(&b"A"[..], &b"bcd"[..]), (&b"E"[..], &b""[..])]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_sent_to_uwsgi_socket_is_21573() {
        assert_eq!(
            check(b"GET / HTTP/1.1\r\n", 4096),
            Err(Error::TooLarge {
                size: 21573,
                max: 4096
            })
        );
    }

    #[test]
    fn incomplete_is_not_an_error() {
        let pkt = encode(0, 0, &[(b"KEY", b"value")]).unwrap();
        for n in 0..pkt.len() {
            assert_eq!(check(&pkt[..n], 4096), Ok(Check::Incomplete), "prefix {n}");
        }
    }

    #[test]
    fn bad_blocks() {
        assert_eq!(parse_vars(&[0, 0, 0, 0], 10), Err(Error::EmptyKey));
        assert_eq!(
            parse_vars(&[1, 0, b'a', 5, 0, b'x'], 10),
            Err(Error::Truncated { offset: 3 })
        );
        assert_eq!(parse_vars(&[1], 10), Err(Error::Truncated { offset: 0 }));
        let many: Vec<(&[u8], &[u8])> = vec![(b"k", b"v"); 5];
        let pkt = encode(0, 0, &many).unwrap();
        assert_eq!(parse_vars(&pkt[4..], 4), Err(Error::TooManyVars { max: 4 }));
        assert_eq!(parse_vars(&pkt[4..], 5).unwrap().len(), 5);
    }

    #[test]
    fn content_length_leading_digits() {
        assert_eq!(content_length(b""), 0);
        assert_eq!(content_length(b"abc"), 0);
        assert_eq!(content_length(b"123"), 123);
        assert_eq!(content_length(b"12x3"), 12);
        assert_eq!(content_length(b"99999999999999999999999"), u64::MAX);
    }

    fn var() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(any::<u8>(), 1..40),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
    }

    proptest! {
        #[test]
        fn round_trip(vars in proptest::collection::vec(var(), 0..30), m1 in any::<u8>(), m2 in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let refs: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let mut pkt = encode(m1, m2, &refs).unwrap();
            pkt.extend_from_slice(&body);
            match check(&pkt, 65535).unwrap() {
                Check::Complete { header, head_len } => {
                    prop_assert_eq!(header.modifier1, m1);
                    prop_assert_eq!(header.modifier2, m2);
                    prop_assert_eq!(&pkt[head_len..], &body[..]);
                    let parsed = parse_vars(&pkt[HEADER_LEN..head_len], 1000).unwrap();
                    prop_assert_eq!(parsed, refs);
                }
                Check::Incomplete => prop_assert!(false, "complete packet reported incomplete"),
            }
        }

        /// Arbitrary bytes never panic; any prefix of a valid packet is Incomplete.
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600), max in 0usize..70000) {
            if let Ok(Check::Complete { head_len, .. }) = check(&buf, max) {
                prop_assert!(head_len <= buf.len());
                let _ = parse_vars(&buf[HEADER_LEN..head_len], 128);
            }
        }

        #[test]
        fn prefixes_are_incomplete(vars in proptest::collection::vec(var(), 1..10), cut in any::<proptest::sample::Index>()) {
            let refs: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let pkt = encode(0, 0, &refs).unwrap();
            let n = cut.index(pkt.len());
            prop_assert_eq!(check(&pkt[..n], 65535).unwrap(), Check::Incomplete);
        }

        #[test]
        fn oversize_block_refused(vars in proptest::collection::vec(var(), 1..30), max in 0usize..2000) {
            let refs: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let pkt = encode(0, 0, &refs).unwrap();
            let size = pkt.len() - HEADER_LEN;
            let r = check(&pkt, max);
            if size > max {
                prop_assert_eq!(r, Err(Error::TooLarge { size, max }));
            } else {
                let complete = matches!(r, Ok(Check::Complete { .. }));
                prop_assert!(complete, "expected a complete packet");
            }
        }
    }
}
