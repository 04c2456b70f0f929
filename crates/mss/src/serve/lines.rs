//! A configured line as the core runs it: `[line:NAME]` to the machine's settings, and
//! for TLS lines the peer the transports verify (RFC 5922).

use std::collections::HashMap;

use mss_services::lines::{CallIdMode as LineCallIdMode, LineSettings};
use mss_transport::{TlsClient, TlsPeer};

use crate::config::{CallIdMode, LineConfig, SipTransport};
use crate::serve::setup::sip_transport;
use crate::serve::ServeError;

/// The TLS peers of the TLS lines, by registrar host (lower case, no brackets): what the
/// worker registers for every address a lookup of that host finds, so that the REGISTER's
/// connection verifies the provider's certificate against the line's `tls_ca_file` (or the
/// system roots) and the name `tls_server_name` (default: the registrar's host).
///
/// Two TLS lines at the same registrar host share the first one's peer (a warning says
/// so when their keys differ).
///
/// # Errors
/// [`ServeError::LineTls`] when the roots cannot be read or the name is not usable.
pub(crate) fn tls_peers(lines: &[LineConfig]) -> Result<HashMap<String, TlsPeer>, ServeError> {
    let mut peers: HashMap<String, TlsPeer> = HashMap::new();
    let mut keys: HashMap<String, (&Option<std::path::PathBuf>, &Option<String>, &str)> =
        HashMap::new();
    for l in lines.iter().filter(|l| l.transport == SipTransport::Tls) {
        let err = |message: String| ServeError::LineTls {
            line: l.name.clone(),
            message,
        };
        let host = host_key(&l.registrar_host);
        if let Some((ca, name, first)) = keys.get(&host) {
            if (*ca, *name) != (&l.tls_ca_file, &l.tls_server_name) {
                tracing::warn!(line = %l.name,
                    "line {}: same registrar host as line {first}; its tls_ca_file and \
                     tls_server_name are used for both", l.name);
            }
            continue;
        }
        let client = match &l.tls_ca_file {
            Some(path) => TlsClient::with_ca_file(path),
            None => TlsClient::system(),
        }
        .map_err(|e| err(e.to_string()))?;
        let name = l.tls_server_name.as_deref().unwrap_or(&l.registrar_host);
        let label = format!("line {} (registrar {})", l.name, l.registrar_host);
        let peer = TlsPeer::new(client, name, &label)
            .map_err(|e| err(format!("tls_server_name {name:?}: {e}")))?;
        tracing::info!(line = %l.name,
            "line {}: TLS to {}, certificate verified for {} against {} ({} roots)",
            l.name, l.registrar_host, peer.name(), peer.client.roots(), peer.client.root_count());
        keys.insert(
            host.clone(),
            (&l.tls_ca_file, &l.tls_server_name, l.name.as_str()),
        );
        peers.insert(host, peer);
    }
    Ok(peers)
}

/// How [`tls_peers`] keys a registrar host (and how the worker looks a lookup's host up).
pub(crate) fn host_key(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The machine's settings for a configured line: `gVarSipRegSameDialog` wins over the
/// line's `call_id` (`effective_call_id_mode`); no port in `registrar` means DNS SRV;
/// `retry_min` / `retry_max` set the backoff.
pub(crate) fn line_settings(l: &LineConfig, mode: CallIdMode) -> LineSettings {
    let mut s = LineSettings::new(&l.name, &l.registrar_host, &l.number, &l.password);
    s.port = l.registrar_port;
    s.transport = sip_transport(l.transport);
    s.username = (l.username != l.number).then(|| l.username.clone());
    // The domain defaults to the registrar host; left unset, the Request-URI keeps the
    // registrar's port (`LineSettings::request_uri`).
    s.domain = (l.domain != l.registrar_host).then(|| l.domain.clone());
    s.expires = l.expires;
    s.call_id_mode = match mode {
        CallIdMode::Auto => LineCallIdMode::Auto,
        CallIdMode::Same => LineCallIdMode::Same,
        CallIdMode::Fresh => LineCallIdMode::Fresh,
    };
    s.user_agent = format!("mss/{}", env!("CARGO_PKG_VERSION"));
    s.retry_min = l.retry_min;
    s.retry_max = l.retry_max;
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SipTransport;

    fn config() -> LineConfig {
        LineConfig {
            name: "p1".into(),
            registrar_host: "127.0.0.1".into(),
            registrar_port: Some(5070),
            transport: SipTransport::Udp,
            tls_ca_file: None,
            tls_server_name: None,
            number: "2001".into(),
            username: "2001".into(),
            password: "pw".into(),
            domain: "127.0.0.1".into(),
            expires: 120,
            owner: None,
            call_id: CallIdMode::Auto,
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
            outgoing: true,
        }
    }

    #[test]
    fn tls_lines_get_a_peer_for_their_registrar_host() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let mut tls = config();
        tls.transport = SipTransport::Tls;
        tls.registrar_host = "SIP.Provider.test".into();
        tls.tls_ca_file = Some(path.clone());
        let mut by_ip = tls.clone();
        by_ip.name = "p2".into();
        by_ip.registrar_host = "[::1]".into();
        let peers = tls_peers(&[config(), tls.clone(), by_ip]).unwrap();
        assert_eq!(peers.len(), 2);
        let p = &peers["sip.provider.test"];
        // Certificate names compare without case.
        assert_eq!(p.name(), "SIP.Provider.test");
        assert_eq!(p.client.roots(), path.display().to_string());
        assert_eq!(&*p.label, "line p1 (registrar SIP.Provider.test)");
        assert_eq!(peers[&host_key("[::1]")].name(), "::1");
        tls.tls_server_name = Some("other.test".into());
        assert_eq!(
            tls_peers(&[tls.clone()]).unwrap()["sip.provider.test"].name(),
            "other.test"
        );
        tls.tls_ca_file = Some(dir.path().join("gone.pem"));
        let e = tls_peers(&[tls]).unwrap_err().to_string();
        assert!(e.starts_with("line p1: cannot read the CA file "), "{e}");
    }

    #[test]
    fn settings_follow_the_line_and_the_var_file() {
        let s = line_settings(&config(), CallIdMode::Fresh);
        assert_eq!(s.port, Some(5070));
        assert_eq!(s.username, None);
        assert_eq!(s.domain, None);
        assert_eq!(s.request_uri(), "sip:127.0.0.1:5070");
        assert_eq!(s.call_id_mode, LineCallIdMode::Fresh);
        assert_eq!(s.expires, 120);
        assert_eq!(
            (s.retry_min, s.retry_max),
            (Duration::from_secs(30), Duration::from_secs(1800))
        );
        let mut c = config();
        c.retry_min = Duration::from_secs(2);
        c.retry_max = Duration::from_secs(9);
        let s = line_settings(&c, CallIdMode::Auto);
        assert_eq!(
            (s.retry_min, s.retry_max),
            (Duration::from_secs(2), Duration::from_secs(9))
        );
        c.username = "auth".into();
        c.domain = "voip.example".into();
        c.registrar_port = None;
        let s = line_settings(&c, CallIdMode::Auto);
        assert_eq!(s.username(), "auth");
        assert_eq!(s.aor(), "sip:2001@voip.example");
        assert_eq!(s.port, None);
    }
}
