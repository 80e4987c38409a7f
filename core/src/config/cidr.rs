//! Address blocks (`proxy_trusted`): an option value, parsed and shown here; the
//! acceptors and `accept::preamble` ask a block whether it holds a source.

use std::net::IpAddr;

/// An address block (`10.0.0.0/8`, `::1/128`, or a bare address for one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }

    /// A comma-separated list of blocks; `none` (or nothing) is the empty list.
    pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
        let text = text.trim();
        if text.is_empty() || text == "none" {
            return Ok(Vec::new());
        }
        text.split(',').map(|s| s.trim().parse()).collect()
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    let rest = prefix % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| format!("{s:?} is not an address or address/prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_hold_their_addresses() {
        let l = Cidr::parse_list("127.0.0.0/8, ::1, 10.1.0.0/16").unwrap();
        let t = |s: &str| l.iter().any(|c| c.contains(s.parse().unwrap()));
        assert!(t("127.9.9.9") && t("::1") && t("10.1.200.3") && t("::ffff:127.0.0.1"));
        assert!(!t("10.2.0.1") && !t("192.0.2.1") && !t("::2"));
        assert!(Cidr::parse_list("none").unwrap().is_empty());
        assert!(Cidr::parse_list("10.0.0.0/33").is_err() && Cidr::parse_list("banana").is_err());
    }
}
