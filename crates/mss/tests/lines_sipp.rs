//! External lines against providers that misbehave in the ways real ones do: SIPp UAS
//! scenarios (`tests/providers/uas-*.xml`) on 127.0.0.1, started by each test, with the real
//! `mss` binary registering one line to them. Each test checks the state `GET /api/lines`
//! shows while the provider refuses, and that the line comes online once it accepts.
//!
//! The 403 case shortens the line's backoff with `retry_min` / `retry_max`. Silence (Timer
//! F, 32 s), the backoff schedule, `Retry-After` and the CSeq quirk are also run through the
//! whole core in simulated time (mss-core `tests/sim_lines.rs`), where they take
//! milliseconds.
//!
//! Needs `sipp` (`scripts/install-test-deps.sh`); without it the tests fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod lines_common;
#[path = "providers/support.rs"]
mod providers;

use std::time::Duration;

use lines_common::{start_mss, unix_now, wait_state, Spy};
use providers::{ProviderGuard, Scenario};

fn sipp(scenario: Scenario, vars: &[(&str, &str)]) -> ProviderGuard {
    providers::start_sipp(scenario, vars)
        .unwrap_or_else(|e| panic!("cannot start the SIPp provider: {e}"))
}

#[test]
fn interval_too_brief_takes_min_expires() {
    let provider = sipp(Scenario::IntervalTooBrief, &[]);
    let spy = Spy::new(provider.addr());
    let dir = tempfile::tempdir().unwrap();
    let mss = start_mss(dir.path(), spy.addr(), "expires = 60\n", None);
    let log = || provider.log();
    let l = wait_state(&mss, "online", Duration::from_secs(5), &log);
    let left = l["expires_at"].as_u64().unwrap().saturating_sub(unix_now());
    assert!(
        (100..=121).contains(&left),
        "granted 120 s, {left} s left: {l}"
    );
    let asked: Vec<_> = spy.registers().iter().map(|r| r.expires).collect();
    assert_eq!(asked.first(), Some(&Some(60)), "{asked:?}");
    assert_eq!(asked.last(), Some(&Some(120)), "{asked:?}");
    assert!(mss.stderr().contains("registrar wants at least 120 s"));
}

#[test]
fn proxy_authentication_407_is_answered() {
    let provider = sipp(Scenario::ProxyAuth, &[("user", lines_common::USER)]);
    let spy = Spy::new(provider.addr());
    let dir = tempfile::tempdir().unwrap();
    let mss = start_mss(dir.path(), spy.addr(), "", None);
    let log = || provider.log();
    let l = wait_state(&mss, "online", Duration::from_secs(5), &log);
    assert!(l["last_failure"].is_null(), "{l}");
    let codes: Vec<_> = spy.answers().into_iter().map(|a| a.method).collect();
    assert_eq!(codes, ["407", "200"]);
    let last = spy.registers().pop().unwrap();
    assert!(last.authorized, "the retry carries Proxy-Authorization");
}

#[test]
fn forbidden_is_auth_failed_then_retried_with_backoff() {
    let provider = sipp(Scenario::Forbidden, &[("fail_count", "1")]);
    let spy = Spy::new(provider.addr());
    let dir = tempfile::tempdir().unwrap();
    let mss = start_mss(
        dir.path(),
        spy.addr(),
        "retry_min = 5s\nretry_max = 20s\n",
        None,
    );
    let log = || provider.log();
    let l = wait_state(&mss, "auth_failed", Duration::from_secs(5), &log);
    assert_eq!(l["last_failure"]["code"], 403, "{l}");
    assert_eq!(l["last_failure"]["reason"], "Forbidden", "{l}");
    // The first backoff is 4–5 s (retry_min, jittered); never giving up, the line then
    // gets in.
    let wait = l["next_attempt_at"]
        .as_u64()
        .unwrap()
        .saturating_sub(unix_now());
    assert!((2..=5).contains(&wait), "next attempt in {wait} s: {l}");
    let l = wait_state(&mss, "online", Duration::from_secs(8), &log);
    assert_eq!(
        l["last_failure"]["code"], 403,
        "the last failure stays visible: {l}"
    );
    assert_eq!(spy.registers().len(), 2, "{:?}", spy.registers());
}

#[test]
fn unavailable_503_honours_retry_after() {
    let provider = sipp(
        Scenario::Unavailable,
        &[("fail_count", "1"), ("retry_after", "3")],
    );
    let spy = Spy::new(provider.addr());
    let dir = tempfile::tempdir().unwrap();
    let mss = start_mss(dir.path(), spy.addr(), "", None);
    let log = || provider.log();
    let l = wait_state(&mss, "backing_off", Duration::from_secs(5), &log);
    assert_eq!(l["last_failure"]["code"], 503, "{l}");
    let failed_at = unix_now();
    let wait = l["next_attempt_at"]
        .as_u64()
        .unwrap()
        .saturating_sub(failed_at);
    assert!(
        (2..=4).contains(&wait),
        "Retry-After 3, next attempt in {wait} s: {l}"
    );
    wait_state(&mss, "online", Duration::from_secs(8), &log);
    // Never before the time asked (RFC 3261 §20.33).
    assert!(unix_now() >= failed_at + 2);
    assert_eq!(spy.registers().len(), 2, "{:?}", spy.registers());
}
