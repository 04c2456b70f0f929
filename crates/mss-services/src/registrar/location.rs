//! The location service: in memory, user → bindings (RFC 3261 §10). Other services ask it
//! where a user can be reached; the admin API reads a snapshot of it.
//!
//! Memory is written only after the store has committed the same change (the registrar's
//! `complete`), so what is here is always what survives a restart.

use std::collections::HashMap;
use std::time::Instant;

use mss_sip::Flow;
use mss_store::{BindingKey, BindingRecord};

use super::binding::Binding;
use crate::Now;

/// One change to a user's bindings, as applied to memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Add the binding or replace the one with the same key.
    Upsert(Binding),
    /// Remove the binding with this key, if any.
    Remove(BindingKey),
}

/// Where a request to a user can go: one live contact and the flow to send it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactTarget {
    /// The contact URI as registered (the Request-URI of a request to it).
    pub uri: String,
    /// The flow the binding was registered over (RFC 5626 flow reuse).
    pub flow: Flow,
    /// `q` in thousandths, if given.
    pub q_milli: Option<u16>,
    /// `+sip.instance`, if given.
    pub instance: Option<String>,
}

/// One row of `GET /api/registrations` (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationView {
    /// The user.
    pub user: String,
    /// The contact URI.
    pub contact: String,
    /// `UDP`, `TCP`, …
    pub transport: &'static str,
    /// The source address the binding was registered from.
    pub source: String,
    /// Expiry, Unix milliseconds.
    pub expires_at: i64,
    /// The User-Agent of the REGISTER.
    pub user_agent: Option<String>,
}

/// In-memory bindings of every user.
///
/// Keyed by user name with a randomly seeded aHash (keys a peer chose: the seed keeps
/// collisions from being aimed, at a fraction of SipHash's cost); only authenticated users
/// or restored rows ever get an entry.
#[derive(Debug, Default)]
pub struct Location {
    users: HashMap<String, Vec<Binding>, mss_auth::RandomState>,
    /// Number of bindings (live or not yet swept).
    total: usize,
    /// No binding expires before this (a sweep before it has nothing to do).
    earliest: Option<Instant>,
}

impl Location {
    /// An empty location service.
    pub fn new() -> Location {
        Location::default()
    }

    /// Loads stored bindings at start (`Store::load_bindings`); expired or unreadable rows
    /// are skipped. Returns how many were loaded.
    pub fn restore(&mut self, records: &[BindingRecord], now: Now) -> usize {
        let mut n = 0;
        for rec in records {
            if let Some(b) = Binding::from_record(rec, now) {
                self.apply(&rec.user, [Update::Upsert(b)]);
                n += 1;
            }
        }
        n
    }

    /// Every binding of `user`, live or not yet swept.
    pub fn bindings(&self, user: &str) -> &[Binding] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    /// The live bindings of `user` at `now`.
    pub fn live<'a>(&'a self, user: &str, now: Instant) -> impl Iterator<Item = &'a Binding> + 'a {
        self.bindings(user).iter().filter(move |b| b.is_live(now))
    }

    /// Whether `user` has at least one live binding.
    pub fn is_reachable(&self, user: &str, now: Instant) -> bool {
        self.live(user, now).next().is_some()
    }

    /// Where `user` can be reached now, highest `q` first (no `q` counts as 1.0), then
    /// most recently registered first.
    pub fn contacts(&self, user: &str, now: Instant) -> Vec<ContactTarget> {
        let target = |b: &Binding| ContactTarget {
            uri: b.contact.clone(),
            flow: b.flow,
            q_milli: b.q_milli,
            instance: b.instance.clone(),
        };
        // Most users have one live binding: nothing to sort, no list of references.
        let mut live = self.live(user, now);
        let Some(first) = live.next() else {
            return Vec::new();
        };
        let Some(second) = live.next() else {
            return vec![target(first)];
        };
        let mut live: Vec<&Binding> = [first, second].into_iter().chain(live).collect();
        live.sort_by(|a, b| {
            let qa = a.q_milli.unwrap_or(1000);
            let qb = b.q_milli.unwrap_or(1000);
            qb.cmp(&qa)
                .then(b.registered_at_unix_ms.cmp(&a.registered_at_unix_ms))
        });
        live.into_iter().map(target).collect()
    }

    /// Applies committed changes to `user`'s bindings, in order (the new bindings are
    /// moved in, not copied).
    pub fn apply(&mut self, user: &str, updates: impl IntoIterator<Item = Update>) {
        let list = match self.users.get_mut(user) {
            Some(l) => l,
            None => self.users.entry(user.to_owned()).or_default(),
        };
        for u in updates {
            match u {
                Update::Upsert(b) => {
                    self.earliest =
                        Some(self.earliest.map_or(b.expires_at, |e| e.min(b.expires_at)));
                    match list.iter_mut().find(|x| x.key == b.key) {
                        Some(slot) => *slot = b,
                        None => {
                            // Most users have one binding: grow by one, not to the
                            // default first capacity of four (≈ 700 bytes per user).
                            list.reserve_exact(1);
                            list.push(b);
                            self.total += 1;
                        }
                    }
                }
                Update::Remove(key) => {
                    let before = list.len();
                    list.retain(|x| x.key != key);
                    self.total -= before - list.len();
                }
            }
        }
        if list.is_empty() {
            self.users.remove(user);
        }
    }

    /// Removes the bindings expired at `now` and returns them with their users (the caller
    /// deletes them from the store with `delete_expired_bindings`). Cheap when nothing is
    /// due.
    pub fn sweep(&mut self, now: Instant) -> Vec<(String, Binding)> {
        if self.earliest.is_none_or(|e| e > now) {
            return Vec::new();
        }
        let mut removed = Vec::new();
        let mut earliest: Option<Instant> = None;
        self.users.retain(|user, list| {
            list.retain(|b| {
                if b.is_live(now) {
                    earliest = Some(earliest.map_or(b.expires_at, |e| e.min(b.expires_at)));
                    true
                } else {
                    removed.push((user.clone(), b.clone()));
                    false
                }
            });
            !list.is_empty()
        });
        self.total -= removed.len();
        self.earliest = earliest;
        removed
    }

    /// Number of users with at least one binding (live or not yet swept).
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of bindings (live or not yet swept).
    pub fn binding_count(&self) -> usize {
        self.total
    }

    /// Every live binding for the admin API, ordered by user then contact.
    pub fn snapshot(&self, now: Instant) -> Vec<RegistrationView> {
        let mut out: Vec<RegistrationView> = self
            .users
            .iter()
            .flat_map(|(user, list)| {
                list.iter()
                    .filter(|b| b.is_live(now))
                    .map(move |b| RegistrationView {
                        user: user.clone(),
                        contact: b.contact.clone(),
                        transport: b.flow.transport.as_str(),
                        source: b.flow.remote.to_string(),
                        expires_at: b.expires_at_unix_ms,
                        user_agent: b.user_agent.clone(),
                    })
            })
            .collect();
        out.sort_by(|a, b| a.user.cmp(&b.user).then_with(|| a.contact.cmp(&b.contact)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::binding::tests::record;
    use std::time::Duration;

    #[test]
    fn restore_lookup_sweep() {
        let now = Now::new(Instant::now(), 1_000_000);
        let mut a = record("100", "sip:100@192.0.2.7:40000", 1_060_000);
        a.q_milli = Some(200);
        let b = record("100", "sip:100@192.0.2.8", 1_120_000);
        let c = record("101", "sip:101@192.0.2.9", 1_030_000);
        let gone = record("102", "sip:102@192.0.2.9", 999_000);
        let mut loc = Location::new();
        assert_eq!(loc.restore(&[a, b, c, gone], now), 3);
        assert_eq!((loc.user_count(), loc.binding_count()), (2, 3));
        let t = loc.contacts("100", now.mono);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].uri, "sip:100@192.0.2.8");
        assert_eq!(t[1].uri, "sip:100@192.0.2.7:40000");
        assert!(loc.is_reachable("101", now.mono));
        assert!(!loc.is_reachable("102", now.mono));
        // One live binding, and none.
        let one = loc.contacts("101", now.mono);
        assert_eq!(
            one,
            vec![ContactTarget {
                uri: "sip:101@192.0.2.9".into(),
                flow: loc.bindings("101")[0].flow,
                q_milli: Some(500),
                instance: None,
            }]
        );
        assert!(loc.contacts("102", now.mono).is_empty());
        assert!(loc.contacts("nobody", now.mono).is_empty());
        let snap = loc.snapshot(now.mono);
        assert_eq!(snap.len(), 3);
        assert_eq!(snap[0].transport, "TCP");
        assert_eq!(snap[0].source, "192.0.2.7:40000");
        // Nothing due yet.
        assert!(loc.sweep(now.mono).is_empty());
        let later = now.mono + Duration::from_secs(61);
        let removed = loc.sweep(later);
        assert_eq!(removed.len(), 2);
        assert_eq!((loc.user_count(), loc.binding_count()), (1, 1));
        assert!(!loc.is_reachable("101", later));
        assert_eq!(loc.contacts("100", later).len(), 1);
    }

    #[test]
    fn contacts_of_three_are_ordered_by_q_then_recency() {
        let now = Now::new(Instant::now(), 1_000_000);
        let mut loc = Location::new();
        for (uri, q, at) in [
            ("sip:a@h", Some(500), 1),
            ("sip:b@h", None, 2),
            ("sip:c@h", Some(500), 3),
        ] {
            let mut rec = record("100", uri, 1_060_000);
            rec.q_milli = q;
            rec.registered_at = at;
            loc.restore(&[rec], now);
        }
        let uris: Vec<_> = loc
            .contacts("100", now.mono)
            .into_iter()
            .map(|t| t.uri)
            .collect();
        assert_eq!(uris, ["sip:b@h", "sip:c@h", "sip:a@h"]);
    }

    #[test]
    fn apply_upserts_and_removes() {
        let now = Now::new(Instant::now(), 1_000_000);
        let b = Binding::from_record(&record("100", "sip:a@h", 1_060_000), now).unwrap();
        let mut loc = Location::new();
        loc.apply(
            "100",
            [Update::Upsert(b.clone()), Update::Upsert(b.clone())],
        );
        assert_eq!(loc.binding_count(), 1);
        loc.apply("100", [Update::Remove(b.key.clone())]);
        assert_eq!((loc.user_count(), loc.binding_count()), (0, 0));
        assert!(loc.bindings("100").is_empty());
    }
}
