//! What the driver feeds the core: received packets, finished operations, timeouts.

use std::net::SocketAddr;

use bytes::Bytes;
use mss_sip::Flow;
use mss_store::{InsertOutcome, LineRecord, StoreError, StoredMessage};
use mss_txn::TransactionId;

use crate::output::OpId;

/// One input of [`crate::Core::handle`].
#[derive(Debug)]
pub enum Input {
    /// A packet (a UDP datagram or a framed stream message) arrived.
    Received {
        /// The local address it arrived at (the bound socket or listener).
        local: SocketAddr,
        /// Where it came from, with the connection for stream transports.
        flow: Flow,
        /// The bytes.
        data: Bytes,
    },
    /// A store operation the core asked for ([`crate::Output::Store`]) finished. Store
    /// results must come in the order the operations were asked for: memory follows the
    /// store in the order of the writes.
    Stored {
        /// The operation's id.
        id: OpId,
        /// Its outcome.
        result: StoreResult,
    },
    /// A lookup the core asked for ([`crate::Output::Resolve`]) finished, in any order.
    Resolved {
        /// The lookup's id.
        id: OpId,
        /// The addresses in the order to try (empty: none found, or cancelled).
        addrs: Vec<SocketAddr>,
    },
    /// An answer or event of the media relay ([`crate::Output::Media`]): an allocation,
    /// counters, a latch, a silent leg, a timeout.
    Media(mss_media::io::MediaEvent),
    /// A [`crate::Output::Transmit`] of a transaction could not be sent.
    SendFailed {
        /// The transaction that sent it.
        transaction: TransactionId,
    },
    /// A connection the transports opened to send on `flow` (its transport and peer; no
    /// connection id) could not be made: the connect or the TLS handshake failed, e.g.
    /// the peer's certificate was refused (`reason` says why). What was queued on it is
    /// lost. A line whose REGISTER went that way fails over at once, or is `unreachable`
    /// with `reason` shown in `GET /api/lines`; other transactions time out as usual.
    ConnectFailed {
        /// The transport and peer of the failed connection.
        flow: mss_sip::Flow,
        /// Why, in words.
        reason: String,
    },
    /// The time given by [`crate::Core::poll_timeout`] has come (early is harmless).
    Timeout,
    /// The server is stopping: services say goodbye (the lines un-REGISTER); keep feeding
    /// inputs until [`crate::Core::is_drained`].
    Shutdown,
}

/// The outcome of a [`crate::StoreOp`], one variant per result type.
#[derive(Debug)]
pub enum StoreResult {
    /// A write with nothing to return (bindings, a line's record).
    Done(Result<(), StoreError>),
    /// A delete that counts its rows (expired bindings or messages).
    Count(Result<u64, StoreError>),
    /// `insert_message_if_below`.
    Inserted(Result<InsertOutcome, StoreError>),
    /// `list_messages`.
    Messages(Result<Vec<StoredMessage>, StoreError>),
    /// `delete_message`: whether it existed.
    Deleted(Result<bool, StoreError>),
    /// `get_line`.
    Line(Result<Option<LineRecord>, StoreError>),
}

impl StoreResult {
    /// The error, if the operation failed (whatever its type).
    pub fn error(&self) -> Option<&StoreError> {
        match self {
            StoreResult::Done(r) => r.as_ref().err(),
            StoreResult::Count(r) => r.as_ref().err(),
            StoreResult::Inserted(r) => r.as_ref().err(),
            StoreResult::Messages(r) => r.as_ref().err(),
            StoreResult::Deleted(r) => r.as_ref().err(),
            StoreResult::Line(r) => r.as_ref().err(),
        }
    }
}
