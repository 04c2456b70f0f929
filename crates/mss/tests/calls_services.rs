//! The PBX call services (DESIGN §8, `crates/mss-core/src/calls/routing.rs`) through the
//! real `mss` with real clients — pjsua2 (the agent in `tests/agents/`) and baresip 1.0 —
//! over UDP: forwarding on busy, on no answer and when unreachable (the caller gets `181
//! Call Is Being Forwarded` with `Call-Info` naming the user), ring-all and linear groups,
//! call levels (`403` with the reason in a `Warning`) and forward loops (`482`).
//!
//! Each test asserts what the caller and the callees saw (SIP status codes and events), the
//! record of `GET /api/calls` (`answered_by`, `forwarded_from`, `disposition`), and ends with
//! `GET /api/calls/active` empty. The simulated-time versions are in
//! `crates/mss-core/tests/sim_services.rs`; these keep the ring times short (3 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod calls_common;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use calls_common::{
    assert_no_active_calls, call_no, call_records, ev, mss_log, start_services, wait_record,
    wait_registered, Agent, Baresip,
};
use common::Server;
use serde_json::Value;

/// The ring time of the no-answer forward and of the linear group in these tests.
const RING: Duration = Duration::from_secs(3);

/// Whether record field `field` names `user` (`100`, or a URI with it).
fn names(r: &Value, field: &str, user: &str) -> bool {
    r[field].as_str().is_some_and(|v| {
        v == user || v.contains(&format!(":{user}@")) || v.starts_with(&format!("{user}@"))
    })
}

/// Agent `user` (named so) registered over UDP.
fn agent(d: &Path, s: &Server, user: &str) -> Agent {
    Agent::registered(d, s, user, user, "udp")
}

/// Waits for the caller's `181 Call Is Being Forwarded` whose `Call-Info` names `user`
/// (`<sip:USER@pbx.test>;purpose=info`); returns the event.
fn wait_forwarded_by(a: &Agent, s: &Server, user: &str) -> Value {
    let want = format!("<sip:{user}@pbx.test>");
    a.wait(
        s,
        &format!("181 Call Is Being Forwarded with Call-Info {want}"),
        |e| {
            ev::response("INVITE", 181)(e)
                && e["call_info"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&want))
        },
    )
}

/// The caller's record (`caller` = `caller`, `callee` = `callee`), once it is closed.
fn closed_record(s: &Server, caller: &str, callee: &str) -> Value {
    wait_record(
        s,
        &format!("{caller} → {callee}, closed (with a disposition)"),
        |r| names(r, "caller", caller) && names(r, "callee", callee) && !r["disposition"].is_null(),
    )
}

/// Asserts `(answered_by, forwarded_from, disposition)` of record `r`.
fn assert_record(r: &Value, answered_by: Option<&str>, forwarded_from: Option<&str>, disp: &str) {
    assert_eq!(
        (
            r["answered_by"].as_str(),
            r["forwarded_from"].as_str(),
            r["disposition"].as_str()
        ),
        (answered_by, forwarded_from, Some(disp)),
        "the record (answered_by, forwarded_from, disposition): {r}"
    );
}

/// 1. Busy → forward: 101 (pjsua2) rejects with `486`; its `forward_busy = 102`; the
///    caller gets `181` with `Call-Info: <sip:101@…>` (and never the 486), 102 rings and
///    answers; the record says answered_by 102, forwarded_from 101.
#[test]
fn a_busy_user_forwards_to_forward_busy_with_181() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(d, "", &[("101", "forward_busy = 102\n")], "");
    let mut busy = agent(d, &s, "101");
    let mut target = agent(d, &s, "102");
    let mut a = agent(d, &s, "100");

    a.cmd("call 101");
    let inc = busy.wait(&s, "the call to 101", ev::incoming());
    let n = call_no(&inc);
    busy.cmd(&format!("reject 486 {n}"));
    let over = busy.wait(&s, "101's call over", ev::state(n, "DISCONNECTED"));
    assert_eq!(
        over["code"], 486,
        "101 should end its call with 486: {over}"
    );

    wait_forwarded_by(&a, &s, "101");
    let inc = target.wait(&s, "the forwarded call at 102", ev::incoming());
    let m = call_no(&inc);
    assert!(
        inc["from"].as_str().unwrap_or("").contains("sip:100@"),
        "102: the caller should still be 100: {inc}"
    );
    target.cmd(&format!("answer 200 {m}"));
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    target.wait(&s, "the call confirmed at 102", ev::state(m, "CONFIRMED"));
    a.assert_not_seen(&s, 0, "101's 486", ev::response("INVITE", 486));

    a.cmd("hangup");
    target.wait(&s, "the caller's BYE at 102", ev::request("BYE"));
    target.wait(&s, "102's call over", ev::state(m, "DISCONNECTED"));
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));

    let r = closed_record(&s, "100", "101");
    assert_record(&r, Some("102"), Some("101"), "answered");
    assert_eq!(r["ended_by"], "caller", "{r}");
    assert_no_active_calls(&s);
}

/// 2. No answer → forward: 101 rings (180) and never answers; after `no_answer_timeout =
///    3s` mss cancels 101's INVITE (CANCEL, 487) and the caller gets `181`; 102 answers
///    and hangs up.
#[test]
fn an_unanswered_user_forwards_to_forward_no_answer_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(
        d,
        "",
        &[("101", "forward_no_answer = 102\nno_answer_timeout = 3s\n")],
        "",
    );
    let silent = agent(d, &s, "101");
    let mut target = agent(d, &s, "102");
    let mut a = agent(d, &s, "100");

    a.cmd("call 101");
    silent.wait(&s, "the call to 101", ev::incoming());
    let ringing = Instant::now();
    a.wait(&s, "101 ringing (180)", ev::response("INVITE", 180));

    let inc = target.wait(&s, "the forwarded call at 102", ev::incoming());
    let waited = ringing.elapsed();
    assert!(
        waited >= RING - Duration::from_millis(500),
        "102 rang {waited:?} after 101, before no_answer_timeout = {RING:?}\n{}",
        mss_log(&s)
    );
    silent.wait(&s, "a CANCEL for 101", ev::request("CANCEL"));
    let over = silent.wait(&s, "101's call over", ev::state(1, "DISCONNECTED"));
    assert_eq!(over["code"], 487, "101 should end with 487: {over}");
    silent.assert_not_seen(&s, 0, "CONFIRMED at 101", ev::state(1, "CONFIRMED"));
    wait_forwarded_by(&a, &s, "101");

    let m = call_no(&inc);
    target.cmd(&format!("answer 200 {m}"));
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    target.wait(&s, "the call confirmed at 102", ev::state(m, "CONFIRMED"));
    target.cmd(&format!("hangup 0 {m}"));
    a.wait(&s, "102's BYE", ev::request("BYE"));
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));
    target.wait(&s, "102's call over", ev::state(m, "DISCONNECTED"));

    let r = closed_record(&s, "100", "101");
    assert_record(&r, Some("102"), Some("101"), "answered");
    assert_eq!(r["ended_by"], "callee", "{r}");
    assert_no_active_calls(&s);
}

/// 3. Unreachable → forward: 101 has no registered device; its `forward_unreachable = 102`.
///    The caller is baresip (100): its trace shows the `181` with `Call-Info` from mss; 102
///    (pjsua2) answers; baresip hangs up.
#[test]
fn an_unregistered_user_forwards_to_forward_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(d, "", &[("101", "forward_unreachable = 102\n")], "");
    let mut b = Baresip::start(d, "100", "100", s.sip(), "udp", true);
    wait_registered(&s, "100", "UDP", &|| b.log());
    let mut target = agent(d, &s, "102");
    assert!(
        !s.registrations().iter().any(|r| r["user"] == "101"),
        "101 must not be registered: {:?}",
        s.registrations()
    );

    let mb = b.mark();
    b.command("dial", &format!("sip:101@{};transport=udp", s.sip()));
    let inc = target.wait(&s, "the forwarded call at 102", ev::incoming());
    assert!(
        inc["from"].as_str().unwrap_or("").contains("sip:100@"),
        "102: the caller should be 100: {inc}"
    );
    let m = call_no(&inc);
    target.cmd(&format!("answer 200 {m}"));
    b.wait_event(&s, mb, "CALL_ESTABLISHED");
    target.wait(&s, "the call confirmed at 102", ev::state(m, "CONFIRMED"));

    let forwarded: Vec<String> = b
        .messages()
        .into_iter()
        .map(|(_, msg)| msg)
        .filter(|msg| msg.starts_with("SIP/2.0 181"))
        .collect();
    assert!(
        forwarded.iter().any(|msg| msg
            .lines()
            .any(|l| l.starts_with("Call-Info:") && l.contains("<sip:101@pbx.test>"))),
        "baresip: expected a 181 with Call-Info: <sip:101@pbx.test>; its 181s: {forwarded:#?}\n{}",
        b.log()
    );

    b.command("hangup", "");
    target.wait(&s, "baresip's BYE at 102", ev::request("BYE"));
    target.wait(&s, "102's call over", ev::state(m, "DISCONNECTED"));
    b.wait_event(&s, mb, "CALL_CLOSED");

    let r = closed_record(&s, "100", "101");
    assert_record(&r, Some("102"), Some("101"), "answered");
    assert_no_active_calls(&s);
}

/// 4. A `ring_all` group (600: 102, 103) rings both phones; 103 answers first and wins,
///    102's INVITE is cancelled (CANCEL, 487) and never confirmed.
#[test]
fn a_ring_all_group_rings_both_phones_and_the_first_answer_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(
        d,
        "",
        &[],
        "[group:600]\nmembers = 102, 103\nstrategy = ring_all\nring_timeout = 20s\n",
    );
    let loser = agent(d, &s, "102");
    let mut winner = agent(d, &s, "103");
    let mut a = agent(d, &s, "100");

    a.cmd("call 600");
    loser.wait(&s, "the group's call at 102", ev::incoming());
    let inc = winner.wait(&s, "the group's call at 103", ev::incoming());
    a.wait(&s, "ringing (180)", ev::response("INVITE", 180));
    let m = call_no(&inc);
    winner.cmd(&format!("answer 200 {m}"));
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    winner.wait(&s, "the call confirmed at 103", ev::state(m, "CONFIRMED"));
    loser.wait(&s, "a CANCEL for 102", ev::request("CANCEL"));
    let over = loser.wait(&s, "102's call over", ev::state(1, "DISCONNECTED"));
    assert_eq!(over["code"], 487, "102 should end with 487: {over}");
    loser.assert_not_seen(&s, 0, "CONFIRMED at 102", ev::state(1, "CONFIRMED"));

    a.cmd("hangup");
    winner.wait(&s, "the caller's BYE at 103", ev::request("BYE"));
    winner.wait(&s, "103's call over", ev::state(m, "DISCONNECTED"));
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));

    let r = closed_record(&s, "100", "600");
    assert_record(&r, Some("103"), None, "answered");
    assert_eq!(
        call_records(&s).len(),
        1,
        "one record for the group's call: {:?}",
        call_records(&s)
    );
    assert_no_active_calls(&s);
}

/// 5. A `linear` group (601: 102, 103, `ring_timeout = 3s`) rings in order: 102 alone
///    first, never answers, is cancelled after 3 s; then 103 rings and answers.
#[test]
fn a_linear_group_rings_its_members_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(
        d,
        "",
        &[],
        "[group:601]\nmembers = 102, 103\nstrategy = linear\nring_timeout = 3s\n",
    );
    let first = agent(d, &s, "102");
    let mut second = agent(d, &s, "103");
    let mut a = agent(d, &s, "100");

    a.cmd("call 601");
    first.wait(&s, "the group's call at 102 (first)", ev::incoming());
    let ringing = Instant::now();
    a.wait(&s, "ringing (180)", ev::response("INVITE", 180));
    // Still within 102's ring time: 103 must not ring yet.
    std::thread::sleep(Duration::from_millis(1500));
    second.assert_not_seen(&s, 0, "a call at 103 while 102 rings", ev::incoming());

    let inc = second.wait(&s, "the group's call at 103 (second)", ev::incoming());
    let waited = ringing.elapsed();
    assert!(
        waited >= RING - Duration::from_millis(500),
        "103 rang {waited:?} after 102, before ring_timeout = {RING:?}\n{}",
        mss_log(&s)
    );
    first.wait(&s, "a CANCEL for 102", ev::request("CANCEL"));
    let over = first.wait(&s, "102's call over", ev::state(1, "DISCONNECTED"));
    assert_eq!(over["code"], 487, "102 should end with 487: {over}");

    let m = call_no(&inc);
    second.cmd(&format!("answer 200 {m}"));
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    second.wait(&s, "the call confirmed at 103", ev::state(m, "CONFIRMED"));
    a.cmd("hangup");
    second.wait(&s, "the caller's BYE at 103", ev::request("BYE"));
    second.wait(&s, "103's call over", ev::state(m, "DISCONNECTED"));
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));
    first.assert_not_seen(&s, 0, "CONFIRMED at 102", ev::state(1, "CONFIRMED"));

    let r = closed_record(&s, "100", "601");
    assert_record(&r, Some("103"), None, "answered");
    assert_no_active_calls(&s);
}

/// The caller's final answer to its call `n`: waits for the call to be over and for the
/// final response; returns it.
fn final_answer(a: &Agent, s: &Server, mark: usize, n: u64, code: u64) -> Value {
    let over = a.wait_after(s, mark, "the call over", ev::state(n, "DISCONNECTED"));
    assert_eq!(
        over["code"], code,
        "the call should end with {code}: {over}"
    );
    a.wait_after(
        s,
        mark,
        &format!("the final {code}"),
        ev::response("INVITE", code),
    )
}

/// 6. Call levels, no line configured: 100 (`call_level = internal`) dialling 9 + a number
///    gets `403` with a `Warning` naming its level; 101 (`call_level = national`) dialling
///    9 + an `00` number gets `403` (international), while 9 + a national number passes the
///    level and gets `503` (no line online).
#[test]
fn call_levels_refuse_numbers_with_403_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(
        d,
        "national_prefix = 0\ninternational_prefix = 00\n",
        &[
            ("100", "call_level = internal\n"),
            ("101", "call_level = national\n"),
        ],
        "",
    );
    let mut internal = agent(d, &s, "100");
    let mut national = agent(d, &s, "101");

    internal.cmd("call 95551234");
    let r = final_answer(&internal, &s, 0, 1, 403);
    let warning = r["warning"].as_str().unwrap_or("");
    assert!(
        warning.contains("user 100 may not dial") && warning.contains("call_level = internal"),
        "100's 403 should carry a Warning naming its call_level: {r}"
    );

    national.cmd("call 900441234567");
    let r = final_answer(&national, &s, 0, 1, 403);
    let warning = r["warning"].as_str().unwrap_or("");
    assert!(
        warning.contains("user 101 may not dial international numbers")
            && warning.contains("call_level = national"),
        "101's 403 should say it may not dial international numbers: {r}"
    );

    // A national number is within 101's level: no 403, but no line is online either.
    let mark = national.mark();
    national.cmd("call 90301234567");
    let calling = national.wait_after(&s, mark, "the third call placed", |e| {
        e["event"] == "calling"
    });
    let r = final_answer(&national, &s, mark, call_no(&calling), 503);
    national.assert_not_seen(&s, mark, "a 403", ev::response("INVITE", 403));
    assert!(
        r["warning"]
            .as_str()
            .is_none_or(|w| !w.contains("call_level")),
        "the 503 should not be about call levels: {r}"
    );

    let records = call_records(&s);
    for (caller, callee, code) in [
        ("100", "95551234", 403),
        ("101", "900441234567", 403),
        ("101", "90301234567", 503),
    ] {
        let r = closed_record(&s, caller, callee);
        assert_eq!(
            (r["sip_code"].as_u64(), r["disposition"].as_str()),
            (Some(code), Some("failed")),
            "the record of {caller} → {callee}: {r}\nall: {records:#?}"
        );
    }
    assert_no_active_calls(&s);
}

/// 7. A forward loop: 101 → 102 → 101 with `forward_always`: the caller gets a `181` for
///    each forward and then `482 Loop Detected`; neither 101's nor 102's phone rings.
#[test]
fn a_forward_loop_is_refused_with_482() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(
        d,
        "",
        &[
            ("101", "forward_always = 102\n"),
            ("102", "forward_always = 101\n"),
        ],
        "",
    );
    let p101 = agent(d, &s, "101");
    let p102 = agent(d, &s, "102");
    let mut a = agent(d, &s, "100");

    a.cmd("call 101");
    final_answer(&a, &s, 0, 1, 482);
    wait_forwarded_by(&a, &s, "101");
    wait_forwarded_by(&a, &s, "102");
    p101.assert_not_seen(&s, 0, "a call at 101", ev::incoming());
    p102.assert_not_seen(&s, 0, "a call at 102", ev::incoming());

    let r = closed_record(&s, "100", "101");
    assert_record(&r, None, Some("101"), "failed");
    assert_eq!(r["sip_code"], 482, "{r}");
    assert_no_active_calls(&s);
}
