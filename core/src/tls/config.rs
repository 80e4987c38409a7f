//! The server's TLS configuration: the PEM certificate chain and private key read from
//! their files into the rustls `ServerConfig` every connection of the engine shares.
//!
//! Invariants: a file that cannot be used is refused when the engine is built, with an
//! error that names the file and says what is wrong with it (unreadable, no PEM block of
//! the kind expected, the other file's kind, a key that is not the certificate's); the
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

/// Builds the engine's TLS configuration from the PEM files `cert` (the chain, the
/// server's certificate first) and `key` (its private key), refusing versions older
/// than `min`, and agreeing on one of `alpn` (most preferred first) with clients that
/// offer ALPN (none: ALPN is not answered).
pub(crate) fn server_config(cert: &Path, key: &Path, min: TlsVersion, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
    let chain = read_chain(cert)?;
    let private = read_key(key)?;
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
        .map_err(|e| unusable(cert, key, e))?;
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
fn read(option: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::io(ErrorKind::InvalidConfig, format!("{option}: cannot read {}", path.display()), e))
}

/// The certificate chain in `path`, in file order.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let text = read("tls_cert", path)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad_pem("tls_cert", path, &e))?;
    if !chain.is_empty() {
        return Ok(chain);
    }
    let hint = if PrivateKeyDer::from_pem_slice(&text).is_ok() {
        " (it holds a private key: that file is tls_key)"
    } else {
        ""
    };
    Err(Error::config(format!(
        "tls_cert: {} holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block){hint}",
        path.display()
    )))
}

/// The first private key in `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let text = read("tls_key", path)?;
    match PrivateKeyDer::from_pem_slice(&text) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if CertificateDer::pem_slice_iter(&text).next().is_some_and(|c| c.is_ok()) {
                " (it holds a certificate: that file is tls_cert)"
            } else {
                ""
            };
            Err(Error::config(format!(
                "tls_key: {} holds no PEM private key (a \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \
                 \"EC PRIVATE KEY\" block){hint}",
                path.display()
            )))
        }
        Err(e) => Err(bad_pem("tls_key", path, &e)),
    }
}

fn bad_pem(option: &str, path: &Path, e: &pem::Error) -> Error {
    Error::config(format!("{option}: {} is not valid PEM: {e}", path.display()))
}

/// rustls refused the pair: most often a key that belongs to another certificate.
fn unusable(cert: &Path, key: &Path, e: rustls::Error) -> Error {
    let (cert, key) = (cert.display(), key.display());
    match e {
        rustls::Error::InconsistentKeys(_) => Error::config(format!(
            "tls_key: the private key in {key} does not belong to the first certificate in {cert}: give the \
             key the certificate was issued for (and the server's own certificate first in the chain)"
        )),
        e => Error::config(format!("tls_cert / tls_key: {cert} and {key} cannot be used: {e}")),
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
        let e = server_config(missing, missing, TlsVersion::Tls12, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().starts_with("tls_cert: cannot read /nonexistent/corral/cert.pem"), "{e}");

        let empty = temp("empty.pem", "not a certificate\n");
        let e = server_config(&empty, &empty, TlsVersion::Tls12, &[]).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        assert!(e.to_string().contains(&empty.display().to_string()), "{e}");

        let broken = temp("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        let e = server_config(&broken, &broken, TlsVersion::Tls12, &[]).unwrap_err();
        assert!(e.to_string().contains("is not valid PEM"), "{e}");
    }
}
