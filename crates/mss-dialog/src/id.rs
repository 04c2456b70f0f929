//! The identifier of a dialog (RFC 3261 §12): Call-ID, local tag, remote tag.

use std::fmt;

/// What tells one dialog from every other (RFC 3261 §12): the Call-ID and the two tags, seen
/// from mss's side.
///
/// For a dialog in which mss is the UAS of the dialog-creating INVITE, the local tag is the
/// To tag of its responses and the remote tag the From tag of the INVITE; as UAC it is the
/// other way round. In a request received within the dialog, the local tag is the To tag and
/// the remote tag the From tag (§12.2.2). Call-ID and tags are compared byte for byte.
///
/// A peer that follows RFC 2543 may leave its tag out: the remote tag is then empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// The Call-ID of every message of the dialog.
    pub call_id: String,
    /// The tag mss chose.
    pub local_tag: String,
    /// The tag the peer chose (empty when it sent none).
    pub remote_tag: String,
}

impl DialogId {
    /// A dialog id from its three parts.
    pub fn new(
        call_id: impl Into<String>,
        local_tag: impl Into<String>,
        remote_tag: impl Into<String>,
    ) -> DialogId {
        DialogId {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
            remote_tag: remote_tag.into(),
        }
    }

    /// True when this is the dialog of `call_id`, `local_tag` and `remote_tag`.
    pub fn is(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> bool {
        self.call_id == call_id && self.local_tag == local_tag && self.remote_tag == remote_tag
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};local-tag={};remote-tag={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}
