//! The rustls client side: which TLS versions are offered, whether sessions are resumed
//! (TLS 1.3 tickets; TLS 1.2 tickets or session ids), and a certificate check that
//! accepts the server's self-signed certificate (the signatures of the handshake are
//! still verified). One configuration per client thread, so that each thread, like a
//! phone, resumes from its own session store.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::error::LoadError;

/// The TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TlsVersions {
    /// TLS 1.2 only (an abbreviated resumed handshake has no key exchange).
    Tls12,
    /// TLS 1.3 only (resumption is `psk_dhe_ke`: a new X25519 exchange each time).
    Tls13,
    /// Both; the server picks (1.3).
    Any,
}

impl TlsVersions {
    /// `1.2`, `1.3` or `any`.
    ///
    /// # Errors
    /// [`LoadError::Settings`] for anything else.
    pub fn parse(text: &str) -> Result<TlsVersions, LoadError> {
        match text {
            "1.2" => Ok(TlsVersions::Tls12),
            "1.3" => Ok(TlsVersions::Tls13),
            "any" => Ok(TlsVersions::Any),
            _ => Err(LoadError::Settings(format!(
                "TLS version {text:?}: 1.2, 1.3 or any"
            ))),
        }
    }
}

/// How sessions are resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ResumeWith {
    /// Never: a full handshake every time.
    Nothing,
    /// TLS 1.3 tickets; TLS 1.2 RFC 5077 tickets, else session ids (rustls's default).
    Tickets,
    /// TLS 1.3 tickets; TLS 1.2 session ids only (the server's session cache).
    SessionIds,
}

impl ResumeWith {
    /// `none`, `tickets` or `session-ids`.
    ///
    /// # Errors
    /// [`LoadError::Settings`] for anything else.
    pub fn parse(text: &str) -> Result<ResumeWith, LoadError> {
        match text {
            "none" => Ok(ResumeWith::Nothing),
            "tickets" => Ok(ResumeWith::Tickets),
            "session-ids" => Ok(ResumeWith::SessionIds),
            _ => Err(LoadError::Settings(format!(
                "resumption {text:?}: none, tickets or session-ids"
            ))),
        }
    }
}

/// A client configuration offering `versions`, resuming with `resume`.
///
/// # Errors
/// [`LoadError::Settings`] when rustls refuses the versions (not expected with ring).
pub fn client_config(
    versions: TlsVersions,
    resume: ResumeWith,
) -> Result<Arc<ClientConfig>, LoadError> {
    // ring builds without cmake; rustls marks its provider deprecated for lacking a
    // post-quantum key exchange, which a benchmark of mss (itself on ring) does not need.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    // The key exchange phones and browsers offer first (OpenSSL, BoringSSL, mbed TLS:
    // X25519, then P-256). rustls's ring provider lists P-384 first, and the server
    // follows the client's order: a P-384 exchange costs ring ten times an X25519 one.
    provider.kx_groups = vec![
        rustls::crypto::ring::kx_group::X25519,
        rustls::crypto::ring::kx_group::SECP256R1,
        rustls::crypto::ring::kx_group::SECP384R1,
    ];
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = match versions {
        TlsVersions::Tls12 => &[&rustls::version::TLS12],
        TlsVersions::Tls13 => &[&rustls::version::TLS13],
        TlsVersions::Any => rustls::DEFAULT_VERSIONS,
    };
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| LoadError::Settings(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.resumption = match resume {
        ResumeWith::Nothing => Resumption::disabled(),
        ResumeWith::Tickets => Resumption::in_memory_sessions(64),
        ResumeWith::SessionIds => {
            Resumption::in_memory_sessions(64).tls12_resumption(Tls12Resumption::SessionIdOnly)
        }
    };
    Ok(Arc::new(config))
}

/// The name the client asks for (SNI) and files its sessions under.
///
/// # Errors
/// [`LoadError::Settings`] when `domain` is not a DNS name or an IP address.
pub fn server_name(domain: &str) -> Result<ServerName<'static>, LoadError> {
    ServerName::try_from(domain.to_owned())
        .map_err(|e| LoadError::Settings(format!("server name {domain:?}: {e}")))
}

/// Accepts any certificate chain (mss's is self-signed and the bench measures the
/// server, not the client's trust); still checks the handshake's signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
