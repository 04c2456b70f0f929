//! Calls through the real `mss` (DESIGN §8) with SIPp, for what real clients rarely do: a
//! CANCEL racing the callee's 200, re-INVITE glare (491 on both sides, then retries that
//! succeed), early media (183 with SDP, then 180, then 200), and the refusals: `Require:
//! foo` → 420 + `Unsupported: foo`, an unknown extension → 404, no credentials → 407.
//! The caller (100) is a SIPp UAC that answers mss's 407 (`[authentication]`, `-au/-ap`);
//! the callee (101) registers with SIPp from the port its UAS scenario then listens on.
//! Every test ends with `GET /api/calls/active` empty.
//!
//! The scenario pairs are proven against each other without mss by `calls_selftest.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod calls_common;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use calls_common::{
    assert_no_active_calls, call_records, mss_log, password, sipp, sipp_flow, sipp_register,
    sipp_trace, start, SippBg,
};
use common::{free_port, run_bounded, Server};

/// The caller's SIPp command: `scenario` as 100 calling `callee` at mss, `calls` calls one
/// at a time.
fn caller(s: &Server, d: &Path, scenario: &str, callee: &str, calls: u32) -> Command {
    let mut c = sipp(d, "uac", scenario, free_port());
    c.arg(s.sip().to_string())
        .args(["-s", callee, "-set", "caller", "100"])
        .args(["-au", "100", "-ap", password("100")])
        .args(["-m", &calls.to_string(), "-l", "1"]);
    c
}

/// 101 registers from a port where the UAS `scenario` then takes `calls` calls; 100 calls
/// it `calls` times with `uac`. Both must end with status 0. Returns the caller's flow.
fn through_mss(
    uas: &str,
    uac: &str,
    calls: u32,
    uas_extra: &[&str],
) -> (Server, tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let port = free_port();
    sipp_register(&s, d, "101", port);
    let mut callee = SippBg::spawn(d, "uas", {
        let mut c = sipp(d, "uas", uas, port);
        c.args(["-m", &calls.to_string()]).args(uas_extra);
        c
    });
    // Until the UAS binds, mss's retransmissions (Timer A) cover a lost first INVITE.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, out, err) = run_bounded(
        &mut caller(&s, d, uac, "101", calls),
        Duration::from_secs(45),
    );
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
    let flow = sipp_flow(d, "uac");
    (s, dir, flow)
}

/// The caller CANCELs on the 180; the callee answers the CANCEL and still sends its 200, as
/// if the two had crossed (10 calls): the caller must end with a 487 (ACKed) or a 200
/// (ACKed, then BYE), the scenarios accept nothing else; the callee gets an ACK and a BYE
/// for its late 200 every time (mss ACKs and BYEs it), and no call stays up.
#[test]
fn cancel_racing_the_200_leaves_no_leg_up() {
    let (s, dir, flow) = through_mss(
        "calls-cancel-race-uas.xml",
        "calls-cancel-race-uac.xml",
        10,
        &[],
    );
    let cancelled = flow
        .iter()
        .filter(|l| l.starts_with("received SIP/2.0 487"))
        .count();
    let answered = flow.iter().filter(|l| l.starts_with("sent BYE")).count();
    assert_eq!(
        cancelled + answered,
        10,
        "every race ends in a 487 or an answered call that the caller hangs up: {flow:#?}\n{}",
        sipp_trace(dir.path(), "uac")
    );
    eprintln!("cancel race: {cancelled} × 487, {answered} × 200 then BYE");
    assert_no_active_calls(&s);
    let records = call_records(&s);
    assert_eq!(
        records.len(),
        10,
        "one record per call attempt: {records:#?}"
    );
    for r in &records {
        let d = r["disposition"].as_str().unwrap_or("");
        assert!(d == "cancelled" || d == "answered", "{r}");
    }
}

/// Both sides re-INVITE at once: the callee's re-INVITE reaches the caller, whose own
/// re-INVITE then crosses it and must get 491 from mss; the caller answers the callee's
/// with 491. The callee then gets that 491 (and its retry succeeds), or mss retries the
/// re-INVITE towards the caller itself and relays the 200; then the caller's retry gets
/// 200 too.
#[test]
fn reinvite_glare_gets_491_and_the_retries_succeed() {
    let (s, dir, flow) = through_mss("calls-glare-uas.xml", "calls-glare-uac.xml", 1, &[]);
    assert!(
        flow.iter()
            .any(|l| l == "received SIP/2.0 491 Request Pending"),
        "the caller should get 491 for its crossing re-INVITE: {flow:#?}"
    );
    let uas_flow = sipp_flow(dir.path(), "uas");
    let callee_491 = uas_flow
        .iter()
        .any(|l| l == "received SIP/2.0 491 Request Pending");
    eprintln!(
        "glare: the callee {}",
        if callee_491 {
            "got the caller's 491 and retried"
        } else {
            "got 200: mss retried its re-INVITE on the caller's leg"
        }
    );
    assert_no_active_calls(&s);
}

/// The callee sends 183 with SDP, then 180, then 200: the caller sees them in that order,
/// the 183 with its SDP (the scenario checks the body).
#[test]
fn early_media_183_then_180_then_200_reach_the_caller_in_order() {
    let (s, _dir, flow) = through_mss(
        "calls-early-media-uas.xml",
        "calls-early-media-uac.xml",
        1,
        &[],
    );
    let answers: Vec<&str> = flow
        .iter()
        .filter_map(|l| l.strip_prefix("received SIP/2.0 "))
        .filter(|l| !l.starts_with("100") && !l.starts_with("407"))
        .collect();
    assert_eq!(
        answers.first().copied().map(|a| &a[..3]),
        Some("183"),
        "first answer after the challenge: {answers:?}"
    );
    let codes: Vec<&str> = answers.iter().map(|a| &a[..3]).collect();
    assert_eq!(
        codes,
        ["183", "180", "200", "200"],
        "INVITE answers, then the BYE's 200: {flow:#?}"
    );
    assert_no_active_calls(&s);
}

/// Runs a caller-only scenario (no callee is reached) against mss; must end with status 0.
fn refused(scenario: &str, callee: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let (ok, out, err) = run_bounded(
        &mut caller(&s, d, scenario, callee, 1),
        Duration::from_secs(25),
    );
    assert!(
        ok,
        "{scenario} failed:\n{}{err}\n{}\n{}",
        calls_common::tail(&out, 3000),
        sipp_trace(d, "uac"),
        mss_log(&s)
    );
    assert_no_active_calls(&s);
    sipp_flow(d, "uac")
}

#[test]
fn an_invite_requiring_an_unknown_extension_gets_420_with_unsupported() {
    let flow = refused("calls-require-uac.xml", "101");
    assert!(
        flow.iter().any(|l| l.starts_with("received SIP/2.0 420")),
        "{flow:#?}"
    );
}

#[test]
fn a_call_to_an_unknown_extension_gets_404() {
    let flow = refused("calls-unknown-uac.xml", "555");
    assert!(
        flow.iter().any(|l| l.starts_with("received SIP/2.0 404")),
        "{flow:#?}"
    );
}

#[test]
fn a_caller_without_credentials_gets_407() {
    let flow = refused("calls-noauth-uac.xml", "101");
    assert!(
        flow.iter().any(|l| l.starts_with("received SIP/2.0 407")),
        "{flow:#?}"
    );
}
