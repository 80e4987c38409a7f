//! The server's TLS configuration: the PEM certificate chain and private key, read from
//! their files (`tls_cert`, `tls_key`) or given as PEM contents (`ConfigBuilder::tls_pem`,
//! what the Node front passes), turned into the rustls `ServerConfig` every connection of
//! the engine shares.
//!
//! Invariants: PEM that cannot be used is refused when the engine is built, with an
//! error that names the file (or says the contents were given) and what is wrong with it
//! (unreadable, no PEM block of the kind expected, the other file's kind, a key that is
//! not the certificate's); the
//! crypto provider is ring, named here rather than taken from the process default (which
//! another crate in the process could change); a config returned here makes connections
//! (checked once, so [`Session::new`](super::Session::new) cannot fail).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use rustls::{ServerConfig, ServerConnection};

use crate::config::TlsVersion;
use crate::error::{Error, ErrorKind, Result};

/// Sessions remembered by id for clients that resume without a ticket (TLS 1.2): a
/// few hundred bytes each.
const SESSION_CACHE: usize = 4096;

/// Where the certificate chain (the server's certificate first) and its private key come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PemSource<'a> {
    /// PEM files, read when the engine is built (`tls_cert`, `tls_key`).
    Files(&'a Path, &'a Path),
    /// PEM contents given in memory (`ConfigBuilder::tls_pem`): nothing touches the disk.
    Given(&'a [u8], &'a [u8]),
}

impl<'a> PemSource<'a> {
    /// Where `config`'s certificate chain and key come from, when TLS is on.
    pub(crate) fn of(config: &'a crate::config::Config) -> Option<PemSource<'a>> {
        match (config.tls_pem(), config.tls_files()) {
            (Some(p), _) => Some(PemSource::Given(&p.cert, &p.key)),
            (None, Some((cert, key))) => Some(PemSource::Files(cert, key)),
            (None, None) => None,
        }
    }
}

/// PEM text and how an error names it ("tls_cert: /path", or the contents given).
struct Named {
    label: String,
    text: Vec<u8>,
    /// Said when the text holds the other kind of PEM block (a key for the certificate).
    swapped: &'static str,
}

impl PemSource<'_> {
    fn cert(&self) -> Result<Named> {
        match self {
            PemSource::Files(cert, _) => read("tls_cert", cert, "that file is tls_key"),
            PemSource::Given(cert, _) => Ok(Named {
                label: "the certificate given to tls_pem".into(),
                text: cert.to_vec(),
                swapped: "that is the key, not the certificate",
            }),
        }
    }
    fn key(&self) -> Result<Named> {
        match self {
            PemSource::Files(_, key) => read("tls_key", key, "that file is tls_cert"),
            PemSource::Given(_, key) => Ok(Named {
                label: "the private key given to tls_pem".into(),
                text: key.to_vec(),
                swapped: "that is the certificate, not the key",
            }),
        }
    }
}

/// Builds the engine's TLS configuration from `pem` (the chain, the server's
/// certificate first, and its private key), refusing versions older than `min`, and
/// agreeing on one of `alpn` (most preferred first) with clients that offer ALPN
/// (none: ALPN is not answered).
pub(crate) fn server_config(pem: PemSource<'_>, min: TlsVersion, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
    let (cert, key) = (pem.cert()?, pem.key()?);
    let chain = read_chain(&cert)?;
    let private = read_key(&key)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    // ring builds with a C compiler alone; rustls marks its provider deprecated because it
    // lacks the post-quantum key exchange (X25519MLKEM768) that aws-lc-rs has, which
    // needs cmake to build. Classical X25519 / P-256 / P-384 key exchange is what runs.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::config(format!("TLS cannot be set up with tls_min_version = {}: {e}", min.name())))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| unusable(&cert, &key, e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot make the TLS session-ticket key: {e}")))?;
    let config = Arc::new(config);
    ServerConnection::new(Arc::clone(&config))
        .map_err(|e| Error::config(format!("TLS connections cannot be made with this configuration: {e}")))?;
    Ok(config)
}

/// Reads the file an option names, saying which option and file when it cannot.
fn read(option: &str, path: &Path, swapped: &'static str) -> Result<Named> {
    let text = std::fs::read(path)
        .map_err(|e| Error::io(ErrorKind::InvalidConfig, format!("{option}: cannot read {}", path.display()), e))?;
    Ok(Named { label: format!("{option}: {}", path.display()), text, swapped })
}

/// The certificate chain in `pem`, in order.
fn read_chain(pem: &Named) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(&pem.text)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(pem, &e))?;
    if !chain.is_empty() {
        return Ok(chain);
    }
    let hint = if PrivateKeyDer::from_pem_slice(&pem.text).is_ok() {
        format!(" (it holds a private key: {})", pem.swapped)
    } else {
        String::new()
    };
    Err(Error::config(format!(
        "{} holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block){hint}",
        pem.label
    )))
}

/// The first private key in `pem`.
fn read_key(pem: &Named) -> Result<PrivateKeyDer<'static>> {
    match PrivateKeyDer::from_pem_slice(&pem.text) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if CertificateDer::pem_slice_iter(&pem.text).next().is_some_and(|c| c.is_ok()) {
                format!(" (it holds a certificate: {})", pem.swapped)
            } else {
                String::new()
            };
            Err(Error::config(format!(
                "{} holds no PEM private key (a \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \
                 \"EC PRIVATE KEY\" block){hint}",
                pem.label
            )))
        }
        Err(e) => Err(bad_pem(pem, &e)),
    }
}

fn bad_pem(pem: &Named, e: &pem::Error) -> Error {
    Error::config(format!("{} is not valid PEM: {e}", pem.label))
}

/// rustls refused the pair: most often a key that belongs to another certificate.
fn unusable(cert: &Named, key: &Named, e: rustls::Error) -> Error {
    let (cert, key) = (&cert.label, &key.label);
    match e {
        rustls::Error::InconsistentKeys(_) => Error::config(format!(
            "the private key ({key}) does not belong to the first certificate ({cert}): give the key the \
             certificate was issued for (and the server's own certificate first in the chain)"
        )),
        e => Error::config(format!("{cert} and {key} cannot be used: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
