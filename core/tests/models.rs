//! Every concurrency model serves the same handler correctly: keep-alive, pipelining
//! with heavy requests in order, a new connection per request, and shutdown.

mod common;

use std::io::{BufReader, Read, Write};

use common::*;
use corral::{Config, Engine, Model, Readiness};

fn exercise(e: &Engine) {
    let addr = e.local_addr();
    let mut s = connect(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..20 {
        get(&mut s, "/");
        assert_eq!(read_response(&mut r).unwrap().text(), "hello\n");
    }
    let mut batch = String::new();
    for i in 0..9 {
        let p = if i % 3 == 0 { "/work?us=500".to_string() } else { "/seq".to_string() };
        batch += &format!("GET {p} HTTP/1.1\r\n\r\n");
    }
    s.write_all(batch.as_bytes()).unwrap();
    for i in 0..9 {
        let t = read_response(&mut r).unwrap().text();
        if i % 3 == 0 {
            assert_eq!(t, "worked 500\n");
        } else {
            assert_eq!(t, (20 + i).to_string());
        }
    }
    for _ in 0..20 {
        let mut c = connect(addr);
        c.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 200"));
    }
}

#[test]
fn every_model_serves() {
    for model in Model::ALL {
        let t0 = std::time::Instant::now();
        let mut b = Config::builder().model(model);
        if corral::options::find("io_workers").unwrap().in_model(model) {
            b = b.io_workers(2); // single and thread-per-connection have no worker count
        }
        let e = Engine::serve(b.build().unwrap(), TestApp).unwrap();
        exercise(&e);
        let st = e.stats();
        assert_eq!(st.accepts(), 21, "{model:?}");
        let report = e.shutdown(DEADLINE).unwrap();
        assert!(report.clean, "{model:?}: {report:?}");
        assert_eq!(report.requests_completed, 49, "{model:?}");
        assert_eq!(model.name().parse::<Model>().unwrap(), model);
        eprintln!("{model:?} {:?} {report:?}", t0.elapsed());
    }
}

#[test]
fn oneshot_readiness_serves_the_same() {
    let cfg = Config::builder().readiness(Readiness::OneShot).io_workers(2).build().unwrap();
    let e = Engine::serve(cfg, TestApp).unwrap();
    exercise(&e);
    e.shutdown(DEADLINE).unwrap();
}
