//! A line's status as the admin API shows it, and the words of its transition log line.

use mss_admin::{CallIdModeView, LineView};
use mss_services::lines::{
    CallIdInUse, CallIdMode as LineCallIdMode, LastFailure, LineState, LineStatus,
};

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

pub(crate) fn unix_secs(ms: i64) -> u64 {
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
    use super::*;

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
