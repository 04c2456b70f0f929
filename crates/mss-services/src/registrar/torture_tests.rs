//! RFC 4475 REGISTER messages and a property test: whatever arrives, the registrar answers.

use bytes::Bytes;
use mss_sip::{parse_datagram, Message};

use super::tests::{
    contacts, flow, handle, ok, parse, register, registrar, reply, start, with_auth,
};
use super::RegisterOutcome;

fn torture(name: &str) -> String {
    String::from_utf8(mss_testdata::torture::bytes(name).to_vec()).unwrap()
}

#[test]
fn rfc4475_register_messages() {
    let now = start();
    // escnull: two distinct contacts (%00 and %00%00). Its AOR user holds a NUL, which no
    // configured user can have: it is challenged; with a real user it registers both.
    let mut reg = registrar();
    let text = torture("escnull");
    assert_eq!(
        reply(handle(&mut reg, now, &parse(&text), &flow()))
            .status()
            .as_u16(),
        401
    );
    let text = text.replace("null-%00-null", "user");
    let done = ok(&mut reg, now, &text, "user");
    let mut c = contacts(&done.response);
    c.sort();
    assert_eq!(
        c,
        vec![
            "<sip:%00%00@host5.example.com>;expires=3600",
            "<sip:%00@host5.example.com>;expires=3600"
        ]
    );
    // cparam01: the param outside <> is not part of the URI.
    let done = ok(&mut reg, now, &torture("cparam01"), "watson");
    assert_eq!(
        contacts(&done.response),
        vec!["<sip:+19725552222@gw1.example.net>;expires=3600"]
    );
    // cparam02: the URI param inside <> is kept (same user: a second binding).
    let done = ok(&mut reg, now, &torture("cparam02"), "watson");
    assert!(contacts(&done.response)
        .contains(&"<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600".to_owned()));
    // regescrt: the escaped header stays in the binding's URI.
    let done = ok(
        &mut reg,
        now,
        &torture("regescrt").replace("14398234", "14398235"),
        "user",
    );
    assert!(contacts(&done.response).contains(
        &"<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600".to_owned()
    ));
    // unksm2: a non-SIP AOR → 400 (before any challenge); regbadct, scalar02 → 400.
    for (name, reason) in [
        ("unksm2", "To Must Be a SIP URI"),
        ("regbadct", "Malformed Contact Header"),
        ("scalar02", "CSeq Number Out Of Range"),
    ] {
        let rsp = reply(handle(&mut reg, now, &parse(&torture(name)), &flow()));
        assert_eq!(rsp.status().as_u16(), 400, "{name}");
        assert_eq!(String::from_utf8_lossy(rsp.reason()), reason, "{name}");
    }
    // regaut01: an unknown scheme is no credentials: a fresh challenge.
    let rsp = reply(handle(&mut reg, now, &parse(&torture("regaut01")), &flow()));
    assert_eq!(rsp.status().as_u16(), 401);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Whatever the Contact, Expires and To values, the registrar answers without panicking.
    #[test]
    fn never_panics(
        contact in "(\\*|<sip:[a-z%0-9]{0,6}@[a-z0-9.]{1,8}(;[a-z+.-]{1,6}(=[a-z0-9\"<>:-]{0,8})?)?>(;[a-z+.-]{1,9}(=[\"a-z0-9<>:-]{0,12})?){0,3}|[ -~]{0,30})",
        expires in "([0-9]{0,25}|[ -~]{0,6})",
        to in "(<sip:100@example.com>|sip:[a-z0-9%]{0,5}@[a-z.]{1,12}|[ -~]{0,20})",
    ) {
        let mut reg = registrar();
        let now = start();
        let text = register("100", "pp", 1, &format!("Expires: {expires}\r\nContact: {contact}\r\n"))
            .replace("To: <sip:100@example.com>", &format!("To: {to}"));
        let Ok(Message::Request(req)) = parse_datagram(Bytes::from(text.clone())) else {
            return Ok(());
        };
        let challenge = match handle(&mut reg, now, &req, &flow()) {
            RegisterOutcome::Reply(r) => r,
            RegisterOutcome::Commit(_) => panic!("commit without credentials"),
        };
        if challenge.status().as_u16() == 401 {
            let authed = with_auth(&text, &challenge, "100", "s3cret", 1);
            if let RegisterOutcome::Commit(p) = handle(&mut reg, now, &authed, &flow()) {
                let done = reg.complete(now, p);
                proptest::prop_assert_eq!(done.response.status().as_u16(), 200);
            }
        }
    }
}
