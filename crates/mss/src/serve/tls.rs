//! The certificate of the `tls:` listeners: loaded at start from the `[tls]` files (or the
//! generated self-signed ones), reloaded from the same files on SIGHUP and on
//! `POST /api/tls/reload`. A reload swaps the certificate of the next handshakes; open
//! connections keep theirs. A reload whose files will not do keeps the certificate in use
//! and reports why (log line, API answer).

use std::future::Future;
use std::net::IpAddr;

use mss_admin::TlsView;
use mss_transport::{TlsIdentity, TlsIdentityError, TlsServer};

use super::ServeError;
use crate::config::{Config, SipTransport, TlsFiles};

/// The TLS listeners' certificate and the files it is reloaded from.
#[derive(Debug)]
pub(crate) struct Certificate {
    server: TlsServer,
    files: TlsFiles,
}

impl Certificate {
    /// Loads `files` and sets up the listeners' TLS configuration with them.
    ///
    /// # Errors
    /// [`ServeError::Tls`] naming the file that will not do, [`ServeError::TlsSetup`].
    pub(crate) fn load(files: TlsFiles) -> Result<Certificate, ServeError> {
        let identity = TlsIdentity::load(&files.certificate, &files.private_key)?;
        tracing::info!(
            certificate = %files.certificate.display(),
            fingerprint = identity.fingerprint(),
            "TLS certificate loaded"
        );
        Ok(Certificate {
            server: TlsServer::new(identity)?,
            files,
        })
    }

    /// The listeners' TLS configuration (for `TransportConfig::tls`).
    pub(crate) fn server(&self) -> TlsServer {
        self.server.clone()
    }

    /// What `GET /api/tls` shows: the files and the certificate new handshakes get.
    pub(crate) fn view(&self) -> TlsView {
        TlsView {
            certificate: self.files.certificate.display().to_string(),
            private_key: self.files.private_key.display().to_string(),
            fingerprint_sha256: self.server.identity().fingerprint().to_owned(),
        }
    }

    /// Reads the files again and, when they will do, presents them from the next handshake
    /// on. `why` names the trigger in the log (`SIGHUP`, `admin API`).
    ///
    /// # Errors
    /// The file's problem; the certificate in use stays.
    pub(crate) async fn reload(&self, why: &'static str) -> Result<TlsView, TlsIdentityError> {
        let files = self.files.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            TlsIdentity::load(&files.certificate, &files.private_key)
        })
        .await
        .unwrap_or_else(|_| {
            Err(TlsIdentityError::Read {
                file: mss_transport::PemFile::Certificate,
                path: self.files.certificate.clone(),
                source: std::io::Error::other("the reading task failed"),
            })
        });
        match loaded {
            Ok(identity) => {
                let previous = self.server.identity();
                tracing::info!(
                    trigger = why,
                    certificate = %self.files.certificate.display(),
                    fingerprint = identity.fingerprint(),
                    previous = previous.fingerprint(),
                    "TLS certificate reloaded"
                );
                self.server.replace(identity);
                Ok(self.view())
            }
            Err(e) => {
                tracing::error!(
                    trigger = why,
                    error = %e,
                    kept = self.server.identity().fingerprint(),
                    "TLS certificate not reloaded; the previous one stays in use"
                );
                Err(e)
            }
        }
    }
}

/// Reloads `certificate` on every SIGHUP until `stop` completes. Without a certificate a
/// SIGHUP is logged and otherwise ignored (it no longer ends the process).
pub(crate) async fn reload_on_hangup(
    certificate: Option<std::sync::Arc<Certificate>>,
    stop: impl Future<Output = ()>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; reload with the admin API");
            return;
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            got = hangup.recv() => {
                if got.is_none() {
                    return;
                }
                match &certificate {
                    Some(c) => {
                        // The outcome is logged by `reload`.
                        let _ = c.reload("SIGHUP").await;
                    }
                    None => {
                        tracing::info!("SIGHUP: nothing to reload (no tls: or wss: listener)")
                    }
                }
            }
        }
    }
}

/// The names a generated certificate is made for: the domain, its aliases, `localhost`,
/// and the addresses of the `tls:` and `wss:` listeners (every address of the machine, `local_ips`,
/// of the family of a listener on the unspecified address).
pub(crate) fn certificate_names(config: &Config, local_ips: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !names.contains(&n) {
            names.push(n);
        }
    };
    add(config.server.domain.clone());
    for a in &config.server.aliases {
        add(a.clone());
    }
    add("localhost".to_owned());
    for l in config
        .server
        .listen
        .iter()
        .filter(|l| matches!(l.transport, SipTransport::Tls | SipTransport::Wss))
    {
        let ip = l.addr.ip();
        if ip.is_unspecified() {
            for local in local_ips.iter().filter(|a| a.is_ipv4() == ip.is_ipv4()) {
                add(local.to_string());
            }
        } else {
            add(ip.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::self_signed;

    #[test]
    fn names_cover_domain_aliases_and_tls_addresses() {
        let mut c = Config::embedded("pbx.test".into());
        c.server.aliases = vec!["pbx".into()];
        let local: Vec<IpAddr> = vec![
            "127.0.0.1".parse().unwrap(),
            "192.0.2.5".parse().unwrap(),
            "::1".parse().unwrap(),
        ];
        assert_eq!(
            certificate_names(&c, &local),
            ["pbx.test", "pbx", "localhost", "127.0.0.1", "192.0.2.5"]
        );
        c.server.listen = crate::config::parse_listen("tls:[::1]:5061, udp:10.0.0.1:5060").unwrap();
        assert_eq!(
            certificate_names(&c, &local),
            ["pbx.test", "pbx", "localhost", "::1"]
        );
    }

    #[tokio::test]
    async fn a_reload_takes_new_files_and_keeps_the_old_certificate_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let first = self_signed::load_or_create(dir.path(), &["one.test".into()]).unwrap();
        let cert = Certificate::load(first.files.clone()).unwrap();
        let before = cert.view();
        assert_eq!(
            before.certificate,
            first.files.certificate.display().to_string()
        );
        // New files in place: the reload presents them.
        let (pem, key) = self_signed::generate(&["two.test".into()]).unwrap();
        std::fs::write(&first.files.certificate, pem).unwrap();
        std::fs::write(&first.files.private_key, key).unwrap();
        let after = cert.reload("test").await.unwrap();
        assert_ne!(after.fingerprint_sha256, before.fingerprint_sha256);
        assert_eq!(cert.view(), after);
        // A broken file: an error, and the certificate in use stays.
        std::fs::write(&first.files.private_key, "not a key").unwrap();
        let e = cert.reload("test").await.unwrap_err();
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        assert_eq!(cert.view(), after);
    }
}
