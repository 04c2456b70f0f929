//! Counters of the messaging service, read by the wiring for `/metrics`.

/// Why MESSAGE requests were refused, one counter per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedStats {
    /// `404`: no such user.
    pub not_found: u64,
    /// `503`: the sender was over its rate.
    pub rate_limited: u64,
    /// `400`/`415`: no body, no or bad Content-Type, an undecodable text body.
    pub bad_body: u64,
    /// `483`: Max-Forwards was exhausted.
    pub too_many_hops: u64,
    /// `413`: too long to store offline.
    pub too_long: u64,
    /// `480 Offline Message Store Full`.
    pub store_full: u64,
    /// `480`: the recipient is offline and the message's own `Expires` has passed.
    pub expired: u64,
    /// `500`: the store failed or did not answer.
    pub store_error: u64,
    /// A failure answered by the recipient's device (e.g. `415`, `486`, `603`), relayed.
    pub by_recipient: u64,
}

impl RefusedStats {
    /// Every counter with a label for `/metrics` (`reason="not_found"` …).
    pub fn by_reason(&self) -> [(&'static str, u64); 9] {
        [
            ("not_found", self.not_found),
            ("rate_limited", self.rate_limited),
            ("bad_body", self.bad_body),
            ("too_many_hops", self.too_many_hops),
            ("too_long", self.too_long),
            ("store_full", self.store_full),
            ("expired", self.expired),
            ("store_error", self.store_error),
            ("by_recipient", self.by_recipient),
        ]
    }

    /// The sum of every reason.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }
}

/// What the messaging service has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImStats {
    /// MESSAGE requests relayed to an online recipient who answered `2xx`.
    pub relayed: u64,
    /// Messages stored offline (answered `202`).
    pub stored: u64,
    /// Stored messages delivered (`2xx` from the recipient, then deleted).
    pub delivered: u64,
    /// Stored messages delivered whose delete found them already gone (deleted by
    /// someone else meanwhile, e.g. an expiry sweep or another node).
    pub delivered_already_gone: u64,
    /// Relayed messages stored because no contact answered within `relay_timeout`, then
    /// accepted by a contact after all (their stored copy is deleted).
    pub delivered_late: u64,
    /// Stored messages that expired undelivered (deleted by an expiry sweep).
    pub expired: u64,
    /// Delivery rounds stopped by a failure (the message and the rest stay stored).
    pub delivery_failures: u64,
    /// Refused MESSAGE requests, by reason.
    pub refused: RefusedStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_add_up() {
        let r = RefusedStats {
            not_found: 1,
            store_full: 2,
            by_recipient: 3,
            ..RefusedStats::default()
        };
        assert_eq!(r.total(), 6);
        assert!(r.by_reason().contains(&("store_full", 2)));
    }
}
