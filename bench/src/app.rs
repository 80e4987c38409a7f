//! The HTTP application every model serves, so the models are compared on the same work.
//!
//! | path | cost | does |
//! | --- | --- | --- |
//! | `/` | light | answers `hello` |
//! | `/spin?us=N` | light | burns N µs of CPU inline on the I/O worker (unequal connections) |
//! | `/work?us=N` | heavy | burns N µs of CPU on the CPU pool (inline where a model has none) |
//! | `/stats` | light | the engine's stats as Prometheus text |
//! | `/echo?id=I[&size=B][&us=N]` | light, heavy with `us` | answers `x-id: I` and a B-byte body |
//! | `/panic?id=I` | light | panics (the engine answers 500) |
//! | `/never?id=I` | light | keeps its responder and never answers (the engine answers 504 at `reply_timeout`) |

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock, Weak};
use std::time::Duration;

use corral::{Cost, Engine, Handler, Request, Responder, Response};

/// Responders `/never` holds; bounded so a long soak cannot grow it without end (the
/// oldest are released, long after the engine answered for them).
const HELD_MAX: usize = 100_000;

/// The message of `/panic`'s panic; [`quiet_injected_panics`] keeps it off stderr.
const INJECTED_PANIC: &str = "injected handler panic (corral-bench /panic)";

/// Panics `/panic` injects are expected (the engine counts them and answers 500):
/// report only the others.
pub fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if msg != INJECTED_PANIC {
            default(info);
        }
    }));
}

#[derive(Default)]
pub struct LabApp {
    pub engine: OnceLock<Weak<Engine>>,
    held: Mutex<VecDeque<Responder>>,
}

/// Burns `us` microseconds of this thread's CPU time (not wall time: a thread that is
/// preempted meanwhile still does all its work, so oversubscribed models are not
/// flattered).
pub fn spin(us: u64) {
    let until = corral::os::thread_cpu_time() + Duration::from_micros(us);
    while corral::os::thread_cpu_time() < until {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

fn num(h: &corral::HttpRequest, key: &str) -> Option<u64> {
    h.query(key).and_then(|v| v.parse().ok())
}

impl Handler for LabApp {
    fn cost(&self, req: &Request) -> Cost {
        match req.http() {
            Some(h) if h.path_only() == "/work" => Cost::Heavy,
            Some(h) if h.path_only() == "/echo" && h.query("us").is_some() => Cost::Heavy,
            _ => Cost::Light,
        }
    }

    fn handle(&self, req: Request, res: Responder) {
        let Some(h) = req.http() else { return };
        let text = |status: u16, body: String| Response::new(status).header("content-type", "text/plain").body(body);
        let reply = match h.path_only() {
            "/" => text(200, "hello\n".into()),
            "/spin" | "/work" => match num(h, "us") {
                Some(us) if us <= 10_000_000 => {
                    spin(us);
                    text(200, format!("spun {us} us\n"))
                }
                _ => text(400, "us must be a whole number of microseconds up to 10000000\n".into()),
            },
            "/stats" => match self.engine.get().and_then(Weak::upgrade) {
                Some(e) => text(200, e.stats().to_prometheus()),
                None => text(503, "starting\n".into()),
            },
            "/echo" => {
                let (Some(id), size) = (num(h, "id"), num(h, "size").unwrap_or(0).min(16 << 20)) else {
                    return res.respond(text(400, "echo needs id=<number>\n".into()));
                };
                spin(num(h, "us").unwrap_or(0).min(1_000_000));
                Response::new(200).header("x-id", id.to_string()).body(vec![b'.'; size as usize])
            }
            "/panic" => panic!("{INJECTED_PANIC}"),
            "/never" => {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                if held.len() == HELD_MAX {
                    held.pop_front();
                }
                held.push_back(res);
                return;
            }
            _ => text(404, "not found\n".into()),
        };
        res.respond(reply);
    }
}
