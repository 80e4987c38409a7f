//! `corral-bench greedy`: what one greedy client does to polite clients, corral beside
//! nginx (issue 26).
//!
//! ```text
//! corral-bench greedy judge [--seconds 1.5] [--warmup 250ms] [--rounds 3] [--only a,b]
//!                           [--servers corral,nginx] [--model stealing] [--backend epoll,io_uring]
//! ```
//!
//! Four greedy kinds ([`kinds`]): (a) 64 requests pipelined on one connection, (b) 200
//! connections from one address, (c) only CPU-pool requests, (d) a slow reader that
//! pipelines and never reads. Each runs beside 32 polite clients, and the same polite
//! load also runs alone; the judge ([`judge`]) reports the polite clients' p50 / p99 with
//! and without it, the greedy client's rate against its max-min fair share, Jain's index
//! over demand-normalised shares ([`fair`]), the busiest worker's busy time over the
//! idlest's, and the throughput, for corral and nginx ([`servers`]). `make demo`'s lab
//! runs the same judge with short runs as its `greedy` section ([`lab`]).
//!
//! Why it is built this way:
//! - Every client has a source address of its own (polite i: 127.0.0.(10+i); greedy:
//!   127.0.1.1 for all its connections), because the engine's per-client fairness is
//!   keyed on the peer's IP: a client is an address, not a connection. The clients are
//!   therefore [`drive`]'s, not the lab's [`crate::load`], which cannot bind a source.
//! - The polite clients are closed loop with one request in flight, so they are always
//!   backlogged: what one gets alone is its demand, and the fair share is computed
//!   against it.
//! - The greedy client has a thread of its own, so its replies cannot delay the polite
//!   clients' next requests inside the generator; the polite clients share one thread by
//!   default, which keeps the generator light on a 2-core machine that it shares with the
//!   server. The greedy thread still takes CPU from the server and the polite thread
//!   alike: part of any p99 ratio is the generator's, the same for both servers, which
//!   is why nginx's own ratio is the anchor.
//! - With and without alternate within each round, the pair's order swapping every
//!   round, and figures are medians over rounds, so drift falls on both alike.
//! - A default judge runs 11 server x kind pairs (corral, corral-fifo and nginx; nginx
//!   has no heavy row) x 3 rounds x 2 runs of 1.75 s: about 2 minutes on this machine.
//!   The lab's section ([`lab`]) runs the same pairs with its short runs, about 24 s.

pub mod drive;
pub mod fair;
pub mod judge;
pub mod kinds;
pub mod lab;
pub mod servers;

/// `corral-bench greedy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Runs each greedy kind against corral and nginx, with and without the greedy client,
    /// and prints one line per kind and server: `<kind> <server> polite_p99_ratio=<r>
    /// share=<greedy share / fair share> spread=<max/min busy> throughput=<req/s>`.
    Judge(judge::Args),
}

pub fn main(a: Args) -> Result<(), String> {
    match a.command {
        Sub::Judge(j) => judge::main(j),
    }
}
