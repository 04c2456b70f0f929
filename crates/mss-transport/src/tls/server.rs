//! [`TlsServer`]: the rustls server configuration of the `tls:` listeners, with a
//! certificate that can be replaced while connections are open.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::identity::TlsIdentity;

/// TLS 1.2 sessions kept for resumption by session id (about 200 bytes each, only for
/// clients that take no ticket): as many as the TLS connections mss is sized for.
pub const SESSION_CACHE: usize = 10_000;

/// The certificate every new handshake gets: read at each handshake, replaced by
/// [`TlsServer::replace`]. A session already established keeps the certificate it was
/// set up with.
#[derive(Debug)]
struct CurrentCertificate {
    identity: RwLock<TlsIdentity>,
}

impl CurrentCertificate {
    fn get(&self) -> TlsIdentity {
        // A panic while holding the lock cannot leave a half-written identity: the write
        // is one assignment.
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, identity: TlsIdentity) {
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = identity;
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().certified_key())
    }
}

/// The TLS side of the `tls:` listeners: a rustls [`ServerConfig`] (TLS 1.2 and 1.3,
/// ring's cipher suites, no client certificates) whose certificate comes from a slot that
/// [`TlsServer::replace`] refills.
///
/// Session resumption: stateless tickets for TLS 1.3 (RFC 8446 §4.6.1) and TLS 1.2
/// (RFC 5077), and for TLS 1.2 clients that do not take tickets, session ids (RFC 5246
/// §7.3) in a cache of [`SESSION_CACHE`] sessions. A resumed TLS 1.2 handshake has no key
/// exchange and no signature; a resumed TLS 1.3 one skips the signature but keeps its
/// (EC)DHE exchange (rustls offers no `psk_ke`).
///
/// A cheap, cloneable handle: the transports keep one, the code that reloads the
/// certificate (SIGHUP, the admin API) another.
#[derive(Debug, Clone)]
pub struct TlsServer {
    current: Arc<CurrentCertificate>,
    config: Arc<ServerConfig>,
}

/// The rustls configuration could not be built (no usable protocol version or ticketer).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

impl TlsServer {
    /// A server configuration presenting `identity`.
    ///
    /// # Errors
    /// [`TlsSetupError`] when rustls refuses the provider's defaults (not expected with
    /// ring).
    pub fn new(identity: TlsIdentity) -> Result<TlsServer, TlsSetupError> {
        let current = Arc::new(CurrentCertificate {
            identity: RwLock::new(identity),
        });
        // ring builds here without cmake or a C++ toolchain; rustls 0.23.48 marks its
        // provider deprecated because it has no post-quantum key exchange (aws-lc-rs has).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // Stateless tickets: resumption costs the server no memory per client.
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        // rustls keeps 256 sessions by default: too few for a PBX's phones.
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        Ok(TlsServer {
            current,
            config: Arc::new(config),
        })
    }

    /// Presents `identity` from the next handshake on; open connections are untouched.
    pub fn replace(&self, identity: TlsIdentity) {
        self.current.set(identity);
    }

    /// The identity new handshakes get.
    pub fn identity(&self) -> TlsIdentity {
        self.current.get()
    }

    /// The rustls configuration of the listeners.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn identity(name: &str) -> TlsIdentity {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        TlsIdentity::from_pem(
            c.cert.pem().as_bytes(),
            c.key_pair.serialize_pem().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn replace_changes_what_new_handshakes_get() {
        let first = identity("one.test");
        let second = identity("two.test");
        let server = TlsServer::new(first.clone()).unwrap();
        assert_eq!(server.identity().fingerprint(), first.fingerprint());
        let clone = server.clone();
        clone.replace(second.clone());
        assert_eq!(server.identity().fingerprint(), second.fingerprint());
        assert!(server.config().ticketer.enabled());
    }
}
