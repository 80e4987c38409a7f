//! Helpers shared by the integration tests: blocking loopback clients with generous
//! deadlines (a busy 2-core machine must pass), and a small test handler.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use corral::{Cost, Handler, Request, Responder, Response};

/// Long enough that only a real hang fails a test.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length framed). `None` at a clean end of stream.
pub fn read_response(r: &mut impl BufRead) -> Option<Resp> {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading a response: {e}"),
        }
        // Skip interim (1xx) responses.
        let status: u16 = line.split_whitespace().nth(1).expect("status line").parse().expect("status code");
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).expect("header line");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').expect("header");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        if status < 200 {
            continue;
        }
        let chunked = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            read_chunked(r)
        } else {
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).expect("body");
            body
        };
        return Some(Resp { status, headers, body });
    }
}

/// A chunked body (no trailers), decoded.
fn read_chunked(r: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).expect("chunk size line");
        let n = usize::from_str_radix(size.trim_end(), 16).expect("chunk size in hex");
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).expect("chunk");
        assert_eq!(&chunk[n..], b"\r\n", "a chunk ends with CRLF");
        if n == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

pub fn get(stream: &mut TcpStream, path: &str) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
}

/// Sends one GET on a new connection and returns the response.
pub fn get_once(addr: SocketAddr, path: &str) -> Resp {
    let mut s = connect(addr);
    get(&mut s, path);
    read_response(&mut BufReader::new(s)).expect("a response")
}

pub fn spin(us: u64) {
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

/// `GET /` light; `/work?us=N` heavy (spins N µs); `/echo` echoes the body; `/worker`
/// says which worker framed it; `/panic` panics; `/drop` drops its responder.
pub struct TestApp;

impl Handler for TestApp {
    fn cost(&self, req: &Request) -> Cost {
        match req.http().map(|h| h.path_only()) {
            Some("/work") => Cost::Heavy,
            _ => Cost::Light,
        }
    }
    fn handle(&self, req: Request, res: Responder) {
        let Some(h) = req.http() else {
            // Non-HTTP protocols: echo the frame, upper-cased.
            res.respond(req.bytes().to_ascii_uppercase());
            return;
        };
        match h.path_only() {
            "/" => res.respond(Response::new(200).body("hello\n")),
            "/work" => {
                let us = h.query("us").and_then(|v| v.parse().ok()).unwrap_or(1000);
                spin(us);
                res.respond(Response::new(200).body(format!("worked {us}\n")));
            }
            "/seq" => res.respond(Response::new(200).body(format!("{}", req.seq()))),
            "/echo" => res.respond(Response::new(200).body(h.body().to_vec())),
            "/worker" => res.respond(Response::new(200).body(format!("{}", req.worker()))),
            "/panic" => panic!("handler panic (expected in this test)"),
            "/drop" => drop(res),
            _ => res.respond(Response::new(404).body("not found\n")),
        }
    }
}

/// Polls `cond` until it holds or [`DEADLINE`] passes. For conditions only visible in
/// counters (no event to wait on); the polling interval does not affect the outcome.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// True if nothing arrives on `s` within `window` (a negative check: a slow machine
/// can only make it pass, never fail, when the server behaves).
pub fn silent_for(s: &TcpStream, window: Duration) -> bool {
    s.set_read_timeout(Some(window)).unwrap();
    let mut b = [0u8; 1];
    let r = s.peek(&mut b);
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

/// Reads the "listening on http://ADDR" line of the example server.
pub fn listening(child: &mut std::process::Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().trim_start_matches("listening on ");
    let addr = addr.strip_prefix("https://").or_else(|| addr.strip_prefix("http://")).unwrap_or(addr);
    addr.parse().unwrap_or_else(|_| panic!("said {line:?}"))
}

/// The example server, beside this test binary: `cargo test` builds examples, a
/// filtered `cargo nextest run` may not, so it is built here then (once per process).
pub fn example() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut profile_dir = std::env::current_exe().unwrap();
            profile_dir.pop(); // deps/
            profile_dir.pop();
            let bin = profile_dir.join("examples").join("http_server");
            if !bin.exists() {
                let target_dir = profile_dir.parent().unwrap();
                let ok = std::process::Command::new(env!("CARGO"))
                    .args(["build", "-q", "-p", "corral", "--example", "http_server", "--target-dir"])
                    .arg(target_dir)
                    .status()
                    .expect("run cargo to build the example server");
                assert!(ok.success(), "cargo build --example http_server failed");
            }
            bin
        })
        .clone()
}

/// A temporary directory removed on drop (no crate for one path).
pub mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "corral-service-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A port the kernel just handed out (for tools whose config needs a number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A HAProxy started by a test, killed when dropped.
pub struct Haproxy(std::process::Child);

impl Haproxy {
    /// Runs HAProxy in the foreground with `config`, written into `dir`.
    pub fn start(config: &str, dir: &std::path::Path) -> Haproxy {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy is needed for this test: `make sysdeps` (or apt-get install haproxy)");
        Haproxy(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process that is killed if the test ends (or fails) before it exited.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
