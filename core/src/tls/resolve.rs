//! Which certificate chain a handshake presents: the `tls_sni_certs` entry whose DNS
//! names hold the server name the client asked for (SNI), else the default pair
//! (`tls_cert`, `tls_key`).
//!
//! Invariants:
//! - The names are each certificate's own DNS subjectAltNames, lower-cased, so an entry
//!   is chosen only for names its certificate is valid for; a certificate with none is
//!   refused at build, and so is a name two entries claim.
//! - An exact name wins over a wildcard; `*.example.com` stands for one label
//!   (`a.example.com`, not `example.com` nor `a.b.example.com`), as clients check it.
//! - No name, or one no entry has, gets the default chain: the handshake goes on and a
//!   client that checks names refuses the certificate itself (as nginx and HAProxy do
//!   with their default server), rather than corral aborting it without saying why.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{Error, Result};

#[derive(Debug)]
pub(super) struct BySni {
    default: Arc<CertifiedKey>,
    /// Lower-case DNS names (`*.example.com` for a wildcard) to their chain.
    names: HashMap<String, Arc<CertifiedKey>>,
}

impl BySni {
    /// The default chain, and the `tls_sni_certs` entries with how errors name them.
    pub(super) fn new(default: CertifiedKey, entries: Vec<(CertifiedKey, String)>) -> Result<BySni> {
        let mut names = HashMap::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for (certified, label) in entries {
            let certified = Arc::new(certified);
            for name in dns_names(&certified, &label)? {
                if let Some(first) = claimed.insert(name.clone(), label.clone()) {
                    return Err(Error::config(format!(
                        "the name {name} is in two tls_sni_certs certificates ({first} and {label}): leave it in one"
                    )));
                }
                names.insert(name, Arc::clone(&certified));
            }
        }
        Ok(BySni { default: Arc::new(default), names })
    }

    /// The chain for a client that asked for `sni`.
    pub(super) fn choose(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        match sni {
            Some(name) if !self.names.is_empty() => self.by_name(name).unwrap_or(&self.default),
            _ => &self.default,
        }
    }

    fn by_name(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            &lower
        } else {
            name
        };
        let parent = name.split_once('.').map(|(_, parent)| parent).filter(|p| !p.is_empty());
        self.names.get(name).or_else(|| self.names.get(&format!("*.{}", parent?)))
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.choose(hello.server_name())))
    }
}

/// The DNS subjectAltNames of `certified`'s first certificate, lower-cased.
fn dns_names(certified: &CertifiedKey, label: &str) -> Result<Vec<String>> {
    let cert = certified.end_entity_cert().map_err(|e| Error::config(format!("{label}: {e}")))?;
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| Error::config(format!("{label}: the first certificate cannot be parsed: {e}")))?;
    let names: Vec<String> = parsed.valid_dns_names().map(str::to_ascii_lowercase).collect();
    if names.is_empty() {
        return Err(Error::config(format!(
            "{label}: the certificate has no DNS name in its subjectAltName, so no server name (SNI) can choose \
             it: issue it with the names it serves (clients no longer read the common name)"
        )));
    }
    Ok(names)
}
