//! What the core asks the driver to do: send bytes, run a store operation or a lookup.

use mss_services::lines::ResolveRequest;
use mss_store::{BindingChange, CallRecord, LineRecord, NewMessage, UnixMillis};
use mss_txn::Transmit;

/// The id of an operation the core started ([`Output::Store`], [`Output::Resolve`]); its
/// result comes back with it ([`crate::Input::Stored`], [`crate::Input::Resolved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// One output of [`crate::Core::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// Send these bytes (a request, a response or a retransmission). When sending fails and
    /// [`Transmit::transaction`] is set, feed [`crate::Input::SendFailed`].
    Transmit(Transmit),
    /// Run this store operation and feed its result back as [`crate::Input::Stored`], in the
    /// order the operations were asked for.
    Store {
        /// Its id.
        id: OpId,
        /// What to do.
        op: StoreOp,
    },
    /// Look up where a line's registrar is (RFC 3263 §4), bounded in time, and feed the
    /// targets back as [`crate::Input::Resolved`] (each with our address towards it).
    Resolve {
        /// Its id.
        id: OpId,
        /// The name, port and transport to look up.
        request: ResolveRequest,
    },
    /// Stop the lookup `id` if it still runs (shutdown); its [`crate::Input::Resolved`]
    /// still comes, with no targets.
    CancelResolve {
        /// The lookup.
        id: OpId,
    },
    /// Give this command to the media relay (`mss_media::io::MediaRelay`); its answers
    /// and events come back as [`crate::Input::Media`], in any order. Only with
    /// [`crate::MediaSettings`] (`[media] relay = always`).
    Media(mss_media::io::Command),
    /// The transaction table shrank after a burst: a good moment to give freed memory back
    /// to the system.
    MemoryReleasable,
}

/// A store operation (`mss_store::Store`'s methods, as data).
#[derive(Debug)]
pub enum StoreOp {
    /// `apply_binding_changes(user, changes)` → [`crate::StoreResult::Done`].
    ApplyBindingChanges {
        /// The user whose bindings change.
        user: String,
        /// The changes, applied in one transaction.
        changes: Vec<BindingChange>,
    },
    /// `delete_expired_bindings(now)` → [`crate::StoreResult::Count`].
    DeleteExpiredBindings {
        /// The time that decides what has expired.
        now: UnixMillis,
    },
    /// `insert_message_if_below(message, limit)` → [`crate::StoreResult::Inserted`].
    InsertMessageIfBelow {
        /// The message.
        message: NewMessage,
        /// The most messages the recipient may have stored.
        limit: u32,
    },
    /// `list_messages(user, now)` → [`crate::StoreResult::Messages`].
    ListMessages {
        /// The recipient.
        user: String,
        /// Messages expired at this time are left out.
        now: UnixMillis,
    },
    /// `delete_message(id)` → [`crate::StoreResult::Deleted`].
    DeleteMessage {
        /// The message.
        id: i64,
    },
    /// `delete_expired_messages(now)` → [`crate::StoreResult::Count`].
    DeleteExpiredMessages {
        /// The time that decides what has expired.
        now: UnixMillis,
    },
    /// `get_line(name)` → [`crate::StoreResult::Line`].
    GetLine {
        /// The line's name.
        name: String,
    },
    /// `put_line(record)` → [`crate::StoreResult::Done`].
    PutLine(LineRecord),
    /// `put_call(record)` → [`crate::StoreResult::Done`]: a call's record at answer and
    /// at its end.
    PutCall(CallRecord),
}
