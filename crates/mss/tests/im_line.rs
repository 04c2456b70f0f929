//! MESSAGEs that come in through an external line (DESIGN §3): the real `mss` registers
//! line `p1` at a fake provider (a raw UDP socket that answers the REGISTER with `200`);
//! a MESSAGE from that provider's address to the line's number needs no credentials and
//! goes to the line's owner: stored while the owner is offline (`202`), delivered when the
//! owner registers, relayed live once it is online. A MESSAGE from the provider to another
//! number, or to the line's number from anywhere else, is challenged (`407`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod im_common;
mod lines_common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{wait_for, Peer};
use im_common::{call_id, header, messages, start_with_sections, transact, Ua};
use lines_common::{wait_state, PASSWORD, USER};
use mss_sip::{HeaderName, Request};

/// The line's owner.
const OWNER: &str = "101";

/// A MESSAGE as a provider sends it for the line: to `sip:{to}@{server}` (the Contact the
/// line registered), `To` the line's AOR at the provider, from a caller outside.
fn line_message(peer: &Peer, server: SocketAddr, to: &str, body: &str) -> Vec<u8> {
    let me = peer.addr();
    let cid = call_id("line");
    format!(
        "MESSAGE sip:{to}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{cid};rport\r\nMax-Forwards: 69\r\nFrom: <sip:+4930555@provider.test>;tag=pv\r\nTo: <sip:{to}@provider.test>\r\nCall-ID: {cid}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn body(req: &Request) -> String {
    String::from_utf8_lossy(req.body()).into_owned()
}

#[test]
fn a_message_from_the_lines_provider_reaches_the_owner_without_a_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Ua::new("provider");
    let line = format!(
        "[line:p1]\nregistrar = {}\nnumber = {USER}\npassword = {PASSWORD}\nowner = {OWNER}\n",
        provider.peer.addr()
    );
    let s = start_with_sections(dir.path(), "", &line);

    // The provider takes the line's REGISTER. Up to 40 s: a first REGISTER sent before the
    // runtime has polled the new UDP socket fails with `WouldBlock` (mss-transport's
    // `try_send_to`), and the line retries 24–30 s later.
    let register = provider
        .recv_request(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("no REGISTER from the line:\n{}", s.stderr()));
    assert_eq!(register.method().as_str(), "REGISTER");
    provider.answer(s.sip(), &register, 200, "OK");
    wait_state(&s, "online", Duration::from_secs(5), &String::new);

    // The owner is offline: stored for them, 202.
    let rsp = transact(
        &provider.peer,
        s.sip(),
        &line_message(&provider.peer, s.sip(), USER, "while away"),
    );
    assert_eq!(rsp.status().as_u16(), 202, "{rsp:?}\n{}", s.stderr());
    let stored = messages(&s, OWNER);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["body"], "while away");
    assert!(
        stored[0]["from"].as_str().unwrap().contains("+4930555"),
        "{stored:?}"
    );

    // The owner registers and gets it.
    let owner = Ua::new(OWNER);
    owner.register(s.sip());
    let delivered = owner.recv_request(Duration::from_secs(10)).unwrap();
    assert_eq!(body(&delivered), "while away");
    owner.answer(s.sip(), &delivered, 200, "OK");

    // Online: relayed at once, the owner's 200 goes back to the provider.
    provider.peer.send(
        s.sip(),
        &line_message(&provider.peer, s.sip(), USER, "live"),
    );
    let live = owner.recv_request(Duration::from_secs(10)).unwrap();
    assert_eq!(body(&live), "live");
    assert!(header(live.headers(), &HeaderName::From)
        .unwrap()
        .contains("+4930555"));
    owner.answer(s.sip(), &live, 200, "OK");
    let relayed = provider.peer.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(relayed.status().as_u16(), 200, "{relayed:?}");

    // The provider to a number that is not the line's, and anyone else to the line's
    // number: challenged like every other MESSAGE.
    let rsp = transact(
        &provider.peer,
        s.sip(),
        &line_message(&provider.peer, s.sip(), "2999", "not the line"),
    );
    assert_eq!(rsp.status().as_u16(), 407, "{rsp:?}");
    let stranger = Peer::new();
    let rsp = transact(
        &stranger,
        s.sip(),
        &line_message(&stranger, s.sip(), USER, "spoofed"),
    );
    assert_eq!(rsp.status().as_u16(), 407, "{rsp:?}");
    assert!(
        wait_for(Duration::from_secs(5), || messages(&s, OWNER)
            .is_empty()
            .then_some(()))
        .is_some(),
        "the delivered message is still stored"
    );
}
