//! Certificates on real loopback sockets: several chains chosen by the server name a
//! client asks for (SNI), cipher-suite lists, and the files refused at build. The
//! certificates are made at test time (rcgen: a CA and leaves signed by it), so nothing
//! expires; `openssl s_client` cases are skipped, said why, where it is not installed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use corral::{
    Backend, CertKeyFiles, Config, ConfigBuilder, Engine, ErrorKind, Request, Responder, Response, TlsCipher,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A CA and the leaves it signs, as PEM files in a directory of their own (removed with it).
struct Pki {
    dir: PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf: its files and its DER (what a client sees).
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("corral-tls-certs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, name);
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server leaf for `names`, with common name `cn`, in `<file>.pem` and `<file>.key`.
    fn server(&self, file: &str, cn: &str, names: &[&str]) -> Leaf {
        self.leaf(file, cn, names, rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client leaf with common name `cn`.
    fn client(&self, file: &str, cn: &str) -> Leaf {
        self.leaf(file, cn, &[], rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, file: &str, cn: &str, names: &[&str], eku: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Leaf {
    fn pair(&self) -> CertKeyFiles {
        CertKeyFiles { cert: self.cert.clone(), key: self.key.clone() }
    }

    /// A rustls client trusting `pki`'s CA that presents this leaf.
    fn as_client(&self, pki: &Pki) -> Arc<ClientConfig> {
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(self.key_der.clone());
        let config = ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(pki))
            .with_client_auth_cert(vec![self.der.clone()], key.into())
            .unwrap();
        Arc::new(config)
    }
}

/// Answers what the handshake agreed on: `<version> <suite> sni=<name>`; at `/client`,
/// the client's certificate: `client=<subject> chain=<certificates>`.
fn app(req: Request, res: Responder) {
    let client = req.http().is_some_and(|h| h.path_only() == "/client");
    let said = match req.tls() {
        Some(t) if client => {
            format!("client={} chain={}\n", t.client_subject().unwrap_or("-"), t.client_cert_chain().len())
        }
        Some(t) => format!("{} {} sni={}\n", t.version().name(), t.cipher_suite(), t.sni().unwrap_or("-")),
        None => "plain\n".into(),
    };
    res.respond(Response::new(200).body(said));
}

fn serve(default: &Leaf, cfg: ConfigBuilder) -> Engine {
    let cfg = cfg.tls_cert(default.cert.clone()).tls_key(default.key.clone()).build().unwrap();
    Engine::serve(cfg, corral::handler_fn(app)).unwrap()
}

#[allow(deprecated)]
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, as the engine uses (deprecated only for lacking post-quantum key exchange).
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pki: &Pki) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    roots
}

/// A rustls client trusting `pki`'s CA. It resumes no session: a resumed session
/// presents no certificate (the client remembers the first one's), and these tests look
/// at the certificate each handshake presents.
fn client(pki: &Pki, provider: Arc<rustls::crypto::CryptoProvider>) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(pki))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Connects as `name` (an IP address: no SNI), asks once; the reply and the
/// certificate the server presented.
fn ask(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> Result<(String, CertificateDer<'static>), String> {
    ask_at(addr, config, name, "/")
}

fn ask_at(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
    path: &str,
) -> Result<(String, CertificateDer<'static>), String> {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let conn = ClientConnection::new(Arc::clone(config), server_name).unwrap();
    let mut tls = StreamOwned::new(conn, connect(addr));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let presented = tls.conn.peer_certificates().and_then(|c| c.first()).cloned().ok_or("no certificate")?;
    // The server's refusal of a client certificate comes as an alert after the client's
    // side of the handshake is done: it shows on the first read.
    let mut reader = BufReader::new(&mut tls);
    reader.fill_buf().map_err(|e| e.to_string())?;
    let resp = read_response(&mut reader).ok_or("no response")?;
    Ok((resp.text(), presented))
}

/// `openssl s_client -servername <sni>`: the subject line of the certificate presented.
fn s_client_subject(addr: SocketAddr, sni: &str) -> Option<String> {
    let Ok(mut child) = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-servername", sni])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: openssl is not installed");
        return None;
    };
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let subject = text.lines().find(|l| l.starts_with("subject=")).unwrap_or_else(|| panic!("no subject: {text}"));
    Some(subject.to_string())
}

#[test]
fn each_server_name_gets_its_certificate_and_others_the_default() {
    let pki = Pki::new("corral SNI CA");
    let default = pki.server("default", "default site", &["localhost", "127.0.0.1"]);
    let a = pki.server("a", "site a", &["a.example.test"]);
    let b = pki.server("b", "site b", &["*.b.example.test", "b.example.test"]);
    // b's certificate and key in one file, HAProxy's way.
    let both = pki.dir.join("b-both.pem");
    let text = [std::fs::read(&b.cert).unwrap(), std::fs::read(&b.key).unwrap()].concat();
    std::fs::write(&both, text).unwrap();
    let sni = vec![a.pair(), CertKeyFiles { cert: both.clone(), key: both }];
    for backend in [Backend::Epoll, Backend::IoUring] {
        let cfg = Config::builder().tls_sni_certs(sni.clone()).backend(backend);
        let cfg = cfg.tls_cert(default.cert.clone()).tls_key(default.key.clone()).build().unwrap();
        let e = match Engine::serve(cfg, corral::handler_fn(app)) {
            Ok(e) => e,
            Err(e) if backend == Backend::IoUring => {
                eprintln!("skipped: io_uring is not available here: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let addr = e.local_addr();
        let config = client(&pki, ring());
        for (name, leaf) in [
            ("a.example.test", &a),
            ("A.Example.Test", &a),
            ("x.b.example.test", &b),
            ("b.example.test", &b),
            ("localhost", &default),
            ("127.0.0.1", &default),
        ] {
            let (said, presented) = ask(addr, &config, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(presented == leaf.der, "{name} got another certificate");
            let sni = if name == "127.0.0.1" { "-".to_string() } else { name.to_ascii_lowercase() };
            assert!(said.ends_with(&format!(" sni={sni}\n")), "{name}: {said}");
        }
        // A name no entry has, and one a wildcard does not reach (two labels down), get
        // the default certificate: the client refuses it for the name, corral does not.
        for name in ["unknown.example.test", "y.x.b.example.test"] {
            let e = ask(addr, &config, name).unwrap_err();
            assert!(
                e.contains("not valid for name") && e.contains("only valid for DnsName(\"localhost\")"),
                "{name}: {e}"
            );
        }
        if let Some(subject) = s_client_subject(addr, "unknown.example.test") {
            assert!(subject.contains("default site"), "{subject}");
            assert!(s_client_subject(addr, "a.example.test").unwrap().contains("site a"));
        }
        wait_until("the two clients that refused the default certificate are counted", || {
            e.stats().tls.handshake_failures == 2
        });
        e.shutdown(DEADLINE).unwrap();
    }
}

#[test]
fn a_cipher_list_is_what_clients_may_agree_on() {
    let pki = Pki::new("corral cipher CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let mut cfg = Config::builder();
    let python = corral::options::Front::PYTHON;
    let list = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
    cfg.set(&python, "tls_ciphers", corral::options::Value::Text(list)).unwrap();
    let e = serve(&default, cfg);
    let addr = e.local_addr();

    // A client that prefers ChaCha20 gets the list's first choice: the server's order wins.
    let mut chacha_first = (*ring()).clone();
    chacha_first.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let (said, _) = ask(addr, &client(&pki, Arc::new(chacha_first)), "localhost").unwrap();
    assert_eq!(said, "1.3 TLS13_AES_256_GCM_SHA384 sni=localhost\n");
    let mut only12 = (*ring()).clone();
    only12.cipher_suites.retain(|s| s.tls13().is_none());
    let config = ClientConfig::builder_with_provider(Arc::new(only12))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(&pki))
        .with_no_client_auth();
    let (said, _) = ask(addr, &Arc::new(config), "localhost").unwrap();
    assert_eq!(said, "1.2 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 sni=localhost\n");

    let mut other = (*ring()).clone();
    other.cipher_suites.retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let e2 = ask(addr, &client(&pki, Arc::new(other)), "localhost").unwrap_err();
    assert!(e2.contains("HandshakeFailure"), "a suite outside the list is refused: {e2}");
    wait_until("the refused handshake is counted", || e.stats().tls.handshake_failures == 1);
    assert_eq!(e.stats().tls.failed.incompatible, 1, "no suite in common");
    e.shutdown(DEADLINE).unwrap();
}

fn refusal(cfg: ConfigBuilder) -> String {
    match cfg.build().and_then(|c| Engine::serve(c, corral::handler_fn(app))) {
        Ok(_) => panic!("served with an unusable TLS configuration"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn unusable_sni_certificates_and_cipher_names_are_refused_naming_the_file() {
    let pki = Pki::new("corral refusal CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let a = pki.server("a", "site a", &["a.example.test"]);
    let also_a = pki.server("also-a", "site a again", &["a.example.test"]);
    let by_ip = pki.server("ip", "by address", &["192.0.2.1"]);
    let with_default = |sni: Vec<CertKeyFiles>| {
        Config::builder().tls_cert(default.cert.clone()).tls_key(default.key.clone()).tls_sni_certs(sni)
    };

    let missing = CertKeyFiles { cert: pki.dir.join("missing.pem"), key: a.key.clone() };
    let e = refusal(with_default(vec![missing]));
    assert!(e.starts_with("tls_sni_certs: cannot read ") && e.contains("missing.pem"), "{e}");
    let wrong_key = CertKeyFiles { cert: a.cert.clone(), key: default.key.clone() };
    let e = refusal(with_default(vec![wrong_key]));
    assert!(e.contains("does not belong to the first certificate"), "{e}");
    assert!(e.contains(&a.cert.display().to_string()) && e.contains(&default.key.display().to_string()), "{e}");
    let swapped = CertKeyFiles { cert: a.key.clone(), key: a.cert.clone() };
    let e = refusal(with_default(vec![swapped]));
    assert!(e.contains("holds no PEM certificate") && e.contains("that file is the key"), "{e}");
    let e = refusal(with_default(vec![by_ip.pair()]));
    assert!(e.contains(&by_ip.cert.display().to_string()) && e.contains("has no DNS name"), "{e}");
    let e = refusal(with_default(vec![a.pair(), also_a.pair()]));
    assert!(e.starts_with("the name a.example.test is in two tls_sni_certs certificates"), "{e}");
    let e = refusal(Config::builder().tls_sni_certs(vec![a.pair()]));
    assert!(e.starts_with("tls_sni_certs has no effect without TLS"), "{e}");

    let mut cfg = Config::builder();
    let python = corral::options::Front::PYTHON;
    let e = cfg.set(&python, "tls_ciphers", corral::options::Value::Text("RC4-SHA")).unwrap_err();
    assert!(e.to_string().contains("unknown TLS cipher suite \"RC4-SHA\""), "{e}");
    assert!(e.to_string().contains("TLS_AES_128_GCM_SHA256"), "the known names are listed: {e}");
    let e = cfg.set(&python, "tls_sni_certs", corral::options::Value::Text("a.pem:")).unwrap_err();
    assert!(e.to_string().contains("lacks a path"), "{e}");
    let e = refusal(
        with_default(Vec::new())
            .tls_ciphers(vec![TlsCipher::EcdheRsaAes128Gcm])
            .tls_min_version(corral::TlsVersion::Tls13),
    );
    assert!(e.contains("names only TLS 1.2 suites"), "{e}");
}

/// A rustls client's view of a refused handshake: the error of the first read or write.
fn refused(addr: SocketAddr, config: &Arc<ClientConfig>) -> String {
    match ask_at(addr, config, "localhost", "/client") {
        Ok((said, _)) => panic!("served: {said}"),
        Err(e) => e,
    }
}

#[test]
fn client_certificates_from_the_ca_are_seen_and_others_refused() {
    let pki = Pki::new("corral client CA");
    let other = Pki::new("another CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let alice = pki.client("alice", "alice");
    let mallory = other.client("mallory", "mallory");
    for backend in [Backend::Epoll, Backend::IoUring] {
        let cfg = Config::builder().tls_client_ca(pki.ca()).backend(backend);
        let cfg = cfg.tls_cert(default.cert.clone()).tls_key(default.key.clone()).build().unwrap();
        assert_eq!(cfg.tls_client_auth(), corral::TlsClientAuth::Required, "required is the default with a CA");
        let e = match Engine::serve(cfg, corral::handler_fn(app)) {
            Ok(e) => e,
            Err(e) if backend == Backend::IoUring => {
                eprintln!("skipped: io_uring is not available here: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let addr = e.local_addr();
        let (said, _) = ask_at(addr, &alice.as_client(&pki), "localhost", "/client").unwrap();
        assert_eq!(said, "client=CN=alice chain=1\n");

        let e1 = refused(addr, &mallory.as_client(&pki));
        assert!(e1.contains("UnknownCA") || e1.contains("BadCertificate"), "another CA's certificate: {e1}");
        let e2 = refused(addr, &client(&pki, ring()));
        assert!(e2.contains("CertificateRequired"), "no certificate: {e2}");
        wait_until("both refusals are counted", || e.stats().tls.handshake_failures == 2);
        assert_eq!(e.stats().tls.failed.client_cert, 2, "counted as the client certificate's");
        e.shutdown(DEADLINE).unwrap();
    }
}

#[test]
fn an_optional_client_certificate_may_be_left_out() {
    let pki = Pki::new("corral optional CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let alice = pki.client("alice", "alice");
    let cfg = Config::builder().tls_client_ca(pki.ca()).tls_client_auth(corral::TlsClientAuth::Optional);
    let e = serve(&default, cfg);
    let addr = e.local_addr();
    let (said, _) = ask_at(addr, &client(&pki, ring()), "localhost", "/client").unwrap();
    assert_eq!(said, "client=- chain=0\n", "no certificate, served");
    let (said, _) = ask_at(addr, &alice.as_client(&pki), "localhost", "/client").unwrap();
    assert_eq!(said, "client=CN=alice chain=1\n");
    let mallory = Pki::new("another CA").client("mallory", "mallory");
    let e1 = refused(addr, &mallory.as_client(&pki));
    assert!(e1.contains("UnknownCA") || e1.contains("BadCertificate"), "a certificate is still checked: {e1}");
    wait_until("the refused certificate is counted", || e.stats().tls.handshake_failures == 1);
    assert_eq!(e.stats().tls.failed.client_cert, 1, "counted as the client certificate's");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn openssl_presents_a_client_certificate() {
    let pki = Pki::new("corral s_client CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let alice = pki.client("alice", "alice");
    let e = serve(&default, Config::builder().tls_client_ca(pki.ca()));
    let Ok(mut child) = Command::new("openssl")
        .args(["s_client", "-connect", &e.local_addr().to_string(), "-servername", "localhost", "-quiet"])
        .arg("-cert")
        .arg(&alice.cert)
        .arg("-key")
        .arg(&alice.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: openssl is not installed");
        return;
    };
    let request = b"GET /client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("client=CN=alice chain=1\n"), "{stdout}");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn client_certificate_options_are_refused_where_they_mean_nothing() {
    let pki = Pki::new("corral client refusal CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let with_default = || Config::builder().tls_cert(default.cert.clone()).tls_key(default.key.clone());
    let e = refusal(with_default().tls_client_auth(corral::TlsClientAuth::Required));
    assert!(e.starts_with("tls_client_auth = required needs tls_client_ca"), "{e}");
    let e = refusal(with_default().tls_client_ca(pki.ca()).tls_client_auth(corral::TlsClientAuth::None));
    assert!(e.starts_with("tls_client_ca has no effect with tls_client_auth = none"), "{e}");
    let e = refusal(with_default().tls_client_ca(pki.dir.join("nope.pem")));
    assert!(e.starts_with("tls_client_ca: cannot read ") && e.contains("nope.pem"), "{e}");
    let e = refusal(with_default().tls_client_ca(default.key.clone()));
    assert!(e.contains("tls_client_ca") && e.contains("holds no PEM certificate"), "{e}");
    let e = refusal(Config::builder().tls_client_ca(pki.ca()));
    assert!(e.starts_with("tls_client_ca has no effect without TLS"), "{e}");
}

/// A kept-alive TLS connection: asks again on the same session.
struct Open {
    tls: BufReader<StreamOwned<ClientConnection, std::net::TcpStream>>,
}

impl Open {
    fn new(addr: SocketAddr, config: &Arc<ClientConfig>) -> Open {
        let conn = ClientConnection::new(Arc::clone(config), ServerName::try_from("localhost").unwrap()).unwrap();
        Open { tls: BufReader::new(StreamOwned::new(conn, connect(addr))) }
    }
    fn ask(&mut self) -> String {
        self.tls.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        read_response(&mut self.tls).expect("a response").text()
    }
    fn presented(&self) -> CertificateDer<'static> {
        self.tls.get_ref().conn.peer_certificates().unwrap()[0].clone()
    }
}

/// Replaces `to`'s files with `from`'s, each by a rename (as certbot's symlink swap
/// and `mv` do: a reader never sees half a file).
fn replace_files(from: &Leaf, to: &Leaf) {
    for (src, dst) in [(&from.cert, &to.cert), (&from.key, &to.key)] {
        let tmp = dst.with_extension("new");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
}

#[test]
fn a_reload_serves_new_files_to_new_connections_and_keeps_open_ones() {
    let pki = Pki::new("corral reload CA");
    let live = pki.server("live", "first", &["localhost"]);
    let first = live.der.clone();
    let second = pki.server("second", "second", &["localhost"]);
    let site = pki.server("site", "site", &["a.example.test"]);
    let site2 = pki.server("site2", "site renewed", &["a.example.test"]);
    let e = serve(&live, Config::builder().tls_sni_certs(vec![site.pair()]));
    let addr = e.local_addr();
    let config = client(&pki, ring());
    let mut open = Open::new(addr, &config);
    assert!(open.ask().starts_with("1.3 "));
    assert!(open.presented() == first);

    replace_files(&second, &live);
    replace_files(&site2, &site);
    e.reload_tls().unwrap();
    assert!(ask(addr, &config, "localhost").unwrap().1 == second.der, "a new connection gets the new certificate");
    assert!(ask(addr, &config, "a.example.test").unwrap().1 == site2.der, "and the SNI ones are read again");
    assert!(open.ask().starts_with("1.3 "), "the open connection carries on");
    assert!(open.presented() == first);

    std::fs::write(&live.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = e.reload_tls().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().starts_with(&format!("tls_cert: {} is not valid PEM", live.cert.display())), "{err}");
    assert!(ask(addr, &config, "localhost").unwrap().1 == second.der, "a refused reload leaves the old certificate");
    std::fs::remove_file(&site.key).unwrap();
    let err = e.reload_tls().unwrap_err().to_string();
    assert!(err.starts_with("tls_cert: ") || err.starts_with("tls_sni_certs: cannot read"), "{err}");
    assert!(open.ask().starts_with("1.3 "));
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn pem_given_in_memory_reloads_from_new_contents() {
    let pki = Pki::new("corral PEM reload CA");
    let (one, two) = (pki.server("one", "one", &["localhost"]), pki.server("two", "two", &["localhost"]));
    let pem = |l: &Leaf| (std::fs::read(&l.cert).unwrap(), std::fs::read(&l.key).unwrap());
    let (cert, key) = pem(&one);
    let e = Engine::serve(Config::builder().tls_pem(cert, key).build().unwrap(), corral::handler_fn(app)).unwrap();
    let addr = e.local_addr();
    let config = client(&pki, ring());
    assert!(ask(addr, &config, "localhost").unwrap().1 == one.der);

    let (cert, key) = pem(&two);
    e.reload_tls_pem(cert.clone(), key).unwrap();
    assert!(ask(addr, &config, "localhost").unwrap().1 == two.der);
    let err = e.reload_tls_pem(cert, pem(&one).1).unwrap_err().to_string();
    assert!(err.contains("does not belong to the first certificate"), "{err}");
    assert!(ask(addr, &config, "localhost").unwrap().1 == two.der, "the refused pair changed nothing");
    e.reload_tls().unwrap();
    assert!(ask(addr, &config, "localhost").unwrap().1 == two.der, "a reload without contents keeps the last ones");
    e.shutdown(DEADLINE).unwrap();

    let files = serve(&one, Config::builder());
    let err = files.reload_tls_pem(pem(&two).0, pem(&two).1).unwrap_err().to_string();
    assert!(err.starts_with("this engine reads its certificate from files"), "{err}");
    files.shutdown(DEADLINE).unwrap();
    let plain = Engine::serve(Config::builder().build().unwrap(), corral::handler_fn(app)).unwrap();
    let err = plain.reload_tls().unwrap_err().to_string();
    assert!(err.starts_with("this engine serves no TLS"), "{err}");
    plain.shutdown(DEADLINE).unwrap();
}

fn signal(child: &Reaped, name: &str) {
    let ok = Command::new("kill").args(["-s", name, &child.0.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -s {name}");
}

#[test]
fn the_example_server_reloads_its_certificate_on_sighup() {
    let pki = Pki::new("corral SIGHUP CA");
    let live = pki.server("live", "first", &["localhost"]);
    let second = pki.server("second", "second", &["localhost"]);
    let first = live.der.clone();
    let mut child = Reaped(
        Command::new(example())
            .arg("--tls-cert")
            .arg(&live.cert)
            .arg("--tls-key")
            .arg(&live.key)
            .args(["--seconds", "120"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example server"),
    );
    let addr = listening(&mut child.0);
    let config = client(&pki, ring());
    assert!(ask(addr, &config, "localhost").unwrap().1 == first);
    replace_files(&second, &live);
    signal(&child, "HUP");
    wait_until("the example server serves the new certificate", || {
        ask(addr, &config, "localhost").unwrap().1 == second.der
    });
    std::fs::write(&live.key, "broken\n").unwrap();
    signal(&child, "HUP");
    signal(&child, "TERM");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(child.wait().unwrap().success(), "{err}");
    assert!(err.contains("SIGHUP: TLS certificates reloaded"), "{err}");
    let refused =
        format!("SIGHUP: TLS certificates not reloaded, the ones before serve on: tls_key: {}", live.key.display());
    assert!(err.contains(&refused), "{err}");
}

#[test]
fn a_client_ca_given_as_pem_checks_as_the_file_does() {
    let pki = Pki::new("corral PEM client CA");
    let default = pki.server("default", "default site", &["localhost"]);
    let alice = pki.client("alice", "alice");
    let (cert, key) = (std::fs::read(&default.cert).unwrap(), std::fs::read(&default.key).unwrap());
    let ca = std::fs::read(pki.ca()).unwrap();
    let cfg = Config::builder().tls_pem(cert.clone(), key.clone()).tls_client_ca_pem(ca.clone()).build().unwrap();
    let e = Engine::serve(cfg, corral::handler_fn(app)).unwrap();
    let addr = e.local_addr();
    assert_eq!(ask_at(addr, &alice.as_client(&pki), "localhost", "/client").unwrap().0, "client=CN=alice chain=1\n");
    assert!(refused(addr, &client(&pki, ring())).contains("CertificateRequired"));
    e.shutdown(DEADLINE).unwrap();

    let twice = Config::builder().tls_pem(cert, key).tls_client_ca_pem(ca.clone()).tls_client_ca(pki.ca());
    assert!(refusal(twice).starts_with("the client CA is given twice"));
    let e = refusal(Config::builder().tls_client_ca_pem(ca));
    assert!(e.starts_with("a client CA has no effect without TLS"), "{e}");
}
