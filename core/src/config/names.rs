//! The names of the option values the fronts accept as text (Python and Node take
//! strings; C takes text in `corral_config_set` or the fixed numbers of its enums): one
//! list per enum gives its names, its `name()` and its `FromStr`, so every front accepts
//! the same names and refuses others with the same message.

use std::str::FromStr;

use crate::accept::listen::ListenerStrategy;
use crate::accept::proxy::ProxyMode;
use crate::config::{Backend, Readiness};
use crate::engine::plan::Model;
use crate::error::Error;
use crate::frame::Protocol;

macro_rules! named {
    ($ty:ident, $what:literal, $($variant:ident = $name:literal),+ $(,)?) => {
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

named!(Protocol, "protocol", Http1 = "http", Lines = "lines", Length = "length", Raw = "raw");
named!(ListenerStrategy, "listener", ReusePort = "reuseport", Shared = "shared", Single = "single");
named!(Readiness, "readiness", Edge = "edge", OneShot = "oneshot");
named!(Backend, "backend", Epoll = "epoll", IoUring = "io_uring", Auto = "auto");
named!(ProxyMode, "proxy_protocol", Off = "off", V1 = "v1", V2 = "v2", Any = "any");
named!(
    Model,
    "model",
    Single = "single",
    ThreadPerConnection = "thread-per-connection",
    Pool = "pool",
    ReusePort = "reuseport",
    Stealing = "stealing",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        assert_eq!("lines".parse::<Protocol>().unwrap(), Protocol::Lines);
        assert_eq!("shared".parse::<ListenerStrategy>().unwrap(), ListenerStrategy::Shared);
        assert_eq!("oneshot".parse::<Readiness>().unwrap(), Readiness::OneShot);
        for m in Model::ALL {
            assert_eq!(m.name().parse::<Model>().unwrap(), m);
        }
        assert_eq!(Model::NAMES.len(), Model::ALL.len());
        let e = "smtp".parse::<Protocol>().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert_eq!(e.to_string(), "unknown protocol \"smtp\": use http, lines, length, raw");
    }
}
