//! External lines through the whole core in simulated time: the test plays the provider.
//! Each scenario spans minutes of protocol time (Timer F, backoff, `Retry-After`, refresh
//! at 85 %, the CSeq quirk, a restart) and runs in milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_services::lines::CallIdMode;
use mss_sip::{Flow, HeaderName, Method, Request};
use sim::{reply, Setup, Sim};

const PROVIDER: &str = "127.0.0.2:5060";

fn provider() -> SocketAddr {
    PROVIDER.parse().unwrap()
}

fn setup() -> Setup {
    Setup::default().line("p1", PROVIDER, "2001", Some("101"))
}

fn header(req: &Request, name: &HeaderName) -> String {
    String::from_utf8_lossy(req.headers().get(name).unwrap_or_default()).into_owned()
}

fn call_id(req: &Request) -> String {
    header(req, &HeaderName::CallId)
}

fn cseq(req: &Request) -> u32 {
    req.headers().cseq().unwrap().seq
}

/// The next REGISTER of the line, within `limit`, with the time it left.
fn next_register(sim: &mut Sim, limit: Duration) -> (Duration, Request) {
    let (to, req) = sim
        .next_request(Method::Register, limit)
        .unwrap_or_else(|| panic!("no REGISTER within {limit:?} (at {:?})", sim.elapsed()));
    assert_eq!(to, Flow::udp(provider()));
    (sim.elapsed(), req)
}

/// The provider's `401` challenge.
fn challenge(sim: &mut Sim, req: &Request) {
    let text = reply(
        req,
        401,
        "Unauthorized",
        "WWW-Authenticate: Digest realm=\"provider.test\", nonce=\"n-1\", qop=\"auth\", algorithm=MD5\r\n",
    );
    sim.receive(provider(), &text);
}

/// The provider's `200` granting `expires` seconds to the REGISTER's Contact.
fn accept(sim: &mut Sim, req: &Request, expires: u32) {
    let contact = header(req, &HeaderName::Contact);
    let contact = contact.split(';').next().unwrap_or_default();
    let text = reply(
        req,
        200,
        "OK",
        &format!("Contact: {contact};expires={expires}\r\n"),
    );
    sim.receive(provider(), &text);
}

/// Brings line 0 online: its first REGISTER is challenged, the answer accepted for
/// `expires` s. Returns the accepted REGISTER.
fn bring_online(sim: &mut Sim, expires: u32) -> Request {
    bring_online_with(sim, expires, true)
}

/// [`bring_online`]; `same_dialog`: the answer to the challenge keeps the Call-ID.
fn bring_online_with(sim: &mut Sim, expires: u32, same_dialog: bool) -> Request {
    let (_, first) = next_register(sim, Duration::from_secs(1));
    assert!(first.headers().get(&HeaderName::Authorization).is_none());
    challenge(sim, &first);
    let (_, authed) = next_register(sim, Duration::from_secs(1));
    let auth = header(&authed, &HeaderName::Authorization);
    assert!(auth.contains("username=\"2001\""), "{auth}");
    assert!(auth.contains("realm=\"provider.test\""), "{auth}");
    assert_eq!(call_id(&authed) == call_id(&first), same_dialog);
    if same_dialog {
        assert_eq!(cseq(&authed), cseq(&first) + 1);
    }
    accept(sim, &authed, expires);
    assert_eq!(sim.line_state(0), "online");
    authed
}

#[test]
fn a_line_answers_the_challenge_and_refreshes_at_85_percent_in_the_same_dialog() {
    let mut sim = Sim::start(setup());
    assert_eq!(sim.store_log.first().map(String::as_str), Some("GetLine"));
    let online = bring_online(&mut sim, 600);
    let v = sim.line(0);
    assert_eq!(v.number, "2001");
    assert!(v.expires_at.is_some(), "{v:?}");
    // Nothing until about 85 % of 600 s.
    let (at, refresh) = next_register(&mut sim, Duration::from_secs(600));
    assert!(
        (Duration::from_secs(480)..=Duration::from_secs(540)).contains(&at),
        "refreshed at {at:?}"
    );
    // RFC 3261 §10.2: the same Call-ID, CSeq one higher, answering the known challenge.
    assert_eq!(call_id(&refresh), call_id(&online));
    assert_eq!(cseq(&refresh), cseq(&online) + 1);
    accept(&mut sim, &refresh, 600);
    assert_eq!(sim.line_state(0), "online");
}

#[test]
fn silence_is_unreachable_after_timer_f_then_retried_after_the_backoff() {
    let mut sim = Sim::start(setup());
    let (t0, first) = next_register(&mut sim, Duration::from_secs(1));
    // Timer E retransmits the very request until Timer F (64 × T1 = 32 s) gives up.
    let mut copies = 0;
    let timer_f = t0 + Duration::from_secs(32);
    while sim.elapsed() < timer_f - Duration::from_millis(100) {
        let left = timer_f - Duration::from_millis(100) - sim.elapsed();
        let Some((_, r)) = sim.next_request(Method::Register, left) else {
            break;
        };
        assert_eq!(
            cseq(&r),
            cseq(&first),
            "a retransmission, not a new REGISTER"
        );
        copies += 1;
    }
    // Timer E doubles from 0.5 s up to T2 = 4 s: 0.5, 1.5, 3.5, 7.5, 11.5 … 31.5 s
    // (RFC 3261 §17.1.2.2).
    assert_eq!(copies, 10, "ten retransmissions");
    assert_eq!(sim.line_state(0), "registering");
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.line_state(0), "unreachable");
    let failure = sim.line(0).last_failure.unwrap();
    assert_eq!(failure.code, Some(408));
    assert!(failure.reason.contains("no answer"), "{failure:?}");
    // The retry comes after `retry_min` (30 s), jittered down by at most 20 %.
    let (t1, retry) = next_register(&mut sim, Duration::from_secs(60));
    let waited = t1 - t0 - Duration::from_secs(32);
    assert!(
        (Duration::from_secs(23)..=Duration::from_secs(31)).contains(&waited),
        "retried {waited:?} after the timeout"
    );
    assert!(cseq(&retry) > cseq(&first));
    challenge(&mut sim, &retry);
    let (_, authed) = next_register(&mut sim, Duration::from_secs(1));
    accept(&mut sim, &authed, 600);
    assert_eq!(sim.line_state(0), "online");
}

#[test]
fn unavailable_with_retry_after_waits_that_long() {
    let mut sim = Sim::start(setup());
    let (t0, first) = next_register(&mut sim, Duration::from_secs(1));
    let text = reply(&first, 503, "Service Unavailable", "Retry-After: 120\r\n");
    sim.receive(provider(), &text);
    assert_eq!(sim.line_state(0), "backing_off");
    assert_eq!(sim.line(0).last_failure.unwrap().code, Some(503));
    let (t1, _) = next_register(&mut sim, Duration::from_secs(200));
    let waited = t1 - t0;
    // Never earlier than asked, plus at most 10 % of jitter.
    assert!(
        (Duration::from_secs(120)..=Duration::from_secs(132)).contains(&waited),
        "retried after {waited:?}"
    );
}

#[test]
fn forbidden_is_auth_failed_and_the_backoff_doubles() {
    let mut sim = Sim::start(setup().with_line(|l| {
        l.retry_min = Duration::from_secs(10);
        l.retry_max = Duration::from_secs(100);
    }));
    let mut last = Duration::ZERO;
    let mut waits = Vec::new();
    for n in 0..4 {
        let (at, req) = next_register(&mut sim, Duration::from_secs(200));
        if n > 0 {
            waits.push((at - last).as_secs());
        }
        last = at;
        sim.receive(provider(), &reply(&req, 403, "Forbidden", ""));
        assert_eq!(sim.line_state(0), "auth_failed");
    }
    // 10 s, 20 s, 40 s, each jittered down by at most 20 %.
    for (got, full) in waits.iter().zip([10u64, 20, 40]) {
        assert!((full * 8 / 10..=full).contains(got), "{waits:?}");
    }
}

/// Brings line 0 online, then refuses its refresh the way the classic provider does
/// (`400` + `P-Registrar-Error: Invalid CSeq number`); returns the first accepted REGISTER,
/// the refused refresh, the time the retry left and the retry with a fresh Call-ID that the
/// provider accepted (as sent, and answering the challenge).
fn provoke_the_switch(sim: &mut Sim) -> (Request, Request, Duration, Request, Request) {
    let online = bring_online(sim, 600);
    let (_, refresh) = next_register(sim, Duration::from_secs(600));
    let text = reply(
        &refresh,
        400,
        "Bad Request",
        "P-Registrar-Error: Invalid CSeq number\r\n",
    );
    sim.receive(provider(), &text);
    let (at, fresh) = next_register(sim, Duration::from_secs(1));
    challenge(sim, &fresh);
    let (_, authed) = next_register(sim, Duration::from_secs(1));
    accept(sim, &authed, 600);
    (online, refresh, at, fresh, authed)
}

#[test]
fn the_cseq_quirk_switches_an_auto_line_to_fresh_call_ids_at_once() {
    let mut sim = Sim::start(setup());
    // The provider refuses CSeq+1 on the same Call-ID; the line retries at once with a new
    // Call-ID (and From tag).
    let (online, refresh, at, fresh, authed) = provoke_the_switch(&mut sim);
    assert_eq!(call_id(&refresh), call_id(&online));
    assert!(at < Duration::from_secs(600));
    assert_ne!(call_id(&fresh), call_id(&online));
    assert_eq!(sim.line_state(0), "online");
    assert_eq!(sim.line(0).call_id_mode.as_str(), "auto_fresh");
    // It stays with fresh Call-IDs.
    let (_, next) = next_register(&mut sim, Duration::from_secs(600));
    assert_ne!(call_id(&next), call_id(&authed));
}

#[test]
fn the_switch_to_fresh_call_ids_survives_a_restart() {
    let mut sim = Sim::start(setup());
    let (online, _, _, _, authed) = provoke_the_switch(&mut sim);
    // A crash and a restart: the stored record keeps the switch, so the registrar's
    // complaint is not provoked again.
    let mut sim = sim.restart(Duration::from_secs(3));
    let (_, first) = next_register(&mut sim, Duration::from_secs(1));
    assert_ne!(call_id(&first), call_id(&online));
    assert_ne!(call_id(&first), call_id(&authed));
    assert_eq!(sim.line(0).call_id_mode.as_str(), "auto_fresh");
}

#[test]
fn a_fresh_line_uses_a_new_call_id_for_every_register() {
    let mut sim = Sim::start(setup().with_line(|l| l.call_id_mode = CallIdMode::Fresh));
    let online = bring_online_with(&mut sim, 600, false);
    let (_, refresh) = next_register(&mut sim, Duration::from_secs(600));
    assert_ne!(call_id(&refresh), call_id(&online));
    assert_eq!(sim.line(0).call_id_mode.as_str(), "fresh");
}

#[test]
fn after_a_restart_the_line_continues_above_its_stored_cseq() {
    let mut sim = Sim::start(setup());
    let online = bring_online(&mut sim, 600);
    // Each REGISTER left only after its record was written.
    assert!(sim.store_log.iter().filter(|o| *o == "PutLine").count() >= 2);
    let mut sim = sim.restart(Duration::from_secs(5));
    let (_, first) = next_register(&mut sim, Duration::from_secs(1));
    assert_eq!(call_id(&first), call_id(&online));
    assert!(
        cseq(&first) > cseq(&online),
        "a CSeq the registrar has seen is never reused"
    );
}

#[test]
fn a_register_waits_for_its_record_to_be_durable() {
    let mut sim = Sim::start(setup());
    let (_, first) = next_register(&mut sim, Duration::from_secs(1));
    sim.hold_store = true;
    challenge(&mut sim, &first);
    // The authenticated REGISTER uses a new CSeq: its record is written first.
    assert!(sim
        .next_request(Method::Register, Duration::from_secs(1))
        .is_none());
    assert_eq!(sim.held.len(), 1, "{:?}", sim.store_log);
    sim.release_store();
    let (_, authed) = next_register(&mut sim, Duration::from_secs(1));
    assert_eq!(cseq(&authed), cseq(&first) + 1);
}

#[test]
fn shutdown_unregisters_a_registered_line() {
    let mut sim = Sim::start(setup());
    bring_online(&mut sim, 600);
    sim.input(mss_core::Input::Shutdown);
    let (_, bye) = next_register(&mut sim, Duration::from_secs(1));
    assert_eq!(header(&bye, &HeaderName::Expires), "0");
    accept(&mut sim, &bye, 0);
    assert!(sim.core.is_drained(sim.now()));
}

#[test]
fn a_looked_up_address_no_socket_of_ours_reaches_is_skipped() {
    let mut s = setup();
    s.lines[0].settings.registrar_host = "sip.provider.test".into();
    s.ipv4_only = true;
    let mut sim = Sim::start_with_dns(
        s,
        &[("sip.provider.test", &["[2001:db8::5]:5060", PROVIDER])],
    );
    // The IPv6 address has no socket of ours: the REGISTER goes to the IPv4 one.
    let (_, first) = next_register(&mut sim, Duration::from_secs(1));
    let via = first.headers().top_via().unwrap();
    assert_eq!((via.host, via.port), ("127.0.0.1", Some(5060)));
}

#[test]
fn a_registrar_that_is_a_name_is_looked_up_first() {
    let mut s = setup();
    s.lines[0].settings.registrar_host = "sip.provider.test".into();
    let mut sim = Sim::start(s);
    // No answer to the lookup yet: nothing is sent.
    assert!(sim
        .next_request(Method::Register, Duration::from_secs(1))
        .is_none());
    assert_eq!(sim.lookups.len(), 1);
    // Shutdown cancels the lookup and the core still drains.
    sim.shutdown();
    assert!(sim.lookups.is_empty());
}

/// A TLS line whose connection fails (the transports report the certificate refused)
/// fails at once, not after Timer F: `unreachable`, with the reason in the admin view;
/// its transaction ends, so no later timeout changes the reason.
#[test]
fn a_failed_tls_connection_makes_the_line_unreachable_with_the_reason() {
    let setup = setup().with_line(|s| s.transport = mss_sip::Transport::Tls);
    let mut sim = Sim::start(setup);
    let (to, _) = sim
        .next_request(Method::Register, Duration::from_secs(1))
        .unwrap();
    assert_eq!(to.transport, mss_sip::Transport::Tls);
    assert_eq!(to.remote, provider());
    // A failure elsewhere is not the line's.
    let elsewhere = Flow {
        remote: "127.0.0.3:5061".parse().unwrap(),
        ..to
    };
    sim.input(mss_core::Input::ConnectFailed {
        flow: elsewhere,
        reason: "not this one".into(),
    });
    assert_eq!(sim.line_state(0), "registering");
    sim.input(mss_core::Input::ConnectFailed {
        flow: to,
        reason: "certificate name mismatch: not valid for 127.0.0.2".into(),
    });
    assert_eq!(sim.line_state(0), "unreachable");
    let failure = sim.line(0).last_failure.unwrap();
    assert_eq!(failure.code, None);
    assert_eq!(
        failure.reason,
        "TLS to 127.0.0.2:5060: certificate name mismatch: not valid for 127.0.0.2"
    );
    // Its transaction is over: nothing overrides the reason, and the retry waits for the
    // backoff (at least 24 s).
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.line(0).last_failure.unwrap(), failure);
    assert!(sim
        .next_request(Method::Register, Duration::from_secs(1))
        .is_none());
}
