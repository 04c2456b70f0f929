//! Counters of the core that `/metrics` shows beside [`mss_admin::Metrics`].

use std::sync::atomic::{AtomicU64, Ordering};

use mss_services::bans::{BanReason, BanScope};

/// Why a packet was dropped before it was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its source address is banned.
    Banned,
    /// A request over its source address's rate limit.
    RateLimit,
}

impl Dropped {
    /// Every cause, in label order.
    pub const ALL: [Dropped; 2] = [Dropped::Banned, Dropped::RateLimit];

    /// The metrics label: `banned` or `rate_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Banned => "banned",
            Dropped::RateLimit => "rate_limit",
        }
    }
}

/// Why a new request was shed (`overload.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// Answered `503`: too many operations in flight.
    Backlog,
    /// Dropped unanswered: far too many operations in flight.
    BacklogDrop,
    /// Answered `503`: the transaction table is full.
    Transactions,
}

impl ShedReason {
    /// Every reason, in label order.
    pub const ALL: [ShedReason; 3] = [
        ShedReason::Backlog,
        ShedReason::BacklogDrop,
        ShedReason::Transactions,
    ];

    /// The metrics label: `backlog`, `backlog_drop` or `transactions`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::Backlog => "backlog",
            ShedReason::BacklogDrop => "backlog_drop",
            ShedReason::Transactions => "transactions",
        }
    }
}

/// The kinds of ban, in label order: `(scope, reason)`.
pub const BAN_KINDS: [(BanScope, BanReason); 3] = [
    (BanScope::Address, BanReason::Auth),
    (BanScope::Address, BanReason::Rate),
    (BanScope::User, BanReason::Auth),
];

/// Counters the core bumps (relaxed atomics: the admin API reads them from another task).
#[derive(Debug, Default)]
pub struct CoreStats {
    stray_responses: AtomicU64,
    stateless_replies: AtomicU64,
    /// Bans issued, by [`BAN_KINDS`].
    bans: [AtomicU64; 3],
    /// Packets dropped before parsing, by [`Dropped::ALL`].
    dropped: [AtomicU64; 2],
    /// Bans in force: addresses, users at an address.
    active_address_bans: AtomicU64,
    active_user_bans: AtomicU64,
    /// Completed transactions ended before Timer J by the caps on their number and bytes.
    transactions_evicted: AtomicU64,
    /// New requests shed, by [`ShedReason::ALL`].
    shed: [AtomicU64; 3],
}

impl CoreStats {
    /// A response that matched no client transaction was dropped.
    pub fn stray_response(&self) {
        self.stray_responses.fetch_add(1, Ordering::Relaxed);
    }

    /// A broken request was answered outside any transaction.
    pub fn stateless_reply(&self) {
        self.stateless_replies.fetch_add(1, Ordering::Relaxed);
    }

    /// Responses dropped because they matched no client transaction.
    pub fn stray_responses(&self) -> u64 {
        self.stray_responses.load(Ordering::Relaxed)
    }

    /// Broken requests answered outside any transaction.
    pub fn stateless_replies(&self) -> u64 {
        self.stateless_replies.load(Ordering::Relaxed)
    }

    /// A ban was issued.
    pub fn ban_issued(&self, scope: BanScope, reason: BanReason) {
        if let Some(c) = BAN_KINDS
            .iter()
            .position(|k| *k == (scope, reason))
            .and_then(|i| self.bans.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bans issued of this kind.
    pub fn bans_issued(&self, scope: BanScope, reason: BanReason) -> u64 {
        BAN_KINDS
            .iter()
            .position(|k| *k == (scope, reason))
            .and_then(|i| self.bans.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// A new request was shed.
    pub fn shed(&self, why: ShedReason) {
        if let Some(c) = self.shed.get(why as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// New requests shed for this reason.
    pub fn shed_count(&self, why: ShedReason) -> u64 {
        self.shed
            .get(why as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// A packet was dropped before parsing.
    pub fn drop_packet(&self, why: Dropped) {
        if let Some(c) = self.dropped.get(why as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Packets dropped before parsing for this cause.
    pub fn dropped(&self, why: Dropped) -> u64 {
        self.dropped
            .get(why as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Sets the bans in force: whole addresses and users at an address.
    pub fn set_active_bans(&self, addresses: usize, users: usize) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.active_address_bans
            .store(n(addresses), Ordering::Relaxed);
        self.active_user_bans.store(n(users), Ordering::Relaxed);
    }

    /// Sets how many completed transactions the caps on their number and bytes ended early
    /// so far (a flood, or more registrations than the budget holds for Timer J).
    pub fn set_transactions_evicted(&self, n: u64) {
        self.transactions_evicted.store(n, Ordering::Relaxed);
    }

    /// Completed transactions ended early by the caps on their number and bytes.
    pub fn transactions_evicted(&self) -> u64 {
        self.transactions_evicted.load(Ordering::Relaxed)
    }

    /// Bans in force, by scope.
    pub fn active_bans(&self, scope: BanScope) -> u64 {
        match scope {
            BanScope::Address => self.active_address_bans.load(Ordering::Relaxed),
            BanScope::User => self.active_user_bans.load(Ordering::Relaxed),
        }
    }
}
