//! A handler that never answers: the engine answers in its place at `reply_timeout`
//! (HTTP 504), keeps the connection's order, and drops the late answer.

mod common;

use std::io::{BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use corral::{handler_fn, Config, Engine, Responder, Response};

#[test]
fn an_unanswered_request_gets_504_at_the_deadline_and_a_late_answer_is_dropped() {
    let held: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let keep = Arc::clone(&held);
    let cfg = Config::builder().io_workers(1).reply_timeout(Duration::from_millis(300)).build().unwrap();
    let e = Engine::serve(
        cfg,
        handler_fn(move |req, res| match req.http().map(|h| h.path_only().to_string()).as_deref() {
            Some("/never") => keep.lock().unwrap().push(res),
            _ => res.respond(Response::new(200).body("ok\n")),
        }),
    )
    .unwrap();
    let mut s = connect(e.local_addr());
    // Pipelined: the held request first, then one that is answered at once; order holds.
    s.write_all(b"GET /never HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let first = read_response(&mut r).expect("the engine answers for the handler");
    assert_eq!(first.status, 504);
    let second = read_response(&mut r).expect("the next request's reply follows");
    assert_eq!((second.status, second.text().as_str()), (200, "ok\n"));
    // The late answer goes nowhere: the connection stays usable and in step.
    let late = held.lock().unwrap().pop().expect("the handler kept its responder");
    late.respond(Response::new(200).body("late\n"));
    get(&mut s, "/after");
    let third = read_response(&mut r).expect("the connection still serves");
    assert_eq!((third.status, third.text().as_str()), (200, "ok\n"));
    let st = e.stats();
    assert_eq!(st.replies_timed_out, 1);
    assert_eq!(st.connections_timed_out, 0, "the connection itself did not time out");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_zero_reply_timeout_means_no_deadline_and_bad_values_are_refused() {
    let held: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let keep = Arc::clone(&held);
    let cfg = Config::builder()
        .io_workers(1)
        .reply_timeout(Duration::ZERO)
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = Engine::serve(cfg, handler_fn(move |_req, res| keep.lock().unwrap().push(res))).unwrap();
    let mut s = connect(e.local_addr());
    get(&mut s, "/");
    // Longer than the idle timeout: a request in flight is not idle, and nothing answers for it.
    assert!(silent_for(&s, Duration::from_millis(600)), "no reply while the handler holds it");
    held.lock().unwrap().pop().expect("held").respond(Response::new(200).body("done\n"));
    let resp = read_response(&mut BufReader::new(s)).expect("the handler's own answer");
    assert_eq!(resp.status, 200);
    e.shutdown(DEADLINE).unwrap();
    let err = Config::builder().reply_timeout(Duration::from_micros(10)).build().unwrap_err();
    assert!(err.to_string().contains("reply_timeout"), "{err}");
}
