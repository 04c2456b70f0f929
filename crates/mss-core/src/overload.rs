//! Shedding load beyond capacity: when the work the core has started and not finished
//! passes a limit, new requests that would create state are refused at once instead of
//! queued ([`OverloadLimits`], [`Shed`]).
//!
//! The backlog is the core's operations in flight (store writes and reads, lookups:
//! [`Core`]'s `ops`). Every accepted REGISTER waits for its store write with its
//! transaction, its parsed request and its pending binding; when requests arrive faster
//! than the store commits them, that backlog — and the memory behind it, in the core, in
//! the worker's list of store calls and in the store's queue — would grow for as long as
//! the load lasts. Past [`OverloadLimits::shed_backlog`], a new request that would create
//! state gets a `503 Service Unavailable` with `Retry-After` (RFC 3261 §21.5.4: "the
//! server is temporarily unable to process the request due to a temporary overloading"),
//! sent statelessly: no transaction is kept for it. Past
//! [`OverloadLimits::drop_backlog`] such requests are dropped without an answer (the
//! answer costs too; a client retransmits, RFC 3261 §17.1.2.2). The same `503` answers a
//! new request when the transaction table holds [`OverloadLimits::max_transactions`] live
//! transactions. The compact Completed ones that only wait out Timer J do not count: the
//! transaction layer bounds them itself and ends the oldest early when over its budget,
//! so they never need a request refused. Counting them capped a steady call rate at about
//! 2,600/s (each call's BYE waits out Timer J for 32 s beside its two answered INVITEs),
//! and a benchmark's 5-s probes refused calls for the state its earlier probes left.
//! Nor do the INVITE transactions in Accepted (RFC 6026), which only wait out Timer L or M
//! for 32 s after the 2xx: each belongs to an answered call (its caller authenticated and
//! admitted, `max_calls` counted), so a flood cannot make them, and counting them refused
//! calls at any steady rate above ~3,900/s once it had lasted 32 s (at 5,600 calls/s
//! held, after 19.8 s).
//!
//! Never shed: retransmissions of a transaction the core knows (its transaction layer
//! absorbs them and re-sends the last response), `ACK` and `CANCEL`, requests within a
//! dialog (a To tag: `BYE` and the like free state), and responses (they answer our own
//! requests and end client transactions). Checking the backlog is one comparison per
//! request; only past the limit does the core look the transaction up first.

use mss_sip::{Flow, HeaderName, Method, Request, RequestCore, StatusCode};
use mss_txn::TransactionKey;

use crate::core::Core;
use crate::stats::ShedReason;

/// When the core sheds new requests (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadLimits {
    /// Operations in flight from which new state-creating requests get `503`; 0 turns
    /// shedding off.
    pub shed_backlog: usize,
    /// Operations in flight from which new state-creating requests are dropped
    /// unanswered (at least `shed_backlog`).
    pub drop_backlog: usize,
    /// Live transactions (compact Completed ones and INVITEs in Accepted not counted)
    /// from which new state-creating requests get `503`; 0: no such limit.
    pub max_transactions: usize,
    /// The `Retry-After` of the `503`, seconds.
    pub retry_after_secs: u32,
}

impl Default for OverloadLimits {
    /// 2,000 operations in flight (a store that fell ~100 ms behind at 20,000
    /// registrations/s; a healthy one has a few dozen), dropping from 8,000; 250,000
    /// transactions (the completed ones are capped at 200,000 by the transaction layer);
    /// `Retry-After: 5`.
    fn default() -> OverloadLimits {
        OverloadLimits {
            shed_backlog: 2_000,
            drop_backlog: 8_000,
            max_transactions: 250_000,
            retry_after_secs: 5,
        }
    }
}

/// What to do with a new request that would create state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Handle it.
    No,
    /// Answer `503` + `Retry-After` statelessly, for this reason.
    Reject(ShedReason),
    /// Drop it unanswered.
    Drop,
}

impl OverloadLimits {
    /// The verdict for a new request with `backlog` operations in flight and
    /// `transactions` live ones in the table.
    pub fn verdict(&self, backlog: usize, transactions: usize) -> Shed {
        if self.shed_backlog > 0 && backlog >= self.shed_backlog {
            if backlog >= self.drop_backlog.max(self.shed_backlog) {
                return Shed::Drop;
            }
            return Shed::Reject(ShedReason::Backlog);
        }
        if self.max_transactions > 0 && transactions >= self.max_transactions {
            return Shed::Reject(ShedReason::Transactions);
        }
        Shed::No
    }
}

/// Whether `req` would create state if handled: any request but `ACK` and `CANCEL` that
/// is not within a dialog (no To tag; a REGISTER always counts).
pub fn creates_state(req: &Request, checked: &RequestCore<'_>) -> bool {
    match req.method() {
        Method::Ack | Method::Cancel => false,
        Method::Register => true,
        _ => checked.core.to.tag().is_none_or(|t| t.is_empty()),
    }
}

impl Core {
    /// Sets the limits past which new requests are shed.
    pub fn set_overload_limits(&mut self, limits: OverloadLimits) {
        self.overload = limits;
    }

    /// Sets the bytes the completed non-INVITE transactions that wait out Timer J may take
    /// ([`mss_txn::Config::completed_budget`]; `[server] completed_transactions_mb`):
    /// beyond it the oldest completed REGISTERs end early (their retransmissions are
    /// absorbed until Timer J).
    pub fn set_completed_budget(&mut self, bytes: usize) {
        self.txns.set_completed_budget(bytes);
    }

    /// Operations in flight (store calls and lookups): the backlog shedding looks at.
    pub fn backlog(&self) -> usize {
        self.ops.len()
    }

    /// Whether the checked request `req` from `from`, with transaction key `key`, is shed
    /// (answered `503` or dropped, and counted); `false` when it goes on as usual.
    pub(crate) fn shed_request(
        &mut self,
        req: &Request,
        checked: &RequestCore<'_>,
        key: &TransactionKey,
        from: Flow,
    ) -> bool {
        let live = self
            .txns
            .len()
            .saturating_sub(self.txns.completed_len())
            .saturating_sub(self.txns.accepted_len());
        let verdict = self.overload.verdict(self.ops.len(), live);
        if verdict == Shed::No
            || !creates_state(req, checked)
            || self.txns.find_server(key).is_some()
        {
            return false;
        }
        match verdict {
            Shed::No => false,
            Shed::Drop => {
                self.stats.shed(ShedReason::BacklogDrop);
                true
            }
            Shed::Reject(reason) => {
                self.stats.shed(reason);
                let mut rsp = self.answer.response(
                    req,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                );
                rsp.headers_mut().push(
                    HeaderName::RetryAfter,
                    self.overload.retry_after_secs.to_string(),
                );
                let local = self.arrival;
                self.send_stateless(&rsp, from, local);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_limits_nothing_is_shed() {
        let l = OverloadLimits::default();
        assert_eq!(l.verdict(0, 0), Shed::No);
        assert_eq!(l.verdict(1_999, 249_999), Shed::No);
    }

    #[test]
    fn the_backlog_first_rejects_then_drops() {
        let l = OverloadLimits::default();
        assert_eq!(l.verdict(2_000, 0), Shed::Reject(ShedReason::Backlog));
        assert_eq!(l.verdict(7_999, 0), Shed::Reject(ShedReason::Backlog));
        assert_eq!(l.verdict(8_000, 0), Shed::Drop);
        assert_eq!(l.verdict(usize::MAX, usize::MAX), Shed::Drop);
    }

    #[test]
    fn a_full_transaction_table_rejects() {
        let l = OverloadLimits::default();
        assert_eq!(
            l.verdict(0, 250_000),
            Shed::Reject(ShedReason::Transactions)
        );
    }

    #[test]
    fn zero_turns_each_limit_off() {
        let l = OverloadLimits {
            shed_backlog: 0,
            drop_backlog: 0,
            max_transactions: 0,
            retry_after_secs: 5,
        };
        assert_eq!(l.verdict(usize::MAX, usize::MAX), Shed::No);
        // A drop limit below the shed limit counts as the shed limit.
        let l = OverloadLimits {
            shed_backlog: 10,
            drop_backlog: 5,
            max_transactions: 0,
            retry_after_secs: 5,
        };
        assert_eq!(l.verdict(9, 0), Shed::No);
        assert_eq!(l.verdict(10, 0), Shed::Drop);
    }

    fn request(text: &str) -> Request {
        match mss_sip::framing::parse_datagram(bytes::Bytes::from(text.to_owned())) {
            Ok(mss_sip::Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn req(method: &str, to_tag: bool) -> Request {
        let tag = if to_tag { ";tag=t1" } else { "" };
        request(&format!(
            "{method} sip:101@mss.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\n\
             From: <sip:100@mss.test>;tag=f1\r\nTo: <sip:101@mss.test>{tag}\r\n\
             Call-ID: c1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn which_requests_create_state() {
        for (method, tag, creates) in [
            ("REGISTER", false, true),
            ("REGISTER", true, true),
            ("INVITE", false, true),
            ("MESSAGE", false, true),
            ("OPTIONS", false, true),
            ("INVITE", true, false),
            ("BYE", true, false),
            ("ACK", false, false),
            ("CANCEL", false, false),
        ] {
            let r = req(method, tag);
            let checked = r.check().expect("a valid request");
            assert_eq!(creates_state(&r, &checked), creates, "{method} tag={tag}");
        }
    }
}
