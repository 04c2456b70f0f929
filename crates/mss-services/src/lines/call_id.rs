//! The Call-ID policy of a line (DESIGN §2 `call_id`, `gVarSipRegSameDialog`).
//!
//! RFC 3261 §10.2: a UA SHOULD use the same Call-ID for all registrations to one registrar and
//! MUST increment the CSeq by one for each REGISTER with that Call-ID; a registrar drops a
//! request whose CSeq is not higher than the last one it saw for the Call-ID (§10.3 step 7).
//! Some provider registrars instead reject every re-REGISTER on the same Call-ID (classically
//! `400 Bad Request` + `P-Registrar-Error: Invalid CSeq number`) and only accept fresh
//! Call-IDs. `auto` detects that answer and switches the line to fresh Call-IDs.

use rand::RngCore;

use mss_store::LineRecord;

use crate::lines::settings::CallIdMode;
use crate::lines::state::CallIdInUse;

/// RFC 3261 §8.1.1.5: the CSeq sequence number MUST be less than 2^31.
const CSEQ_LIMIT: u32 = 1 << 31;

/// Whether a reason phrase or `P-Registrar-Error` text speaks of the CSeq or of request
/// ordering (case-insensitive `cseq`, `order`, `sequence`): the registrar dislikes our
/// same-Call-ID REGISTER.
pub fn is_cseq_complaint(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["cseq", "order", "sequence"]
        .iter()
        .any(|w| lower.contains(w))
}

/// The identifiers of one REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegisterIds {
    pub(crate) call_id: String,
    pub(crate) from_tag: String,
    pub(crate) cseq: u32,
}

/// The Call-ID, From tag and CSeq a line uses, and whether they stay or change per REGISTER.
#[derive(Debug, Clone)]
pub(crate) struct CallIdPolicy {
    configured: CallIdMode,
    fresh: bool,
    call_id: String,
    from_tag: String,
    last_cseq: u32,
}

impl CallIdPolicy {
    /// The policy at start. A stored record of the same line continues its Call-ID and From
    /// tag, and its CSeq goes on above the last one sent (so a restart never reuses a CSeq the
    /// registrar has seen, RFC 3261 §10.3 step 7). An `auto` line whose record says it had
    /// switched to fresh Call-IDs (`auto_fresh`) starts switched: the registrar's complaint is
    /// not provoked again at every restart. The record never changes a `same` or `fresh`
    /// line, nor makes an `auto` line anything but `auto`.
    pub(crate) fn new(
        name: &str,
        mode: CallIdMode,
        persisted: Option<&LineRecord>,
        rng: &mut dyn RngCore,
    ) -> CallIdPolicy {
        let ours = persisted.filter(|r| r.name == name);
        let switched = ours
            .is_some_and(|r| r.call_id_mode.as_deref() == Some(CallIdInUse::AUTO_FRESH.as_str()));
        let fresh = match mode {
            CallIdMode::Auto => switched,
            CallIdMode::Same => false,
            CallIdMode::Fresh => true,
        };
        let usable = ours.filter(|r| {
            !r.call_id.is_empty() && !r.from_tag.is_empty() && r.last_cseq < CSEQ_LIMIT
        });
        match usable {
            Some(r) => CallIdPolicy {
                configured: mode,
                fresh,
                call_id: r.call_id.clone(),
                from_tag: r.from_tag.clone(),
                last_cseq: r.last_cseq,
            },
            None => CallIdPolicy {
                configured: mode,
                fresh,
                call_id: new_call_id(rng),
                from_tag: new_tag(rng),
                last_cseq: 0,
            },
        }
    }

    /// The identifiers of the next REGISTER: in fresh mode a new Call-ID and From tag each
    /// time; the CSeq always one more than the last (restarting at 1 on a new Call-ID when
    /// it would reach 2^31).
    pub(crate) fn next(&mut self, rng: &mut dyn RngCore) -> RegisterIds {
        if self.fresh || self.last_cseq.saturating_add(1) >= CSEQ_LIMIT {
            self.call_id = new_call_id(rng);
            self.from_tag = new_tag(rng);
        }
        if self.last_cseq.saturating_add(1) >= CSEQ_LIMIT {
            self.last_cseq = 0;
        }
        self.last_cseq += 1;
        RegisterIds {
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone(),
            cseq: self.last_cseq,
        }
    }

    /// Switches an `auto` line to fresh Call-IDs; true when it did (only once, only `auto`).
    pub(crate) fn switch_to_fresh(&mut self) -> bool {
        if self.configured == CallIdMode::Auto && !self.fresh {
            self.fresh = true;
            true
        } else {
            false
        }
    }

    /// The configured mode.
    pub(crate) fn configured(&self) -> CallIdMode {
        self.configured
    }

    /// For the log at start: an `auto` line that took its switch to fresh Call-IDs over
    /// from the stored record (so before its first REGISTER) says so, and how to pin it.
    pub(crate) fn restored_note(&self, name: &str) -> Option<String> {
        (self.in_use() == CallIdInUse::AUTO_FRESH).then(|| {
            format!(
                "line {name} keeps a fresh Call-ID per REGISTER, as its registrar demanded \
                 before the restart (call_id = auto); to go back to one Call-ID, set \
                 call_id = same in [line:{name}] of mss.ini, to pin the fresh Call-IDs, \
                 call_id = fresh"
            )
        })
    }

    /// The policy in use, for the status.
    pub(crate) fn in_use(&self) -> CallIdInUse {
        CallIdInUse {
            configured: self.configured,
            fresh: self.fresh,
        }
    }

    /// The row to store for line `name`.
    pub(crate) fn record(&self, name: &str, unix_ms: i64) -> LineRecord {
        LineRecord {
            name: name.to_owned(),
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone(),
            last_cseq: self.last_cseq,
            updated_at: unix_ms,
            call_id_mode: Some(self.in_use().as_str().to_owned()),
        }
    }
}

fn random_hex(rng: &mut dyn RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Call-ID: 128 random bits (RFC 3261 §8.1.1.4: globally unique over space and time). No
/// host part, so that no local address leaks.
pub(crate) fn new_call_id(rng: &mut dyn RngCore) -> String {
    random_hex(rng, 16)
}

/// A From tag: 64 random bits (RFC 3261 §19.3 asks for at least 32).
pub(crate) fn new_tag(rng: &mut dyn RngCore) -> String {
    random_hex(rng, 8)
}

/// A Via branch: the RFC 3261 magic cookie and 96 random bits (§8.1.1.7).
pub(crate) fn new_branch(rng: &mut dyn RngCore) -> String {
    format!("z9hG4bK{}", random_hex(rng, 12))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rec(name: &str, cseq: u32) -> LineRecord {
        LineRecord {
            name: name.into(),
            call_id: "abc".into(),
            from_tag: "t1".into(),
            last_cseq: cseq,
            updated_at: 0,
            call_id_mode: None,
        }
    }

    fn switched(name: &str, cseq: u32) -> LineRecord {
        LineRecord {
            call_id_mode: Some("auto_fresh".into()),
            ..rec(name, cseq)
        }
    }

    #[test]
    fn detects_cseq_complaints() {
        assert!(is_cseq_complaint("Invalid CSeq number"));
        assert!(is_cseq_complaint("Out of ORDER"));
        assert!(is_cseq_complaint("bad sequence"));
        assert!(!is_cseq_complaint("Bad Request"));
    }

    #[test]
    fn same_keeps_call_id_and_counts_up() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut p = CallIdPolicy::new("p1", CallIdMode::Same, None, &mut rng);
        let a = p.next(&mut rng);
        let b = p.next(&mut rng);
        assert_eq!((a.cseq, b.cseq), (1, 2));
        assert_eq!(a.call_id, b.call_id);
        assert_eq!(a.from_tag, b.from_tag);
        assert!(!p.switch_to_fresh());
        assert_eq!(p.record("p1", 5).last_cseq, 2);
    }

    #[test]
    fn persisted_record_continues_above_last_cseq() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut p = CallIdPolicy::new("p1", CallIdMode::Auto, Some(&rec("p1", 41)), &mut rng);
        let a = p.next(&mut rng);
        assert_eq!(
            (a.call_id.as_str(), a.from_tag.as_str(), a.cseq),
            ("abc", "t1", 42)
        );
        // Another line's record is not used.
        let mut q = CallIdPolicy::new("p2", CallIdMode::Auto, Some(&rec("p1", 41)), &mut rng);
        assert_eq!(q.next(&mut rng).cseq, 1);
    }

    #[test]
    fn fresh_changes_every_time_and_auto_switches_once() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut p = CallIdPolicy::new("p1", CallIdMode::Auto, None, &mut rng);
        let a = p.next(&mut rng);
        assert!(p.switch_to_fresh());
        assert!(!p.switch_to_fresh());
        assert_eq!(p.in_use().as_str(), "auto_fresh");
        assert_eq!(
            p.record("p1", 0).call_id_mode.as_deref(),
            Some("auto_fresh")
        );
        let b = p.next(&mut rng);
        let c = p.next(&mut rng);
        assert_ne!(a.call_id, b.call_id);
        assert_ne!(b.call_id, c.call_id);
        assert_ne!(b.from_tag, c.from_tag);
        assert!(c.cseq > b.cseq);
    }

    #[test]
    fn auto_takes_the_stored_switch_over_and_nothing_else_does() {
        let mut rng = StdRng::seed_from_u64(1);
        let fresh_call_ids = |p: &mut CallIdPolicy, rng: &mut StdRng| {
            let a = p.next(rng);
            let b = p.next(rng);
            assert!(b.cseq > a.cseq);
            a.call_id != b.call_id && a.call_id != "abc"
        };
        // auto + a stored auto_fresh: switched from the first REGISTER on.
        let mut p = CallIdPolicy::new("p1", CallIdMode::Auto, Some(&switched("p1", 9)), &mut rng);
        assert_eq!(p.in_use().as_str(), "auto_fresh");
        assert_eq!(p.configured(), CallIdMode::Auto);
        assert!(p.restored_note("p1").unwrap().contains("call_id = fresh"));
        assert!(!p.switch_to_fresh(), "already switched");
        assert!(fresh_call_ids(&mut p, &mut rng));
        assert_eq!(
            p.record("p1", 0).call_id_mode.as_deref(),
            Some("auto_fresh")
        );
        // Even when the stored Call-ID itself is unusable.
        let mut worn = switched("p1", CSEQ_LIMIT);
        worn.call_id.clear();
        let p = CallIdPolicy::new("p1", CallIdMode::Auto, Some(&worn), &mut rng);
        assert_eq!(p.in_use().as_str(), "auto_fresh");
        // The admin's same or fresh (or gVarSipRegSameDialog, resolved into them) wins.
        let mut p = CallIdPolicy::new("p1", CallIdMode::Same, Some(&switched("p1", 9)), &mut rng);
        assert_eq!(p.in_use().as_str(), "same");
        assert!(p.restored_note("p1").is_none());
        assert!(!fresh_call_ids(&mut p, &mut rng));
        assert_eq!(p.record("p1", 0).call_id_mode.as_deref(), Some("same"));
        let p = CallIdPolicy::new("p1", CallIdMode::Fresh, Some(&switched("p1", 9)), &mut rng);
        assert_eq!(p.in_use().as_str(), "fresh");
        // A record written under fresh, an unknown or missing mode, or another line's
        // record leave auto on one Call-ID.
        for mode in [Some("fresh"), Some("sometimes"), None] {
            let r = LineRecord {
                call_id_mode: mode.map(Into::into),
                ..rec("p1", 9)
            };
            let mut p = CallIdPolicy::new("p1", CallIdMode::Auto, Some(&r), &mut rng);
            assert_eq!(p.in_use().as_str(), "auto", "{mode:?}");
            assert!(p.restored_note("p1").is_none());
            assert!(!fresh_call_ids(&mut p, &mut rng));
        }
        let p = CallIdPolicy::new("p2", CallIdMode::Auto, Some(&switched("p1", 9)), &mut rng);
        assert_eq!(p.in_use().as_str(), "auto");
    }

    #[test]
    fn cseq_wraps_to_new_call_id_below_2_pow_31() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut p = CallIdPolicy::new(
            "p1",
            CallIdMode::Same,
            Some(&rec("p1", CSEQ_LIMIT - 2)),
            &mut rng,
        );
        assert_eq!(p.next(&mut rng).cseq, CSEQ_LIMIT - 1);
        let n = p.next(&mut rng);
        assert_eq!(n.cseq, 1);
        assert_ne!(n.call_id, "abc");
        assert!(new_branch(&mut rng).starts_with("z9hG4bK"));
    }
}
