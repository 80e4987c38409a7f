//! The engine's TLS configuration as connections take it: one `ServerConfig` at a time,
//! made from a [`TlsSetup`], and replaced whole by a reload.
//!
//! Invariants:
//! - A new connection takes the configuration current when it starts
//!   ([`ServerTls::current`]: an `Arc` it keeps for its life), so an open connection is
//!   never changed under it; a reload only changes what later connections take.
//! - A reload makes the whole new configuration first (every file read again, every
//!   pair checked) and swaps only if that succeeded: a bad file leaves the current
//!   configuration serving and says which file and why.
//! - Reloads run one at a time (the setup's lock), so two cannot interleave their
//!   sources; connections never wait on that lock, only on the swap's.

use std::sync::{Arc, Mutex};

use rustls::ServerConfig;

use super::TlsSetup;
use crate::error::Result;
use crate::sync::lock;

pub(crate) struct ServerTls {
    setup: Mutex<TlsSetup>,
    current: Mutex<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads the sources of `setup` and makes the first configuration.
    pub(crate) fn new(setup: TlsSetup) -> Result<ServerTls> {
        let first = setup.make()?;
        Ok(ServerTls { setup: Mutex::new(setup), current: Mutex::new(first) })
    }

    /// The configuration a connection starting now uses.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&lock(&self.current))
    }

    /// Reads every source again (the files; PEM given in memory stays as it was, or is
    /// replaced by `pem`, the new chain and key) and makes it the configuration of the
    /// connections that start from now on.
    pub(crate) fn reload(&self, pem: Option<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let mut setup = lock(&self.setup);
        let made = match pem {
            None => setup.make()?,
            Some(pem) => {
                let earlier = setup.give_pem(pem)?;
                match setup.make() {
                    Ok(made) => made,
                    Err(e) => {
                        setup.restore_pem(earlier);
                        return Err(e);
                    }
                }
            }
        };
        *lock(&self.current) = made;
        Ok(())
    }
}
