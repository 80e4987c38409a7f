//! corral: accept TCP connections on several listener threads and dispatch
//! connections and requests to worker threads that steal work from each other.
//!
//! Two ways to use it:
//! - **serve**: [`Engine::serve`] with a [`Handler`]; corral reads, frames
//!   ([`Protocol`]), runs light requests inline on its I/O workers and heavy ones on a
//!   CPU pool, and writes replies back in request order.
//! - **handoff**: [`Engine::handoff`]; corral accepts and queues connections, and the
//!   host takes them ([`Engine::take`]) when its loop sees [`Engine::notify_fd`].
//!
//! ```no_run
//! use corral::{Config, Engine, handler_fn, Response};
//! let engine = Engine::serve(Config::default(), handler_fn(|_req, res| {
//!     res.respond(Response::new(200).body("hello\n"));
//! })).unwrap();
//! println!("listening on {}", engine.local_addr());
//! # engine.shutdown(std::time::Duration::from_secs(1)).unwrap();
//! ```

mod accept;
mod config;
mod conn;
mod cpu;
// The Rust code blocks of README.md and docs/, run as doctests (see tests/docs/).
#[cfg(doctest)]
mod doc_examples;
mod engine;
mod error;
mod fair;
pub mod frame;
mod handler;
mod sched;
mod stats;
mod sync;
mod sys;
mod tls;
mod worker;

pub use accept::handoff::Accepted;
/// The PROXY-header parser's fuzzing entry point (the `proxy` target in `fuzz/`).
#[doc(hidden)]
pub use accept::proxy::fuzz as fuzz_proxy;
pub use accept::proxy::ProxyHeader;
pub use config::options;
pub use config::{
    Backend, CertKeyFiles, Cidr, Config, ConfigBuilder, Limits, ListenerStrategy, Model, Protocol, ProxyMode,
    Readiness, TlsCipher, TlsClientAuth, TlsVersion,
};
pub use cpu::Pool;
pub use engine::{hold_wakes, release_wakes, Engine, Mode, ShutdownReport};
pub use error::{Error, ErrorKind, Result};
pub use fair::drr::Drr;
pub use frame::{HttpRequest, Payload, Reply, Response};
pub use handler::{
    handler_fn, on_io_worker, Body, BodyError, BodyRead, Cost, CostRule, Handler, Request, Responder, Sent, Stream,
    StreamError,
};
/// Websockets: accept an upgrade with [`Responder::upgrade`], then send, close,
/// subscribe and publish through the [`WebSocket`](ws::WebSocket) handle.
pub mod ws {
    pub use crate::handler::{Accept, Kind, Message, Offer, SendStatus, WebSocket, WsHandler};
}
pub use stats::metrics;
pub use stats::{CpuStats, LatencyStats, ListenerStats, Stats, TlsFailures, TlsStats, WorkerStats, WsStats};
pub use tls::TlsInfo;

/// Process-level helpers the tests, examples and benchmarks need.
pub mod os {
    pub use crate::sys::{
        cpu_time_of, is_cloexec, nofile_limit, pin_thread, process_cpu_time, resident_bytes, set_nofile_limit,
        set_thread_slice, somaxconn, sysctl, thread_cpu_time, TcpExt, TimerFd,
    };
    /// Living under a service manager: socket activation, readiness, termination.
    pub use crate::sys::{listen_fds, notify, take_inherited_fd, ActivatedFd, Termination};
}
