//! The protocol extensions of calls through the real `mss` with SIPp, per leg (RFC 3262,
//! RFC 4028): a caller and a callee that both require 100rel, each PRACKed on its own leg
//! with its own RSeq; a provider that requires 100rel but answers PRACK `405` (the call goes
//! on); `Session-Expires` below `Min-SE` gets `422` and the retry succeeds, with mss's
//! session-timer offer on the B leg; a caller that takes the refresher's part and never
//! refreshes gets BYE on both legs when the session expires (one minute of real time; the
//! refreshes mss sends itself are proven in simulated time, `mss-core`
//! `tests/sim_session_timer.rs`).
//! Every test ends with `GET /api/calls/active` empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod calls_common;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use calls_common::{
    assert_no_active_calls, mss_log, password, sipp, sipp_flow, sipp_register, sipp_trace, start,
    SippBg,
};
use common::{free_port, run_bounded, Server};

/// The caller's SIPp command: `scenario` as 100 calling `callee` at mss, one call.
fn caller(s: &Server, d: &Path, scenario: &str, callee: &str) -> Command {
    let mut c = sipp(d, "uac", scenario, free_port());
    c.arg(s.sip().to_string())
        .args(["-s", callee, "-set", "caller", "100"])
        .args(["-au", "100", "-ap", password("100")])
        .args(["-m", "1", "-l", "1"]);
    c
}

/// 101 registers from a port where the UAS `scenario` then takes one call; 100 calls it
/// with `uac`. Both must end with status 0. Returns the server, the folder and both flows.
fn through_mss(uas: &str, uac: &str) -> (Server, tempfile::TempDir, Vec<String>, Vec<String>) {
    through_mss_within(uas, uac, Duration::from_secs(30))
}

/// [`through_mss`] with the caller given `limit` to finish.
fn through_mss_within(
    uas: &str,
    uac: &str,
    limit: Duration,
) -> (Server, tempfile::TempDir, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let port = free_port();
    sipp_register(&s, d, "101", port);
    let mut callee = SippBg::spawn(d, "uas", {
        let mut c = sipp(d, "uas", uas, port);
        // The last -timeout counts: the whole call may take `limit`.
        c.args(["-m", "1", "-timeout", &limit.as_secs().to_string()]);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut c = caller(&s, d, uac, "101");
    c.args(["-timeout", &limit.as_secs().to_string()]);
    let (ok, out, err) = run_bounded(&mut c, limit + Duration::from_secs(5));
    let (uas_ok, uas_screen) = callee.finish(Duration::from_secs(15));
    assert!(
        ok,
        "the caller ({uac}) failed:\n{}{}\n{}\n{}\n{}",
        calls_common::tail(&out, 3000),
        err,
        sipp_trace(d, "uac"),
        sipp_trace(d, "uas"),
        mss_log(&s)
    );
    assert!(
        uas_ok,
        "the callee ({uas}) failed:\n{uas_screen}\n{}\n{}\n{}",
        sipp_trace(d, "uas"),
        sipp_trace(d, "uac"),
        mss_log(&s)
    );
    let (uac_flow, uas_flow) = (sipp_flow(d, "uac"), sipp_flow(d, "uas"));
    (s, dir, uac_flow, uas_flow)
}

/// Both sides require 100rel: the callee's reliable 183 is PRACKed by mss (RAck 1), the
/// caller gets mss's own reliable 183 and PRACKs it, then the 200 (held until that PRACK,
/// the 183 carried SDP) reaches it.
#[test]
fn require_100rel_on_both_legs_each_leg_pracked() {
    let (s, _dir, uac, uas) = through_mss("calls-100rel-uas.xml", "calls-100rel-uac.xml");
    assert!(
        uas.iter().any(|l| l.starts_with("received PRACK")),
        "{uas:#?}"
    );
    assert!(uac.iter().any(|l| l.starts_with("sent PRACK")), "{uac:#?}");
    let after_prack: Vec<&String> = uac
        .iter()
        .skip_while(|l| !l.starts_with("sent PRACK"))
        .filter(|l| l.starts_with("received SIP/2.0 200"))
        .collect();
    assert!(
        after_prack.len() >= 2,
        "the PRACK's 200 and the INVITE's: {uac:#?}"
    );
    assert_no_active_calls(&s);
}

/// The provider requires 100rel and answers mss's PRACK 405: the call is answered all the
/// same, and the caller (who requires 100rel) still gets mss's reliable 180.
#[test]
fn a_provider_answering_prack_with_405_does_not_break_the_call() {
    let (s, _dir, uac, uas) = through_mss("calls-prack405-uas.xml", "calls-100rel-uac.xml");
    assert!(
        uas.iter()
            .any(|l| l == "sent SIP/2.0 405 Method Not Allowed"),
        "{uas:#?}"
    );
    assert!(
        uac.iter().any(|l| l == "received SIP/2.0 180 Ringing"),
        "{uac:#?}"
    );
    assert!(uac.iter().any(|l| l.starts_with("sent BYE")), "{uac:#?}");
    assert_no_active_calls(&s);
}

/// `Session-Expires: 60` with `Supported: timer` gets 422 + `Min-SE: 90`; the retry with 90
/// is served, the callee sees mss's session-timer offer, the caller gets
/// `Session-Expires: 90;refresher=uas`.
#[test]
fn session_expires_below_min_se_gets_422_and_the_retry_succeeds() {
    let (s, _dir, uac, _uas) = through_mss("calls-timer-uas.xml", "calls-timer-422-uac.xml");
    assert!(
        uac.iter().any(|l| l.starts_with("received SIP/2.0 422")),
        "{uac:#?}"
    );
    assert_no_active_calls(&s);
}

/// A refresh that never comes (RFC 4028 §10): the caller takes the refresher's part
/// (`refresher=uac`, 90 s) and never refreshes; 60 s after the answer mss sends BYE on both
/// legs, and the record says mss ended the call.
#[test]
fn a_refresh_that_never_comes_ends_the_call_with_bye_on_both_legs() {
    let (s, _dir, uac, uas) = through_mss_within(
        "calls-timer-uas.xml",
        "calls-timer-expiry-uac.xml",
        Duration::from_secs(100),
    );
    assert!(
        uac.iter().any(|l| l.starts_with("received BYE")),
        "{uac:#?}"
    );
    assert!(
        uas.iter().any(|l| l.starts_with("received BYE")),
        "{uas:#?}"
    );
    let r = calls_common::wait_record(&s, "the expired call's record", |r| {
        r["ended_by"].as_str().is_some()
    });
    assert_eq!(r["ended_by"], "mss", "{r}");
    assert_eq!(r["disposition"], "answered", "{r}");
    assert_no_active_calls(&s);
}

/// The scenario pair on its own, without mss (`uac` calls `uas` directly): whether each
/// ended with status 0.
fn directly(uas: &str, uac: &str, limit: Duration) -> (bool, bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uas_port = free_port();
    let mut callee = SippBg::spawn(d, "uas", {
        let mut c = sipp(d, "uas", uas, uas_port);
        c.args(["-m", "1"]);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    let (ok, _out, _err) = run_bounded(
        sipp(d, "uac", uac, free_port())
            .arg(format!("127.0.0.1:{uas_port}"))
            .args(["-s", "101", "-set", "caller", "100", "-m", "1", "-l", "1"])
            .args(["-timeout", &limit.as_secs().to_string()]),
        limit + Duration::from_secs(5),
    );
    let (uas_ok, _) = callee.finish(limit);
    (ok, uas_ok, sipp_trace(d, "uac"))
}

/// The 100rel pair runs against each other without mss; the caller fails on an 18x that
/// is not reliable, so the tests above can fail.
#[test]
fn the_100rel_scenarios_run_directly_and_refuse_an_unreliable_18x() {
    let (uac_ok, uas_ok, trace) = directly(
        "calls-100rel-uas.xml",
        "calls-100rel-uac.xml",
        Duration::from_secs(10),
    );
    assert!(uac_ok && uas_ok, "{trace}");
    let (uac_ok, _, trace) = directly(
        "calls-early-media-uas.xml",
        "calls-100rel-uac.xml",
        Duration::from_secs(3),
    );
    assert!(!uac_ok, "a 183 without RSeq must fail the caller: {trace}");
}
