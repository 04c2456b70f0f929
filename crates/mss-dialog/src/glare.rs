//! How long to wait before retrying a re-INVITE answered `491 Request Pending` (RFC 3261
//! §14.1).

use std::time::Duration;

use rand::{Rng, RngCore};

use crate::role::DialogRole;

/// The window the owner of the Call-ID waits in: 2.1 to 4 s, in units of 10 ms.
const OWNER_UNITS: std::ops::RangeInclusive<u64> = 210..=400;
/// The window the other side waits in: 0 to 2 s, in units of 10 ms.
const OTHER_UNITS: std::ops::RangeInclusive<u64> = 0..=200;

/// The wait before a re-INVITE that got `491` goes out again (RFC 3261 §14.1): a random
/// value in units of 10 ms, between 2.1 and 4 s when mss owns the Call-ID (it sent the
/// initial INVITE), between 0 and 2 s otherwise. The two windows do not overlap, so the
/// retries of the two sides do not collide again.
pub fn glare_delay(role: DialogRole, rng: &mut dyn RngCore) -> Duration {
    let range = if role.owns_call_id() {
        OWNER_UNITS
    } else {
        OTHER_UNITS
    };
    Duration::from_millis(10 * rng.gen_range(range))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn windows_are_kept_in_10_ms_units() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..2000 {
            let owner = glare_delay(DialogRole::Uac, &mut rng);
            assert!((2100..=4000).contains(&owner.as_millis()), "{owner:?}");
            assert_eq!(owner.as_millis() % 10, 0);
            let other = glare_delay(DialogRole::Uas, &mut rng);
            assert!(other.as_millis() <= 2000, "{other:?}");
            assert_eq!(other.as_millis() % 10, 0);
        }
    }
}
