//! The Autobahn testsuite's case families (tests/ws/autobahn.py, a third-party view of
//! RFC 6455 and 7692 written from the testsuite's cases) against a Rust echo handler
//! on this engine, on whichever backend `CORRAL_BACKEND` picks: every case must pass,
//! strictly. The other fronts run the same runner against their own echo endpoints.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use corral::ws::{Accept, Message, WebSocket, WsHandler};
use corral::{handler_fn, Config, Engine, Response};

struct Echo;

impl WsHandler for Echo {
    fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(&msg);
    }
}

#[test]
fn every_autobahn_family_passes_against_the_echo_handler() {
    let engine = Engine::serve(
        Config::default(),
        handler_fn(|req, res| {
            if req.websocket().is_some() {
                let _ = res.upgrade(Accept::new(), Arc::new(Echo));
            } else {
                res.respond(Response::new(404).body("websockets only\n"));
            }
        }),
    )
    .unwrap();
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ws/autobahn.py");
    let out = Command::new("python3")
        .arg(&runner)
        .arg(format!("ws://{}/ws", engine.local_addr()))
        .arg("--quick")
        .output()
        .expect("python3 runs the conformance runner");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    // The summary's last row: total, cases, pass, non-strict, fail, unimplemented.
    let total: Vec<u64> = text
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("a summary row")
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(total[0] >= 300, "{text}");
    assert_eq!(total[1], total[0], "every case passes strictly (none non-strict or unimplemented): {text}");
    let ws = engine.stats().ws;
    assert!(ws.opened >= 300 && ws.closed == ws.opened, "{ws:?}");
    assert!(ws.failed > 0 && ws.deflate_raw > 0, "bad frames were failed and deflate was used: {ws:?}");
}
