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
    /// Whether a served connection's client must present a certificate
    /// (`tls_client_auth`), checked against the `tls_client_ca` bundle.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    TlsClientAuth, "tls_client_auth" {
        /// No certificate is asked for (the default without `tls_client_ca`).
        #[default]
        None = "none",
        /// One is asked for; a client without one is served, one with a certificate the
        /// CA did not issue is refused.
        Optional = "optional",
        /// A client without a certificate the CA issued is refused (the default with
        /// `tls_client_ca`).
        Required = "required",
    }
);

/// A TLS cipher suite a served connection may agree on (`tls_ciphers`): the AEAD suites
/// rustls offers (ECDHE key exchange only), each known by its IANA name, rustls's name
/// (`TLS13_` for the 1.3 ones) and OpenSSL's (which is the IANA name for TLS 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsCipher {
    Tls13Aes256Gcm,
    Tls13Aes128Gcm,
    Tls13Chacha20,
    EcdheEcdsaAes256Gcm,
    EcdheEcdsaAes128Gcm,
    EcdheEcdsaChacha20,
    EcdheRsaAes256Gcm,
    EcdheRsaAes128Gcm,
    EcdheRsaChacha20,
}

/// Each suite with its IANA name and OpenSSL's, in rustls's order of preference.
const CIPHERS: [(TlsCipher, &str, &str); 9] = [
    (TlsCipher::Tls13Aes256Gcm, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    (TlsCipher::Tls13Aes128Gcm, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    (TlsCipher::Tls13Chacha20, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    (TlsCipher::EcdheEcdsaAes256Gcm, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (TlsCipher::EcdheEcdsaAes128Gcm, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (TlsCipher::EcdheEcdsaChacha20, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    (TlsCipher::EcdheRsaAes256Gcm, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    (TlsCipher::EcdheRsaAes128Gcm, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    (TlsCipher::EcdheRsaChacha20, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
];

impl TlsCipher {
    /// Every suite, in rustls's order of preference.
    pub const ALL: [TlsCipher; 9] = [
        TlsCipher::Tls13Aes256Gcm,
        TlsCipher::Tls13Aes128Gcm,
        TlsCipher::Tls13Chacha20,
        TlsCipher::EcdheEcdsaAes256Gcm,
        TlsCipher::EcdheEcdsaAes128Gcm,
        TlsCipher::EcdheEcdsaChacha20,
        TlsCipher::EcdheRsaAes256Gcm,
        TlsCipher::EcdheRsaAes128Gcm,
        TlsCipher::EcdheRsaChacha20,
    ];

    /// The IANA name (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`).
    pub fn name(self) -> &'static str {
        CIPHERS[self as usize].1
    }

    /// OpenSSL's name (`ECDHE-RSA-AES128-GCM-SHA256`; the IANA name for TLS 1.3).
    pub fn openssl_name(self) -> &'static str {
        CIPHERS[self as usize].2
    }

    /// Whether it is a TLS 1.3 suite (else 1.2).
    pub fn tls13(self) -> bool {
        matches!(self, TlsCipher::Tls13Aes256Gcm | TlsCipher::Tls13Aes128Gcm | TlsCipher::Tls13Chacha20)
    }

    /// The suites of a list: names separated by `:` (OpenSSL's way), `,` or spaces, in
    /// order of preference; any of the three spellings, in any case. Empty: none.
    pub fn parse_list(text: &str) -> Result<Vec<TlsCipher>, String> {
        let mut out = Vec::new();
        for name in text.split([':', ',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
            let c = name.parse::<TlsCipher>().map_err(|e| e.to_string())?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

impl FromStr for TlsCipher {
    type Err = Error;
    fn from_str(s: &str) -> Result<TlsCipher, Error> {
        let rustls13 = |iana: &str| iana.replacen("TLS_", "TLS13_", 1);
        CIPHERS
            .iter()
            .find(|(c, iana, openssl)| {
                s.eq_ignore_ascii_case(iana)
                    || s.eq_ignore_ascii_case(openssl)
                    || (c.tls13() && s.eq_ignore_ascii_case(&rustls13(iana)))
            })
            .map(|(c, _, _)| *c)
            .ok_or_else(|| {
                let known: Vec<String> = CIPHERS.iter().map(|(_, iana, openssl)| cipher_names(iana, openssl)).collect();
                let keyword = s.starts_with(['!', '+', '-', '@']) || s.bytes().all(|b| b.is_ascii_alphanumeric());
                let hint = if keyword {
                    "; OpenSSL cipher-string keywords and operators (HIGH, !aNULL, @STRENGTH) do not map: name the suites"
                } else {
                    ""
                };
                Error::config(format!(
                    "unknown TLS cipher suite {s:?} (corral has rustls's AEAD suites with ECDHE only){hint}: use {}",
                    known.join(", ")
                ))
            })
    }
}

/// A suite's names as an error lists them: `TLS_AES_128_GCM_SHA256` or
/// `ECDHE-RSA-AES128-GCM-SHA256 (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`.
fn cipher_names(iana: &str, openssl: &str) -> String {
    if iana == openssl {
        iana.to_string()
    } else {
        format!("{openssl} ({iana})")
    }
}

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

    #[test]
    fn cipher_suites_go_by_any_of_their_names_and_unknown_ones_list_the_known() {
        let list =
            TlsCipher::parse_list("TLS13_AES_128_GCM_SHA256:ecdhe-rsa-aes256-gcm-sha384, TLS_CHACHA20_POLY1305_SHA256")
                .unwrap();
        assert_eq!(list, [TlsCipher::Tls13Aes128Gcm, TlsCipher::EcdheRsaAes256Gcm, TlsCipher::Tls13Chacha20]);
        assert_eq!(TlsCipher::parse_list("").unwrap(), []);
        for c in TlsCipher::ALL {
            assert_eq!(c.name().parse::<TlsCipher>().unwrap(), c);
            assert_eq!(c.openssl_name().parse::<TlsCipher>().unwrap(), c);
        }
        let e = TlsCipher::parse_list("AES128-SHA").unwrap_err();
        assert!(e.starts_with("unknown TLS cipher suite \"AES128-SHA\""), "{e}");
        assert!(e.contains("ECDHE-ECDSA-AES128-GCM-SHA256 (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"), "{e}");
    }
}
