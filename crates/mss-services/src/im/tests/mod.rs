//! Scenario tests of the messaging service in simulated time: no clock, no sockets; the
//! test plays the caller (transactions, store) and checks every output.
//!
//! - `relay.rs`: online recipients;
//! - `offline.rs`: storing and its answers;
//! - `delivery.rs`: delivery rounds;
//! - `durable.rs`: driven against the real SQLite store in a temporary folder;
//! - `limits.rs`: rate limit, sender table, sweeps;
//! - `props.rs`: property tests.
//!
//! This file holds the harness; `fixtures.rs` the builders, which the unit tests of the
//! sub-machines use too.

mod delivery;
mod durable;
pub(super) mod fixtures;
mod limits;
mod offline;
mod props;
mod relay;

use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, HeaderName, Message, Request, StatusCode};
use mss_store::{InsertOutcome, NewMessage};

use super::*;
use crate::Now;
use fixtures::*;

pub(super) struct Harness {
    pub(super) im: Messaging<Txn>,
    pub(super) now: Now,
}

pub(super) fn settings() -> ImSettings {
    ImSettings::new("pbx.example.com")
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with(settings())
    }

    pub(super) fn with(s: ImSettings) -> Harness {
        let now = Now::new(Instant::now(), T0_MS);
        Harness {
            im: Messaging::new(now, s, 7),
            now,
        }
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    pub(super) fn drain(&mut self) -> Vec<ImOutput<Txn>> {
        std::iter::from_fn(|| self.im.poll_output()).collect()
    }

    pub(super) fn message(&mut self, txn: Txn, req: &Request, contacts: Vec<ContactTarget>) {
        let r = Recipient::Local {
            user: "102".into(),
            contacts,
        };
        let sender = Sender::Local { user: "101".into() };
        self.im.handle_message(self.now, txn, req, sender, r);
    }

    /// Sends `req` to an offline 102 and returns the store request.
    pub(super) fn offline(&mut self, txn: Txn, req: &Request) -> (StoreToken, NewMessage, u32) {
        self.message(txn, req, vec![]);
        match one(self.drain()) {
            ImOutput::Store {
                token,
                message,
                limit,
            } => (token, message, limit),
            other => panic!("expected Store, got {other:?}"),
        }
    }
}

/// Plays the contact and the store for one message of a round: expects one Send, answers
/// `code`, and returns the requests sent.
pub(super) fn deliver_one(h: &mut Harness, code: u16) -> Request {
    let s = sends(h.drain());
    assert_eq!(s.len(), 1);
    let (token, req, _) = s.into_iter().next().unwrap();
    h.im.handle_response(h.now, token, &answer(&req, code, "X"));
    req
}

pub(super) fn expect_load(h: &mut Harness) {
    match one(h.drain()) {
        ImOutput::Load { user, now } => assert_eq!((user.as_str(), now), ("102", h.now.unix_ms)),
        other => panic!("expected Load, got {other:?}"),
    }
}
