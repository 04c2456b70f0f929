//! The I/O surface of the messaging service: what the caller tells it and what it asks the
//! caller to do.

use std::fmt;

use mss_sip::{Flow, Request, Response};
use mss_store::{NewMessage, UnixMillis};

/// Who sent a MESSAGE, as the caller established it. The rate limit is kept per sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// A local user, authenticated by the caller (`407` challenge, DESIGN §3).
    Local {
        /// The user name (`101`).
        user: String,
    },
    /// A message that came in through an external line (SIP trunk) `name`.
    Line {
        /// The line's name (`provider1`).
        name: String,
    },
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Local { user } => write!(f, "user {user}"),
            Sender::Line { name } => write!(f, "line {name}"),
        }
    }
}

/// One place a user can be reached: a live contact from the location service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactTarget {
    /// The contact URI (the Request-URI of requests to it, RFC 3261 §16.5).
    pub uri: String,
    /// Where to send: the flow the REGISTER came on (RFC 5626 flow reuse, DESIGN §7).
    pub flow: Flow,
    /// Our address as the contact sees it: the sent-by of our Via (RFC 3261 §18.1.1).
    /// `None`: [`crate::im::ImSettings::via_host`] stands in.
    pub sent_by: Option<std::net::SocketAddr>,
}

/// `Location::contacts(user, now)` gives these: `.into_iter().map(Into::into)` (with no
/// sent-by; the caller that knows our address towards the contact sets it).
impl From<crate::registrar::ContactTarget> for ContactTarget {
    fn from(c: crate::registrar::ContactTarget) -> ContactTarget {
        ContactTarget {
            uri: c.uri,
            flow: c.flow,
            sent_by: None,
        }
    }
}

/// Whom a MESSAGE is for, as the caller looked it up (Request-URI of our domain, user part
/// in the user directory, contacts from `Location::contacts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A local user and their live contacts (none when offline).
    Local {
        /// The user name (`102`).
        user: String,
        /// Every current contact, in the location service's order.
        contacts: Vec<ContactTarget>,
    },
    /// No such user (or not our domain): answered `404`.
    Unknown,
}

/// Names one request mss sent (a relayed MESSAGE or a delivery of a stored one); give it
/// back with the responses of its client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestToken(pub u64);

/// Names one store write; give it back with the write's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreToken(pub u64);

/// What the service asks of the caller. `S` is the caller's handle of the server
/// transaction a MESSAGE came in on (for example `mss_txn::ServerTransactionId`).
#[derive(Debug, Clone)]
pub enum ImOutput<S> {
    /// Send `response` on server transaction `server`: the final answer to a MESSAGE.
    Reply {
        /// The server transaction.
        server: S,
        /// The final response.
        response: Response,
    },
    /// Start a client transaction for `request` over `flow` and report every final
    /// response (or the `408` of a timeout, the `503` of a transport error, RFC 3261
    /// §8.1.3.1) with [`Messaging::handle_response`](crate::im::Messaging::handle_response).
    /// The request is complete: our top Via (with a fresh branch) is already on it.
    Send {
        /// Give this back with the response.
        token: RequestToken,
        /// The request to send.
        request: Request,
        /// Where to send it.
        flow: Flow,
    },
    /// Store `message` durably unless its recipient already has `limit` or more
    /// (`Store::insert_message_if_below`), then report with
    /// [`Messaging::handle_stored`](crate::im::Messaging::handle_stored).
    Store {
        /// Give this back with the outcome.
        token: StoreToken,
        /// The message.
        message: NewMessage,
        /// The per-recipient limit.
        limit: u32,
    },
    /// Read `user`'s messages unexpired at `now` (`Store::list_messages`), then report
    /// with [`Messaging::handle_loaded`](crate::im::Messaging::handle_loaded).
    Load {
        /// The recipient.
        user: String,
        /// Messages with `expires_at > now` are wanted.
        now: UnixMillis,
    },
    /// Delete stored message `id` (`Store::delete_message`), then report with
    /// [`Messaging::handle_deleted`](crate::im::Messaging::handle_deleted).
    Delete {
        /// The message.
        id: i64,
    },
    /// Delete the messages that expired by `now` (`Store::delete_expired_messages`), then
    /// report with [`Messaging::handle_expired`](crate::im::Messaging::handle_expired).
    Expire {
        /// Messages with `expires_at <= now` go.
        now: UnixMillis,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_print_their_kind() {
        let u = Sender::Local { user: "101".into() };
        let l = Sender::Line { name: "p1".into() };
        assert_eq!(u.to_string(), "user 101");
        assert_eq!(l.to_string(), "line p1");
        assert_ne!(u, Sender::Line { name: "101".into() });
    }
}
