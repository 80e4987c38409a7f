//! The PROXY protocol (HAProxy's v1 text and v2 binary headers): a load balancer in
//! front of corral says, before the first byte of the client's, whom the connection
//! is really from. Parsing is `ppp`'s; this module decides what corral accepts.
//!
//! Rules (from the specification): a listener configured for PROXY never serves a byte
//! before a complete, valid header; it takes headers only from trusted sources
//! (`proxy_trusted`, loopback by default; others are refused before anything is read);
//! the header must arrive within the header deadline; bytes after it belong to the app;
//! a `LOCAL` header (a balancer's health check) is served with the socket's own
//! addresses; a v2 CRC32C TLV, when present, must match.

use std::net::{IpAddr, SocketAddr};

use ppp::v1;
use ppp::v2;
use ppp::PartialResult;

use crate::config::ProxyMode;

/// What a PROXY header said about a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client as the balancer saw it; `None` for `LOCAL`, `UNKNOWN` and non-IP
    /// families (the connection is then served with the socket's own addresses).
    pub source: Option<SocketAddr>,
    /// The address the client connected to at the balancer.
    pub destination: Option<SocketAddr>,
    /// v2 type-length-values, in order (`PP2_TYPE_*`: 0x01 ALPN, 0x02 authority, 0x05
    /// unique id, 0x20 SSL, 0xE0–0xEF custom ones such as AWS's 0xEA), as raw bytes.
    tlvs: Vec<(u8, Vec<u8>)>,
}

impl ProxyHeader {
    pub fn tlvs(&self) -> &[(u8, Vec<u8>)] {
        &self.tlvs
    }
    /// The first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_slice())
    }
    /// The host name the client asked for (TLS SNI or `Host`), `PP2_TYPE_AUTHORITY`.
    pub fn authority(&self) -> Option<&str> {
        self.tlv(0x02).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// The balancer's id for the connection, `PP2_TYPE_UNIQUE_ID`.
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlv(0x05)
    }
    /// The application protocol negotiated by the balancer, `PP2_TYPE_ALPN`.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlv(0x01)
    }
}

/// The outcome of looking at a connection's first bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Preamble {
    /// Not a whole header yet.
    NeedMore,
    /// A valid header of `used` bytes.
    Done { used: usize, header: ProxyHeader },
    /// Not a valid header: the connection is closed.
    Bad(&'static str),
}

/// The longest v1 header the specification allows (`PROXY TCP6 ...` with CRLF).
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const PP2_TYPE_CRC32C: u8 = 0x03;

/// Parses the header `mode` expects from the start of `buf`. A v2 header may be up to
/// `limit` bytes (its TLVs included); more is refused.
pub(crate) fn parse(mode: ProxyMode, buf: &[u8], limit: usize) -> Preamble {
    let v2_start = buf.len().min(V2_SIGNATURE.len());
    let looks_v2 = buf[..v2_start] == V2_SIGNATURE[..v2_start];
    let looks_v1 = {
        let n = buf.len().min(6);
        buf[..n] == b"PROXY "[..n]
    };
    match mode {
        ProxyMode::Off => Preamble::Done { used: 0, header: ProxyHeader::none() },
        ProxyMode::V2 | ProxyMode::Any if looks_v2 => parse_v2(buf, limit),
        ProxyMode::V1 | ProxyMode::Any if looks_v1 => parse_v1(buf),
        ProxyMode::V1 => Preamble::Bad("expected a PROXY v1 header"),
        ProxyMode::V2 => Preamble::Bad("expected a PROXY v2 header"),
        ProxyMode::Any => Preamble::Bad("expected a PROXY header"),
    }
}

impl ProxyHeader {
    fn none() -> ProxyHeader {
        ProxyHeader { version: 0, source: None, destination: None, tlvs: Vec::new() }
    }
}

fn parse_v1(buf: &[u8]) -> Preamble {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Preamble::Bad("PROXY v1 header longer than 107 bytes")
        } else {
            Preamble::NeedMore
        };
    };
    let used = end + 2;
    match v1::Header::try_from(&buf[..used]) {
        Ok(h) => {
            let (source, destination) = match h.addresses {
                v1::Addresses::Tcp4(a) => ends_v4(&a),
                v1::Addresses::Tcp6(a) => ends_v6(&a),
                v1::Addresses::Unknown => (None, None),
            };
            Preamble::Done { used, header: ProxyHeader { version: 1, source, destination, tlvs: Vec::new() } }
        }
        Err(e) if e.is_incomplete() => Preamble::NeedMore,
        Err(_) => Preamble::Bad("malformed PROXY v1 header"),
    }
}

fn parse_v2(buf: &[u8], limit: usize) -> Preamble {
    if buf.len() >= 16 {
        let total = 16 + u16::from_be_bytes([buf[14], buf[15]]) as usize;
        if total > limit {
            return Preamble::Bad("PROXY v2 header larger than max_header");
        }
        if buf.len() < total {
            return Preamble::NeedMore;
        }
    } else {
        return Preamble::NeedMore;
    }
    let h = match v2::Header::try_from(buf) {
        Ok(h) => h,
        Err(e) if e.is_incomplete() => return Preamble::NeedMore,
        Err(_) => return Preamble::Bad("malformed PROXY v2 header"),
    };
    let used = h.len();
    let mut tlvs = Vec::new();
    for t in h.tlvs() {
        match t {
            Ok(t) => tlvs.push((t.kind, t.value.into_owned())),
            Err(_) => return Preamble::Bad("malformed PROXY v2 TLV"),
        }
    }
    if let Some((_, crc)) = tlvs.iter().find(|(k, _)| *k == PP2_TYPE_CRC32C) {
        if !crc_matches(&buf[..used], crc) {
            return Preamble::Bad("PROXY v2 CRC32C does not match");
        }
    }
    let local = h.command == v2::Command::Local;
    let (source, destination) = match h.addresses {
        _ if local => (None, None),
        v2::Addresses::IPv4(a) => ends_v4(&a),
        v2::Addresses::IPv6(a) => ends_v6(&a),
        v2::Addresses::Unix(_) | v2::Addresses::Unspecified => (None, None),
    };
    Preamble::Done { used, header: ProxyHeader { version: 2, source, destination, tlvs } }
}

type Ends = (Option<SocketAddr>, Option<SocketAddr>);

/// (source, destination) of an IPv4 address block (the same type in v1 and v2).
fn ends_v4(a: &v1::IPv4) -> Ends {
    let at = |ip, port| Some(SocketAddr::new(IpAddr::V4(ip), port));
    (at(a.source_address, a.source_port), at(a.destination_address, a.destination_port))
}

fn ends_v6(a: &v1::IPv6) -> Ends {
    let at = |ip, port| Some(SocketAddr::new(IpAddr::V6(ip), port));
    (at(a.source_address, a.source_port), at(a.destination_address, a.destination_port))
}

/// The fuzzing entry point (the `proxy` target in `fuzz/`, and a property test here):
/// `data` in every mode, whole and cut at every point. Invariants: no panic; a header
/// consumes at least its fixed part and no more than is there; a prefix of a valid
/// header is never refused (only `NeedMore`); waiting never holds more than `limit`.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) -> Result<(), String> {
    const LIMIT: usize = 512;
    for mode in [ProxyMode::V1, ProxyMode::V2, ProxyMode::Any] {
        let whole = parse(mode, data, LIMIT);
        if let Preamble::Done { used, .. } = whole {
            if used < 8 || used > data.len() {
                return Err(format!("{mode:?}: used {used} of {} bytes", data.len()));
            }
            for cut in 0..used {
                if let Preamble::Bad(why) = parse(mode, &data[..cut], LIMIT) {
                    return Err(format!("{mode:?}: a prefix of {cut} bytes of a valid header was refused: {why}"));
                }
            }
        }
        if whole == Preamble::NeedMore && data.len() > LIMIT + 16 {
            return Err(format!("{mode:?}: waits for more with {} bytes buffered", data.len()));
        }
    }
    Ok(())
}

/// The CRC32C TLV's check: the checksum of the whole header with the TLV's own four
/// value bytes taken as zero (the specification's rule).
fn crc_matches(header: &[u8], given: &[u8]) -> bool {
    if given.len() != 4 {
        return false;
    }
    // Find the CRC TLV's value within the header to zero it.
    let mut copy = header.to_vec();
    let mut i = 16 + address_len(header[13]);
    while i + 3 <= copy.len() {
        let kind = copy[i];
        let len = u16::from_be_bytes([copy[i + 1], copy[i + 2]]) as usize;
        if i + 3 + len > copy.len() {
            return false;
        }
        if kind == PP2_TYPE_CRC32C && len == 4 {
            copy[i + 3..i + 7].fill(0);
            break;
        }
        i += 3 + len;
    }
    crc32c(&copy) == u32::from_be_bytes([given[0], given[1], given[2], given[3]])
}

/// The address block's length for a v2 family/protocol byte.
fn address_len(family: u8) -> usize {
    match family >> 4 {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit per byte from a
/// table made at compile time.
fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, addrs: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(0x11); // TCP over IPv4
        h.extend_from_slice(&((addrs.len() + tlvs.len()) as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h.extend_from_slice(tlvs);
        h
    }
    const ADDRS: [u8; 12] = [203, 0, 113, 7, 10, 0, 0, 1, 0x30, 0x39, 0, 80];

    #[test]
    fn v1_and_v2_headers_give_the_client_and_leave_the_rest() {
        let mut b = b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\nGET /".to_vec();
        let Preamble::Done { used, header } = parse(ProxyMode::Any, &b, 4096) else { panic!() };
        assert_eq!(&b[used..], b"GET /");
        assert_eq!(header.source, Some("198.51.100.2:4242".parse().unwrap()));
        b.truncate(20);
        assert_eq!(parse(ProxyMode::V1, &b, 4096), Preamble::NeedMore);

        let mut h = v2(1, &ADDRS, &[0x02, 0, 3, b'a', b'.', b'b']);
        h.extend_from_slice(b"body");
        let Preamble::Done { used, header } = parse(ProxyMode::V2, &h, 4096) else { panic!() };
        assert_eq!(&h[used..], b"body");
        assert_eq!(header.source, Some("203.0.113.7:12345".parse().unwrap()));
        assert_eq!(header.authority(), Some("a.b"));
        for cut in 0..used {
            assert_eq!(parse(ProxyMode::Any, &h[..cut], 4096), Preamble::NeedMore, "cut at {cut}");
        }
    }

    #[test]
    fn local_bad_wrong_version_oversized_and_crc() {
        let Preamble::Done { header, .. } = parse(ProxyMode::V2, &v2(0, &ADDRS, &[]), 4096) else { panic!() };
        assert_eq!(header.source, None, "LOCAL: the socket's own addresses");
        assert!(matches!(parse(ProxyMode::V2, b"GET / HTTP/1.1\r\n", 4096), Preamble::Bad(_)));
        assert!(matches!(parse(ProxyMode::V1, &v2(1, &ADDRS, &[]), 4096), Preamble::Bad(_)));
        assert!(matches!(parse(ProxyMode::V1, &[b'P'; 200], 4096), Preamble::Bad(_)));
        assert!(matches!(parse(ProxyMode::V1, b"PROXY TCP4 1.2.3.4 x 1 2\r\n", 4096), Preamble::Bad(_)));
        let big = v2(1, &ADDRS, &[0x04, 0x10, 0x00]); // a NOOP TLV claiming 4 KiB
        assert!(matches!(parse(ProxyMode::V2, &big, 1024), Preamble::Bad(_)));
        // CRC32C: right, then wrong.
        let mut h = v2(1, &ADDRS, &[0x03, 0, 4, 0, 0, 0, 0]);
        let crc = crc32c(&h);
        let n = h.len();
        h[n - 4..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(parse(ProxyMode::V2, &h, 4096), Preamble::Done { .. }));
        h[n - 1] ^= 1;
        assert_eq!(parse(ProxyMode::V2, &h, 4096), Preamble::Bad("PROXY v2 CRC32C does not match"));
    }

    #[test]
    fn any_bytes_keep_the_fuzz_invariants() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = [
            b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\nrest".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, &ADDRS, &[0x02, 0, 1, b'x']),
            v2(0, &ADDRS, &[]),
        ];
        for base in &valid {
            fuzz(base).unwrap();
            // Every single-byte change of a valid header, too.
            for i in 0..base.len() {
                let mut m = base.clone();
                m[i] = (next() & 0xFF) as u8;
                fuzz(&m).unwrap();
            }
        }
        for _ in 0..2000 {
            let n = (next() % 600) as usize;
            let mut d: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            if next() % 2 == 0 && d.len() >= 12 {
                d[..12].copy_from_slice(V2_SIGNATURE);
            }
            fuzz(&d).unwrap();
        }
    }

    #[test]
    fn crc32c_known_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
