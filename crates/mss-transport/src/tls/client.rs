//! The client side of SIP over TLS: what mss needs to open a TLS connection to a peer it
//! must verify (a line's provider, RFC 5922).
//!
//! - [`TlsClient`]: a rustls client configuration trusting either the system's root
//!   certificates ([`TlsClient::system`], read once with `rustls-native-certs` from the
//!   operating system's store, e.g. `/etc/ssl/certs` on Debian) or the certificates of one
//!   PEM file ([`TlsClient::with_ca_file`], a line's `tls_ca_file`);
//! - [`TlsPeer`]: a client configuration, the name the peer's certificate must carry and a
//!   label for log lines, registered for an address with
//!   [`Transports::set_tls_peer`](crate::Transports::set_tls_peer);
//! - [`failure_reason`]: a failed handshake in words an administrator can act on
//!   (unknown issuer, name mismatch, expired …).
//!
//! Verification is rustls' WebPKI verifier: the chain must lead to a trusted root, be
//! valid now, and the leaf must carry the expected name as a DNS name (or, for an IP
//! address, as an IP address) in its subjectAltName (RFC 5922 §7.2; the `sip:` URI form of
//! subjectAltName is not consulted, nor the Common Name, which RFC 5922 §7.1 deprecates).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, InvalidDnsNameError, ServerName};

/// A client configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsClientError {
    /// The CA file could not be read.
    #[error("cannot read the CA file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The CA file holds no usable certificate (no `CERTIFICATE` block, bad PEM, or no
    /// certificate rustls accepts as a trust anchor).
    #[error("the CA file {} {reason}", path.display())]
    BadCaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The operating system's store has no root certificate mss can use.
    #[error("no system root certificates found ({0}); install ca-certificates or set tls_ca_file")]
    NoSystemRoots(String),
    /// rustls refused the configuration (not expected with ring's defaults).
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// A verifying rustls client configuration (TLS 1.2 and 1.3, ring, no client
/// certificate). A cheap, cloneable handle.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    /// Where its roots come from, for log lines and `Debug`.
    roots: Arc<str>,
    /// How many root certificates it trusts.
    count: usize,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("roots", &self.roots)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// The system roots, read once per process (reading `/etc/ssl/certs` takes a while).
static SYSTEM_ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();

fn system_roots() -> Result<Arc<RootCertStore>, String> {
    SYSTEM_ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (_, unusable) = store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why = match found.errors.first() {
                    Some(e) => e.to_string(),
                    None if unusable > 0 => format!("{unusable} unusable certificates"),
                    None => "the store is empty".to_owned(),
                };
                return Err(why);
            }
            for e in &found.errors {
                tracing::debug!(error = %e, "part of the system root store could not be read");
            }
            Ok(Arc::new(store))
        })
        .clone()
}

impl TlsClient {
    /// Trusts the operating system's root certificates.
    ///
    /// # Errors
    /// [`TlsClientError::NoSystemRoots`] when the store is missing or empty.
    pub fn system() -> Result<TlsClient, TlsClientError> {
        let roots = system_roots().map_err(TlsClientError::NoSystemRoots)?;
        TlsClient::from_roots(roots, "the system roots".to_owned())
    }

    /// Trusts the certificates of the PEM file `path` (one or more `CERTIFICATE` blocks),
    /// and nothing else.
    ///
    /// # Errors
    /// [`TlsClientError::Read`], [`TlsClientError::BadCaFile`].
    pub fn with_ca_file(path: &Path) -> Result<TlsClient, TlsClientError> {
        let pem = std::fs::read(path).map_err(|source| TlsClientError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bad = |reason: String| TlsClientError::BadCaFile {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(bad("has no CERTIFICATE block".to_owned()));
        }
        let mut store = RootCertStore::empty();
        let (_, unusable) = store.add_parsable_certificates(certs);
        if store.is_empty() {
            return Err(bad(format!(
                "has no usable CA certificate ({unusable} could not be read)"
            )));
        }
        TlsClient::from_roots(Arc::new(store), path.display().to_string())
    }

    fn from_roots(roots: Arc<RootCertStore>, origin: String) -> Result<TlsClient, TlsClientError> {
        // ring, as for the listeners (`TlsServer::new`).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let count = roots.len();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| TlsClientError::Setup(e.to_string()))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsClientError::Setup(e.to_string()))?
            .with_webpki_verifier(verifier)
            .with_no_client_auth();
        Ok(TlsClient {
            config: Arc::new(config),
            roots: origin.into(),
            count,
        })
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// Where the trusted roots come from: a file's path, or "the system roots".
    pub fn roots(&self) -> &str {
        &self.roots
    }

    /// How many root certificates are trusted.
    pub fn root_count(&self) -> usize {
        self.count
    }
}

/// A peer mss connects to over TLS: what to trust, which name its certificate must carry
/// (RFC 5922 §7.2: the SIP domain, i.e. the host of the registrar before any DNS lookup),
/// and how log lines name it.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The client configuration (its roots).
    pub client: TlsClient,
    /// The name the certificate is verified against (DNS name or IP address).
    pub server_name: ServerName<'static>,
    /// Who the peer is, for log lines (e.g. `line provider1 (registrar sip.example.net)`).
    pub label: Arc<str>,
}

impl TlsPeer {
    /// A peer whose certificate must carry `name` (a DNS name or an IP address, IPv6 with or
    /// without brackets).
    ///
    /// # Errors
    /// When `name` is neither a valid DNS name nor an IP address.
    pub fn new(client: TlsClient, name: &str, label: &str) -> Result<TlsPeer, InvalidDnsNameError> {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_owned())?;
        Ok(TlsPeer {
            client,
            server_name,
            label: label.into(),
        })
    }

    /// The name verified, as text.
    pub fn name(&self) -> String {
        match &self.server_name {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            other => format!("{other:?}"),
        }
    }
}

/// Why a TLS handshake towards `name` failed, in words that say what to fix: the
/// certificate's problem when it is one (unknown issuer, name mismatch, expired, not yet
/// valid …), else the error itself.
pub fn failure_reason(error: &io::Error, name: &str) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the peer closed the connection during the TLS handshake".to_owned()
            }
            _ => format!("TLS handshake failed: {error}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => certificate_reason(c, name),
        rustls::Error::AlertReceived(alert) => {
            format!("TLS handshake failed: the peer sent alert {alert:?}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

fn certificate_reason(c: &CertificateError, name: &str) -> String {
    match c {
        CertificateError::UnknownIssuer => format!(
            "certificate of {name} not trusted: unknown issuer (not signed by a trusted CA)"
        ),
        CertificateError::NotValidForName => {
            format!("certificate name mismatch: not valid for {name}")
        }
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "certificate name mismatch: not valid for {name} (it names {})",
            presented.join(", ")
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("certificate of {name} expired")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("certificate of {name} not valid yet")
        }
        CertificateError::Revoked => format!("certificate of {name} revoked"),
        CertificateError::BadSignature => format!("certificate of {name} has a bad signature"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!("certificate of {name} is not for TLS servers (extended key usage)")
        }
        other => format!("certificate of {name} refused: {other}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = TlsClient::with_ca_file(&missing).unwrap_err();
        assert!(e.to_string().starts_with("cannot read the CA file "), "{e}");
        assert!(e.to_string().contains("No such file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let e = TlsClient::with_ca_file(&empty).unwrap_err();
        assert!(e.to_string().ends_with("has no CERTIFICATE block"), "{e}");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let c = TlsClient::with_ca_file(&good).unwrap();
        assert_eq!(c.root_count(), 1);
        assert_eq!(c.roots(), good.display().to_string());
    }

    #[test]
    fn peer_names_are_dns_names_or_ip_addresses() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let client = TlsClient::with_ca_file(&path).unwrap();
        let p = TlsPeer::new(client.clone(), "sip.example.net", "line p1").unwrap();
        assert!(matches!(p.server_name, ServerName::DnsName(_)));
        assert_eq!(p.name(), "sip.example.net");
        let p = TlsPeer::new(client.clone(), "[2001:db8::1]", "line p1").unwrap();
        assert!(matches!(p.server_name, ServerName::IpAddress(_)));
        assert_eq!(p.name(), "2001:db8::1");
        let p = TlsPeer::new(client.clone(), "192.0.2.1", "line p1").unwrap();
        assert_eq!(p.name(), "192.0.2.1");
        assert!(TlsPeer::new(client, "bad name!", "line p1").is_err());
    }

    #[test]
    fn reasons_name_the_certificate_problem() {
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let r = failure_reason(
            &wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            "a.test",
        );
        assert!(r.contains("unknown issuer"), "{r}");
        let r = failure_reason(
            &wrap(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            )),
            "a.test",
        );
        assert!(r.contains("name mismatch") && r.contains("a.test"), "{r}");
        let r = failure_reason(
            &wrap(rustls::Error::InvalidCertificate(CertificateError::Expired)),
            "a.test",
        );
        assert!(r.contains("expired"), "{r}");
        let r = failure_reason(
            &io::Error::new(io::ErrorKind::UnexpectedEof, "eof"),
            "a.test",
        );
        assert!(r.contains("closed the connection"), "{r}");
    }
}
