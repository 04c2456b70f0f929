//! What the ban table keeps per address ([`Entry`]) and, at an address that authenticated
//! recently, per user ([`UserEntry`]), with the decisions that touch one entry only: count a
//! failure or a second over the rate, ban, expire, and how much an entry is worth keeping
//! when the table is full.

use std::collections::HashMap;
use std::time::Duration;

use super::clock::{Tick, Window};
use super::report::{BanReason, BanScope};
use super::settings::BanSettings;

/// A ban in force (of an address, or of a user at an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ban {
    pub(crate) since: Tick,
    pub(crate) until: Tick,
    pub(crate) reason: BanReason,
    /// Failures, or seconds over the rate, that led to it.
    pub(crate) count: u32,
    /// The user of the last failed answer.
    pub(crate) user: Option<Box<str>>,
    pub(crate) offence: u8,
}

/// What a count decided: nothing, or a ban of this scope (the entry holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Below the threshold.
    Nothing,
    /// The address or the user at it is banned now.
    Banned(BanScope),
}

/// The failures of one user at a trusted address.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserEntry {
    pub(crate) seen: Tick,
    pub(crate) failures: Window,
    pub(crate) block: Option<Ban>,
    pub(crate) offences: u8,
    pub(crate) forget_offences_at: Tick,
}

impl UserEntry {
    /// Whether the user is blocked at `t`.
    pub(crate) fn is_blocked(&self, t: Tick) -> bool {
        self.block.as_ref().is_some_and(|b| b.until > t)
    }

    /// Nothing left to remember at `t`.
    fn is_idle(&self, t: Tick, s: &BanSettings) -> bool {
        !self.is_blocked(t) && !self.failures.is_open(t, s.ban_window) && self.offences == 0
    }
}

/// Users at one address, by name.
pub(crate) type Users = HashMap<Box<str>, UserEntry, ahash::RandomState>;

/// What the table keeps about one address (96 bytes; a ban and the per-user table are
/// boxed because few entries have them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    /// The last packet or answer from it: the least recently seen are forgotten first.
    pub(crate) seen: Tick,
    /// The request rate limit's theoretical arrival time (GCRA: a token bucket kept as
    /// one instant; at or before now the bucket is full).
    pub(crate) tat: Tick,
    /// Failed digest answers while not trusted.
    pub(crate) failures: Window,
    /// Seconds over the rate limit.
    pub(crate) strikes: Window,
    /// The last second over the rate limit that counted.
    pub(crate) last_strike: Tick,
    /// A right answer until `trust_time` before this: failures count per user.
    pub(crate) trusted_until: Tick,
    /// Bans so far, for the doubling; forgotten at `forget_offences_at`.
    pub(crate) offences: u8,
    pub(crate) forget_offences_at: Tick,
    /// On the ignore list: never limited, counted or banned.
    pub(crate) ignored: bool,
    pub(crate) ban: Option<Box<Ban>>,
    pub(crate) users: Option<Box<Users>>,
}

/// How much an entry is worth keeping when the table is full: the lowest go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Worth {
    /// Nothing to remember but a rate bucket (what a flood of new addresses makes).
    Idle,
    /// Failures or seconds over the rate being counted.
    Counting,
    /// Authenticated within `trust_time`.
    Trusted,
    /// Banned before (the doubling).
    Offender,
    /// Banned now.
    Banned,
}

impl Entry {
    /// A new entry for an address seen at `t`.
    pub(crate) fn new(t: Tick, ignored: bool) -> Entry {
        Entry {
            seen: t,
            ignored,
            ..Entry::default()
        }
    }

    /// The ban in force at `t`, if any.
    pub(crate) fn ban_at(&self, t: Tick) -> Option<&Ban> {
        self.ban.as_deref().filter(|b| b.until > t)
    }

    /// Whether the address authenticated within `trust_time` before `t`.
    pub(crate) fn is_trusted(&self, t: Tick) -> bool {
        self.trusted_until > t
    }

    /// How much this entry is worth keeping at `t`.
    pub(crate) fn worth(&self, t: Tick, s: &BanSettings) -> Worth {
        if self.ban_at(t).is_some() || self.has_blocked_user(t) {
            Worth::Banned
        } else if self.offences > 0 {
            Worth::Offender
        } else if self.is_trusted(t) {
            Worth::Trusted
        } else if self.failures.is_open(t, s.ban_window)
            || self.strikes.is_open(t, s.ban_window)
            || self.users.is_some()
        {
            Worth::Counting
        } else {
            Worth::Idle
        }
    }

    /// Whether a user at this address is blocked at `t`.
    pub(crate) fn has_blocked_user(&self, t: Tick) -> bool {
        self.users
            .as_deref()
            .is_some_and(|u| u.values().any(|e| e.is_blocked(t)))
    }

    /// A right answer by `user` at `t`: trusted for `trust_time`, the failures of the
    /// address and of that user forgotten.
    pub(crate) fn passed(&mut self, t: Tick, s: &BanSettings, user: &str) {
        self.seen = t;
        self.trusted_until = t.plus(s.trust_time);
        self.failures.reset();
        if let Some(u) = self.users.as_deref_mut().and_then(|u| u.get_mut(user)) {
            u.failures.reset();
        }
    }

    /// A failed answer by `user` at `t`: counted for the user when the address is
    /// trusted, else for the address; at `ban_after` the user or the address is banned.
    pub(crate) fn failed(&mut self, t: Tick, s: &BanSettings, user: &str) -> Counted {
        self.seen = t;
        if self.ignored || s.ban_after == 0 || self.ban_at(t).is_some() {
            return Counted::Nothing;
        }
        if self.is_trusted(t) {
            return self.user_failed(t, s, user);
        }
        let n = self.failures.add(t, s.ban_window);
        if n < s.ban_after {
            return Counted::Nothing;
        }
        self.failures.reset();
        self.ban(t, s, BanReason::Auth, n, Some(user));
        Counted::Banned(BanScope::Address)
    }

    /// A request at `t` that found the rate bucket empty: one strike per second over the
    /// rate; at `ban_after` strikes the address is banned, unless it is trusted.
    pub(crate) fn over_rate(&mut self, t: Tick, s: &BanSettings) -> Counted {
        if s.ban_after == 0 || self.ban_at(t).is_some() {
            return Counted::Nothing;
        }
        if self.strikes.is_open(t, s.ban_window)
            && t < self.last_strike.plus(Duration::from_secs(1))
        {
            return Counted::Nothing;
        }
        self.last_strike = t;
        let n = self.strikes.add(t, s.ban_window);
        if n < s.ban_after || self.is_trusted(t) {
            return Counted::Nothing;
        }
        self.strikes.reset();
        self.ban(t, s, BanReason::Rate, n, None);
        Counted::Banned(BanScope::Address)
    }

    /// Bans the address at `t`: the next offence, doubled from the last one.
    fn ban(&mut self, t: Tick, s: &BanSettings, reason: BanReason, count: u32, user: Option<&str>) {
        self.offences = self.offences.saturating_add(1);
        let until = t.plus(s.ban_duration(self.offences));
        self.forget_offences_at = until.plus(s.offence_memory);
        self.ban = Some(Box::new(Ban {
            since: t,
            until,
            reason,
            count,
            user: user.map(Box::from),
            offence: self.offences,
        }));
    }

    fn user_failed(&mut self, t: Tick, s: &BanSettings, user: &str) -> Counted {
        let users = self.users.get_or_insert_with(Box::default);
        if !users.contains_key(user) && users.len() >= s.max_users_per_source.max(1) {
            make_room(users, t);
        }
        let u = users.entry(Box::from(user)).or_default();
        u.seen = t;
        if u.is_blocked(t) {
            return Counted::Nothing;
        }
        let n = u.failures.add(t, s.ban_window);
        if n < s.ban_after {
            return Counted::Nothing;
        }
        u.failures.reset();
        u.offences = u.offences.saturating_add(1);
        let until = t.plus(s.ban_duration(u.offences));
        u.forget_offences_at = until.plus(s.offence_memory);
        u.block = Some(Ban {
            since: t,
            until,
            reason: BanReason::Auth,
            count: n,
            user: Some(Box::from(user)),
            offence: u.offences,
        });
        Counted::Banned(BanScope::User)
    }

    /// Drops what has expired at `t`: the ban, forgotten offences, idle users. Returns
    /// `(address ban ended, user blocks ended)`.
    pub(crate) fn expire(&mut self, t: Tick, s: &BanSettings) -> (bool, usize) {
        let ended = self.ban.as_ref().is_some_and(|b| b.until <= t);
        if ended {
            self.ban = None;
        }
        if self.offences > 0 && t >= self.forget_offences_at {
            self.offences = 0;
        }
        let mut unblocked = 0;
        if let Some(users) = self.users.as_deref_mut() {
            for u in users.values_mut() {
                if u.block.as_ref().is_some_and(|b| b.until <= t) {
                    u.block = None;
                    unblocked += 1;
                }
                if u.offences > 0 && t >= u.forget_offences_at {
                    u.offences = 0;
                }
            }
            users.retain(|_, u| !u.is_idle(t, s));
        }
        if self.users.as_ref().is_some_and(|u| u.is_empty()) {
            self.users = None;
        }
        (ended, unblocked)
    }

    /// Nothing left to remember at `t` (after [`Entry::expire`]): the entry can go.
    pub(crate) fn is_idle(&self, t: Tick, s: &BanSettings) -> bool {
        self.ban.is_none()
            && self.users.is_none()
            && self.offences == 0
            && !self.is_trusted(t)
            && !self.failures.is_open(t, s.ban_window)
            && !self.strikes.is_open(t, s.ban_window)
            && self.tat <= t
    }

    /// Blocks of users in force at `t`.
    pub(crate) fn blocked_users(&self, t: Tick) -> impl Iterator<Item = &Ban> {
        self.users
            .as_deref()
            .into_iter()
            .flat_map(|u| u.values())
            .filter_map(move |u| u.block.as_ref().filter(|b| b.until > t))
    }
}

/// Forgets one user of a full per-address table: the least recently seen that is not
/// blocked, or the block that ends first when all are.
fn make_room(users: &mut Users, t: Tick) {
    let victim = users
        .iter()
        .min_by_key(|(_, u)| match &u.block {
            Some(b) if b.until > t => (1, b.until),
            _ => (0, u.seen),
        })
        .map(|(k, _)| k.clone());
    if let Some(k) = victim {
        users.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Tick {
        Tick::default().plus(Duration::from_secs(s))
    }

    #[test]
    fn entries_stay_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 96,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn a_full_user_table_forgets_the_idle_first() {
        let s = BanSettings {
            max_users_per_source: 2,
            ban_after: 2,
            ..BanSettings::default()
        };
        let mut e = Entry::new(at(0), false);
        e.passed(at(0), &s, "100");
        assert_eq!(e.failed(at(1), &s, "a"), Counted::Nothing);
        assert_eq!(e.failed(at(2), &s, "a"), Counted::Banned(BanScope::User));
        assert_eq!(e.failed(at(3), &s, "b"), Counted::Nothing);
        // A third user: `b` (not blocked) makes room, `a` stays blocked.
        assert_eq!(e.failed(at(4), &s, "c"), Counted::Nothing);
        let users = e.users.as_deref().unwrap();
        assert!(users.contains_key("a") && users.contains_key("c"));
        assert!(!users.contains_key("b"));
        assert_eq!(e.blocked_users(at(5)).count(), 1);
        assert_eq!(e.worth(at(5), &s), Worth::Banned);
    }
}
