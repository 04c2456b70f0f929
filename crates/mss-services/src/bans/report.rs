//! What the ban table tells the outside: one [`BanEvent`] per ban, whose `Display` is the
//! log line that fail2ban-style tools read (`docs/fail2ban.md`), and the list of current
//! bans ([`BanInfo`]) for the admin API.
//!
//! The log lines have a fixed form:
//!
//! ```text
//! banned 203.0.113.7 for 900 s after 10 failed digest answers (user 101)
//! banned 203.0.113.7 for 1800 s after 10 seconds over the request rate limit, repeat 2
//! banned 2001:db8:1:2::/64 for 900 s after 10 failed digest answers (user 101)
//! blocked user 101 at 203.0.113.7 for 900 s after 10 failed digest answers; the address is not banned (it authenticated within the last hour)
//! ```
//!
//! Only a whole address is `banned`; a user blocked at an address that authenticated
//! recently (an office behind one NAT address) is `blocked user …`, so a filter that
//! firewalls `banned <address>` never locks out the office. The user name is the guesser's
//! text: it is written after the fixed part, with anything but letters, digits and
//! `-_.!~*'()&=+$,;?/@` escaped and cut to 64 characters, so it cannot forge a line.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::source::SourceKey;

/// What a ban covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanScope {
    /// Every packet from the address is dropped before parsing.
    Address,
    /// Requests from the address that authenticate as the user are challenged again
    /// without their answer being checked; other users there are not affected.
    User,
}

impl BanScope {
    /// `address` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            BanScope::Address => "address",
            BanScope::User => "user",
        }
    }
}

/// Why a ban was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanReason {
    /// Failed digest answers to nonces mss sent to that address.
    Auth,
    /// Seconds over the per-address request rate limit.
    Rate,
}

impl BanReason {
    /// `auth` or `rate`.
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::Auth => "auth",
            BanReason::Rate => "rate",
        }
    }
}

/// A ban just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEvent {
    /// The address (or IPv6 /64).
    pub source: SourceKey,
    /// The whole address, or one user at it.
    pub scope: BanScope,
    /// Why.
    pub reason: BanReason,
    /// How long.
    pub duration: Duration,
    /// Failed answers, or seconds over the rate limit, that led to it.
    pub count: u32,
    /// The user of the last failed answer (the blocked user for [`BanScope::User`]).
    pub user: Option<String>,
    /// 1 for a first ban, 2 for the next one within a day of it, …
    pub offence: u8,
}

/// A current ban, for `GET /api/bans`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    /// The address (or IPv6 /64).
    pub source: SourceKey,
    /// The whole address, or one user at it.
    pub scope: BanScope,
    /// Why.
    pub reason: BanReason,
    /// The user of the last failed answer (the blocked user for [`BanScope::User`]).
    pub user: Option<String>,
    /// When it began (Unix ms).
    pub since_unix_ms: i64,
    /// When it ends (Unix ms).
    pub until_unix_ms: i64,
    /// Failed answers, or seconds over the rate limit, that led to it.
    pub count: u32,
    /// 1 for a first ban, 2 for the next one within a day of it, …
    pub offence: u8,
}

/// The longest user name written to a log line.
const MAX_LOGGED_USER: usize = 64;

/// `user` as a log line may carry it (see the module docs).
pub fn printable_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len().min(MAX_LOGGED_USER));
    for c in user.chars() {
        if out.len() >= MAX_LOGGED_USER {
            out.push('…');
            break;
        }
        if c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/@".contains(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    out
}

impl fmt::Display for BanEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs();
        let what = match self.reason {
            BanReason::Auth => "failed digest answers",
            BanReason::Rate => "seconds over the request rate limit",
        };
        match self.scope {
            BanScope::Address => {
                write!(
                    f,
                    "banned {} for {secs} s after {} {what}",
                    self.source, self.count
                )?;
                if let Some(u) = &self.user {
                    write!(f, " (user {})", printable_user(u))?;
                }
                if self.offence > 1 {
                    write!(f, ", repeat {}", self.offence)?;
                }
                Ok(())
            }
            BanScope::User => {
                let user = self.user.as_deref().map(printable_user).unwrap_or_default();
                write!(
                    f,
                    "blocked user {user} at {} for {secs} s after {} {what}; the address is \
                     not banned (it authenticated within the last hour)",
                    self.source, self.count
                )?;
                if self.offence > 1 {
                    write!(f, ", repeat {}", self.offence)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(scope: BanScope, reason: BanReason, user: Option<&str>, offence: u8) -> BanEvent {
        BanEvent {
            source: SourceKey::of("203.0.113.7".parse().unwrap()),
            scope,
            reason,
            duration: Duration::from_secs(900),
            count: 10,
            user: user.map(str::to_owned),
            offence,
        }
    }

    #[test]
    fn log_lines_have_their_fixed_form() {
        assert_eq!(
            event(BanScope::Address, BanReason::Auth, Some("101"), 1).to_string(),
            "banned 203.0.113.7 for 900 s after 10 failed digest answers (user 101)"
        );
        assert_eq!(
            event(BanScope::Address, BanReason::Rate, None, 2).to_string(),
            "banned 203.0.113.7 for 900 s after 10 seconds over the request rate limit, repeat 2"
        );
        assert_eq!(
            event(BanScope::User, BanReason::Auth, Some("101"), 1).to_string(),
            "blocked user 101 at 203.0.113.7 for 900 s after 10 failed digest answers; the \
             address is not banned (it authenticated within the last hour)"
        );
    }

    #[test]
    fn a_user_name_cannot_forge_a_line() {
        let evil = "x\nbanned 198.51.100.9 for 900 s after 10 failed digest answers";
        let line = event(BanScope::User, BanReason::Auth, Some(evil), 1).to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("blocked user x\\u{a}banned\\u{20}"),
            "{line}"
        );
        assert_eq!(printable_user("a b\"c"), "a\\u{20}b\\u{22}c");
        let long = printable_user(&"9".repeat(100));
        assert_eq!(long.chars().count(), MAX_LOGGED_USER + 1);
        assert!(long.ends_with('…'));
        assert_eq!(
            printable_user("alice@pbx.example.com"),
            "alice@pbx.example.com"
        );
    }
}
