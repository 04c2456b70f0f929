//! A configured line as the core runs it: `[line:NAME]` to the machine's settings.

use mss_services::lines::{CallIdMode as LineCallIdMode, LineSettings};

use crate::config::{CallIdMode, LineConfig};
use crate::serve::setup::sip_transport;

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
