//! The option values the fronts accept by name (Python and Node take strings; C takes
//! the fixed numbers of its enums), parsed once here so every front accepts the same
//! names and refuses others with the same message.

use std::str::FromStr;

use crate::config::Readiness;
use crate::error::Error;
use crate::frame::Protocol;
use crate::listen::ListenerStrategy;
use crate::model::Model;

fn parse<T: Copy>(what: &str, s: &str, table: &[(&str, T)]) -> Result<T, Error> {
    table.iter().find(|(n, _)| *n == s).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        Error::config(format!("unknown {what} {s:?}: use {}", names.join(", ")))
    })
}

impl FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Protocol, Error> {
        parse(
            "protocol",
            s,
            &[
                ("http", Protocol::Http1),
                ("lines", Protocol::Lines),
                ("length", Protocol::Length),
                ("raw", Protocol::Raw),
            ],
        )
    }
}

impl FromStr for ListenerStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<ListenerStrategy, Error> {
        parse(
            "listener",
            s,
            &[
                ("reuseport", ListenerStrategy::ReusePort),
                ("shared", ListenerStrategy::Shared),
                ("single", ListenerStrategy::Single),
            ],
        )
    }
}

impl FromStr for Readiness {
    type Err = Error;
    fn from_str(s: &str) -> Result<Readiness, Error> {
        parse("readiness", s, &[("edge", Readiness::Edge), ("oneshot", Readiness::OneShot)])
    }
}

impl FromStr for Model {
    type Err = Error;
    fn from_str(s: &str) -> Result<Model, Error> {
        let table: Vec<(&str, Model)> = Model::ALL.iter().map(|m| (m.name(), *m)).collect();
        parse("model", s, &table)
    }
}

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
        let e = "smtp".parse::<Protocol>().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert_eq!(e.to_string(), "unknown protocol \"smtp\": use http, lines, length, raw");
    }
}
