//! What the admin API shows of a line (DESIGN §4 `GET /api/lines`).

use std::fmt;

use crate::lines::settings::CallIdMode;

/// The state of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// Not registered and not trying (before the first attempt is sent, after shutdown).
    Offline,
    /// The first registration is under way.
    Registering,
    /// Registered; refreshes run before expiry.
    Online,
    /// The provider refused our credentials (`401`/`407` again without `stale`, `403`, or a
    /// challenge we cannot answer); retried with backoff.
    AuthFailed,
    /// The provider refused the REGISTER for another reason (4xx, 6xx, the CSeq quirk with
    /// `call_id = same`); retried with backoff.
    Rejected,
    /// No answer (transaction timeout on every target) or no address for the registrar.
    Unreachable,
    /// A transient failure (`408`, `480`, 5xx …) waits for its retry.
    BackingOff,
}

impl LineState {
    /// The name used by the admin API and `mss status`.
    pub fn as_str(self) -> &'static str {
        match self {
            LineState::Offline => "offline",
            LineState::Registering => "registering",
            LineState::Online => "online",
            LineState::AuthFailed => "auth_failed",
            LineState::Rejected => "rejected",
            LineState::Unreachable => "unreachable",
            LineState::BackingOff => "backing_off",
        }
    }
}

impl fmt::Display for LineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Call-ID policy a line uses right now: the configured mode and, for `auto`, whether it
/// has switched to fresh Call-IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallIdInUse {
    /// The mode from the configuration.
    pub configured: CallIdMode,
    /// True when every REGISTER gets a fresh Call-ID now.
    pub fresh: bool,
}

impl CallIdInUse {
    /// An `auto` line that switched to a fresh Call-ID per REGISTER.
    pub const AUTO_FRESH: CallIdInUse = CallIdInUse {
        configured: CallIdMode::Auto,
        fresh: true,
    };

    /// The admin API's `call_id_mode` (also kept in the stored line record): `same`,
    /// `fresh`, `auto` (an `auto` line still on one Call-ID) or `auto_fresh` (an `auto`
    /// line after the registrar's CSeq complaint switched it to fresh Call-IDs). A `same`
    /// or `fresh` line is named by its configured mode alone.
    pub fn as_str(self) -> &'static str {
        match (self.configured, self.fresh) {
            (CallIdMode::Auto, false) => "auto",
            (CallIdMode::Auto, true) => "auto_fresh",
            (CallIdMode::Same, _) => "same",
            (CallIdMode::Fresh, _) => "fresh",
        }
    }
}

impl fmt::Display for CallIdInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last failed attempt of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    /// The status code; `408` for a transaction timeout, `None` when no request could be sent
    /// (no address for the registrar).
    pub code: Option<u16>,
    /// The reason phrase, or what went wrong in words.
    pub reason: String,
    /// The provider's `P-Registrar-Error` header, if any.
    pub p_registrar_error: Option<String>,
}

/// Everything the admin API shows of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineStatus {
    /// The current state.
    pub state: LineState,
    /// When the line entered that state (unix ms).
    pub since: i64,
    /// When the current registration ends at the provider (unix ms), if registered.
    pub expires_at: Option<i64>,
    /// When the next REGISTER is due (unix ms): the refresh or the retry.
    pub next_attempt_at: Option<i64>,
    /// The Call-ID policy in use.
    pub call_id_mode: CallIdInUse,
    /// The last failure, kept after a later success so the admin can see what happened.
    pub last_failure: Option<LastFailure>,
    /// The last oddity in an answer that was accepted anyway (a `200` without our Contact, an
    /// absurd expiry that was clamped …).
    pub notice: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_admin_api() {
        let all = [
            (LineState::Offline, "offline"),
            (LineState::Registering, "registering"),
            (LineState::Online, "online"),
            (LineState::AuthFailed, "auth_failed"),
            (LineState::Rejected, "rejected"),
            (LineState::Unreachable, "unreachable"),
            (LineState::BackingOff, "backing_off"),
        ];
        for (s, name) in all {
            assert_eq!(s.to_string(), name);
        }
    }

    #[test]
    fn call_id_in_use_names_match_admin_api() {
        let name = |configured, fresh| CallIdInUse { configured, fresh }.to_string();
        assert_eq!(name(CallIdMode::Auto, false), "auto");
        assert_eq!(name(CallIdMode::Auto, true), "auto_fresh");
        assert_eq!(CallIdInUse::AUTO_FRESH.as_str(), "auto_fresh");
        assert_eq!(name(CallIdMode::Same, false), "same");
        assert_eq!(name(CallIdMode::Same, true), "same");
        assert_eq!(name(CallIdMode::Fresh, true), "fresh");
        assert_eq!(name(CallIdMode::Fresh, false), "fresh");
    }
}
