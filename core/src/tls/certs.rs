//! Certificate chains and private keys read from PEM: the default pair (`tls_cert` and
//! `tls_key`, or PEM contents given in memory), the `tls_sni_certs` pairs, and the
//! client CA bundle (`tls_client_ca`), each turned into what rustls takes.
//!
//! Invariants: every error names where the PEM came from (the option and the file, or
//! "given to tls_pem") and what is wrong with it (unreadable, no PEM block of the kind
//! expected, the other file's kind, a key that is not the certificate's, a certificate
//! rustls cannot parse); a [`CertifiedKey`] returned here has a key that signs for its
//! first certificate (checked by rustls where the key type lets it).

use std::path::Path;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::error::{Error, ErrorKind, Result};

/// Where a certificate chain (the server's certificate first) and its private key come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PemSource<'a> {
    /// PEM files, read when the engine is built or its TLS reloaded (`tls_cert`, `tls_key`).
    Files(&'a Path, &'a Path),
    /// PEM contents given in memory (`ConfigBuilder::tls_pem`): nothing touches the disk.
    Given(&'a [u8], &'a [u8]),
}

/// PEM text and how an error names it ("tls_cert: /path", or the contents given).
pub(super) struct Named {
    pub(super) label: String,
    text: Vec<u8>,
    /// Said when the text holds the other kind of PEM block (a key for the certificate).
    swapped: String,
}

impl PemSource<'_> {
    fn cert(&self, options: (&str, &str)) -> Result<Named> {
        match self {
            PemSource::Files(cert, key) if cert == key && options.0 == options.1 => {
                read(options.0, cert, "add the certificate chain to it".into())
            }
            PemSource::Files(cert, _) => read(options.0, cert, swapped(options.1, "key")),
            PemSource::Given(cert, _) => Ok(Named {
                label: "the certificate given to tls_pem".into(),
                text: cert.to_vec(),
                swapped: "that is the key, not the certificate".into(),
            }),
        }
    }
    fn key(&self, options: (&str, &str)) -> Result<Named> {
        match self {
            PemSource::Files(cert, key) if cert == key && options.0 == options.1 => {
                read(options.1, key, "add the private key to it".into())
            }
            PemSource::Files(_, key) => read(options.1, key, swapped(options.0, "certificate")),
            PemSource::Given(_, key) => Ok(Named {
                label: "the private key given to tls_pem".into(),
                text: key.to_vec(),
                swapped: "that is the certificate, not the key".into(),
            }),
        }
    }

    /// The chain and its key, checked to belong together. `options` name the pair in
    /// errors: (`"tls_cert"`, `"tls_key"`), or `tls_sni_certs` twice.
    pub(super) fn certified(&self, options: (&str, &str), provider: &CryptoProvider) -> Result<(CertifiedKey, Named)> {
        let (cert, key) = (self.cert(options)?, self.key(options)?);
        let chain = read_chain(&cert)?;
        let private = read_key(&key)?;
        let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| unusable(&cert, &key, e))?;
        Ok((certified, cert))
    }
}

/// Reads the file an option names, saying which option and file when it cannot.
pub(super) fn read(option: &str, path: &Path, swapped: String) -> Result<Named> {
    let text = std::fs::read(path)
        .map_err(|e| Error::io(ErrorKind::InvalidConfig, format!("{option}: cannot read {}", path.display()), e))?;
    Ok(Named { label: format!("{option}: {}", path.display()), text, swapped })
}

/// PEM contents given in memory, named `label` in errors.
pub(super) fn given(label: &str, text: &[u8], swapped: &str) -> Named {
    Named { label: label.into(), text: text.to_vec(), swapped: swapped.into() }
}

/// The CA certificates of the client CA bundle, as trust anchors.
pub(super) fn client_roots(pem: &Named) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_chain(pem)? {
        roots
            .add(cert)
            .map_err(|e| Error::config(format!("{}: a certificate cannot be a trust anchor: {e}", pem.label)))?;
    }
    Ok(roots)
}

/// What an error says of a file that holds the other kind of block: "that file is
/// tls_key" (the other option), or "that file is the key" (both in one option).
fn swapped(other: &str, kind: &str) -> String {
    match other {
        "tls_sni_certs" => format!("that file is the {kind}"),
        other => format!("that file is {other}"),
    }
}

/// The certificates in `pem`, in order (at least one).
pub(super) fn read_chain(pem: &Named) -> Result<Vec<CertificateDer<'static>>> {
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
            let encrypted = String::from_utf8_lossy(&pem.text).contains("ENCRYPTED PRIVATE KEY");
            let encrypted =
                if encrypted { " (an encrypted key: decrypt it first, openssl pkey -in KEY -out PLAIN)" } else { "" };
            Err(Error::config(format!(
                "{} holds no PEM private key (a \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \
                 \"EC PRIVATE KEY\" block){hint}{encrypted}",
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
