//! What [`DigestServer::verify`](crate::DigestServer::verify) takes about a
//! user and what it answers.

use std::fmt;

use crate::Ha1;

/// What the server knows about a user: the password, or an HA1 for the
/// algorithm the credentials use.
#[derive(Clone, Copy)]
pub enum UserSecret<'a> {
    /// The clear-text password.
    Password(&'a str),
    /// `H(username:realm:password)`; credentials with another algorithm
    /// than the HA1's are `Invalid`.
    Ha1(&'a Ha1),
}

impl fmt::Debug for UserSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSecret::Password(_) => f.write_str("Password(<redacted>)"),
            UserSecret::Ha1(h) => f.debug_tuple("Ha1").field(h).finish(),
        }
    }
}

/// The result of checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Authenticated.
    Ok,
    /// Right digest on an authentic but expired (or forgotten) nonce:
    /// challenge again with `stale=true`.
    Stale,
    /// Wrong password, unknown user, forged nonce, other realm, algorithm
    /// not offered or refused qop-less response: challenge again (or `403`),
    /// the same answer in every case.
    Invalid,
    /// Right digest, but this nonce count (or the one qop-less use) was
    /// already seen: challenge again with `stale=true`.
    Replay,
}

impl Verdict {
    /// Whether the new challenge should carry `stale=true`.
    pub fn is_stale(self) -> bool {
        matches!(self, Verdict::Stale | Verdict::Replay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn stale_verdicts() {
        assert!(Verdict::Stale.is_stale());
        assert!(Verdict::Replay.is_stale());
        assert!(!Verdict::Invalid.is_stale());
        assert!(!Verdict::Ok.is_stale());
    }

    #[test]
    fn debug_redacts_secrets() {
        assert_eq!(
            format!("{:?}", UserSecret::Password("hunter2")),
            "Password(<redacted>)"
        );
        let ha1 = Ha1::compute(Algorithm::Md5, "u", "r", "hunter2");
        let dbg = format!("{:?}", UserSecret::Ha1(&ha1));
        assert!(!dbg.contains(&ha1.to_hex()));
    }
}
