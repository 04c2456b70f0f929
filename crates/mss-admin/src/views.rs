//! JSON views of the admin API (DESIGN.md §4).
//!
//! Every time is a Unix timestamp in whole seconds (UTC), so that scripts need no date parser.
//! Optional values are written as JSON `null`.

use serde::{Deserialize, Serialize};

/// Registration state of an external line, as shown by `GET /api/lines`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    /// Registered: the registrar answered `2xx` and the binding has not expired.
    Online,
    /// Not registered and not trying (for example after an un-REGISTER at shutdown).
    Offline,
    /// A REGISTER is in flight.
    Registering,
    /// The registrar refused our credentials (`401`/`407` after an answered challenge).
    AuthFailed,
    /// The registrar refused the REGISTER with another final error response.
    Rejected,
    /// No answer (timeout) or a transport error.
    Unreachable,
    /// Waiting before the next attempt after a failure (backoff with jitter, `Retry-After`).
    BackingOff,
}

impl LineState {
    /// Every state, in the order used by metrics.
    pub const ALL: [LineState; 7] = [
        LineState::Online,
        LineState::Offline,
        LineState::Registering,
        LineState::AuthFailed,
        LineState::Rejected,
        LineState::Unreachable,
        LineState::BackingOff,
    ];

    /// The JSON name of the state (`online`, `auth_failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LineState::Online => "online",
            LineState::Offline => "offline",
            LineState::Registering => "registering",
            LineState::AuthFailed => "auth_failed",
            LineState::Rejected => "rejected",
            LineState::Unreachable => "unreachable",
            LineState::BackingOff => "backing_off",
        }
    }
}

/// The Call-ID behaviour a line follows now (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallIdModeView {
    /// Every refresh within one dialog: same Call-ID, CSeq + 1 (RFC 3261 §10.2).
    Same,
    /// A fresh Call-ID (and From tag) for every REGISTER.
    Fresh,
    /// `auto`, still on the RFC behaviour (same Call-ID).
    Auto,
    /// `auto`, after the registrar showed it wants a fresh Call-ID for every REGISTER.
    AutoFresh,
}

impl CallIdModeView {
    /// The JSON name of the mode (`same`, `fresh`, `auto`, `auto_fresh`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallIdModeView::Same => "same",
            CallIdModeView::Fresh => "fresh",
            CallIdModeView::Auto => "auto",
            CallIdModeView::AutoFresh => "auto_fresh",
        }
    }
}

/// The last failed registration attempt of a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFailure {
    /// Status code of the final response, `null` for a timeout or transport error.
    pub code: Option<u16>,
    /// Reason phrase, or a description of the timeout/transport error.
    pub reason: String,
    /// The `P-Registrar-Error` header of the response, when there was one.
    pub p_registrar_error: Option<String>,
}

/// One external line, an element of `GET /api/lines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    /// Name of the line (`[line:NAME]` in `mss.ini`).
    pub name: String,
    /// The line's number at the provider (AOR user part).
    pub number: String,
    /// Current state.
    pub state: LineState,
    /// When the line entered `state` (Unix seconds).
    pub since: u64,
    /// When the current binding expires at the registrar (Unix seconds), if registered.
    pub expires_at: Option<u64>,
    /// When the next REGISTER (refresh or retry) goes out (Unix seconds), if scheduled.
    pub next_attempt_at: Option<u64>,
    /// The Call-ID behaviour in force.
    pub call_id_mode: CallIdModeView,
    /// The last failure, `null` if none since start.
    pub last_failure: Option<LastFailure>,
}

/// One contact binding of a local user, an element of `GET /api/registrations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationView {
    /// Local user name (AOR user part).
    pub user: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Transport the REGISTER came on (`UDP`, `TCP`, …).
    pub transport: String,
    /// Source address of the REGISTER (`ip:port`).
    pub source: String,
    /// When the binding expires (Unix seconds).
    pub expires_at: u64,
    /// The `User-Agent` header of the REGISTER, if any.
    pub user_agent: Option<String>,
}

/// Number of stored (offline) messages of one user, an element of `GET /api/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCountView {
    /// Local user name.
    pub user: String,
    /// How many messages wait for the user.
    pub stored: u64,
}

/// One stored message, an element of `GET /api/messages/{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessageView {
    /// Identifier in the store.
    pub id: u64,
    /// The original `From` header value.
    pub from: String,
    /// The original `Content-Type`.
    pub content_type: String,
    /// The body, as text (lossy UTF-8 if it was not valid UTF-8).
    pub body: String,
    /// When mss accepted the message (Unix seconds); sent as `Date` on delivery.
    pub received_at: u64,
    /// When the message is dropped if still undelivered (Unix seconds).
    pub expires_at: u64,
}

/// What a ban covers, as `GET /api/bans` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanScopeView {
    /// Every packet from the address is dropped.
    Address,
    /// Only `user`'s requests from the address are refused (the address authenticated
    /// another user within the last hour: an office behind one NAT address).
    User,
}

impl BanScopeView {
    /// The JSON name (`address`, `user`).
    pub fn as_str(self) -> &'static str {
        match self {
            BanScopeView::Address => "address",
            BanScopeView::User => "user",
        }
    }
}

/// Why a ban was issued, as `GET /api/bans` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanReasonView {
    /// Failed digest answers to nonces mss sent to the address.
    Auth,
    /// Repeatedly over the per-address request rate limit.
    Rate,
}

impl BanReasonView {
    /// The JSON name (`auth`, `rate`).
    pub fn as_str(self) -> &'static str {
        match self {
            BanReasonView::Auth => "auth",
            BanReasonView::Rate => "rate",
        }
    }
}

/// The certificate of the `tls:` listeners (`GET /api/tls`, `POST /api/tls/reload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsView {
    /// The certificate file (PEM) it is read and reloaded from.
    pub certificate: String,
    /// The private key file (PEM).
    pub private_key: String,
    /// SHA-256 fingerprint of the certificate new handshakes get, `AB:CD:…`.
    pub fingerprint_sha256: String,
}

/// One ban in force, an element of `GET /api/bans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanView {
    /// The banned address: an IPv4 address, or an IPv6 /64 (`2001:db8:1:2::/64`).
    pub address: String,
    /// The whole address, or one user at it.
    pub scope: BanScopeView,
    /// Why.
    pub reason: BanReasonView,
    /// The user of the last failed answer (the blocked user when `scope` is `user`);
    /// `null` for a rate ban.
    pub user: Option<String>,
    /// What led to the ban: failed digest answers (`auth`) or seconds over the rate
    /// limit (`rate`).
    pub failures: u32,
    /// When the ban began (Unix seconds).
    pub since: u64,
    /// When it ends (Unix seconds).
    pub until: u64,
    /// 1 for a first ban; each ban within a day of the last one ended counts up and lasts
    /// twice as long.
    pub offence: u8,
}

/// The body of every error answer of the API: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    /// What went wrong, in words.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_view_json_has_design_field_names() {
        let v = LineView {
            name: "provider1".into(),
            number: "2001".into(),
            state: LineState::AuthFailed,
            since: 10,
            expires_at: None,
            next_attempt_at: Some(20),
            call_id_mode: CallIdModeView::AutoFresh,
            last_failure: Some(LastFailure {
                code: Some(403),
                reason: "Forbidden".into(),
                p_registrar_error: None,
            }),
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["state"], "auth_failed");
        assert_eq!(json["call_id_mode"], "auto_fresh");
        assert_eq!(json["last_failure"]["code"], 403);
        assert!(json["last_failure"]["p_registrar_error"].is_null());
        assert!(json["expires_at"].is_null());
        let back: LineView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn ban_view_json() {
        let v = BanView {
            address: "203.0.113.7".into(),
            scope: BanScopeView::Address,
            reason: BanReasonView::Auth,
            user: Some("101".into()),
            failures: 10,
            since: 1,
            until: 901,
            offence: 1,
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["scope"], v.scope.as_str());
        assert_eq!(json["reason"], v.reason.as_str());
        assert_eq!(
            serde_json::to_value(BanScopeView::User).unwrap(),
            BanScopeView::User.as_str()
        );
        assert_eq!(
            serde_json::to_value(BanReasonView::Rate).unwrap(),
            BanReasonView::Rate.as_str()
        );
        assert_eq!(json["scope"], "address");
        assert_eq!(json["reason"], "auth");
        assert_eq!(json["until"], 901);
        let back: BanView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn state_names_match_serde() {
        for s in LineState::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}

/// One leg of an active call, as `GET /api/calls/active` shows it (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLegView {
    /// The leg's Call-ID (each leg is its own dialog).
    pub call_id: String,
    /// The peer: the signalling address of the device or provider (`ip:port`).
    pub peer: String,
    /// The codec negotiated (the first payload of the answer, e.g. `PCMU/8000`), if known.
    pub codec: Option<String>,
    /// RTP packets received from this leg by the media relay (0 without relay).
    pub rtp_in: u64,
    /// RTP packets sent to this leg by the media relay (0 without relay).
    pub rtp_out: u64,
    /// The relay got no RTP from this leg in the 5 s after the answer (while not on hold):
    /// one-way audio, this leg's side (its NAT, its firewall) is at fault (DESIGN §8).
    #[serde(default)]
    pub no_rtp_from: bool,
}

/// One active call, as `GET /api/calls/active` shows it (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveCallView {
    /// The call's id (the same as its record's).
    pub id: String,
    /// Who called.
    pub caller: String,
    /// What was dialled.
    pub callee: String,
    /// `ringing`, `early` (early media), `answered` or `ending`.
    pub state: String,
    /// When the call started (Unix seconds).
    pub since: u64,
    /// The A leg first, then every B leg.
    pub legs: Vec<CallLegView>,
}
