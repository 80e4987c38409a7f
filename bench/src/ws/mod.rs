//! `corral-bench ws`: websocket load against any server, and the judge that runs corral's
//! fronts beside their peers (bench/ws/).
//!
//! ```text
//! corral-bench ws load --url ws://127.0.0.1:9000/ws --connections 100 --size 64 --mode echo
//! corral-bench ws load --url ws://127.0.0.1:9000/ws --open-loop 20000 --seconds 5 --warmup 1
//! corral-bench ws load --url ws://127.0.0.1:9000/broadcast --mode broadcast --connections 16
//! corral-bench ws judge [--seconds 5] [--warmup 1] [--rounds 1] [--only a,b]
//! ```
//!
//! The client ([`drive`]) has no async runtime: a few threads, each multiplexing its share
//! of the connections on mio, with its own client framing ([`proto`]: no extensions).
//! echo: every connection sends and waits for its message to come back (a window of 1 by
//! default). broadcast (Granian's websocket benchmark, time-bounded): the server sends
//! every message to every client; each sender keeps a window of its own messages in
//! flight, and the figure is messages received per second over all clients. With
//! `--open-loop RATE` the senders send at RATE messages/s in total instead, latency
//! counted from each message's due time. The judge is in [`judge`].

pub mod drive;
pub mod idle;
pub mod judge;
pub mod proto;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use self::drive::{Mode, Outcome, Pace, Plan};

/// `corral-bench ws`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Drives N websocket connections against one server and prints what it measured:
    /// a key=value line, then the same for people.
    Load(LoadArgs),
    /// Starts corral's fronts and their peers (Granian, uvicorn, ws, tokio-tungstenite) on
    /// loopback and prints one line per comparison:
    /// `<name> corral=<figure> <peer>=<figure> ratio=<r> goal=<g>`.
    Judge(judge::Args),
}

/// `corral-bench ws load`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The server: ws://host:port/path.
    #[arg(long)]
    url: String,
    /// echo (each message comes back to its sender) or broadcast (to every client).
    #[arg(long, value_enum, default_value = "echo")]
    mode: Mode,
    /// Connections (default: echo 100, broadcast 16).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    connections: Option<u64>,
    /// How many of the connections send (broadcast; the rest only receive). Default: all.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    senders: Option<u64>,
    /// Bytes per message (at least 16: each starts with a tag naming its sender and number).
    #[arg(long, default_value = "64", value_parser = crate::upload::parse_size)]
    size: u64,
    /// Closed loop: each sender's own messages in flight (default: echo 1, broadcast 16).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    window: Option<u64>,
    /// Open loop: messages per second over all senders, latency from each one's due time.
    #[arg(long, conflicts_with = "window")]
    open_loop: Option<f64>,
    /// The measured window (seconds, or with a unit).
    #[arg(long, default_value = "5", value_parser = crate::parse_duration)]
    seconds: Duration,
    /// Sent but not counted, before the window (seconds, or with a unit).
    #[arg(long, default_value = "1", value_parser = crate::parse_duration)]
    warmup: Duration,
    /// Send text messages.
    #[arg(long, conflicts_with = "binary")]
    text: bool,
    /// Send binary messages (the default).
    #[arg(long)]
    binary: bool,
    /// Client threads (default: cores, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
}

/// `ws://host:port/path` → the address to connect to and the request target.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String), String> {
    let bad = |why: &str| format!("{url:?} is not a ws:// URL ({why}): write ws://127.0.0.1:9000/ws");
    let rest = url.strip_prefix("ws://").ok_or_else(|| bad("wss:// and http:// are not supported"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| bad(&format!("no address for {authority:?}: {e}")))?
        .next()
        .ok_or_else(|| bad("no address"))?;
    Ok((addr, path.to_string()))
}

/// The client threads a run uses by default.
pub fn default_threads() -> usize {
    crate::cores().min(4)
}

impl LoadArgs {
    fn plan(&self) -> Result<Plan, String> {
        let (addr, path) = parse_url(&self.url)?;
        let connections = self.connections.unwrap_or(if self.mode == Mode::Echo { 100 } else { 16 }) as usize;
        let pace = match self.open_loop {
            Some(r) if r.is_finite() && r > 0.0 => Pace::Open { per_sec: r },
            Some(r) => return Err(format!("--open-loop must be a positive rate in messages/s, not {r}")),
            None => {
                let window = self.window.unwrap_or(if self.mode == Mode::Echo { 1 } else { 16 });
                Pace::Closed { window: window as usize }
            }
        };
        if self.size < proto::TAG as u64 || self.size > 16 << 20 {
            return Err(format!("--size must be 16 bytes to 16 MiB, not {}", self.size));
        }
        if self.seconds.is_zero() {
            return Err("--seconds must be more than 0".into());
        }
        Ok(Plan {
            addr,
            path,
            mode: self.mode,
            pace,
            connections,
            senders: self.senders.map_or(connections, |s| s as usize).min(connections),
            size: self.size as usize,
            text: self.text,
            warmup: self.warmup,
            duration: self.seconds,
            threads: self.threads.map_or_else(default_threads, |t| t as usize),
        })
    }
}

/// The machine-readable line: `ws-load key=value ...`.
pub fn summary(url: &str, plan: &Plan, o: &Outcome) -> String {
    let pace = match plan.pace {
        Pace::Closed { window } => format!("pace=closed window={window}"),
        Pace::Open { per_sec } => format!("pace=open rate={per_sec}"),
    };
    let mode = plan.mode.name();
    let mut line = format!(
        "ws-load url={url} mode={mode} {pace} connections={} senders={} size={} frames={} threads={} \
         seconds={:.3} sent={} received={} msg_per_s={:.0} mb_per_s={:.2} p50_us={} p99_us={} p999_us={} \
         max_us={} unsent={} in_flight={} setup_ms={}",
        plan.connections,
        plan.senders,
        plan.size,
        if plan.text { "text" } else { "binary" },
        plan.threads.min(plan.connections),
        o.window.as_secs_f64(),
        o.sent,
        o.received,
        o.msg_per_s(),
        o.msg_per_s() * plan.size as f64 / 1e6,
        o.quantile_us(0.5),
        o.quantile_us(0.99),
        o.quantile_us(0.999),
        o.latency.max(),
        o.unsent,
        o.in_flight,
        o.setup.as_millis()
    );
    if let Some(f) = &o.failure {
        line.push_str(&format!(" failed={}", f.tag()));
    }
    line
}

/// Microseconds for people: `850 us`, `12.3 ms`.
pub fn show_us(us: u64) -> String {
    if us < 10_000 {
        format!("{us} us")
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

pub fn main(a: Args) -> Result<(), String> {
    let a = match a.command {
        Sub::Judge(j) => return judge::main(j),
        Sub::Load(a) => a,
    };
    let plan = a.plan()?;
    crate::server::raise_nofile();
    let o = drive::run(&plan).map_err(|e| format!("the load client could not run: {e}"))?;
    println!("{}", summary(&a.url, &plan, &o));
    if let Some(f) = &o.failure {
        return Err(format!("{} {}: {f}", a.url, plan.mode.name()));
    }
    let pace = match plan.pace {
        Pace::Closed { window } => format!("closed loop (window {window})"),
        Pace::Open { per_sec } => format!("open loop at {per_sec} msg/s"),
    };
    println!(
        "{} {}: {} connections ({} sending) x {} B {}, {pace}: {:.0} msg/s received ({:.1} MB/s), \
         latency p50 {}, p99 {}",
        plan.mode.name(),
        a.url,
        plan.connections,
        plan.senders,
        plan.size,
        if plan.text { "text" } else { "binary" },
        o.msg_per_s(),
        o.msg_per_s() * plan.size as f64 / 1e6,
        show_us(o.quantile_us(0.5)),
        show_us(o.quantile_us(0.99))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let (addr, path) = parse_url("ws://127.0.0.1:9000/ws").unwrap();
        assert_eq!((addr.port(), path.as_str()), (9000, "/ws"));
        assert_eq!(parse_url("ws://127.0.0.1:9000").unwrap().1, "/");
        assert!(parse_url("http://127.0.0.1:9000/").unwrap_err().contains("not a ws:// URL"));
        assert!(parse_url("ws://127.0.0.1/").is_err(), "no port");
    }
}
