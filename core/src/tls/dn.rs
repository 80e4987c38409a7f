//! A certificate's subject as the text RFC 4514 gives it (`CN=alice,O=Example,C=DE`):
//! what the ASGI `tls` extension's `client_cert_name` and WSGI's `SSL_CLIENT_S_DN` hold.
//!
//! Invariants: the input is the DER of a `Name` (its `RDNSequence`, without the outer
//! tag), as webpki hands it; the relative names come out last first, as RFC 4514 orders
//! them, with `+` inside one; a value that is not a string, or an attribute without a
//! short name, is written `OID=#<hex of its DER>` as RFC 4514 allows; malformed DER
//! gives `None` rather than a partial name.

/// The RFC 4514 text of the `RDNSequence` in `der`.
pub(super) fn rfc4514(der: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tag, set, after) = tlv(rest)?;
        if tag != 0x31 {
            return None;
        }
        rdns.push(rdn(set)?);
        rest = after;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One relative name: its attributes, joined by `+`.
fn rdn(mut set: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !set.is_empty() {
        let (tag, attribute, after) = tlv(set)?;
        if tag != 0x30 {
            return None;
        }
        let (oid_tag, oid, value) = tlv(attribute)?;
        if oid_tag != 0x06 {
            return None;
        }
        let (value_tag, text, end) = tlv(value)?;
        if !end.is_empty() {
            return None;
        }
        let (name, text) = match (short_name(oid), string(value_tag, text)) {
            (Some(name), Some(text)) => (name.to_string(), escape(&text)),
            _ => (dotted(oid)?, format!("#{}", hex(value))),
        };
        parts.push(format!("{name}={text}"));
        set = after;
    }
    Some(parts.join("+"))
}

/// A tag, its contents and what follows (single-byte tags, definite lengths: DER).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        n @ 0x81..=0x84 => {
            let bytes = rest.get(..usize::from(n - 0x80))?;
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[bytes.len()..])
        }
        _ => return None,
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The short names RFC 4514 (and OpenSSL, for the e-mail address) give attributes.
fn short_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// The text of a directory string (UTF8, Printable, IA5, Teletex, BMP).
fn string(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        0x0c | 0x13 | 0x16 => String::from_utf8(bytes.to_vec()).ok(),
        // Teletex: in practice Latin-1.
        0x14 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        0x1e if bytes.len() % 2 == 0 => {
            let units = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        _ => None,
    }
}

/// RFC 4514 escaping: the special characters, a leading `#` or space, a trailing space.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => out.push('\\'),
            '#' | ' ' if i == 0 => out.push('\\'),
            ' ' if i == last => out.push('\\'),
            '\0' => {
                out.push_str("\\00");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// An OID in dotted decimal (`1.2.840.113549.1.9.1`).
fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut parts = vec![u64::from(first / 40).min(2), u64::from(first) - 40 * u64::from(first / 40).min(2)];
    let mut n: u64 = 0;
    for &b in rest {
        n = n.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(n);
            n = 0;
        }
    }
    Some(parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DER of one attribute `oid = value` (tag `tag`), as its own relative name.
    fn rdn(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut atv = vec![0x06, oid.len() as u8];
        atv.extend_from_slice(oid);
        atv.extend_from_slice(&[tag, value.len() as u8]);
        atv.extend_from_slice(value);
        let mut seq = vec![0x30, atv.len() as u8];
        seq.extend(atv);
        let mut set = vec![0x31, seq.len() as u8];
        set.extend(seq);
        set
    }

    #[test]
    fn names_come_last_first_escaped_and_unknown_ones_in_hex() {
        let der = [
            rdn(&[0x55, 0x04, 0x06], 0x13, b"DE"),
            rdn(&[0x55, 0x04, 0x0a], 0x0c, b"Example, Inc."),
            rdn(&[0x55, 0x04, 0x03], 0x0c, b" alice"),
            rdn(&[0x55, 0x04, 0x2a], 0x1e, &[0x00, 0x41]),
            rdn(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37], 0x02, &[0x05]),
        ]
        .concat();
        assert_eq!(
            rfc4514(&der).unwrap(),
            "1.3.6.1.4.1.311=#020105,2.5.4.42=#1e020041,CN=\\ alice,O=Example\\, Inc.,C=DE"
        );
        assert_eq!(rfc4514(&[]).unwrap(), "");
        assert_eq!(rfc4514(&der[..der.len() - 1]), None, "truncated DER is no name");
    }

    #[test]
    fn a_generated_certificates_subject_reads_most_specific_first() {
        let mut p = rcgen::CertificateParams::new(vec!["client.test".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "Corral Test");
        p.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let parsed = webpki::EndEntityCert::try_from(cert.der()).unwrap();
        assert_eq!(rfc4514(parsed.subject()).unwrap(), "CN=alice,O=Corral Test");
    }
}
