//! Offline recipients: the 202 after the disk, limits, body checks, store failures.

use super::*;

#[test]
fn limit_counts_characters() {
    let mut h = Harness::new();
    h.message(1, &text(&"a".repeat(200)), vec![]);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 413);
    assert_eq!(
        warning_text(&rsp),
        "Message too long to store offline: 200 characters, the limit is 199"
    );
    // 199 two-byte characters (398 bytes) are under the limit.
    let long = "ü".repeat(199);
    let (token, msg, _) = h.offline(2, &text(&long));
    assert_eq!(msg.body, long.as_bytes());
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(1)));
    assert_eq!(reply(one(h.drain())).1.status(), StatusCode::ACCEPTED);
    // A long message to an online user is relayed: the limit is for storing only.
    h.message(3, &text(&"a".repeat(500)), vec![contact(7)]);
    assert_eq!(sends(h.drain()).len(), 1);
}

#[test]
fn full_store_is_480_with_words() {
    let mut h = Harness::new();
    for i in 0..10 {
        let (token, _, _) = h.offline(i, &text("m"));
        h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(i64::from(i))));
        assert_eq!(reply(one(h.drain())).1.status(), StatusCode::ACCEPTED);
    }
    let (token, _, _) = h.offline(11, &text("eleventh"));
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Full { stored: 10 }));
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!((txn, rsp.status().as_u16()), (11, 480));
    assert_eq!(rsp.reason(), b"Offline Message Store Full");
    assert!(warning_text(&rsp).contains("10 stored messages"));
    assert_eq!(h.im.stats().refused.store_full, 1);
}

#[test]
fn store_error_or_silence_is_500_with_retry_after() {
    let mut h = Harness::new();
    let (token, _, _) = h.offline(1, &text("a"));
    h.im.handle_stored(h.now, token, Err("disk I/O error".into()));
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 500);
    assert_eq!(rsp.headers().retry_after().unwrap().unwrap().seconds, 10);
    // A store that never answers: the guard answers 500 and a late result is ignored.
    let (token, _, _) = h.offline(2, &text("b"));
    h.advance(Duration::from_secs(31));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    let rsp = outs
        .into_iter()
        .find_map(|o| match o {
            ImOutput::Reply {
                server: 2,
                response,
            } => Some(response),
            _ => None,
        })
        .unwrap();
    assert_eq!(rsp.status().as_u16(), 500);
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(5)));
    assert!(h.drain().is_empty());
    assert_eq!(h.im.stats().refused.store_error, 2);
}

#[test]
fn body_problems() {
    let mut h = Harness::new();
    h.message(1, &message_with("text/plain", "", b""), vec![]);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(
        (rsp.status().as_u16(), rsp.reason()),
        (400, &b"Missing Message Body"[..])
    );
    h.message(
        2,
        &message_with("text/plain;charset=koi8-r", "", b"x"),
        vec![],
    );
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 415);
    assert!(warning_text(&rsp).contains("koi8-r"));
    h.message(
        3,
        &message_with("text/plain", "", b"\xc3("),
        vec![contact(7)],
    );
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 400);
    assert_eq!(h.im.stats().refused.bad_body, 3);
    // Other types pass unchanged.
    let cpim = b"From: <sip:101@pbx>\r\n\r\nContent-Type: text/plain\r\n\r\nhi";
    let (_, msg, _) = h.offline(4, &message_with("message/cpim", "", cpim));
    assert_eq!(
        (msg.content_type.as_str(), &msg.body[..]),
        ("message/cpim", &cpim[..])
    );
}
#[test]
fn own_expires_shortens_storage() {
    let mut h = Harness::new();
    let (_, msg, _) = h.offline(1, &message_with("text/plain", "Expires: 60\r\n", b"x"));
    assert_eq!(msg.expires_at, T0_MS + 60_000);
    h.message(
        2,
        &message_with("text/plain", "Expires: 0\r\n", b"x"),
        vec![],
    );
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 480);
    assert_eq!(h.im.stats().refused.expired, 1);
}
