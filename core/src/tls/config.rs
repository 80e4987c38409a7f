//! The server's TLS configuration: from the options (the default certificate pair, the
//! `tls_sni_certs` pairs, the cipher suites, the oldest version, the client CA) to the
//! rustls `ServerConfig` every connection of the engine shares.
//!
//! Invariants:
//! - [`TlsSetup`] owns where everything comes from (paths, or PEM given in memory), so
//!   the configuration can be made again from the same sources; each make reads every
//!   file afresh and either yields a whole configuration or an error naming the file
//!   and the fault, never half of one.
//! - The session-ticket key and the resumption cache belong to the setup, not to one
//!   configuration: a configuration made again still resumes the sessions of the last.
//! - The crypto provider is ring, named here rather than taken from the process default
//!   (which another crate in the process could change), restricted to `tls_ciphers`.
//! - A configuration returned here makes connections (checked once, so
//!   [`Session::new`](super::Session::new) cannot fail).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::{ServerConfig, ServerConnection, SupportedCipherSuite, SupportedProtocolVersion};

use super::certs::{self, PemSource};
use super::resolve::BySni;
use crate::config::{CertKeyFiles, Config, TlsCipher, TlsClientAuth, TlsVersion};
use crate::error::{Error, ErrorKind, Result};

/// Sessions remembered by id for clients that resume without a ticket (TLS 1.2): a
/// few hundred bytes each.
const SESSION_CACHE: usize = 4096;

/// The default certificate pair, owned.
enum DefaultPair {
    Files(PathBuf, PathBuf),
    Given(Vec<u8>, Vec<u8>),
}

/// Where the client CA bundle comes from.
enum ClientCa {
    File(PathBuf),
    Given(Arc<Vec<u8>>),
}

/// Everything the engine's TLS configuration is made from.
pub(crate) struct TlsSetup {
    default: DefaultPair,
    sni: Vec<CertKeyFiles>,
    ciphers: Vec<TlsCipher>,
    min: TlsVersion,
    /// The CA bundle client certificates are checked against, and whether one is required.
    client: Option<(ClientCa, TlsClientAuth)>,
    alpn: Vec<Vec<u8>>,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl TlsSetup {
    /// `config`'s TLS sources, when TLS is on; `alpn` lists the protocols to agree on
    /// with clients that offer ALPN, most preferred first (none: ALPN is not answered).
    pub(crate) fn of(config: &Config, alpn: &[&[u8]]) -> Result<Option<TlsSetup>> {
        let default = match (config.tls_pem(), config.tls_files()) {
            (Some(p), _) => DefaultPair::Given(p.cert.clone(), p.key.clone()),
            (None, Some((cert, key))) => DefaultPair::Files(cert.to_path_buf(), key.to_path_buf()),
            (None, None) => return Ok(None),
        };
        let ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot make the TLS session-ticket key: {e}")))?;
        Ok(Some(TlsSetup {
            default,
            sni: config.tls_sni_certs.clone(),
            ciphers: config.tls_ciphers.clone(),
            min: config.tls_min_version,
            client: match (config.tls_client_auth(), &config.tls_client_ca_pem) {
                (TlsClientAuth::None, _) => None,
                (auth, Some(pem)) => Some((ClientCa::Given(Arc::clone(pem)), auth)),
                (auth, None) => Some((ClientCa::File(config.tls_client_ca.clone()), auth)),
            },
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            ticketer,
            cache: ServerSessionMemoryCache::new(SESSION_CACHE),
        }))
    }

    /// Reads every source and makes the configuration.
    pub(crate) fn make(&self) -> Result<Arc<ServerConfig>> {
        let provider = Arc::new(self.provider());
        let resolver = self.certificates(&provider)?;
        let versions = self.versions()?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| Error::config(format!("TLS cannot be set up with these versions and cipher suites: {e}")))?;
        let builder = match self.client_verifier(provider)? {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn.clone();
        // A list given is in the operator's order of preference (OpenSSL's
        // SSL_OP_CIPHER_SERVER_PREFERENCE); without one, rustls follows the client.
        config.ignore_client_order = !self.ciphers.is_empty();
        config.session_storage = Arc::clone(&self.cache);
        config.ticketer = Arc::clone(&self.ticketer);
        let config = Arc::new(config);
        ServerConnection::new(Arc::clone(&config))
            .map_err(|e| Error::config(format!("TLS connections cannot be made with this configuration: {e}")))?;
        Ok(config)
    }

    /// Takes `pem` (a chain and its key) as the default pair's new contents; returns the
    /// contents it had, to give back if they do not make a configuration. Refused where
    /// the default pair comes from files: those are reloaded by reading them again.
    pub(super) fn give_pem(&mut self, pem: (Vec<u8>, Vec<u8>)) -> Result<(Vec<u8>, Vec<u8>)> {
        match &mut self.default {
            DefaultPair::Given(cert, key) => Ok((std::mem::replace(cert, pem.0), std::mem::replace(key, pem.1))),
            DefaultPair::Files(cert, _) => Err(Error::config(format!(
                "this engine reads its certificate from files (tls_cert: {}): replace the files and reload \
                 without PEM contents",
                cert.display()
            ))),
        }
    }

    /// Puts back the contents [`give_pem`](TlsSetup::give_pem) returned.
    pub(super) fn restore_pem(&mut self, pem: (Vec<u8>, Vec<u8>)) {
        if let DefaultPair::Given(cert, key) = &mut self.default {
            (*cert, *key) = pem;
        }
    }

    /// ring, with the suites `tls_ciphers` allows in its order (all when empty).
    fn provider(&self) -> CryptoProvider {
        // ring builds with a C compiler alone; rustls marks its provider deprecated because
        // it lacks the post-quantum key exchange (X25519MLKEM768) that aws-lc-rs has, which
        // needs cmake to build. Classical X25519 / P-256 / P-384 key exchange is what runs.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.ciphers.is_empty() {
            provider.cipher_suites = self.ciphers.iter().map(|&c| suite(c)).collect();
        }
        provider
    }

    /// The versions from `tls_min_version` up that have a suite left.
    fn versions(&self) -> Result<Vec<&'static SupportedProtocolVersion>> {
        let any = |tls13: bool| self.ciphers.is_empty() || self.ciphers.iter().any(|c| c.tls13() == tls13);
        let mut versions = Vec::new();
        if any(true) {
            versions.push(&rustls::version::TLS13);
        }
        if any(false) && self.min == TlsVersion::Tls12 {
            versions.push(&rustls::version::TLS12);
        }
        if versions.is_empty() {
            return Err(Error::config(format!(
                "tls_ciphers leaves no suite for TLS {} and up: add a TLS 1.3 suite",
                self.min.name()
            )));
        }
        Ok(versions)
    }

    /// What checks client certificates, when they are asked for: rustls's verifier over
    /// the `tls_client_ca` anchors (chain, validity dates, the client-auth key usage).
    fn client_verifier(&self, provider: Arc<CryptoProvider>) -> Result<Option<Arc<dyn ClientCertVerifier>>> {
        let Some((ca, auth)) = &self.client else { return Ok(None) };
        let pem = match ca {
            ClientCa::File(path) => certs::read("tls_client_ca", path, "it holds a key, not CA certificates".into())?,
            ClientCa::Given(pem) => {
                certs::given("the client CA given as PEM", pem, "it holds a key, not CA certificates")
            }
        };
        let roots = Arc::new(certs::client_roots(&pem)?);
        let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
        if *auth == TlsClientAuth::Optional {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier.build().map_err(|e| Error::config(format!("{}: {e}", pem.label)))?;
        Ok(Some(verifier))
    }

    /// The default chain and the `tls_sni_certs` ones, read and checked.
    fn certificates(&self, provider: &CryptoProvider) -> Result<BySni> {
        let default = match &self.default {
            DefaultPair::Files(cert, key) => PemSource::Files(cert, key),
            DefaultPair::Given(cert, key) => PemSource::Given(cert, key),
        };
        let (default, _) = default.certified(("tls_cert", "tls_key"), provider)?;
        let mut entries = Vec::with_capacity(self.sni.len());
        for pair in &self.sni {
            let pem = PemSource::Files(&pair.cert, &pair.key);
            let (certified, cert) = pem.certified(("tls_sni_certs", "tls_sni_certs"), provider)?;
            entries.push((certified, cert.label));
        }
        BySni::new(default, entries)
    }
}

/// ring's suite for a `tls_ciphers` name.
fn suite(c: TlsCipher) -> SupportedCipherSuite {
    use rustls::crypto::ring::cipher_suite as s;
    match c {
        TlsCipher::Tls13Aes256Gcm => s::TLS13_AES_256_GCM_SHA384,
        TlsCipher::Tls13Aes128Gcm => s::TLS13_AES_128_GCM_SHA256,
        TlsCipher::Tls13Chacha20 => s::TLS13_CHACHA20_POLY1305_SHA256,
        TlsCipher::EcdheEcdsaAes256Gcm => s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsCipher::EcdheEcdsaAes128Gcm => s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsCipher::EcdheEcdsaChacha20 => s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsCipher::EcdheRsaAes256Gcm => s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsCipher::EcdheRsaAes128Gcm => s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsCipher::EcdheRsaChacha20 => s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    }
}

/// The configuration for one pair of PEM contents and defaults otherwise (the session
/// tests' way to make one).
#[cfg(test)]
pub(crate) fn server_config(pem: PemSource<'_>, min: TlsVersion, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
    let mut b = Config::builder().tls_min_version(min);
    b = match pem {
        PemSource::Files(cert, key) => b.tls_cert(cert.to_path_buf()).tls_key(key.to_path_buf()),
        PemSource::Given(cert, key) => b.tls_pem(cert, key),
    };
    TlsSetup::of(&b.build()?, alpn)?.expect("TLS is on").make()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("corral-tls-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unusable_files_are_refused_naming_the_file_and_the_fault() {
        let missing = Path::new("/nonexistent/corral/cert.pem");
        let e = server_config(PemSource::Files(missing, missing), TlsVersion::Tls12, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().starts_with("tls_cert: cannot read /nonexistent/corral/cert.pem"), "{e}");

        let empty = temp("empty.pem", "not a certificate\n");
        let e = server_config(PemSource::Files(&empty, &empty), TlsVersion::Tls12, &[]).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        assert!(e.to_string().contains(&empty.display().to_string()), "{e}");

        let broken = temp("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        let e = server_config(PemSource::Files(&broken, &broken), TlsVersion::Tls12, &[]).unwrap_err();
        assert!(e.to_string().contains("is not valid PEM"), "{e}");
    }

    #[test]
    fn pem_given_in_memory_is_used_and_its_faults_named_as_given() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        server_config(PemSource::Given(cert.as_bytes(), key.as_bytes()), TlsVersion::Tls13, &[]).unwrap();

        let e = server_config(PemSource::Given(key.as_bytes(), cert.as_bytes()), TlsVersion::Tls12, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert_eq!(
            e.to_string(),
            "the certificate given to tls_pem holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" \
             block) (it holds a private key: that is the key, not the certificate)"
        );
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let wrong = other.signing_key.serialize_pem();
        let e = server_config(PemSource::Given(cert.as_bytes(), wrong.as_bytes()), TlsVersion::Tls12, &[]).unwrap_err();
        assert!(e.to_string().contains("does not belong to the first certificate"), "{e}");
    }

    #[test]
    fn a_cipher_list_keeps_only_its_suites_and_the_versions_they_serve() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let config = Config::builder()
            .tls_pem(cert.as_bytes(), key.as_bytes())
            .tls_ciphers(vec![TlsCipher::EcdheEcdsaAes128Gcm])
            .build()
            .unwrap();
        let setup = TlsSetup::of(&config, &[]).unwrap().unwrap();
        let names: Vec<_> = setup.provider().cipher_suites.iter().map(|s| s.suite().as_str()).collect();
        assert_eq!(names, [Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")]);
        assert_eq!(setup.versions().unwrap(), [&rustls::version::TLS12]);
        setup.make().unwrap();

        let e = Config::builder()
            .tls_pem(cert.as_bytes(), key.as_bytes())
            .tls_min_version(TlsVersion::Tls13)
            .tls_ciphers(vec![TlsCipher::EcdheEcdsaAes128Gcm])
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("names only TLS 1.2 suites and tls_min_version is 1.3"), "{e}");
    }
}
