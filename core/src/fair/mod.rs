//! Fair shares per client: who a client is, deficit round robin over clients, and a
//! per-client request rate limit.
//!
//! A *client* is the peer's address (the PROXY header's source behind a balancer), or,
//! where the app names one, a key of its own — an API token in a request header
//! (`client_key_header`) or what [`crate::Handler::client_key`] returns. Every
//! connection carries its client's key; the I/O workers' run queues and the CPU pool
//! serve clients, not connections or jobs, by deficit round robin ([`drr`]), so a
//! client with 200 connections or 64 queued heavy requests gets the share of one with a
//! single request waiting. [`rate`] refuses a client's requests over its rate (429).
//!
//! - [`drr`]: deficit round robin, by rounds (I/O workers) or item by item with costs
//!   charged after the fact (the CPU pool).
//! - [`rate`]: the generic cell rate algorithm per client, a bounded table.
//!
//! Invariants: a key is a hash, never an address kept for its own sake; shares are
//! computed under one owner (a worker's loop, the pool's queue lock), so the arithmetic
//! needs no atomics.

pub(crate) mod drr;
pub(crate) mod rate;

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;

/// Who a request comes from, for shares and rate limits.
pub(crate) type ClientKey = u64;

/// The process's random hash seed: clients cannot aim at one key by choosing their
/// addresses or tokens.
fn seed() -> &'static std::collections::hash_map::RandomState {
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    SEED.get_or_init(Default::default)
}

/// The key of a client known by its address. IPv4-mapped IPv6 addresses count as the
/// IPv4 address they carry (one client, whichever socket family it reached).
pub(crate) fn key_of_ip(ip: IpAddr) -> ClientKey {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut h = seed().build_hasher();
    0u8.hash(&mut h);
    ip.hash(&mut h);
    h.finish()
}

/// The key of a client the app names (a token's bytes); never equal to an address's
/// by construction (a different domain tag goes into the hash).
pub(crate) fn key_of_token(token: &[u8]) -> ClientKey {
    let mut h = seed().build_hasher();
    1u8.hash(&mut h);
    token.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_address_and_per_token() {
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(key_of_ip(a), key_of_ip(a));
        assert_ne!(key_of_ip(a), key_of_ip(b));
        assert_eq!(key_of_ip(a), key_of_ip(mapped), "an IPv4-mapped address is the IPv4 client");
        assert_eq!(key_of_token(b"tok"), key_of_token(b"tok"));
        assert_ne!(key_of_token(b"tok"), key_of_token(b"tok2"));
    }
}
