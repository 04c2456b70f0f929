//! The self-signed certificate of the `tls:` listeners when `[tls]` names no files (on the
//! embedded defaults, or a `listen` with `tls:` and no `[tls]` certificate).
//!
//! Generated at first start into `DATA_DIR/tls-cert.pem` and `DATA_DIR/tls-key.pem` (the
//! key with mode 0600), like the default users' passwords, and reused by every later start
//! and every reload: an admin may replace both files and reload. The certificate names the
//! domain, its aliases, `localhost` and our addresses (ECDSA P-256, valid from now for 10
//! years). Phones that check certificates need it installed or their check turned off;
//! a certificate of a public CA goes into `[tls]`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::model::TlsFiles;

/// File name of the generated certificate inside the data folder.
pub const CERTIFICATE_FILE: &str = "tls-cert.pem";
/// File name of the generated private key inside the data folder.
pub const PRIVATE_KEY_FILE: &str = "tls-key.pem";

/// How long the generated certificate is valid.
const VALID_DAYS: i64 = 10 * 365;

/// The generated certificate's files, and whether they were made just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// The two files.
    pub files: TlsFiles,
    /// Whether they were created at this start.
    pub created: bool,
}

/// Reads `data_dir/tls-cert.pem` and `tls-key.pem`, or creates both for `names` (host
/// names and IP addresses as text; IP addresses become IP subject alternative names).
///
/// The key is written first, the certificate last, each under a temporary name renamed
/// into place: a start interrupted half-way leaves no certificate, so the next start
/// generates both again.
///
/// # Errors
/// [`ConfigError::Read`] when a file cannot be written or the certificate exists without
/// its key; [`ConfigError::Certificate`] when generating fails.
pub fn load_or_create(data_dir: &Path, names: &[String]) -> Result<SelfSigned, ConfigError> {
    let files = TlsFiles {
        certificate: data_dir.join(CERTIFICATE_FILE),
        private_key: data_dir.join(PRIVATE_KEY_FILE),
    };
    if files.certificate.is_file() {
        if !files.private_key.is_file() {
            return Err(ConfigError::Read {
                path: files.private_key,
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the generated certificate {} is there but not its key; delete the \
                         certificate to generate both again",
                        files.certificate.display()
                    ),
                ),
            });
        }
        return Ok(SelfSigned {
            files,
            created: false,
        });
    }
    let (cert_pem, key_pem) = generate(names)?;
    write_private(&files.private_key, key_pem.as_bytes(), 0o600)?;
    write_private(&files.certificate, cert_pem.as_bytes(), 0o644)?;
    Ok(SelfSigned {
        files,
        created: true,
    })
}

/// A self-signed certificate for `names` and its key, as PEM text.
///
/// # Errors
/// [`ConfigError::Certificate`] when a name cannot go into a certificate or signing fails.
pub fn generate(names: &[String]) -> Result<(String, String), ConfigError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        names.first().map_or("mss", String::as_str),
    );
    dn.push(rcgen::DnType::OrganizationName, "mss (self-signed)");
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now
        + std::time::Duration::from_secs(u64::try_from(VALID_DAYS).unwrap_or(0) * 86_400))
    .into();
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `data` to `path` with `mode` through a temporary file renamed into place.
fn write_private(path: &Path, data: &[u8], mode: u32) -> Result<(), ConfigError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let io_err = |source: io::Error| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err)?;
    // The mode given to open() is filtered by the umask; make it exact.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err)?;
    f.write_all(data).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec![
            "pbx.test".to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        let first = load_or_create(dir.path(), &names).unwrap();
        assert!(first.created);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.files.private_key), 0o600);
        assert_eq!(mode(&first.files.certificate), 0o644);
        let id =
            mss_transport::TlsIdentity::load(&first.files.certificate, &first.files.private_key)
                .unwrap();
        let again = load_or_create(dir.path(), &names).unwrap();
        assert!(!again.created);
        assert_eq!(again.files, first.files);
        let same =
            mss_transport::TlsIdentity::load(&again.files.certificate, &again.files.private_key)
                .unwrap();
        assert_eq!(same.fingerprint(), id.fingerprint());
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["pbx.test".to_owned()];
        let first = load_or_create(dir.path(), &names).unwrap();
        fs::remove_file(&first.files.private_key).unwrap();
        let e = load_or_create(dir.path(), &names).unwrap_err().to_string();
        assert!(e.contains("is there but not its key"), "{e}");
        // Without the certificate, both are made again.
        fs::remove_file(&first.files.certificate).unwrap();
        assert!(load_or_create(dir.path(), &names).unwrap().created);
    }

    #[test]
    fn names_and_addresses_are_in_the_certificate() {
        let (cert, _) = generate(&["pbx.test".to_owned(), "192.0.2.7".to_owned()]).unwrap();
        let der = rustls_der(&cert);
        // The DNS name appears as text, the IP address as its four octets.
        assert!(der.windows(8).any(|w| w == b"pbx.test"));
        assert!(der.windows(4).any(|w| w == [192, 0, 2, 7]));
    }

    fn rustls_der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}
