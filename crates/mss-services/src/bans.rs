//! Bans of password guessers and per-address request rate limits, in memory, sans-IO.
//!
//! What is counted, and why:
//! - **Failed digest answers** ([`AuthWatch::failed`], told by the digest guard): only a
//!   wrong answer to a nonce mss sent to that same address counts (the nonce carries the
//!   address it was sent to, `mss_auth::Origin`). A spoofed UDP source cannot receive
//!   our challenge, so it cannot make failures count against its victim; a made-up or
//!   borrowed nonce is ignored. [`BanSettings::ban_after`] failures within
//!   [`BanSettings::ban_window`] of the first ban the address for
//!   [`BanSettings::ban_time`], twice as long for each further ban within a day.
//! - **An office behind one NAT address**: an address that answered right within the
//!   last hour ([`BanSettings::trust_time`]) counts failures per user instead; at
//!   `ban_after` only that user is blocked there (its answers are challenged again
//!   without being checked), everyone else at the address goes on.
//! - **Request rate** ([`Bans::admit`], every packet before it is parsed): each address
//!   may send [`BanSettings::rate_limit`] requests a second, in bursts of twice as many
//!   (a token bucket, GCRA); more are dropped. `ban_after` seconds over the limit within
//!   `ban_window` ban the address, unless it authenticated within the hour. Responses are
//!   never limited (they answer our own requests).
//! - **Addresses**: an IPv4 address, or an IPv6 /64 ([`SourceKey`]). The
//!   [`BanSettings::ignore`] list (loopback by default) is never limited or banned.
//!
//! Cost and size: [`Bans::admit`] is one hash lookup by address (ahash, randomly seeded)
//! and, for a new address with the rate limit on, one insert; a right answer is one more
//! lookup. At most [`BanSettings::max_sources`] addresses are kept (96 bytes each, plus a
//! hash slot): when full, an eighth of them is forgotten at once, the least worth keeping
//! first (`entry::Worth`: idle addresses a flood of new sources makes, then those being
//! counted, trusted ones, past offenders, and bans last), each class least recently seen
//! first; expired state goes in [`Bans::sweep`]. A trusted address keeps at most
//! [`BanSettings::max_users_per_source`] users.
//!
//! The table tells what it did through [`Bans::poll_event`] (one [`BanEvent`] per ban,
//! whose `Display` is the log line) and [`Bans::list`]; [`Bans::lift`] ends a ban.
//!
//! Files: `bans/source.rs` ([`SourceKey`]), `bans/net.rs` ([`IpNet`]), `bans/settings.rs`,
//! `bans/clock.rs` (ticks and windows), `bans/entry.rs` (one address), `bans/report.rs`
//! (events, the log line, the list), `bans/table.rs` (the bounded map), `bans/tests.rs`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::digest::AuthWatch;
use crate::Now;

mod clock;
mod entry;
mod net;
mod report;
mod settings;
mod source;
mod table;
#[cfg(test)]
mod tests;

use clock::{Clock, Tick};
use entry::{Ban, Counted};
pub use net::{IpNet, IpNetError};
pub use report::{printable_user, BanEvent, BanInfo, BanReason, BanScope};
pub use settings::BanSettings;
pub use source::SourceKey;
use table::Table;

/// What to do with a packet ([`Bans::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it.
    Pass,
    /// Drop it: its address is banned.
    Banned,
    /// Drop it: a request over its address's rate limit.
    RateLimited,
}

/// Counters of the table, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BanCounts {
    /// Addresses banned now.
    pub addresses: usize,
    /// Users blocked at an address now.
    pub users: usize,
    /// Addresses tracked.
    pub tracked: usize,
}

/// The ban table (see the module docs).
#[derive(Debug)]
pub struct Bans {
    settings: BanSettings,
    /// The rate limit's interval between requests and its burst tolerance, in µs.
    interval: u64,
    tolerance: u64,
    clock: Clock,
    table: Table,
    /// Bans issued and not told yet.
    events: VecDeque<BanEvent>,
}

impl Bans {
    /// An empty table with `settings`.
    pub fn new(settings: BanSettings) -> Bans {
        let interval = match settings.rate_limit {
            0 => 0,
            // Whole microseconds: a million requests a second at most.
            rate => (1_000_000 / u64::from(rate)).max(1),
        };
        // Bursts of twice the rate: 2·rate requests at once from a full bucket.
        let burst = u64::from(settings.rate_limit).saturating_mul(2);
        Bans {
            interval,
            tolerance: interval.saturating_mul(burst.saturating_sub(1)),
            settings,
            clock: Clock::default(),
            table: Table::default(),
            events: VecDeque::new(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &BanSettings {
        &self.settings
    }

    /// A packet from `ip` at `now` (a request, or a response to one of ours): whether to
    /// handle it. `exempt` is asked only when a request is over the rate limit; `true`
    /// lets it through uncounted (mss's lines use it for their providers).
    pub fn admit(
        &mut self,
        now: Now,
        ip: IpAddr,
        request: bool,
        exempt: impl FnOnce() -> bool,
    ) -> Admit {
        let t = self.clock.tick(now.mono);
        let key = SourceKey::of(ip);
        if self.interval == 0 || !request {
            // Nothing to count: a lookup only, for the bans.
            return match self.table.sources.get_mut(&key) {
                Some(e) if e.ban_at(t).is_some() => {
                    e.seen = t;
                    Admit::Banned
                }
                _ => Admit::Pass,
            };
        }
        let e = self.table.entry(&self.settings, t, key, ip);
        if e.ban_at(t).is_some() {
            e.seen = t;
            return Admit::Banned;
        }
        e.seen = t;
        if e.ignored {
            return Admit::Pass;
        }
        let tat = e.tat.max(t);
        if tat.since(t) <= Duration::from_micros(self.tolerance) {
            e.tat = Tick::from_micros(tat.micros().saturating_add(self.interval));
            return Admit::Pass;
        }
        if exempt() {
            return Admit::Pass;
        }
        let counted = e.over_rate(t, &self.settings);
        self.after_count(key, counted);
        Admit::RateLimited
    }

    /// The next ban issued since the last call, for the log and the counters.
    pub fn poll_event(&mut self) -> Option<BanEvent> {
        self.events.pop_front()
    }

    /// Whether a ban was issued and not polled yet.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Drops what has expired at `now`: ended bans and blocks, forgotten offences, idle
    /// addresses. Call now and then (the core does with its 5-s sweep).
    pub fn sweep(&mut self, now: Now) {
        let t = self.clock.tick(now.mono);
        let s = &self.settings;
        let mut with_users = 0;
        self.table.sources.retain(|_, e| {
            e.expire(t, s);
            let keep = !e.is_idle(t, s);
            if keep && e.users.is_some() {
                with_users += 1;
            }
            keep
        });
        self.table.with_users = with_users;
    }

    /// Ends every ban and block of the address (or IPv6 /64) of `ip` and forgets it,
    /// offences included. `false` when nothing was banned there.
    pub fn lift(&mut self, now: Now, ip: IpAddr) -> bool {
        let t = self.clock.tick(now.mono);
        let key = SourceKey::of(ip);
        let banned = self
            .table
            .sources
            .get(&key)
            .is_some_and(|e| e.ban_at(t).is_some() || e.has_blocked_user(t));
        if banned {
            self.table.remove(&key);
        }
        banned
    }

    /// Every ban and block in force at `now`, by address then user.
    pub fn list(&mut self, now: Now) -> Vec<BanInfo> {
        let t = self.clock.tick(now.mono);
        let info = |source: SourceKey, scope: BanScope, b: &Ban| BanInfo {
            source,
            scope,
            reason: b.reason,
            user: b.user.as_deref().map(str::to_owned),
            since_unix_ms: now.unix_ms.saturating_add(t.millis_to(b.since)),
            until_unix_ms: now.unix_ms.saturating_add(t.millis_to(b.until)),
            count: b.count,
            offence: b.offence,
        };
        let mut out = Vec::new();
        for (key, e) in &self.table.sources {
            if let Some(b) = e.ban_at(t) {
                out.push(info(*key, BanScope::Address, b));
            }
            for b in e.blocked_users(t) {
                out.push(info(*key, BanScope::User, b));
            }
        }
        out.sort_by(|a, b| (a.source, &a.user).cmp(&(b.source, &b.user)));
        out
    }

    /// Bans in force at `now` and addresses tracked.
    pub fn counts(&mut self, now: Now) -> BanCounts {
        let t = self.clock.tick(now.mono);
        let mut c = BanCounts {
            tracked: self.table.sources.len(),
            ..BanCounts::default()
        };
        for e in self.table.sources.values() {
            c.addresses += usize::from(e.ban_at(t).is_some());
            c.users += e.blocked_users(t).count();
        }
        c
    }

    /// After a count on `key`'s entry: the event of a ban it issued, the users tally.
    fn after_count(&mut self, key: SourceKey, counted: Counted) {
        let Some(e) = self.table.sources.get(&key) else {
            return;
        };
        if let Counted::Banned(scope) = counted {
            let ban = match scope {
                BanScope::Address => e.ban.as_deref(),
                BanScope::User => e
                    .users
                    .as_deref()
                    .into_iter()
                    .flat_map(|u| u.values())
                    .filter_map(|u| u.block.as_ref())
                    .max_by_key(|b| b.since),
            };
            if let Some(b) = ban {
                self.events.push_back(BanEvent {
                    source: key,
                    scope,
                    reason: b.reason,
                    duration: b.until.since(b.since),
                    count: b.count,
                    user: b.user.as_deref().map(str::to_owned),
                    offence: b.offence,
                });
            }
        }
    }
}

impl AuthWatch for Bans {
    fn blocked(&mut self, now: Now, ip: IpAddr, user: &str) -> bool {
        if self.table.with_users == 0 {
            return false;
        }
        let t = self.clock.tick(now.mono);
        self.table
            .sources
            .get(&SourceKey::of(ip))
            .and_then(|e| e.users.as_deref())
            .and_then(|u| u.get(user))
            .is_some_and(|u| u.is_blocked(t))
    }

    fn passed(&mut self, now: Now, ip: IpAddr, user: &str) {
        if self.settings.ban_after == 0 {
            return;
        }
        let t = self.clock.tick(now.mono);
        let e = self.table.entry(&self.settings, t, SourceKey::of(ip), ip);
        if !e.ignored {
            e.passed(t, &self.settings, user);
        }
    }

    fn failed(&mut self, now: Now, ip: IpAddr, user: &str) {
        if self.settings.ban_after == 0 {
            return;
        }
        let t = self.clock.tick(now.mono);
        let key = SourceKey::of(ip);
        let e = self.table.entry(&self.settings, t, key, ip);
        let had_users = e.users.is_some();
        let counted = e.failed(t, &self.settings, user);
        if !had_users && e.users.is_some() {
            self.table.with_users += 1;
        }
        self.after_count(key, counted);
    }
}
