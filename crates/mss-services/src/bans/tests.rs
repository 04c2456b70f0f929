//! The ban table in simulated time: guessers banned and their packets dropped, an office
//! behind one address, the rate limit, expiry and doubling, lifting, a bounded table.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;

/// A table and a clock that moves only when told.
struct Run {
    bans: Bans,
    t0: Instant,
    at: Duration,
}

impl Run {
    fn new(settings: BanSettings) -> Run {
        Run {
            bans: Bans::new(settings),
            t0: Instant::now(),
            at: Duration::ZERO,
        }
    }

    fn now(&self) -> Now {
        let ms = i64::try_from(self.at.as_millis()).unwrap();
        Now::new(self.t0 + self.at, 1_800_000_000_000 + ms)
    }

    fn wait(&mut self, d: Duration) {
        self.at += d;
    }

    fn request(&mut self, ip: IpAddr) -> Admit {
        let now = self.now();
        self.bans.admit(now, ip, true, || false)
    }

    fn fail(&mut self, ip: IpAddr, user: &str) {
        let now = self.now();
        self.bans.failed(now, ip, user);
    }

    fn pass(&mut self, ip: IpAddr, user: &str) {
        let now = self.now();
        self.bans.passed(now, ip, user);
    }

    fn blocked(&mut self, ip: IpAddr, user: &str) -> bool {
        let now = self.now();
        self.bans.blocked(now, ip, user)
    }

    fn events(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.bans.poll_event())
            .map(|e| e.to_string())
            .collect()
    }

    fn list(&mut self) -> Vec<BanInfo> {
        let now = self.now();
        self.bans.list(now)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_guesser_is_banned_after_ban_after_failures_and_then_dropped() {
    let mut r = Run::new(BanSettings::default());
    let guesser = ip("203.0.113.7");
    for _ in 0..9 {
        assert_eq!(r.request(guesser), Admit::Pass);
        r.fail(guesser, "101");
        r.wait(Duration::from_millis(100));
    }
    assert!(r.events().is_empty());
    r.fail(guesser, "101");
    assert_eq!(
        r.events(),
        ["banned 203.0.113.7 for 900 s after 10 failed digest answers (user 101)"]
    );
    assert_eq!(r.request(guesser), Admit::Banned);
    let now = r.now();
    assert_eq!(
        r.bans.admit(now, guesser, false, || false),
        Admit::Banned,
        "responses too"
    );
    assert_eq!(
        r.request(ip("203.0.113.8")),
        Admit::Pass,
        "the neighbour is not"
    );
    let list = r.list();
    assert_eq!(list.len(), 1);
    let b = &list[0];
    assert_eq!(b.source.to_string(), "203.0.113.7");
    assert_eq!(
        (b.scope, b.reason, b.count, b.offence),
        (BanScope::Address, BanReason::Auth, 10, 1)
    );
    assert_eq!(b.user.as_deref(), Some("101"));
    assert_eq!(b.until_unix_ms - b.since_unix_ms, 900_000);
    assert_eq!(r.bans.counts(now).addresses, 1);
}

#[test]
fn failures_spread_wider_than_the_window_do_not_ban() {
    let mut r = Run::new(BanSettings::default());
    let slow = ip("203.0.113.7");
    for _ in 0..30 {
        r.fail(slow, "101");
        r.wait(secs(7));
    }
    assert!(r.events().is_empty());
    assert_eq!(r.request(slow), Admit::Pass);
}

#[test]
fn bans_end_and_a_repeat_offender_is_banned_twice_as_long() {
    let mut r = Run::new(BanSettings::default());
    let guesser = ip("198.51.100.20");
    for _ in 0..10 {
        r.fail(guesser, "100");
    }
    r.events();
    r.wait(secs(899));
    assert_eq!(r.request(guesser), Admit::Banned);
    r.wait(secs(1));
    assert_eq!(r.request(guesser), Admit::Pass);
    assert!(r.list().is_empty());
    for _ in 0..10 {
        r.fail(guesser, "100");
    }
    assert_eq!(
        r.events(),
        ["banned 198.51.100.20 for 1800 s after 10 failed digest answers (user 100), repeat 2"]
    );
    r.wait(secs(1800));
    // Swept, the offence is still remembered for a day after the ban ended.
    let now = r.now();
    r.bans.sweep(now);
    r.wait(secs(3600));
    for _ in 0..10 {
        r.fail(guesser, "100");
    }
    assert_eq!(r.list()[0].offence, 3);
    assert_eq!(
        r.list()[0].until_unix_ms - r.list()[0].since_unix_ms,
        3_600_000
    );
    r.events();
    // A day after that ban ended it is forgotten: the next ban is a first one again.
    r.wait(secs(3600 + 86_400));
    let now = r.now();
    r.bans.sweep(now);
    assert_eq!(r.bans.counts(now).tracked, 0, "nothing left to remember");
    for _ in 0..10 {
        r.fail(guesser, "100");
    }
    assert_eq!(r.list()[0].offence, 1);
}

#[test]
fn an_office_that_authenticated_blocks_only_the_failing_user() {
    let mut r = Run::new(BanSettings::default());
    let office = ip("192.0.2.50");
    r.pass(office, "100");
    r.wait(secs(30));
    for _ in 0..10 {
        r.fail(office, "101");
    }
    assert_eq!(
        r.events(),
        [
            "blocked user 101 at 192.0.2.50 for 900 s after 10 failed digest answers; the \
          address is not banned (it authenticated within the last hour)"
        ]
    );
    assert_eq!(r.request(office), Admit::Pass);
    assert!(r.blocked(office, "101"));
    assert!(!r.blocked(office, "100"));
    assert!(!r.blocked(ip("192.0.2.51"), "101"), "only at that address");
    let list = r.list();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].scope, list[0].user.as_deref()),
        (BanScope::User, Some("101"))
    );
    // Failures of another user count apart, and a right answer forgets a user's failures.
    for _ in 0..9 {
        r.fail(office, "102");
    }
    r.pass(office, "102");
    r.fail(office, "102");
    assert!(!r.blocked(office, "102"));
    // The block ends; an hour after the last right answer the address is trusted no
    // more and counts as a whole again.
    r.wait(secs(900));
    assert!(!r.blocked(office, "101"));
    r.wait(secs(3600));
    for _ in 0..10 {
        r.fail(office, "103");
    }
    assert_eq!(r.request(office), Admit::Banned);
}

#[test]
fn the_rate_limit_drops_a_flood_and_bans_repeated_excess() {
    let mut r = Run::new(BanSettings::default());
    let flood = ip("203.0.113.99");
    // A burst of twice the rate passes, then only the rate.
    for i in 0..200 {
        assert_eq!(r.request(flood), Admit::Pass, "{i}");
    }
    assert_eq!(r.request(flood), Admit::RateLimited);
    r.wait(Duration::from_millis(100));
    for _ in 0..10 {
        assert_eq!(r.request(flood), Admit::Pass);
    }
    assert_eq!(r.request(flood), Admit::RateLimited);
    // Responses are never limited.
    let now = r.now();
    assert_eq!(r.bans.admit(now, flood, false, || false), Admit::Pass);
    // Over the rate in 10 seconds within the window (the first was above): banned.
    for _ in 0..8 {
        r.wait(secs(1));
        for _ in 0..300 {
            r.request(flood);
        }
    }
    assert!(r.events().is_empty());
    r.wait(secs(1));
    for _ in 0..300 {
        r.request(flood);
    }
    assert_eq!(
        r.events(),
        ["banned 203.0.113.99 for 900 s after 10 seconds over the request rate limit"]
    );
    assert_eq!(r.request(flood), Admit::Banned);
    assert_eq!(r.list()[0].reason, BanReason::Rate);
}

#[test]
fn trusted_exempt_and_ignored_addresses_are_never_banned_for_their_rate() {
    let mut r = Run::new(BanSettings::default());
    let office = ip("192.0.2.50");
    let provider = ip("192.0.2.60");
    r.pass(office, "100");
    for _ in 0..20 {
        r.wait(secs(1));
        for _ in 0..300 {
            r.request(office);
            let now = r.now();
            assert_eq!(r.bans.admit(now, provider, true, || true), Admit::Pass);
            assert_eq!(r.request(ip("127.0.0.1")), Admit::Pass);
            assert_eq!(r.request(ip("::1")), Admit::Pass);
        }
    }
    assert!(r.events().is_empty());
    assert_eq!(r.request(office), Admit::RateLimited, "still limited");
    // Loopback is not counted for failures either.
    for _ in 0..20 {
        r.fail(ip("127.0.0.1"), "100");
    }
    assert!(r.list().is_empty());
}

#[test]
fn off_switches() {
    let mut r = Run::new(BanSettings {
        rate_limit: 0,
        ban_after: 0,
        ..BanSettings::default()
    });
    let x = ip("203.0.113.7");
    for _ in 0..10_000 {
        assert_eq!(r.request(x), Admit::Pass);
    }
    for _ in 0..100 {
        r.fail(x, "100");
    }
    r.pass(x, "100");
    let now = r.now();
    assert_eq!(r.bans.counts(now).tracked, 0, "nothing tracked");
    assert!(r.list().is_empty());
}

#[test]
fn an_ipv6_64_counts_as_one_address() {
    let mut r = Run::new(BanSettings::default());
    for i in 0..10 {
        r.fail(ip(&format!("2001:db8:1:2::{i:x}")), "100");
    }
    assert_eq!(
        r.events(),
        ["banned 2001:db8:1:2::/64 for 900 s after 10 failed digest answers (user 100)"]
    );
    assert_eq!(r.request(ip("2001:db8:1:2:ffff::1")), Admit::Banned);
    assert_eq!(r.request(ip("2001:db8:1:3::1")), Admit::Pass);
}

#[test]
fn lifting_ends_a_ban_and_forgets_the_offence() {
    let mut r = Run::new(BanSettings::default());
    let x = ip("203.0.113.7");
    let now = r.now();
    assert!(!r.bans.lift(now, x), "nothing to lift");
    for _ in 0..10 {
        r.fail(x, "100");
    }
    assert!(r.bans.lift(now, x));
    assert_eq!(r.request(x), Admit::Pass);
    for _ in 0..10 {
        r.fail(x, "100");
    }
    assert_eq!(r.list()[0].offence, 1);
    // A user block is lifted by its address too.
    let office = ip("192.0.2.50");
    r.pass(office, "100");
    for _ in 0..10 {
        r.fail(office, "101");
    }
    assert!(r.blocked(office, "101"));
    let now = r.now();
    assert!(r.bans.lift(now, office));
    assert!(!r.blocked(office, "101"));
}

#[test]
fn a_million_new_sources_keep_the_table_bounded_and_the_bans_in_it() {
    let mut r = Run::new(BanSettings {
        max_sources: 1024,
        ..BanSettings::default()
    });
    let guesser = ip("198.51.100.1");
    for _ in 0..10 {
        r.fail(guesser, "100");
    }
    let office = ip("198.51.100.2");
    r.pass(office, "100");
    for n in 0..1_000_000u32 {
        let spoofed = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        r.request(spoofed);
        if n % 1000 == 0 {
            r.wait(Duration::from_millis(10));
        }
    }
    let now = r.now();
    assert!(r.bans.counts(now).tracked <= 1024);
    assert_eq!(r.request(guesser), Admit::Banned);
    for _ in 0..10 {
        r.fail(office, "101");
    }
    assert_eq!(r.request(office), Admit::Pass, "still trusted");
}
