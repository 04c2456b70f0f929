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
    /// `same`, `fresh`, `auto/same` or `auto/fresh` (the admin API's `call_id_mode`).
    pub fn as_str(self) -> &'static str {
        match (self.configured, self.fresh) {
            (CallIdMode::Auto, false) => "auto/same",
            (CallIdMode::Auto, true) => "auto/fresh",
            (_, false) => "same",
            (_, true) => "fresh",
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
    fn call_id_in_use_names() {
        let auto = CallIdInUse {
            configured: CallIdMode::Auto,
            fresh: true,
        };
        assert_eq!(auto.as_str(), "auto/fresh");
        let same = CallIdInUse {
            configured: CallIdMode::Same,
            fresh: false,
        };
        assert_eq!(same.to_string(), "same");
    }
}
