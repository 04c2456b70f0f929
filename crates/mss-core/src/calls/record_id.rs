//! Ids of call records: unique, and ordered by the time the call came in.
//!
//! A record is stored twice (at answer and at its end, DESIGN §8 "Records") under its id,
//! the `calls` table's primary key. With random ids every new row landed on a random leaf
//! of the id index, so each commit of the store rewrote a page of that index per call; ids
//! that grow with time all land on its rightmost leaf, which a commit writes once for all
//! the calls it carries.

use rand::RngCore;

/// Makes record ids `c-` + 11 hex digits of the Unix time in milliseconds + 6 hex digits of
/// a counter that starts at a random value: unique within a process for up to 16,777,216
/// calls in one millisecond, and across restarts unless the clock went back to the very
/// millisecond of an earlier call and the counter met that call's value.
#[derive(Debug)]
pub(crate) struct RecordIds {
    next: u32,
}

/// The counter's modulus (six hex digits).
const SEQ_SPAN: u32 = 1 << 24;

impl RecordIds {
    /// A maker whose counter starts where `rng` says.
    pub(crate) fn new(rng: &mut dyn RngCore) -> RecordIds {
        RecordIds {
            next: rng.next_u32() % SEQ_SPAN,
        }
    }

    /// The id of a call that came in at `unix_ms`.
    pub(crate) fn next_id(&mut self, unix_ms: i64) -> String {
        let seq = self.next;
        self.next = (self.next + 1) % SEQ_SPAN;
        // 11 hex digits hold every time until the year 2527; a clock before 1970 is 0.
        let ms = u64::try_from(unix_ms).unwrap_or(0) & 0xfff_ffff_ffff;
        // What `format!("c-{ms:011x}{seq:06x}")` writes, digit by digit.
        let mut id = String::with_capacity(2 + 11 + 6);
        id.push_str("c-");
        push_hex(&mut id, ms, 11);
        push_hex(&mut id, u64::from(seq), 6);
        id
    }
}

/// Appends the `digits` lowest hex digits of `n`, lowercase, most significant first.
pub(crate) fn push_hex(out: &mut String, n: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        let nibble = n.checked_shr(shift * 4).unwrap_or(0) & 0xf;
        out.push(char::from(HEX[nibble as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ids_grow_with_time_and_are_unique_within_a_millisecond() {
        let mut ids = RecordIds::new(&mut StdRng::seed_from_u64(7));
        let a = ids.next_id(1_765_000_000_000);
        let b = ids.next_id(1_765_000_000_000);
        let c = ids.next_id(1_765_000_000_001);
        assert_ne!(a, b);
        assert!(a < c && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), 2 + 11 + 6);
        assert!(a.starts_with("c-19af232b200"), "{a}");
    }

    #[test]
    fn the_counter_wraps_within_six_digits() {
        let mut ids = RecordIds { next: SEQ_SPAN - 1 };
        assert!(ids.next_id(5).ends_with("ffffff"));
        assert!(ids.next_id(5).ends_with("000000"));
        assert_eq!(ids.next_id(-3), "c-00000000000000001");
    }

    #[test]
    fn ids_are_what_the_formatter_writes() {
        for (ms, seq) in [
            (0u64, 0u32),
            (1_765_000_000_123, 0xabcdef),
            (0xfff_ffff_ffff, 1),
        ] {
            let mut ids = RecordIds { next: seq };
            let unix_ms = i64::try_from(ms).unwrap();
            assert_eq!(ids.next_id(unix_ms), format!("c-{ms:011x}{seq:06x}"));
        }
    }
}
