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
    /// Every method mss knows, in the order of [`Method::known_index`].
    pub(crate) const KNOWN: [Method; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Register,
        Method::Message,
        Method::Subscribe,
        Method::Notify,
        Method::Prack,
        Method::Update,
        Method::Info,
        Method::Refer,
        Method::Publish,
    ];

    /// The place of a known method in [`Method::KNOWN`]; `None` for an extension method.
    pub(crate) fn known_index(&self) -> Option<u8> {
        Some(match self {
            Method::Invite => 0,
            Method::Ack => 1,
            Method::Bye => 2,
            Method::Cancel => 3,
            Method::Options => 4,
            Method::Register => 5,
            Method::Message => 6,
            Method::Subscribe => 7,
            Method::Notify => 8,
            Method::Prack => 9,
            Method::Update => 10,
            Method::Info => 11,
            Method::Refer => 12,
            Method::Publish => 13,
            Method::Other(_) => return None,
        })
    }

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
    fn every_known_method_is_at_its_index_and_spelled_back() {
        for (i, m) in Method::KNOWN.iter().enumerate() {
            assert_eq!(m.known_index(), u8::try_from(i).ok(), "{m:?}");
            assert_eq!(Method::known(m.as_bytes()).as_ref(), Some(m));
        }
        assert_eq!(Method::from_static("FOO").known_index(), None);
    }

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
