//! What the ban table is told by the configuration (`[security]` in `mss.ini`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::net::IpNet;

/// Settings of [`super::Bans`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanSettings {
    /// Failed digest answers from one address (or, at an address that authenticated
    /// within [`BanSettings::trust_time`], by one user there) that lead to a ban; also
    /// the number of seconds over [`BanSettings::rate_limit`] that do. 0: never ban.
    pub ban_after: u32,
    /// The failures must fall within this long of the first of them.
    pub ban_window: Duration,
    /// How long the first ban lasts; each further ban of the same address (or user at
    /// an address) within [`BanSettings::offence_memory`] lasts twice the one before, up
    /// to [`BanSettings::MAX_DOUBLINGS`] doublings.
    pub ban_time: Duration,
    /// Requests per second one address may send (bursts of twice as many); more are
    /// dropped. 0: no limit.
    pub rate_limit: u32,
    /// Addresses never limited, counted or banned (default loopback: a proxy or a test
    /// tool on the same machine).
    pub ignore: Vec<IpNet>,
    /// How long after a right answer an address counts failures per user instead of as a
    /// whole (an office behind one NAT address). One hour.
    pub trust_time: Duration,
    /// How long a ban is remembered after it ended, for the doubling. One day.
    pub offence_memory: Duration,
    /// Most addresses tracked at once; beyond it the least useful are forgotten first
    /// (idle ones, then the least recently seen; bans last).
    pub max_sources: usize,
    /// Most users tracked at one trusted address.
    pub max_users_per_source: usize,
}

impl BanSettings {
    /// How many times a repeated ban doubles: `ban_time` × 64 at most (16 h on the
    /// defaults).
    pub const MAX_DOUBLINGS: u32 = 6;

    /// How long the `offence`-th ban lasts (1 for the first).
    pub fn ban_duration(&self, offence: u8) -> Duration {
        let doublings = u32::from(offence.saturating_sub(1)).min(Self::MAX_DOUBLINGS);
        self.ban_time.saturating_mul(1 << doublings)
    }

    /// Whether `ip` is on the [`BanSettings::ignore`] list.
    pub fn ignores(&self, ip: IpAddr) -> bool {
        self.ignore.iter().any(|n| n.contains(ip))
    }

    /// The default ignore list: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> Vec<IpNet> {
        vec![
            IpNet::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
            IpNet::host(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]
    }
}

impl Default for BanSettings {
    /// 10 failures within a minute ban for 15 minutes; 100 requests a second; loopback
    /// ignored.
    fn default() -> BanSettings {
        BanSettings {
            ban_after: 10,
            ban_window: Duration::from_secs(60),
            ban_time: Duration::from_secs(15 * 60),
            rate_limit: 100,
            ignore: BanSettings::loopback(),
            trust_time: Duration::from_secs(3600),
            offence_memory: Duration::from_secs(86_400),
            max_sources: 65_536,
            max_users_per_source: 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_double_up_to_a_cap() {
        let s = BanSettings::default();
        assert_eq!(s.ban_duration(1), Duration::from_secs(900));
        assert_eq!(s.ban_duration(2), Duration::from_secs(1800));
        assert_eq!(s.ban_duration(7), Duration::from_secs(900 * 64));
        assert_eq!(s.ban_duration(200), Duration::from_secs(900 * 64));
        assert!(s.ignores("127.0.0.1".parse().unwrap()));
        assert!(s.ignores("::1".parse().unwrap()));
        assert!(!s.ignores("192.0.2.1".parse().unwrap()));
    }
}
