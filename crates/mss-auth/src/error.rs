//! The one error type of this crate.

use thiserror::Error;

/// Why a challenge or credentials could not be parsed, built or answered.
///
/// Every variant that comes from a peer's `Authorization` header maps to
/// `400 Bad Request` (RFC 7616 §3.4: "If a parameter or its value is
/// improper, or required parameters are missing, the proper response is a
/// 4xx error code"); [`AuthError::is_rechallenge`] tells which ones are
/// better answered with a fresh challenge instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A required auth-param is absent.
    #[error("digest parameter `{name}` is missing")]
    MissingParam {
        /// The parameter's name.
        name: &'static str,
    },
    /// The same auth-param appears twice (RFC 7235 §2.1: each name only once).
    #[error("digest parameter `{name}` appears more than once")]
    DuplicateParam {
        /// The parameter's name, lower-cased.
        name: String,
    },
    /// An auth-param has a value this crate cannot accept.
    #[error("digest parameter `{name}` is invalid: {reason}")]
    InvalidParam {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A known algorithm this crate does not implement (`MD5-sess`,
    /// `SHA-256-sess`, `SHA-512-256`, `SHA-512-256-sess`).
    #[error("digest algorithm `{name}` is recognised but not supported")]
    UnsupportedAlgorithm {
        /// The algorithm as received.
        name: String,
    },
    /// An algorithm name that is not in the IANA registry of RFC 7616 §6.1.
    #[error("digest algorithm `{name}` is unknown")]
    UnknownAlgorithm {
        /// The algorithm as received.
        name: String,
    },
    /// A `qop` other than `auth` (only `auth` is implemented; `auth-int` is not).
    #[error("digest qop `{value}` is not supported (only `auth`)")]
    UnsupportedQop {
        /// The qop value (or list) as received.
        value: String,
    },
    /// A parameter this crate recognises but deliberately does not
    /// implement (`username*`, `userhash=true`).
    #[error("digest parameter `{name}` is not supported")]
    UnsupportedParam {
        /// The parameter's name.
        name: &'static str,
    },
    /// None of the challenges offered can be answered.
    #[error("no usable digest challenge: {reason}")]
    NoUsableChallenge {
        /// Why the last candidate was refused (or that there was none).
        reason: String,
    },
}

impl AuthError {
    /// `true` when a server should answer these credentials with a fresh
    /// `401`/`407` challenge rather than `400`: the client used an
    /// algorithm or qop we did not offer, so offering what we do support
    /// gives it a chance to recover.
    pub fn is_rechallenge(&self) -> bool {
        matches!(
            self,
            AuthError::UnsupportedAlgorithm { .. }
                | AuthError::UnknownAlgorithm { .. }
                | AuthError::UnsupportedQop { .. }
                | AuthError::UnsupportedParam { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_parameter() {
        let e = AuthError::MissingParam { name: "nonce" };
        assert_eq!(e.to_string(), "digest parameter `nonce` is missing");
        assert!(!e.is_rechallenge());
        let e = AuthError::UnsupportedAlgorithm {
            name: "MD5-sess".into(),
        };
        assert!(e.is_rechallenge());
        assert!(e.to_string().contains("MD5-sess"));
    }
}
