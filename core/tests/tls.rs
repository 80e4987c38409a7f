//! TLS on real loopback sockets, on both backends: real clients (curl, `openssl
//! s_client`, Python's `ssl`, and rustls in this process) against certificates made at
//! test time (rcgen: a CA, and a server certificate for localhost and 127.0.0.1 signed
//! by it), a scanner (sslscan: no version below the minimum, no weak suite), and what a
//! TLS port does with what is not TLS: garbage (an alert), plaintext HTTP (a 400 in
//! clear, as nginx answers it), half a `ClientHello` (closed at the header timeout), a
//! renegotiation attempt; each failure counted by its reason. A case whose tool is not
//! installed is skipped with a printed reason (none is installed here; `make sysdeps`
//! installs them); the io_uring cases are skipped likewise where rings cannot be had.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use corral::{Backend, Config, ConfigBuilder, Engine, ErrorKind, Handler, Request, Responder, Response, TlsVersion};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// Bytes of `GET /big`.
const BIG: usize = 4 << 20;

/// A CA and a server certificate signed by it (for `localhost` and `127.0.0.1`), as PEM
/// files in a directory of their own, removed with it.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("corral-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "corral test CA");
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &ca).unwrap();
        let certs = Certs { dir };
        std::fs::write(certs.ca(), ca.pem()).unwrap();
        std::fs::write(certs.cert(), cert.pem()).unwrap();
        std::fs::write(certs.key(), key.serialize_pem()).unwrap();
        certs
    }
    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `/tls`: what the handshake agreed on; `/peer`: the client's address; `/big`: [`BIG`]
/// bytes; `/sum`: the body's length and byte sum; anything else: `hello`.
struct App;

impl Handler for App {
    fn handle(&self, req: Request, res: Responder) {
        let Some(h) = req.http() else { return };
        let reply = match h.path_only() {
            "/tls" => match req.tls() {
                Some(t) => format!(
                    "TLS {} {} sni={} alpn={} resumed={}\n",
                    t.version().name(),
                    t.cipher_suite(),
                    t.sni().unwrap_or("-"),
                    t.alpn().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_else(|| "-".into()),
                    t.resumed()
                )
                .into_bytes(),
                None => b"plain\n".to_vec(),
            },
            "/peer" => format!("{}\n", req.peer()).into_bytes(),
            "/big" => pattern(BIG),
            "/sum" => {
                format!("{} {}\n", h.body().len(), h.body().iter().map(|&b| u64::from(b)).sum::<u64>()).into_bytes()
            }
            _ => b"hello\n".to_vec(),
        };
        res.respond(Response::new(200).body(reply));
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A TLS engine on `backend` with `cfg`'s other options; `None` (said why) where
/// io_uring cannot run.
fn serve(certs: &Certs, backend: Backend, cfg: ConfigBuilder) -> Option<Engine> {
    let cfg = cfg.tls_cert(certs.cert()).tls_key(certs.key()).backend(backend).build().unwrap();
    match Engine::serve(cfg, App) {
        Ok(e) => Some(e),
        Err(e) if backend == Backend::IoUring => {
            eprintln!("skipped: io_uring is not available here: {e}");
            None
        }
        Err(e) => panic!("cannot serve: {e}"),
    }
}

/// The tool's path, or `None` (said so) when it is not installed: the test installs nothing.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// A rustls client trusting the test CA, speaking `versions`.
fn client_config(certs: &Certs, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(certs.ca()).unwrap();
    for cert in <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    // ring, as the engine uses (its provider is deprecated only for lacking post-quantum
    // key exchange).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let conn = ClientConnection::new(Arc::clone(config), ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, connect(addr))
}

fn ask(s: &mut BufReader<Tls>, request: &str) -> Resp {
    s.get_mut().write_all(request.as_bytes()).unwrap();
    s.get_mut().flush().unwrap();
    read_response(s).expect("a response")
}

fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// Reads until the server closes (a reset counts as closed).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading until the close: {e}"),
    }
    got
}

/// The engine answered `got` with a TLS alert record, or nothing, and no HTTP.
fn is_alert_or_nothing(got: &[u8]) -> bool {
    got.is_empty() || got[0] == 0x15
}

/// Each case runs on epoll and on io_uring.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn epoll() {
                super::$case(corral::Backend::Epoll)
            }
            #[test]
            fn io_uring() {
                super::$case(corral::Backend::IoUring)
            }
        }
    )+};
}

on_both_backends!(
    curl_gets_twice_on_one_connection,
    openssl_handshakes_each_version_and_refuses_older_ones,
    python_resumes_a_session,
    rustls_moves_big_replies_and_bodies_and_closes_with_close_notify,
    garbage_is_answered_with_an_alert_and_closed_and_others_carry_on,
    plaintext_http_on_the_tls_port_gets_a_400_in_clear_and_a_close,
    half_a_client_hello_is_closed_at_the_header_timeout,
    a_proxy_header_comes_in_clear_before_the_client_hello,
    min_version_1_3_refuses_a_1_2_client,
    handshakes_run_on_the_cpu_pool_unless_told_not_to,
    a_storm_of_handshakes_and_hellos_that_leave_settles_every_count,
    a_renegotiation_attempt_is_refused_and_others_carry_on,
    sslscan_finds_no_old_version_and_no_weak_suite,
);

fn curl_gets_twice_on_one_connection(backend: Backend) {
    let Some(curl) = tool("curl") else { return };
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let port = e.local_addr().port();
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let out = Command::new(curl)
        .arg("-sS")
        .arg("--cacert")
        .arg(certs.ca())
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), "--max-time", "30"])
        .args(["-w", "|connects=%{num_connects} http=%{http_version}\n", &url("/tls"), &url("/")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("TLS 1.3 TLS13_") && lines[0].ends_with("sni=localhost alpn=http/1.1 resumed=false"));
    assert_eq!(lines[1..], ["|connects=1 http=1.1", "hello", "|connects=0 http=1.1"], "{stdout}");
    let st = e.stats();
    assert_eq!((st.tls.handshakes, st.tls.handshake_failures), (1, 0), "one handshake for both requests");
    e.shutdown(DEADLINE).unwrap();
}

/// `openssl s_client` with one version forced: the request's reply, or the refusal.
fn s_client(addr: SocketAddr, certs: &Certs, version: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-servername", "localhost", "-quiet"])
        .arg("-verify_return_error")
        .arg("-CAfile")
        .arg(certs.ca())
        .args(version)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = b"GET /tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    // A refused handshake may end s_client before it reads its input.
    let _ = child.stdin.take().unwrap().write_all(request);
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn openssl_handshakes_each_version_and_refuses_older_ones(backend: Backend) {
    if tool("openssl").is_none() {
        return;
    }
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let (ok, out) = s_client(e.local_addr(), &certs, &["-tls1_3"]);
    assert!(ok && out.contains("TLS 1.3 TLS13_"), "{out}");
    let (ok, out) = s_client(e.local_addr(), &certs, &["-tls1_2"]);
    assert!(ok && out.contains("TLS 1.2 TLS_ECDHE_ECDSA_WITH_"), "{out}");
    // TLS 1.1 is refused whatever the minimum (rustls has none older than 1.2); the
    // client's own policy allows it only at security level 0.
    let (ok, out) = s_client(e.local_addr(), &certs, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok && !out.contains("HTTP/1.1") && out.contains("alert"), "{out}");
    wait_until("the refused handshake is counted", || e.stats().tls.handshake_failures == 1);
    assert_eq!(e.stats().tls.handshakes, 2);
    e.shutdown(DEADLINE).unwrap();

    let Some(e) = serve(&certs, backend, Config::builder().tls_min_version(TlsVersion::Tls13)) else { return };
    let (ok, out) = s_client(e.local_addr(), &certs, &["-tls1_2"]);
    assert!(!ok && !out.contains("HTTP/1.1") && out.contains("alert protocol version"), "{out}");
    let (ok, out) = s_client(e.local_addr(), &certs, &["-tls1_3"]);
    assert!(ok && out.contains("TLS 1.3 "), "{out}");
    e.shutdown(DEADLINE).unwrap();
}

const PYTHON_RESUME: &str = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
def get(session=None):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"GET /tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return s.session, s.session_reused, s.version(), data.decode().splitlines()[-1]
session, reused, version, first = get()
_, resumed, _, second = get(session)
print(version, reused, resumed)
print(first)
print(second)
"#;

fn python_resumes_a_session(backend: Backend) {
    let Some(python) = tool("python3") else { return };
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let out = Command::new(python)
        .args(["-c", PYTHON_RESUME, &e.local_addr().port().to_string()])
        .arg(certs.ca())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "TLSv1.3 False True", "the second connection resumed the first's session");
    assert!(lines[1].ends_with("sni=localhost alpn=- resumed=false"), "{stdout}");
    assert!(lines[2].ends_with("sni=localhost alpn=- resumed=true"), "{stdout}");
    let st = e.stats();
    assert_eq!((st.tls.handshakes, st.tls.resumed, st.tls.handshaking), (2, 1, 0));
    e.shutdown(DEADLINE).unwrap();
}

fn rustls_moves_big_replies_and_bodies_and_closes_with_close_notify(backend: Backend) {
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let mut s = BufReader::new(tls_connect(e.local_addr(), &client_config(&certs, rustls::DEFAULT_VERSIONS)));
    let info = ask(&mut s, &get_req("/tls")).text();
    assert!(info.starts_with("TLS 1.3 ") && info.ends_with("alpn=http/1.1 resumed=false\n"), "{info}");
    let big = ask(&mut s, &get_req("/big"));
    assert!(big.body == pattern(BIG), "a {BIG}-byte reply comes whole and in order");
    let body = pattern(600 << 10);
    let head = format!("POST /sum HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    s.get_mut().write_all(head.as_bytes()).unwrap();
    s.get_mut().write_all(&body).unwrap();
    let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(read_response(&mut s).unwrap().text(), format!("{} {sum}\n", body.len()));
    let last = ask(&mut s, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(last.text(), "hello\n");
    // rustls reads a clean end (0) only after close_notify; a bare FIN is an error.
    let mut rest = Vec::new();
    let end = s.read_to_end(&mut rest);
    assert!(matches!(end, Ok(0)), "the close is announced with close_notify: {end:?}");
    let st = e.stats();
    assert_eq!((st.tls.handshakes, st.tls.handshake_failures, st.tls.handshaking), (1, 0, 0));
    e.shutdown(DEADLINE).unwrap();
}

/// 64 bytes that are no TLS record.
fn garbage() -> Vec<u8> {
    (0u32..64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect()
}

fn garbage_is_answered_with_an_alert_and_closed_and_others_carry_on(backend: Backend) {
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let config = client_config(&certs, rustls::DEFAULT_VERSIONS);
    let mut good = BufReader::new(tls_connect(e.local_addr(), &config));
    assert_eq!(ask(&mut good, &get_req("/")).text(), "hello\n");
    let mut bad = connect(e.local_addr());
    bad.write_all(&garbage()).unwrap();
    let got = read_until_closed(&mut bad);
    assert!(is_alert_or_nothing(&got), "an alert record or nothing, then the close: {got:?}");
    let st = e.stats();
    assert_eq!((st.tls.handshake_failures, st.tls.handshakes, st.tls.failed.not_tls), (1, 1, 1));
    assert_eq!(ask(&mut good, &get_req("/")).text(), "hello\n", "the connection beside it is served on");
    let mut fresh = BufReader::new(tls_connect(e.local_addr(), &config));
    assert_eq!(ask(&mut fresh, &get_req("/")).text(), "hello\n", "and new ones too");
    e.shutdown(DEADLINE).unwrap();
}

fn plaintext_http_on_the_tls_port_gets_a_400_in_clear_and_a_close(backend: Backend) {
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let mut s = connect(e.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let got = String::from_utf8(read_until_closed(&mut s)).unwrap();
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n") && got.contains("https://"), "{got}");
    let st = e.stats();
    assert_eq!((st.tls.handshake_failures, st.tls.failed.plain_http), (1, 1));
    e.shutdown(DEADLINE).unwrap();
}

/// The first flight of a rustls client: its `ClientHello`.
fn client_hello(certs: &Certs) -> (ClientConnection, Vec<u8>) {
    let config = client_config(certs, rustls::DEFAULT_VERSIONS);
    let mut conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    (conn, hello)
}

fn half_a_client_hello_is_closed_at_the_header_timeout(backend: Backend) {
    let certs = Certs::new();
    let (_, hello) = client_hello(&certs);
    let short = Duration::from_millis(300);
    // The first request's header timeout, or the handshake's own, whichever is shorter.
    let timeouts = [
        Config::builder().header_timeout(short),
        Config::builder().header_timeout(Duration::from_secs(60)).tls_handshake_timeout(short),
    ];
    for cfg in timeouts {
        let Some(e) = serve(&certs, backend, cfg) else { return };
        let mut s = connect(e.local_addr());
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        let got = read_until_closed(&mut s);
        assert!(got.is_empty(), "closed without a word: {got:?}");
        let st = e.stats();
        assert_eq!(st.connections_timed_out, 1, "closed by the timeout");
        assert_eq!((st.tls.handshake_failures, st.tls.failed.abandoned, st.tls.handshaking), (1, 1, 0));
        e.shutdown(DEADLINE).unwrap();
    }
}

fn a_proxy_header_comes_in_clear_before_the_client_hello(backend: Backend) {
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder().proxy_protocol(corral::ProxyMode::V1)) else { return };
    // The header and the ClientHello in one write: what follows the header in the
    // engine's read goes to the TLS session.
    let (conn, hello) = client_hello(&certs);
    let mut sock = connect(e.local_addr());
    let mut first = b"PROXY TCP4 198.51.100.7 127.0.0.1 4711 443\r\n".to_vec();
    first.extend_from_slice(&hello);
    sock.write_all(&first).unwrap();
    let mut s = BufReader::new(StreamOwned::new(conn, sock));
    assert_eq!(ask(&mut s, &get_req("/peer")).text(), "198.51.100.7:4711\n");
    assert!(ask(&mut s, &get_req("/tls")).text().starts_with("TLS 1.3 "));
    e.shutdown(DEADLINE).unwrap();
}

fn min_version_1_3_refuses_a_1_2_client(backend: Backend) {
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder().tls_min_version(TlsVersion::Tls13)) else { return };
    let old = client_config(&certs, &[&rustls::version::TLS12]);
    let mut s = tls_connect(e.local_addr(), &old);
    let refused = s.conn.complete_io(&mut s.sock);
    assert!(refused.is_err(), "a TLS 1.2 client is refused: {refused:?}");
    let mut s = BufReader::new(tls_connect(e.local_addr(), &client_config(&certs, rustls::DEFAULT_VERSIONS)));
    assert!(ask(&mut s, &get_req("/tls")).text().starts_with("TLS 1.3 "));
    wait_until("the refusal is counted", || e.stats().tls.handshake_failures == 1);
    assert_eq!(e.stats().tls.failed.incompatible, 1, "no version in common");
    e.shutdown(DEADLINE).unwrap();
}

fn handshakes_run_on_the_cpu_pool_unless_told_not_to(backend: Backend) {
    let certs = Certs::new();
    let config = client_config(&certs, rustls::DEFAULT_VERSIONS);
    let inline = [Config::builder().tls_handshake_on_pool(false), Config::builder().cpu_threads(0)];
    for (on_pool, cfg) in [(true, Config::builder())].into_iter().chain(inline.map(|c| (false, c))) {
        let Some(e) = serve(&certs, backend, cfg) else { return };
        for _ in 0..3 {
            let mut s = BufReader::new(tls_connect(e.local_addr(), &config));
            assert!(ask(&mut s, &get_req("/tls")).text().starts_with("TLS 1.3 "));
        }
        let st = e.stats();
        assert_eq!((st.tls.handshakes, st.tls.handshaking, st.tls.handshake_failures), (3, 0, 0));
        assert_eq!(st.tls.handshake_time.count, 3, "every completed handshake is timed");
        assert!(st.tls.handshake_time.p50 > 0 && st.tls.handshake_time.max >= st.tls.handshake_time.p50);
        // The ClientHello's flight, once per handshake; the client's Finished is fed inline.
        assert_eq!(st.tls.pool_flights, if on_pool { 3 } else { 0 }, "{:?}", st.tls);
        e.shutdown(DEADLINE).unwrap();
    }
}

/// Many clients at once, some completing their handshakes and asking, some sending a
/// `ClientHello` and leaving before the answer (their sessions may be on the pool when
/// they go): every handshake ends counted once, and those that finish are served.
fn a_storm_of_handshakes_and_hellos_that_leave_settles_every_count(backend: Backend) {
    const CLIENTS: usize = 24;
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder().cpu_threads(1)) else { return };
    let config = client_config(&certs, rustls::DEFAULT_VERSIONS);
    let addr = e.local_addr();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (config, hello) = (Arc::clone(&config), client_hello(&certs).1);
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    let mut s = BufReader::new(tls_connect(addr, &config));
                    ask(&mut s, &get_req("/")).text()
                } else {
                    connect(addr).write_all(&hello).unwrap();
                    String::new()
                }
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let got = t.join().unwrap();
        assert_eq!(got, if i % 2 == 0 { "hello\n" } else { "" });
    }
    wait_until("every handshake has ended", || e.stats().tls.handshaking == 0);
    let st = e.stats();
    assert_eq!(st.tls.handshakes, CLIENTS as u64 / 2);
    assert_eq!((st.tls.handshake_failures, st.tls.failed.abandoned), (CLIENTS as u64 / 2, CLIENTS as u64 / 2));
    e.shutdown(DEADLINE).unwrap();
}

fn a_renegotiation_attempt_is_refused_and_others_carry_on(backend: Backend) {
    let Some(openssl) = tool("openssl") else { return };
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    // Not -quiet: s_client reads "R" on a line of its own as "renegotiate" (TLS 1.2).
    let mut child = Command::new(openssl)
        .args(["s_client", "-connect", &e.local_addr().to_string(), "-servername", "localhost", "-tls1_2"])
        .arg("-CAfile")
        .arg(certs.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"R\n");
    let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("RENEGOTIATING") && text.contains("no renegotiation"), "the server says no: {text}");
    let st = e.stats();
    assert_eq!((st.tls.handshakes, st.tls.handshaking), (1, 0), "{:?}", st.tls);
    let mut s = BufReader::new(tls_connect(e.local_addr(), &client_config(&certs, rustls::DEFAULT_VERSIONS)));
    assert_eq!(ask(&mut s, &get_req("/")).text(), "hello\n", "others are served");
    e.shutdown(DEADLINE).unwrap();
}

fn sslscan_finds_no_old_version_and_no_weak_suite(backend: Backend) {
    let Some(sslscan) = tool("sslscan") else { return };
    let certs = Certs::new();
    let Some(e) = serve(&certs, backend, Config::builder()) else { return };
    let out = Command::new(sslscan)
        .args(["--no-colour", "--xml=-", "--no-cipher-details", &format!("127.0.0.1:{}", e.local_addr().port())])
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sslscan: {xml} {}", String::from_utf8_lossy(&out.stderr));
    for old in ["ssl\" version=\"2", "ssl\" version=\"3", "tls\" version=\"1.0", "tls\" version=\"1.1"] {
        let line =
            xml.lines().find(|l| l.contains(&format!("<protocol type=\"{old}"))).unwrap_or_else(|| panic!("{xml}"));
        assert!(line.contains("enabled=\"0\""), "{line}");
    }
    for new in ["1.2", "1.3"] {
        let line = xml.lines().find(|l| l.contains(&format!("version=\"{new}\""))).unwrap_or_else(|| panic!("{xml}"));
        assert!(line.contains("enabled=\"1\""), "{line}");
    }
    let accepted: Vec<&str> = xml.lines().filter(|l| l.contains("<cipher status=")).collect();
    assert!(!accepted.is_empty(), "{xml}");
    for c in &accepted {
        // AES-128 is "acceptable" to sslscan, 256-bit suites "strong"; never weaker.
        let ok = c.contains("strength=\"strong\"") || c.contains("strength=\"acceptable\"");
        assert!(ok, "a suite sslscan calls weak: {c}");
        assert!(!c.contains("CBC") && !c.contains("-SHA\"") && !c.contains("RSA-AES"), "{c}");
    }
    let reneg = xml.lines().find(|l| l.contains("<renegotiation")).unwrap_or("");
    assert!(!reneg.contains("secure=\"0\"") || reneg.contains("supported=\"0\""), "no insecure renegotiation: {reneg}");
    e.shutdown(DEADLINE).unwrap();
}

/// A websocket text frame from a client (masked).
fn ws_text(text: &str) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The example server with `--tls-cert`/`--tls-key`: a streamed upload, a websocket
/// echo, and what `GET /tls` says, over TLS on `backend`.
fn example_server_serves_over_tls(backend: &str) {
    let certs = Certs::new();
    let mut child = Reaped(
        Command::new(example())
            .arg("--tls-cert")
            .arg(certs.cert())
            .arg("--tls-key")
            .arg(certs.key())
            .args(["--backend", backend, "--seconds", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example server"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    if line.is_empty() && backend == "io_uring" {
        eprintln!("skipped: the example server could not start on io_uring here");
        return;
    }
    assert!(line.starts_with("listening on https://"), "{line:?}");
    let addr: SocketAddr = line.trim().trim_start_matches("listening on https://").parse().unwrap();
    let config = client_config(&certs, rustls::DEFAULT_VERSIONS);
    let mut s = BufReader::new(tls_connect(addr, &config));
    assert!(ask(&mut s, &get_req("/tls")).text().starts_with("TLS 1.3 "));
    let body = pattern(2 << 20);
    let head = format!("PUT /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    s.get_mut().write_all(head.as_bytes()).unwrap();
    s.get_mut().write_all(&body).unwrap();
    let fnv = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    assert_eq!(read_response(&mut s).unwrap().text(), format!("{} bytes, fnv1a64 {fnv:016x}\n", body.len()));

    let mut ws = BufReader::new(tls_connect(addr, &config));
    let upgrade = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ws.get_mut().write_all(upgrade.as_bytes()).unwrap();
    let mut status = String::new();
    ws.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status:?}");
    loop {
        let mut h = String::new();
        ws.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    ws.get_mut().write_all(&ws_text("echo over TLS")).unwrap();
    let mut frame = [0u8; 2 + 13];
    ws.read_exact(&mut frame).unwrap();
    assert_eq!(&frame[..2], &[0x81, 13], "an unmasked text frame");
    assert_eq!(&frame[2..], b"echo over TLS");
}

#[test]
fn the_example_server_serves_over_tls_on_epoll() {
    example_server_serves_over_tls("epoll");
}

#[test]
fn the_example_server_serves_over_tls_on_io_uring() {
    example_server_serves_over_tls("io_uring");
}

fn refusal(cfg: ConfigBuilder) -> String {
    match cfg.build().and_then(|c| Engine::serve(c, App)) {
        Ok(_) => panic!("served with an unusable TLS configuration"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn unusable_tls_options_are_refused_with_what_to_do() {
    let certs = Certs::new();
    let other = Certs::new();
    let (cert, key) = (certs.cert(), certs.key());
    let e = refusal(Config::builder().tls_cert(cert.clone()));
    assert!(e.starts_with("tls_cert is set without tls_key") && e.contains("set both, or neither"), "{e}");
    let e = refusal(Config::builder().tls_key(key.clone()));
    assert!(e.starts_with("tls_key is set without tls_cert"), "{e}");
    let e = refusal(Config::builder().tls_min_version(TlsVersion::Tls13));
    assert!(e.starts_with("tls_min_version has no effect without TLS"), "{e}");
    let e = refusal(Config::builder().tls_cert(key.clone()).tls_key(cert.clone()));
    assert!(
        e.contains("holds no PEM certificate") && e.contains("(it holds a private key: that file is tls_key)"),
        "{e}"
    );
    let e = refusal(Config::builder().tls_cert(cert.clone()).tls_key(cert.clone()));
    assert!(e.contains("holds no PEM private key") && e.contains("that file is tls_cert"), "{e}");
    let e = refusal(Config::builder().tls_cert(cert.clone()).tls_key(other.key()));
    assert!(e.contains("does not belong to the first certificate"), "{e}");
    assert!(e.contains(&other.key().display().to_string()) && e.contains(&cert.display().to_string()), "{e}");
    let missing = certs.dir.join("missing.pem");
    let e = refusal(Config::builder().tls_cert(missing).tls_key(key.clone()));
    assert!(e.starts_with("tls_cert: cannot read ") && e.contains("missing.pem"), "{e}");
    let handoff = Config::builder().tls_cert(cert).tls_key(key).build().and_then(Engine::handoff);
    let e = handoff.err().expect("a handoff engine hands over sockets, not TLS").to_string();
    assert!(e.starts_with("tls_cert has no effect on a handoff engine"), "{e}");
}

#[test]
fn every_model_and_oneshot_readiness_serve_tls() {
    let certs = Certs::new();
    let config = client_config(&certs, rustls::DEFAULT_VERSIONS);
    let oneshot = (corral::Model::Stealing, Config::builder().readiness(corral::Readiness::OneShot));
    let models = corral::Model::ALL.iter().map(|&m| (m, Config::builder().model(m)));
    for (model, cfg) in models.chain([oneshot]) {
        let cfg = cfg.tls_cert(certs.cert()).tls_key(certs.key()).build().unwrap();
        let e = Engine::serve(cfg, App).unwrap();
        let mut s = BufReader::new(tls_connect(e.local_addr(), &config));
        assert!(ask(&mut s, &get_req("/tls")).text().starts_with("TLS 1.3 "), "{model:?}");
        assert!(ask(&mut s, &get_req("/big")).body == pattern(BIG), "{model:?}");
        e.shutdown(DEADLINE).unwrap();
    }
}

#[test]
fn a_plain_engine_says_plain() {
    let e = Engine::serve(Config::default(), App).unwrap();
    assert_eq!(get_once(e.local_addr(), "/tls").text(), "plain\n");
    assert_eq!(e.stats().tls, corral::TlsStats::default());
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn pem_contents_serve_as_the_files_do_and_the_pair_is_checked_at_build() {
    let certs = Certs::new();
    let (cert, key) = (std::fs::read(certs.cert()).unwrap(), std::fs::read(certs.key()).unwrap());
    let cfg = Config::builder().tls_pem(cert.clone(), key.clone()).tls_min_version(TlsVersion::Tls13).build().unwrap();
    assert!(cfg.tls() && cfg.tls_files().is_none());
    let e = Engine::serve(cfg, App).unwrap();
    let mut s = BufReader::new(tls_connect(e.local_addr(), &client_config(&certs, rustls::DEFAULT_VERSIONS)));
    let info = ask(&mut s, &get_req("/tls")).text();
    assert!(info.starts_with("TLS 1.3 "), "{info}");
    assert_eq!(e.stats().tls.handshakes, 1);
    e.shutdown(DEADLINE).unwrap();

    // Given twice, files and contents: refused. On a handoff engine: refused.
    let e = refusal(Config::builder().tls_pem(cert.clone(), key.clone()).tls_cert(certs.cert()).tls_key(certs.key()));
    assert!(e.contains("given twice") && e.contains("give them one way"), "{e}");
    let e = Engine::handoff(Config::builder().tls_pem(cert, key).build().unwrap()).err().expect("refused");
    assert!(e.to_string().contains("has no effect on a handoff engine"), "{e}");

    // One option at a time (C's corral_config_set validates after each): tls_cert alone
    // passes validate, and build says what is missing.
    let half = Config::builder().tls_cert(certs.cert());
    half.validate().unwrap();
    assert!(half.build().unwrap_err().to_string().starts_with("tls_cert is set without tls_key"));
}
