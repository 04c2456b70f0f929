//! Request methods (RFC 3261 §7.1; method names are case-sensitive).

use std::fmt;

use bytes::Bytes;

/// A SIP request method. Matching is case-sensitive (RFC 3261 §7.1): `invite` is an
/// extension method, not INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// OPTIONS (RFC 3261).
    Options,
    /// REGISTER (RFC 3261).
    Register,
    /// MESSAGE (RFC 3428).
    Message,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// PRACK (RFC 3262).
    Prack,
    /// UPDATE (RFC 3311).
    Update,
    /// INFO (RFC 6086).
    Info,
    /// REFER (RFC 3515).
    Refer,
    /// PUBLISH (RFC 3903).
    Publish,
    /// An extension method token, kept as received.
    Other(Bytes),
}

impl Method {
    /// The method for a token (no validation of token characters).
    pub fn from_bytes(token: Bytes) -> Method {
        Method::known(&token).unwrap_or(Method::Other(token))
    }

    /// The method for a static string (no allocation).
    pub fn from_static(token: &'static str) -> Method {
        Method::from_bytes(Bytes::from_static(token.as_bytes()))
    }

    /// The known method spelled exactly `token`, if any.
    pub(crate) fn known(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"MESSAGE" => Method::Message,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            _ => return None,
        })
    }

    /// The method token as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Method::Other(b) => b,
            known => known.known_str().as_bytes(),
        }
    }

    fn known_str(&self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(_) => "",
        }
    }

    /// The method token as text (tokens are ASCII; a non-UTF-8 extension gives `"?"`).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Other(b) => std::str::from_utf8(b).unwrap_or("?"),
            known => known.known_str(),
        }
    }

    /// True when `bytes` spell this method exactly.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.as_bytes() == bytes
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_sensitive() {
        assert_eq!(Method::from_static("REGISTER"), Method::Register);
        assert!(matches!(Method::from_static("register"), Method::Other(_)));
        assert!(matches!(
            Method::from_static("RE%47IST%45R"),
            Method::Other(_)
        ));
        assert_eq!(Method::from_static("FOO").as_str(), "FOO");
        assert_eq!(Method::Message.as_bytes(), b"MESSAGE");
    }
}
