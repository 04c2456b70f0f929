//! [`TlsIdentity`]: the certificate chain and private key a TLS listener presents, read
//! from PEM files or text.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Which of the two PEM files a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// The certificate chain (leaf first).
    Certificate,
    /// The private key of the leaf certificate.
    PrivateKey,
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemFile::Certificate => "certificate",
            PemFile::PrivateKey => "private key",
        })
    }
}

/// A certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsIdentityError {
    /// A file could not be read.
    #[error("cannot read the {file} {}: {source}", path.display())]
    Read {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE` block, or a broken one.
    #[error("{origin}: no PEM certificate ({reason})")]
    BadCertificate {
        /// The file name, or `certificate` for text.
        origin: String,
        /// What the PEM reader said.
        reason: String,
    },
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1), or a broken one.
    #[error("{origin}: no PEM private key ({reason})")]
    BadKey {
        /// The file name, or `private key` for text.
        origin: String,
        /// What the PEM reader or the signer said.
        reason: String,
    },
    /// The private key is not the key of the first certificate.
    #[error("the private key {key} does not belong to the certificate {certificate}")]
    Mismatch {
        /// The certificate's origin.
        certificate: String,
        /// The key's origin.
        key: String,
    },
}

impl TlsIdentityError {
    /// The file the problem is in (a mismatch is blamed on the key).
    pub fn file(&self) -> PemFile {
        match self {
            TlsIdentityError::Read { file, .. } => *file,
            TlsIdentityError::BadCertificate { .. } => PemFile::Certificate,
            TlsIdentityError::BadKey { .. } | TlsIdentityError::Mismatch { .. } => {
                PemFile::PrivateKey
            }
        }
    }
}

/// A certificate chain with the private key of its first certificate, ready for rustls,
/// and the SHA-256 fingerprint of that certificate.
#[derive(Clone)]
pub struct TlsIdentity {
    key: Arc<CertifiedKey>,
    fingerprint: String,
}

impl fmt::Debug for TlsIdentity {
    /// Shows the fingerprint, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads the PEM certificate chain at `certificate` (leaf first) and the PEM private
    /// key at `private_key`.
    ///
    /// # Errors
    /// [`TlsIdentityError`] naming the file at fault: unreadable (with the OS error), no
    /// certificate or key in it, or a key that is not the certificate's.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<TlsIdentity, TlsIdentityError> {
        let read = |file, path: &Path| {
            std::fs::read(path).map_err(|source| TlsIdentityError::Read {
                file,
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read(PemFile::Certificate, certificate)?;
        let key_pem = read(PemFile::PrivateKey, private_key)?;
        TlsIdentity::parse(
            &cert_pem,
            &certificate.display().to_string(),
            &key_pem,
            &private_key.display().to_string(),
        )
    }

    /// The identity of PEM text (as generated in memory).
    ///
    /// # Errors
    /// As [`TlsIdentity::load`], without the read errors.
    pub fn from_pem(
        certificate: &[u8],
        private_key: &[u8],
    ) -> Result<TlsIdentity, TlsIdentityError> {
        TlsIdentity::parse(certificate, "certificate", private_key, "private key")
    }

    fn parse(
        cert_pem: &[u8],
        cert_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<TlsIdentity, TlsIdentityError> {
        let bad_cert = |reason: String| TlsIdentityError::BadCertificate {
            origin: cert_origin.to_owned(),
            reason,
        };
        let bad_key = |reason: String| TlsIdentityError::BadKey {
            origin: key_origin.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(e.to_string()))?;
        let Some(leaf) = chain.first() else {
            return Err(bad_cert("no CERTIFICATE block".to_owned()));
        };
        let fingerprint = fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad_key(e.to_string()))?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| bad_key(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signer);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(TlsIdentityError::Mismatch {
                    certificate: cert_origin.to_owned(),
                    key: key_origin.to_owned(),
                })
            }
        }
        Ok(TlsIdentity {
            key: Arc::new(certified),
            fingerprint,
        })
    }

    /// The SHA-256 fingerprint of the first certificate, as `AB:CD:…` (the form
    /// `openssl x509 -fingerprint -sha256` prints).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The chain and signing key as rustls uses them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.key)
    }

    /// The first certificate, DER-encoded.
    pub fn leaf_der(&self) -> Option<&[u8]> {
        self.key.cert.first().map(|c| c.as_ref())
    }
}

/// `AB:CD:…`: the SHA-256 of `der` in upper-case hex pairs.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn generated(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    #[test]
    fn loads_a_matching_pair_and_names_its_fingerprint() {
        let (cert, key) = generated("pbx.test");
        let id = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let fp = id.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert_eq!(fp, fingerprint(id.leaf_der().unwrap()));
        assert!(!format!("{id:?}").contains("PRIVATE"));
    }

    #[test]
    fn problems_name_the_file_at_fault() {
        let (cert, key) = generated("a.test");
        let (_, other_key) = generated("b.test");
        let e = TlsIdentity::from_pem(key.as_bytes(), key.as_bytes()).unwrap_err();
        assert_eq!(e.file(), PemFile::Certificate);
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = TlsIdentity::from_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err();
        assert_eq!(e.file(), PemFile::PrivateKey);
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        let e = TlsIdentity::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsIdentityError::Mismatch { .. }), "{e}");
        let e = TlsIdentity::from_pem(b"garbage", key.as_bytes()).unwrap_err();
        assert_eq!(e.file(), PemFile::Certificate);
    }

    #[test]
    fn read_errors_carry_the_path_and_os_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("missing.pem");
        let e = TlsIdentity::load(&cert, &cert).unwrap_err();
        assert_eq!(e.file(), PemFile::Certificate);
        let text = e.to_string();
        assert!(text.contains("missing.pem"), "{text}");
        assert!(text.contains("os error 2"), "{text}");
    }
}
