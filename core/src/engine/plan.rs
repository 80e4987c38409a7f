//! The five concurrency models, each an engine configuration over the same framers and
//! handlers, so they can be measured like with like.
//!
//! | model | accept | who serves a connection | heavy work |
//! | --- | --- | --- | --- |
//! | `Single` | one thread | one worker (Node-like) | inline: blocks everything |
//! | `ThreadPerConnection` | one listener thread | a new thread per connection, bounded by `max_connections` | on that thread |
//! | `Pool` | one listener thread | round-robin to N workers, no stealing | on the owning worker |
//! | `ReusePort` | N reuseport shards | the shard's own worker, no stealing (nginx-like) | on the owning worker |
//! | `Stealing` | N reuseport shards | any worker: ready connections are stolen | CPU pool, stolen |

use crate::config::{Config, ListenerStrategy, Model};

/// How new connections reach workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// To the workers' inboxes in turn.
    RoundRobin,
    /// Acceptor `i` feeds worker `i % workers` only.
    ByAcceptor,
    /// A new thread for each connection.
    ThreadPerConnection,
}

/// What a model means for a given configuration: thread counts and policies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub listener: ListenerStrategy,
    pub acceptors: usize,
    pub workers: usize,
    pub steal: bool,
    /// 0: heavy requests run inline where they were framed.
    pub cpu_threads: usize,
    /// Acceptor `i` runs inside worker `i` (its listeners in the worker's epoll)
    /// instead of on a thread of its own.
    pub accept_in_workers: bool,
    pub dispatch: Dispatch,
}

impl Plan {
    pub fn of(c: &Config) -> Plan {
        let n = c.io_workers;
        match c.model {
            Model::Single => Plan {
                listener: ListenerStrategy::Single,
                acceptors: 1,
                workers: 1,
                steal: false,
                cpu_threads: 0,
                accept_in_workers: true,
                dispatch: Dispatch::ByAcceptor,
            },
            Model::ThreadPerConnection => Plan {
                listener: ListenerStrategy::Single,
                acceptors: 1,
                workers: 0,
                steal: false,
                cpu_threads: 0,
                accept_in_workers: false,
                dispatch: Dispatch::ThreadPerConnection,
            },
            Model::Pool => Plan {
                listener: ListenerStrategy::Single,
                acceptors: 1,
                workers: n,
                steal: false,
                cpu_threads: 0,
                accept_in_workers: false,
                dispatch: Dispatch::RoundRobin,
            },
            Model::ReusePort => Plan {
                listener: ListenerStrategy::ReusePort,
                acceptors: n,
                workers: n,
                steal: false,
                cpu_threads: 0,
                accept_in_workers: true,
                dispatch: Dispatch::ByAcceptor,
            },
            Model::Stealing => Plan {
                listener: c.listener,
                acceptors: match c.listener {
                    ListenerStrategy::Single => 1,
                    // One acceptor per worker at most: each lives in its worker's epoll.
                    _ if c.accept_in_workers => c.acceptors.min(n),
                    _ => c.acceptors,
                },
                workers: n,
                steal: true,
                cpu_threads: c.cpu_threads,
                accept_in_workers: c.accept_in_workers,
                // An acceptor inside a worker keeps what it accepts: the kernel's
                // reuseport hash already spreads connections, stealing evens out the
                // load, and the connection's first turn stays on the core that accepted
                // it (measured: 43k vs 54k connections/s on 2 cores).
                dispatch: if c.accept_in_workers && c.listener != ListenerStrategy::Single {
                    Dispatch::ByAcceptor
                } else {
                    Dispatch::RoundRobin
                },
            },
        }
    }
}
