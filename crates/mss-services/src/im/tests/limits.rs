//! Rate limit, the bounded sender table, periodic sweeps.

use super::*;

#[test]
fn rate_limit_per_sender() {
    let mut s = settings();
    s.rate_limit = Some(RateLimit::per_second(1, 2));
    let mut h = Harness::with(s);
    for i in 0..2 {
        let _ = h.offline(i, &text("x"));
    }
    h.message(3, &text("x"), vec![]);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 503);
    assert_eq!(rsp.headers().retry_after().unwrap().unwrap().seconds, 1);
    assert!(warning_text(&rsp).contains("Too many messages"));
    // Another sender is not affected.
    let other = Sender::Local { user: "100".into() };
    let r = Recipient::Local {
        user: "102".into(),
        contacts: vec![],
    };
    h.im.handle_message(h.now, 4, &text("x"), other, r);
    assert!(matches!(one(h.drain()), ImOutput::Store { .. }));
    h.advance(Duration::from_secs(1));
    let _ = h.offline(5, &text("x"));
    assert_eq!(h.im.stats().refused.rate_limited, 1);
}

#[test]
fn sender_table_is_bounded_and_forgets_idle_senders() {
    let mut s = settings();
    s.max_tracked_senders = 5;
    let mut h = Harness::with(s);
    for i in 0..100 {
        let sender = Sender::Local {
            user: format!("u{i}"),
        };
        h.im.handle_message(h.now, i, &text("x"), sender, Recipient::Unknown);
        assert!(h.im.tracked_senders() <= 5);
    }
    h.advance(Duration::from_secs(11));
    h.im.handle_timeout(h.now);
    assert_eq!(h.im.tracked_senders(), 0);
}

#[test]
fn expiry_sweep_is_periodic() {
    let mut h = Harness::new();
    let first = h.im.poll_timeout().unwrap();
    assert!(first <= h.now.mono + Duration::from_secs(60));
    h.advance(Duration::from_secs(60));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    assert!(outs
        .iter()
        .any(|o| matches!(o, ImOutput::Expire { now } if *now == h.now.unix_ms)));
    h.im.handle_expired(h.now, Ok(4));
    assert_eq!(h.im.stats().expired, 4);
    // A sweep whose result never comes does not block the next one.
    h.advance(Duration::from_secs(60));
    h.im.handle_timeout(h.now);
    assert_eq!(h.drain().len(), 1);
    h.advance(Duration::from_secs(60));
    h.im.handle_timeout(h.now);
    assert_eq!(h.drain().len(), 1);
}
