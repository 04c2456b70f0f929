//! Conversions at the edges of a line: the configuration to the machine's settings, the
//! machine's status to the admin API's view, and the words of the transition log line.

use mss_admin::{CallIdModeView, LineView};
use mss_services::lines::{
    CallIdInUse, CallIdMode as LineCallIdMode, LastFailure, LineSettings, LineState, LineStatus,
};

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

/// The admin API's name for the Call-ID policy in use: `auto` while an `auto` line still
/// re-registers on one Call-ID, `auto_fresh` once it switched.
pub(crate) fn call_id_view(c: CallIdInUse) -> CallIdModeView {
    match (c.configured, c.fresh) {
        (LineCallIdMode::Auto, false) => CallIdModeView::Auto,
        (LineCallIdMode::Auto, true) => CallIdModeView::AutoFresh,
        (LineCallIdMode::Same, _) => CallIdModeView::Same,
        (LineCallIdMode::Fresh, _) => CallIdModeView::Fresh,
    }
}

/// The admin API's state.
pub(crate) fn state_view(s: LineState) -> mss_admin::LineState {
    match s {
        LineState::Offline => mss_admin::LineState::Offline,
        LineState::Registering => mss_admin::LineState::Registering,
        LineState::Online => mss_admin::LineState::Online,
        LineState::AuthFailed => mss_admin::LineState::AuthFailed,
        LineState::Rejected => mss_admin::LineState::Rejected,
        LineState::Unreachable => mss_admin::LineState::Unreachable,
        LineState::BackingOff => mss_admin::LineState::BackingOff,
    }
}

pub(super) fn unix_secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

/// `GET /api/lines` for one running line.
pub(crate) fn view(name: &str, number: &str, s: &LineStatus) -> LineView {
    LineView {
        name: name.to_owned(),
        number: number.to_owned(),
        state: state_view(s.state),
        since: unix_secs(s.since),
        expires_at: s.expires_at.map(unix_secs),
        next_attempt_at: s.next_attempt_at.map(unix_secs),
        call_id_mode: call_id_view(s.call_id_mode),
        last_failure: s.last_failure.as_ref().map(|f| mss_admin::LastFailure {
            code: f.code,
            reason: f.reason.clone(),
            p_registrar_error: f.p_registrar_error.clone(),
        }),
    }
}

fn describe_failure(f: &LastFailure) -> String {
    let mut s = match f.code {
        Some(code) => format!("{code} {}", f.reason),
        None => f.reason.clone(),
    };
    if let Some(p) = &f.p_registrar_error {
        s.push_str(&format!(", P-Registrar-Error: {p}"));
    }
    s
}

/// Why a line went from `old` to its state, in words, for the transition log line.
pub(crate) fn reason(old: LineState, s: &LineStatus, now_ms: i64) -> String {
    let next = s.next_attempt_at.map(|at| {
        format!(
            "; next attempt in {} s",
            ((at - now_ms).max(0) + 999) / 1000
        )
    });
    match s.state {
        LineState::Online => match s.expires_at {
            Some(at) => format!("registered for {} s", (at - now_ms).max(0) / 1000),
            None => "registered".to_owned(),
        },
        LineState::Offline => "stopped".to_owned(),
        LineState::Registering if old == LineState::Online => {
            "the registration expired before a refresh got through".to_owned()
        }
        LineState::Registering => "starting".to_owned(),
        _ => {
            let what = s
                .last_failure
                .as_ref()
                .map_or_else(|| "failed".to_owned(), describe_failure);
            format!("{what}{}", next.unwrap_or_default())
        }
    }
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

    #[test]
    fn call_id_names_are_the_admin_apis() {
        let v = |configured, fresh| call_id_view(CallIdInUse { configured, fresh }).as_str();
        assert_eq!(v(LineCallIdMode::Auto, false), "auto");
        assert_eq!(v(LineCallIdMode::Auto, true), "auto_fresh");
        assert_eq!(v(LineCallIdMode::Same, false), "same");
        assert_eq!(v(LineCallIdMode::Fresh, true), "fresh");
    }

    #[test]
    fn views_and_reasons() {
        let status = LineStatus {
            state: LineState::Rejected,
            since: 1_700_000_000_500,
            expires_at: None,
            next_attempt_at: Some(1_700_000_030_000),
            call_id_mode: CallIdInUse {
                configured: LineCallIdMode::Same,
                fresh: false,
            },
            last_failure: Some(LastFailure {
                code: Some(400),
                reason: "Bad Request".into(),
                p_registrar_error: Some("Invalid CSeq number".into()),
            }),
            notice: None,
        };
        let v = view("p1", "2001", &status);
        assert_eq!(v.state, mss_admin::LineState::Rejected);
        assert_eq!(v.since, 1_700_000_000);
        assert_eq!(v.next_attempt_at, Some(1_700_000_030));
        assert_eq!(v.call_id_mode, CallIdModeView::Same);
        let f = v.last_failure.unwrap();
        assert_eq!(f.p_registrar_error.as_deref(), Some("Invalid CSeq number"));
        assert_eq!(
            reason(LineState::Online, &status, 1_700_000_000_000),
            "400 Bad Request, P-Registrar-Error: Invalid CSeq number; next attempt in 30 s"
        );
        let online = LineStatus {
            state: LineState::Online,
            expires_at: Some(1_700_000_120_000),
            ..status
        };
        assert_eq!(
            reason(LineState::Registering, &online, 1_700_000_000_000),
            "registered for 120 s"
        );
        let expired = LineStatus {
            state: LineState::Registering,
            ..online
        };
        assert!(reason(LineState::Online, &expired, 0).contains("expired"));
        for s in [
            LineState::Offline,
            LineState::Registering,
            LineState::Online,
            LineState::AuthFailed,
            LineState::Rejected,
            LineState::Unreachable,
            LineState::BackingOff,
        ] {
            assert_eq!(state_view(s).as_str(), s.as_str());
        }
    }
}
