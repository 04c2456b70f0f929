//! Which side of the dialog-creating INVITE mss was on.

/// mss's role in the INVITE that created a dialog. The UAC owns the Call-ID, which decides
/// how long it waits before retrying a re-INVITE after a `491` (RFC 3261 §14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogRole {
    /// mss sent the INVITE (a B leg of a call): it owns the Call-ID.
    Uac,
    /// mss received the INVITE (the A leg of a call).
    Uas,
}

impl DialogRole {
    /// True when mss generated the Call-ID of the dialog (it sent the initial INVITE).
    pub fn owns_call_id(self) -> bool {
        matches!(self, DialogRole::Uac)
    }
}
