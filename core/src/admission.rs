//! Per-source-IP admission: counts the served connections open from each IP and refuses
//! (closes at once) one over `max_connections_per_ip`, so one client cannot take every
//! connection slot. Sharded so acceptors and closers on different threads rarely meet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::sync::lock;

const SHARDS: usize = 16;

pub(crate) struct PerIp {
    cap: usize,
    shards: Vec<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    pub fn new(cap: usize) -> PerIp {
        PerIp { cap, shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
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
        if self.cap == 0 {
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
        if self.cap == 0 {
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
        let p = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(p.admit(a) && p.admit(a));
        assert!(!p.admit(a), "third from a is refused");
        assert!(p.admit(b), "b has its own count");
        p.release(a);
        assert!(p.admit(a), "room again after a close");
        assert!(PerIp::new(0).admit(a), "0 means no cap");
    }
}
