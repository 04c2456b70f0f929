//! Cost of the ban table on the hot path: the check of every packet before it is parsed
//! ([`Bans::admit`]) in its common cases, and what a right answer adds ([`AuthWatch`]).
//! The table holds 10,000 other addresses, as a busy server's would.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mss_services::{AuthWatch, BanSettings, Bans, Now};

fn table(settings: BanSettings, now: Now) -> Bans {
    let mut bans = Bans::new(settings);
    for n in 0..10_000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        bans.admit(now, ip, true, || false);
    }
    bans
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut tick = 0u64;
    // 20 ms apart: a phone well under the rate limit.
    let mut next = move || {
        tick += 1;
        Now::new(t0 + Duration::from_millis(20 * tick), 1_700_000_000_000)
    };
    let phone = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let guesser = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

    let mut bans = table(BanSettings::default(), next());
    for _ in 0..10 {
        let now = next();
        bans.failed(now, guesser, "101");
    }
    c.bench_function("admit: a known address under its rate", |b| {
        b.iter(|| bans.admit(next(), black_box(phone), true, || false))
    });
    c.bench_function("admit: a banned address", |b| {
        b.iter(|| bans.admit(next(), black_box(guesser), true, || false))
    });
    c.bench_function("admit: a response", |b| {
        b.iter(|| bans.admit(next(), black_box(phone), false, || false))
    });
    c.bench_function("right answer: blocked? + passed", |b| {
        b.iter(|| {
            let now = next();
            assert!(!bans.blocked(now, black_box(phone), "101"));
            bans.passed(now, phone, "101");
        })
    });
    let mut off = table(
        BanSettings {
            rate_limit: 0,
            ..BanSettings::default()
        },
        next(),
    );
    c.bench_function("admit: rate limit off, an address never banned", |b| {
        b.iter(|| off.admit(next(), black_box(phone), true, || false))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
