//! Per-source-IP admission: counts the served connections open from each IP and refuses
//! (closes at once) one over `max_connections_per_ip`, so one client cannot take every
//! connection slot. Sharded so acceptors and closers on different threads rarely meet.
//!
//! By default only public sources are counted (`per_ip_scope = "public"`): a loopback,
//! private, link-local or shared-range source is a load balancer, a sidecar, a proxy or
//! a load test far more often than a flood, and capping it turns a per-client limit into
//! a global one (measured: `wrk -c5000` from loopback fell from 164k to 7k req/s as wrk
//! reconnected in a loop). Refusals are logged, at most once a second, with the option
//! that raises the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use crate::sync::lock;

const SHARDS: usize = 16;

pub(crate) struct PerIp {
    cap: usize,
    /// Count every source, not only public ones.
    all: bool,
    shards: Vec<Mutex<HashMap<IpAddr, usize>>>,
    /// When a refusal was last logged (ms since `epoch`; `u64::MAX`: never).
    last_log_ms: AtomicU64,
    epoch: Instant,
}

/// Whether `ip` is a public address: not loopback, private (10/8, 172.16/12,
/// 192.168/16, fc00::/7), link-local, shared (100.64/10), unspecified, or an IPv4
/// address mapped into IPv6 that is one of those.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let seg = v6.segments()[0];
                !(v6.is_loopback() || v6.is_unspecified() || (seg & 0xfe00) == 0xfc00 || (seg & 0xffc0) == 0xfe80)
            }
        },
    }
}

impl PerIp {
    pub fn new(cap: usize, all: bool) -> PerIp {
        PerIp {
            cap,
            all,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            last_log_ms: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    fn counts(&self, ip: IpAddr) -> bool {
        self.cap != 0 && (self.all || is_public(ip))
    }

    /// Logs a refusal of `ip`, at most once a second over all threads.
    pub fn log_refusal(&self, ip: IpAddr, refused_so_far: u64) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_log_ms.load(Relaxed);
        if last != u64::MAX && now < last.saturating_add(1000) {
            return;
        }
        if self.last_log_ms.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
            eprintln!(
                "corral: refused a connection from {ip}: it has {} open, the per-IP cap \
                 (max_connections_per_ip; 0 turns it off) ({refused_so_far} refused so far)",
                self.cap
            );
        }
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(v4) => u32::from(*v4) as usize,
            IpAddr::V6(v6) => v6.octets().iter().fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(*b as usize)),
        };
        &self.shards[h % SHARDS]
    }

    /// Counts a new connection from `ip`; false (and not counted) if `ip` is at the cap.
    pub fn admit(&self, ip: IpAddr) -> bool {
        if !self.counts(ip) {
            return true;
        }
        let mut m = lock(self.shard(&ip));
        let n = m.entry(ip).or_insert(0);
        if *n >= self.cap {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` that `admit` counted has closed.
    pub fn release(&self, ip: IpAddr) {
        if !self.counts(ip) {
            return;
        }
        let mut m = lock(self.shard(&ip));
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_ip_separately() {
        let p = PerIp::new(2, true);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(p.admit(a) && p.admit(a));
        assert!(!p.admit(a), "third from a is refused");
        assert!(p.admit(b), "b has its own count");
        p.release(a);
        assert!(p.admit(a), "room again after a close");
        assert!(PerIp::new(0, true).admit(a), "0 means no cap");
    }

    #[test]
    fn by_default_only_public_sources_are_counted() {
        let p = PerIp::new(1, false);
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = local.parse().unwrap();
            assert!(!is_public(ip), "{local}");
            assert!(p.admit(ip) && p.admit(ip), "{local} is not capped");
        }
        let public: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(is_public(public) && is_public("2001:db8::1".parse().unwrap()));
        assert!(p.admit(public));
        assert!(!p.admit(public), "a public source is capped");
    }
}
