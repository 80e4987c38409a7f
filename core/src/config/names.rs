//! The option values that are names: every choice enum of the configuration, defined
//! here from one list each that gives its variants, their documentation and the names
//! the fronts accept (Python and Node take strings; C takes text in
//! `corral_config_set` or the fixed numbers of its enums). The list makes the enum, its
//! `NAMES`, its `name()` and its `FromStr`, so every front accepts the same names and
//! refuses others with the same message.
//!
//! They are configuration vocabulary, so they live in `config/` and the rooms that act
//! on them (`accept::listen` binds by `ListenerStrategy`, `engine::plan` reads `Model`,
//! `frame` frames by `Protocol`, `accept::proxy` parses by `ProxyMode`) import them from
//! here: `config/` imports nothing above it.

use std::str::FromStr;

use crate::error::Error;

macro_rules! named {
    (
        $(#[$meta:meta])*
        $ty:ident, $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $name:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $ty {
            $($(#[$vmeta])* $variant),+
        }

        impl $ty {
            /// The names this option value is given by, in every front.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name of this value, as the fronts spell it.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<$ty, Error> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(Error::config(format!(
                        concat!("unknown ", $what, " {:?}: use {}"),
                        s,
                        $ty::NAMES.join(", ")
                    ))),
                }
            }
        }
    };
}

named!(
    /// How a served connection's bytes are framed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    Protocol, "protocol" {
        /// HTTP/1.1 (and 1.0): keep-alive, pipelining, `Content-Length` and chunked bodies.
        #[default]
        Http1 = "http",
        /// One request per line (LF or CRLF, terminator removed); each reply gets an LF.
        Lines = "lines",
        /// A big-endian `u32` length, then that many bytes; replies are prefixed the same way.
        Length = "length",
        /// Each read is one request; replies are written as they are.
        Raw = "raw",
    }
);

named!(
    /// How listening sockets are laid out over the acceptors (see `accept::listen`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    ListenerStrategy, "listener" {
        /// One `SO_REUSEPORT` socket per acceptor (default).
        #[default]
        ReusePort = "reuseport",
        /// One socket shared by all acceptors, woken with `EPOLLEXCLUSIVE`.
        Shared = "shared",
        /// One socket, one acceptor.
        Single = "single",
    }
);

named!(
    /// How a connection's socket is registered with its worker's epoll.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    Readiness, "readiness" {
        /// Edge-triggered, with an atomic task state deciding who runs the connection: no
        /// syscall beyond `read` and `write` per request (the default).
        #[default]
        Edge = "edge",
        /// `EPOLLONESHOT`, re-armed with `epoll_ctl` after each turn (one more syscall per
        /// turn; kept to measure against).
        OneShot = "oneshot",
    }
);

named!(
    /// How I/O workers wait for and do their connections' I/O.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    Backend, "backend" {
        /// Readiness from epoll; `recv` and `send` per request (the default).
        #[default]
        Epoll = "epoll",
        /// Completions from one io_uring per worker: multishot receives into provided
        /// buffers, sends batched per turn, one `io_uring_enter` for many connections.
        /// Refused at start if the kernel or a seccomp profile does not allow it.
        IoUring = "io_uring",
        /// io_uring if the probe at start passes, else epoll (saying why on stderr and in
        /// the stats).
        Auto = "auto",
    }
);

impl Backend {
    /// The default when none is set: `CORRAL_BACKEND` from the environment if it names
    /// one (how an operator, or the test matrix, switches every engine at once), else epoll.
    pub fn from_env() -> Backend {
        std::env::var("CORRAL_BACKEND").ok().and_then(|v| v.parse().ok()).unwrap_or_default()
    }
}

named!(
    /// Which PROXY header a listener expects before the client's bytes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    ProxyMode, "proxy_protocol" {
        /// No header: connections are served as they come (the default).
        #[default]
        Off = "off",
        V1 = "v1",
        V2 = "v2",
        /// Either version, told apart by its first bytes.
        Any = "any",
    }
);

named!(
    /// The oldest TLS version a served connection may use (`tls_min_version`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    TlsVersion, "tls_min_version" {
        /// TLS 1.2 (RFC 5246): still what some clients and load balancers speak.
        #[default]
        Tls12 = "1.2",
        /// TLS 1.3 (RFC 8446): one round trip fewer per handshake.
        Tls13 = "1.3",
    }
);

named!(
    /// The five concurrency models, each an engine configuration over the same framers
    /// and handlers (what each means for threads and dispatch: `engine::plan`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    Model, "model" {
        Single = "single",
        ThreadPerConnection = "thread-per-connection",
        Pool = "pool",
        ReusePort = "reuseport",
        #[default]
        Stealing = "stealing",
    }
);

impl Model {
    pub const ALL: [Model; 5] =
        [Model::Single, Model::ThreadPerConnection, Model::Pool, Model::ReusePort, Model::Stealing];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        assert_eq!("lines".parse::<Protocol>().unwrap(), Protocol::Lines);
        assert_eq!("shared".parse::<ListenerStrategy>().unwrap(), ListenerStrategy::Shared);
        assert_eq!("oneshot".parse::<Readiness>().unwrap(), Readiness::OneShot);
        assert_eq!("1.3".parse::<TlsVersion>().unwrap(), TlsVersion::Tls13);
        for m in Model::ALL {
            assert_eq!(m.name().parse::<Model>().unwrap(), m);
        }
        assert_eq!(Model::NAMES.len(), Model::ALL.len());
        let e = "smtp".parse::<Protocol>().unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidConfig);
        assert_eq!(e.to_string(), "unknown protocol \"smtp\": use http, lines, length, raw");
    }
}
