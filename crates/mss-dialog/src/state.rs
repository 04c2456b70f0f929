//! The states of a dialog (RFC 3261 §12, §12.3).

/// Where a dialog is in its life (RFC 3261 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    /// Created by a provisional response with a To tag; a `2xx` confirms it, a non-`2xx` final
    /// response to the INVITE ends it (§12.3, §13.2.2.3).
    Early,
    /// Created or confirmed by a `2xx` (§12.1, §13.2.2.4).
    Confirmed,
    /// Ended: a BYE was sent or received (§15), the INVITE failed, or a request in it was
    /// answered `481`/`408` (§12.2.1.2). It stays in the table until the caller removes it;
    /// until then it still matches ACKs and answers to its last requests.
    Terminated,
}

impl DialogState {
    /// The state's name in lower case (`early`, `confirmed`, `terminated`).
    pub fn as_str(self) -> &'static str {
        match self {
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
        }
    }
}
