//! The addresses the ban table tracks, bounded: [`Table::entry`] makes room in a full
//! table by forgetting an eighth of it at once, the least worth keeping first
//! ([`Worth`]), each class least recently seen first. One selection over the table per
//! eighth of its size: amortised, a handful of entries looked at per new address, so a
//! flood of new source addresses costs memory up to the cap and no more.

use std::collections::HashMap;
use std::net::IpAddr;

use super::clock::Tick;
use super::entry::{Entry, Worth};
use super::settings::BanSettings;
use super::source::SourceKey;

/// Entries by address, and how many have a per-user table.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) sources: HashMap<SourceKey, Entry, ahash::RandomState>,
    /// Entries with a per-user table: while zero, no answer needs a lookup for a block.
    pub(crate) with_users: usize,
}

impl Table {
    /// The entry of `key` (whose packets come from `ip`), made at `t` if new; a full
    /// table makes room first.
    pub(crate) fn entry(
        &mut self,
        s: &BanSettings,
        t: Tick,
        key: SourceKey,
        ip: IpAddr,
    ) -> &mut Entry {
        // One lookup while there is room (`entry`); a second only when full.
        if self.sources.len() >= s.max_sources.max(1) && !self.sources.contains_key(&key) {
            self.make_room(s, t);
        }
        self.sources
            .entry(key)
            .or_insert_with(|| Entry::new(t, s.ignores(ip)))
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &SourceKey) {
        if let Some(e) = self.sources.remove(key) {
            if e.users.is_some() {
                self.with_users = self.with_users.saturating_sub(1);
            }
        }
    }

    /// Forgets an eighth of a full table (see the module docs).
    fn make_room(&mut self, s: &BanSettings, t: Tick) {
        let max = s.max_sources.max(1);
        let keep = max - (max / 8).max(1);
        let excess = self.sources.len().saturating_sub(keep);
        if excess == 0 {
            return;
        }
        let mut order: Vec<(Worth, Tick, SourceKey)> = self
            .sources
            .iter()
            .map(|(k, e)| (e.worth(t, s), e.seen, *k))
            .collect();
        if excess < order.len() {
            order.select_nth_unstable(excess - 1);
        }
        for (_, _, key) in order.iter().take(excess) {
            self.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    fn at(s: u64) -> Tick {
        Tick::default().plus(Duration::from_secs(s))
    }

    #[test]
    fn a_full_table_forgets_the_idle_before_what_matters() {
        let s = BanSettings {
            max_sources: 16,
            ban_after: 1,
            ..BanSettings::default()
        };
        let mut table = Table::default();
        let ip = |n: u32| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + n));
        let add = |table: &mut Table, n: u32, t: Tick| {
            table.entry(&s, t, SourceKey::of(ip(n)), ip(n));
        };
        // A banned address and a trusted one, seen first (the least recently).
        table
            .entry(&s, at(0), SourceKey::of(ip(0)), ip(0))
            .failed(at(0), &s, "x");
        table
            .entry(&s, at(0), SourceKey::of(ip(1)), ip(1))
            .passed(at(0), &s, "100");
        for n in 2..16 {
            add(&mut table, n, at(u64::from(n)));
        }
        assert_eq!(table.sources.len(), 16);
        // Full: the next one makes room by dropping the two oldest idle ones.
        add(&mut table, 16, at(20));
        assert_eq!(table.sources.len(), 15);
        for kept in [0, 1, 4, 16] {
            assert!(
                table.sources.contains_key(&SourceKey::of(ip(kept))),
                "{kept}"
            );
        }
        for gone in [2, 3] {
            assert!(
                !table.sources.contains_key(&SourceKey::of(ip(gone))),
                "{gone}"
            );
        }
        // Many more: never above the cap, and the ban and the trust stay.
        for n in 17..100_017 {
            add(&mut table, n, at(30));
            assert!(table.sources.len() <= 16);
        }
        assert!(table.sources.contains_key(&SourceKey::of(ip(0))));
        assert!(table.sources.contains_key(&SourceKey::of(ip(1))));
    }
}
