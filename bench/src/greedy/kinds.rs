//! The four greedy clients of issue 26 and the polite clients they run beside.
//!
//! Polite: `polite` clients (32 by default), each one keep-alive connection from its own
//! address 127.0.0.(10+i), closed loop with one request in flight: `GET /`, and in the
//! heavy kind every 8th request `/work?us=2000` (2 ms of CPU on the server's CPU pool).
//! The greedy client comes from 127.0.1.1, every connection of it:
//!
//! | kind | greedy client |
//! | --- | --- |
//! | a `pipelining` | one connection, 64 light requests in flight |
//! | b `connections` | 200 connections, each closed loop with one light request in flight |
//! | c `heavy` | only `/work?us=2000`: 8 connections x 2 in flight |
//! | d `slow-reader` | one connection (64 KiB socket buffers) that writes light requests until its socket blocks, and never reads |
//!
//! Why 8 x 2 for the heavy client: 8 connections are 4 times the CPU pool's threads (2 on
//! this machine), so even a server that runs one request per connection at a time can
//! give it every pool thread; the second request in flight on each removes the round
//! trip between a reply and the next request, so its queue never runs dry. With 16
//! heavy requests outstanding beside the polite clients' at most 32 (one request in 8
//! heavy), it asks for most of the pool without also being a many-connections client
//! (that is kind b). One pipelined connection would be no test: HTTP/1.1 answers a
//! connection's requests in order, so a server may run them one at a time.

use std::net::Ipv4Addr;

use super::drive::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pipelining,
    Connections,
    Heavy,
    SlowReader,
}

/// The source address of every greedy connection.
pub const GREEDY_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// The most polite clients (their addresses are 127.0.0.10 to 127.0.0.249).
pub const POLITE_MAX: usize = 240;

/// What the clients send and how many there are.
#[derive(Clone, Debug)]
pub struct Load {
    pub polite: usize,
    /// Each polite client's every `heavy_every`-th request is heavy (the heavy kind only).
    pub heavy_every: usize,
    /// CPU time of one heavy request, in microseconds.
    pub heavy_us: u64,
}

impl Load {
    /// The heavy request's target.
    pub fn heavy_path(&self) -> String {
        format!("/work?us={}", self.heavy_us)
    }
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Pipelining, Kind::Connections, Kind::Heavy, Kind::SlowReader];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pipelining => "pipelining",
            Kind::Connections => "connections",
            Kind::Heavy => "heavy",
            Kind::SlowReader => "slow-reader",
        }
    }

    /// The letter for it.
    pub fn letter(self) -> &'static str {
        match self {
            Kind::Pipelining => "a",
            Kind::Connections => "b",
            Kind::Heavy => "c",
            Kind::SlowReader => "d",
        }
    }

    /// By letter or by name.
    pub fn parse(s: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.letter() == s || k.name() == s).ok_or_else(|| {
            format!("unknown greedy kind {s:?}: use a, b, c, d or pipelining, connections, heavy, slow-reader")
        })
    }

    /// The greedy client, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Pipelining => "one connection, 64 requests pipelined",
            Kind::Connections => "200 connections from one address, 1 in flight each",
            Kind::Heavy => "only CPU-pool requests, 8 connections x 2 in flight",
            Kind::SlowReader => "pipelines until its socket blocks, never reads",
        }
    }

    /// What the greedy client does and what a server should do about it, in two
    /// sentences (the lab's report).
    pub fn explain(self) -> &'static str {
        match self {
            Kind::Pipelining => {
                "One connection keeps 64 requests in flight, so whenever the server turns to it there is more \
                 to answer. A server that keeps answering a connection while it has requests buffered lets it \
                 crowd out the polite clients; fair shares per client give it its due and no more."
            }
            Kind::Connections => {
                "One client opens 200 connections from one address, each with one request in flight: 200 of \
                 the 232 connections. A server that is fair per connection gives it 200 turns in 232; corral's \
                 fair shares are keyed on the peer's address, so its connections count as one client."
            }
            Kind::Heavy => {
                "Only CPU-pool requests (2 ms of CPU each, 8 connections with 2 in flight each) while every 8th \
                 polite request is heavy too, so the contended resource is the CPU pool and its share counts \
                 heavy replies only. nginx has no row: it answers every path with hello, so there is no CPU \
                 work to be greedy for."
            }
            Kind::SlowReader => {
                "One connection writes requests until its socket blocks and never reads a reply, so its \
                 replies back up in the server. A server should stop reading it then rather than spend its \
                 workers or memory on it: its share counts the replies that reached its socket, 0 once the \
                 server stopped."
            }
        }
    }

    /// Whether the contended resource is the CPU pool (counted in heavy replies) rather
    /// than replies of any kind.
    pub fn pool_bound(self) -> bool {
        self == Kind::Heavy
    }

    /// The polite clients of this kind.
    pub fn polite(self, load: &Load) -> Vec<Client> {
        let heavy_every = if self == Kind::Heavy { load.heavy_every } else { 0 };
        (0..load.polite.min(POLITE_MAX))
            .map(|i| Client {
                source: Ipv4Addr::new(127, 0, 0, 10 + i as u8),
                greedy: false,
                connections: 1,
                depth: 1,
                heavy_every,
                reads: true,
            })
            .collect()
    }

    /// The greedy client of this kind.
    pub fn greedy(self) -> Client {
        let client = |connections, depth, heavy_every, reads| Client {
            source: GREEDY_SOURCE,
            greedy: true,
            connections,
            depth,
            heavy_every,
            reads,
        };
        match self {
            Kind::Pipelining => client(1, 64, 0, true),
            Kind::Connections => client(200, 1, 0, true),
            Kind::Heavy => client(8, 2, 1, true),
            Kind::SlowReader => client(1, 0, 0, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_letter_and_name() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.letter()), Ok(k));
            assert_eq!(Kind::parse(k.name()), Ok(k));
        }
        assert!(Kind::parse("e").unwrap_err().contains("use a, b, c, d"));
    }

    #[test]
    fn every_polite_client_has_an_address_of_its_own() {
        let load = Load { polite: 500, heavy_every: 8, heavy_us: 2000 };
        let polite = Kind::Heavy.polite(&load);
        assert_eq!(polite.len(), POLITE_MAX);
        let mut sources: Vec<Ipv4Addr> = polite.iter().map(|c| c.source).collect();
        sources.sort();
        sources.dedup();
        assert_eq!(sources.len(), POLITE_MAX);
        assert!(sources.iter().all(|s| s.is_loopback() && *s != GREEDY_SOURCE));
        assert!(polite.iter().all(|c| c.heavy_every == 8 && c.depth == 1 && c.reads));
        assert!(Kind::Pipelining.polite(&load).iter().all(|c| c.heavy_every == 0));
        assert!(Kind::ALL.iter().all(|k| k.greedy().source == GREEDY_SOURCE && k.greedy().greedy));
    }
}
