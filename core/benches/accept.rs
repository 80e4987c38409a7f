//! Accept-to-first-reply latency: connect, send one HTTP request, read the reply,
//! close; one client at a time, so this is the engine's per-connection path with no
//! queueing. Figures, not tests: `cargo bench -p corral --bench accept`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use corral::{handler_fn, Config, Engine, Model, Response};

fn main() {
    const N: usize = 5_000;
    println!("accept-to-first-reply, {N} sequential connections per model\n");
    println!("{:<24} {:>8} {:>8} {:>8}", "model", "p50 us", "p99 us", "max us");
    for model in [Model::Stealing, Model::ReusePort, Model::Pool, Model::Single, Model::ThreadPerConnection] {
        let cfg = Config::builder().model(model).build().expect("valid config");
        let engine = Engine::serve(cfg, handler_fn(|_req, res| res.respond(Response::new(200).body("ok"))))
            .expect("engine starts");
        let addr = engine.local_addr();
        let mut lat = Vec::with_capacity(N);
        let mut buf = Vec::new();
        for _ in 0..N {
            let t = Instant::now();
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").expect("send");
            buf.clear();
            s.read_to_end(&mut buf).expect("reply");
            lat.push(t.elapsed());
        }
        lat.sort();
        let us = |d: Duration| d.as_micros();
        println!("{:<24} {:>8} {:>8} {:>8}", model.name(), us(lat[N / 2]), us(lat[N * 99 / 100]), us(lat[N - 1]));
        engine.shutdown(Duration::from_secs(5)).expect("shutdown");
    }
}
