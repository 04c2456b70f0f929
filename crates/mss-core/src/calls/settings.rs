//! What the call service is built from (DESIGN §8: `[server] max_calls`,
//! `outgroup_prefix`, `national_prefix`, `international_prefix`; per user `max_calls`,
//! `call_level` and the forwards; `[group:NAME]`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Default of `[server] max_calls`: concurrent calls of the whole server.
pub const DEFAULT_MAX_CALLS: u32 = 1000;

/// How long an outgoing leg may ring before mss gives up on it: RFC 3261 §16.6 step 11
/// asks a proxy for Timer C "greater than 3 minutes"; a B2BUA's B legs follow the same rule.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(181);

/// Default of a user's `no_answer_timeout` and of a group's `ring_timeout` (DESIGN §8).
pub const DEFAULT_NO_ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Default session interval mss asks for on each leg (RFC 4028 §4 recommends 1800 s).
pub const DEFAULT_SESSION_EXPIRES: u32 = 1800;

/// Default least session interval mss accepts: RFC 4028 §5's minimum, 90 s.
pub const DEFAULT_MIN_SE: u32 = 90;

/// What a user may dial out through a line (`call_level`, DESIGN §8): the toll-fraud guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CallLevel {
    /// Local users and groups only: no call out.
    Internal,
    /// Numbers without the international prefix.
    #[default]
    National,
    /// Every number.
    International,
}

impl CallLevel {
    /// The name used in `mss.ini`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallLevel::Internal => "internal",
            CallLevel::National => "national",
            CallLevel::International => "international",
        }
    }
}

/// One user's call rules (DESIGN §8). A forward target is a user, a group, or the
/// out-group prefix and a number, as dialled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserCalls {
    /// What the user may dial out.
    pub call_level: CallLevel,
    /// Every call goes there.
    pub forward_always: Option<String>,
    /// When every device answered busy (`486`/`600`), or the user is at its `max_calls`.
    pub forward_busy: Option<String>,
    /// When nobody answered within `no_answer_timeout`.
    pub forward_no_answer: Option<String>,
    /// How long the user's devices ring before `forward_no_answer` (default 20 s).
    pub no_answer_timeout: Option<Duration>,
    /// When the user has no registered device.
    pub forward_unreachable: Option<String>,
}

/// How a group's members ring (`strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupStrategy {
    /// All at once; the first answer wins.
    #[default]
    RingAll,
    /// One after another, in the order of `members`, each for `ring_timeout`.
    Linear,
    /// As linear, starting after the member who answered last.
    Circular,
}

impl GroupStrategy {
    /// The name used in `mss.ini`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStrategy::RingAll => "ring_all",
            GroupStrategy::Linear => "linear",
            GroupStrategy::Circular => "circular",
        }
    }
}

/// A ringing or hunting group (`[group:NAME]`), dialable by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// The members, local users, in order.
    pub members: Vec<String>,
    /// How they ring.
    pub strategy: GroupStrategy,
    /// How long each member rings (all of them, for `ring_all`).
    pub ring_timeout: Duration,
}

/// The settings of the call service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// Concurrent calls of the whole server; beyond it `503` + `Retry-After`.
    pub max_calls: u32,
    /// Dial this prefix + number to call out through a line (`outgroup_prefix`, default `9`).
    pub outgroup_prefix: String,
    /// Concurrent calls per user (a user's `max_calls`); beyond it `486 Busy Here`.
    pub user_max_calls: HashMap<String, u32>,
    /// How long one outgoing leg may ring before it is cancelled (no answer).
    pub ring_timeout: Duration,
    /// Users' call rules; a user not listed has the defaults.
    pub users: HashMap<String, UserCalls>,
    /// Groups by name.
    pub groups: HashMap<String, GroupSettings>,
    /// A dialled number that starts with this is national (`national_prefix`, default `0`).
    pub national_prefix: String,
    /// A dialled number that starts with this (or `+`) is international
    /// (`international_prefix`, default `00`).
    pub international_prefix: String,
    /// The session interval mss asks for on each leg, in seconds (RFC 4028).
    pub session_expires: u32,
    /// The least session interval mss accepts, in seconds (never below 90, RFC 4028 §5).
    pub min_se: u32,
    /// The media relay (`[media] relay = always`); `None`: SDP passed through untouched
    /// (`relay = never`, and the default of the core).
    pub media: Option<MediaSettings>,
}

/// What the call service needs to know of the media relay (DESIGN §8 `[media]`); the
/// relay itself (ports, timeouts) is the driver's, reached through [`crate::Output::Media`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSettings {
    /// `public_address`: the address written into every leg's SDP; `None`: the local
    /// address the leg reached mss on (or `rtp_address` when that is a specific one).
    pub public_address: Option<IpAddr>,
    /// `rtp_address`: where the RTP sockets are bound (`0.0.0.0`: every address).
    pub rtp_address: IpAddr,
}

impl MediaSettings {
    /// A relay on every address, with the SDP address of each leg its own.
    pub fn new() -> MediaSettings {
        MediaSettings {
            public_address: None,
            rtp_address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }
}

impl Default for MediaSettings {
    fn default() -> MediaSettings {
        MediaSettings::new()
    }
}

impl Default for CallSettings {
    fn default() -> CallSettings {
        CallSettings {
            max_calls: DEFAULT_MAX_CALLS,
            outgroup_prefix: "9".to_owned(),
            user_max_calls: HashMap::new(),
            ring_timeout: DEFAULT_RING_TIMEOUT,
            users: HashMap::new(),
            groups: HashMap::new(),
            national_prefix: "0".to_owned(),
            international_prefix: "00".to_owned(),
            session_expires: DEFAULT_SESSION_EXPIRES,
            min_se: DEFAULT_MIN_SE,
            media: None,
        }
    }
}

impl CallSettings {
    /// The level a number dialled out needs: `International` for one that starts with the
    /// international prefix or `+`, else `National` (a local number costs money too).
    pub fn level_needed(&self, number: &str) -> CallLevel {
        let intl = number.starts_with('+')
            || (!self.international_prefix.is_empty()
                && number.starts_with(&self.international_prefix));
        if intl {
            CallLevel::International
        } else {
            CallLevel::National
        }
    }

    /// The call rules of `user`.
    pub fn user(&self, user: &str) -> UserCalls {
        self.users.get(user).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_classified_by_their_prefix() {
        let s = CallSettings::default();
        assert_eq!(s.level_needed("0049301234"), CallLevel::International);
        assert_eq!(s.level_needed("+4930"), CallLevel::International);
        assert_eq!(s.level_needed("0301234"), CallLevel::National);
        assert_eq!(s.level_needed("5551234"), CallLevel::National);
        assert!(CallLevel::International > CallLevel::National);
        assert!(CallLevel::National > CallLevel::Internal);
    }
}
