//! What the table hands back to its driver: datagrams/segments to send and events for the
//! transaction user (TU).

use bytes::Bytes;
use mss_sip::{Flow, Message, Request, Response};

use crate::error::TxnError;
use crate::slab::{ClientTransactionId, ServerTransactionId, TransactionId};

/// One output of [`crate::Transactions::poll_output`].
#[derive(Debug, Clone)]
pub enum Output {
    /// Send these bytes.
    Transmit(Transmit),
    /// Tell the TU something.
    Event(Event),
}

/// A message to put on the wire.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to send it: the flow the TU gave for a client transaction (the ACK for a non-2xx
    /// goes the same way, §17.1.1.2), the flow the request came in on for a server
    /// transaction (§18.2.2, reusing the connection on reliable transports) or the flow
    /// the TU chose for its responses ([`crate::Transactions::set_reply_route`]).
    pub to: Flow,
    /// The local address to send from: the one the TU gave for a server transaction's
    /// responses ([`crate::Transactions::set_reply_route`]), else `None` (the driver
    /// picks).
    pub local: Option<std::net::SocketAddr>,
    /// The encoded message. A retransmission is the very same bytes (§17.1.1.2: "take the
    /// message previously sent to the transport layer and pass it once more").
    pub bytes: Bytes,
    /// The transaction that sent it, if any; give it back to
    /// [`crate::Transactions::handle_transport_error`] when sending fails.
    pub transaction: Option<TransactionId>,
}

/// Something the TU must know about.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request created a server transaction; answer it with
    /// [`crate::Transactions::send_response`]. Retransmissions never show up here.
    Request {
        /// The server transaction to answer through.
        id: ServerTransactionId,
        /// The request.
        request: Request,
        /// Where it came from (responses go back there).
        from: Flow,
    },
    /// An ACK the transaction layer does not absorb: the ACK for a 2xx (its own branch,
    /// no transaction, RFC 3261 §17.1.1.3, §13.2.2.4), a stray ACK, or an ACK that matched an
    /// INVITE server transaction in "Accepted" (RFC 6026 §7.1: passed to the TU).
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        from: Flow,
        /// The INVITE server transaction it matched, when it matched one in "Accepted".
        transaction: Option<ServerTransactionId>,
    },
    /// A CANCEL matched a pending INVITE server transaction (§9.2). The transaction layer
    /// has already answered the CANCEL with 200; the TU should now answer the INVITE with
    /// 487 (Request Terminated) through `invite`.
    Cancel {
        /// The INVITE server transaction being cancelled.
        invite: ServerTransactionId,
        /// The CANCEL's own server transaction (already completed).
        cancel: ServerTransactionId,
        /// The CANCEL request.
        request: Request,
        /// Where it came from.
        from: Flow,
    },
    /// A response for a client transaction: every provisional, the final, and in "Accepted"
    /// every further 2xx (retransmissions and forked answers, RFC 6026 §7.2).
    Response {
        /// The client transaction.
        id: ClientTransactionId,
        /// The response.
        response: Response,
    },
    /// Timer B or F fired: the request got no final response (§17.1.1.2, §17.1.2.2).
    /// `response` is a 408 (Request Timeout) built from the request, as §8.1.3.1 asks the
    /// TU to treat a timeout.
    Timeout {
        /// The client transaction.
        id: ClientTransactionId,
        /// The synthesized 408.
        response: Response,
    },
    /// Timer H fired: the ACK for a non-2xx final response never came (§17.2.1).
    AckTimeout {
        /// The INVITE server transaction.
        id: ServerTransactionId,
    },
    /// The driver reported a transport error for this transaction (§17.1.4, §17.2.4).
    /// Client transactions terminate; server transactions stay in their state
    /// (RFC 6026 §8.8).
    TransportError {
        /// The transaction.
        id: TransactionId,
    },
    /// The transaction reached "Terminated" and is gone; its id is dead.
    Terminated {
        /// The transaction.
        id: TransactionId,
    },
    /// A response that matches no client transaction (§17.1.1.2, RFC 6026 §7.2). A UAC
    /// core may see 2xx retransmissions here after Timer M, or a 2xx from another fork
    /// branch; a stateful proxy must not forward it (RFC 6026 §7.3). The table keeps no
    /// state for it, so a flood of strays costs nothing but this event.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        from: Flow,
    },
    /// A message the transaction layer cannot match because a header it needs (Via,
    /// CSeq, Call-ID, From, To) is missing or malformed. A request with a usable Via may
    /// still deserve a stateless 400 from the TU (answer malformed requests, never drop them silently).
    Invalid {
        /// The message (boxed: this rare variant would otherwise double the size of every
        /// event).
        message: Box<Message>,
        /// Where it came from.
        from: Flow,
        /// What is wrong.
        error: TxnError,
    },
}
