//! An HTTP server on corral: `GET /` answers a short body inline; `GET /work?us=N`
//! spins the CPU for N microseconds as a heavy request (on the CPU pool); `GET /stats`
//! returns the live stats as Prometheus text.
//!
//! ```text
//! cargo run --release --example http_server -- [--addr 127.0.0.1:8080] [--model stealing]
//!     [--workers N] [--cpu N] [--acceptors N] [--oneshot] [--seconds S]
//! ```
//! It prints its address, serves until stdin closes (or for `--seconds`), then shuts
//! down gracefully and prints the shutdown report.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use corral::{Config, Cost, Engine, Handler, Mode, Model, Readiness, Request, Responder, Response};

#[derive(Default)]
struct App {
    engine: OnceLock<Weak<Engine>>,
}

fn spin(us: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

impl Handler for App {
    fn cost(&self, req: &Request) -> Cost {
        match req.http().map(|h| h.path_only()) {
            Some("/work") => Cost::Heavy,
            _ => Cost::Light,
        }
    }

    fn handle(&self, req: Request, res: Responder) {
        let Some(h) = req.http() else { return };
        let reply = match h.path_only() {
            "/" => Response::new(200).header("content-type", "text/plain").body("hello\n"),
            "/work" => match h.query("us").unwrap_or("1000").parse::<u64>() {
                Ok(us) if us <= 10_000_000 => {
                    spin(us);
                    Response::new(200).header("content-type", "text/plain").body(format!("spun {us} us\n"))
                }
                _ => Response::new(400).body("us must be a whole number of microseconds up to 10000000\n"),
            },
            "/stats" => match self.engine.get().and_then(Weak::upgrade) {
                Some(e) => Response::new(200)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(e.stats().to_prometheus()),
                None => Response::new(503).body("starting\n"),
            },
            _ => Response::new(404).body("not found\n"),
        };
        res.respond(reply);
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("http_server: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = Config::builder();
    let mut seconds: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => cfg = cfg.addr(val()?.parse::<SocketAddr>()?),
            "--model" => {
                let v = val()?;
                cfg = cfg.model(Model::from_name(&v).ok_or(format!("unknown model {v}"))?)
            }
            "--workers" => cfg = cfg.io_workers(val()?.parse()?),
            "--cpu" => cfg = cfg.cpu_threads(val()?.parse()?),
            "--acceptors" => cfg = cfg.acceptors(val()?.parse()?),
            "--oneshot" => cfg = cfg.readiness(Readiness::OneShot),
            "--accept-in-workers" => cfg = cfg.accept_in_workers(true),
            "--seconds" => seconds = Some(val()?.parse()?),
            "--help" | "-h" => {
                println!("usage: http_server [--addr A] [--model M] [--workers N] [--cpu N] [--acceptors N] [--oneshot] [--seconds S]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other} (try --help)").into()),
        }
    }
    let app = Arc::new(App::default());
    let engine = Arc::new(Engine::new(cfg.build()?, Mode::Serve(Arc::clone(&app) as Arc<dyn Handler>))?);
    let _ = app.engine.set(Arc::downgrade(&engine));
    engine.start()?;
    println!("listening on http://{}", engine.local_addr());
    match seconds {
        Some(s) => std::thread::sleep(Duration::from_secs(s)),
        None => {
            // Serve until stdin closes (Ctrl-D, or the parent process goes away).
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
    }
    let report = engine.shutdown(Duration::from_secs(5))?;
    println!("{report:?}");
    Ok(())
}
