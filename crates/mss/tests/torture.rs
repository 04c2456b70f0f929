//! The RFC 4475 torture corpus sent over UDP to the running `mss`: every message gets its
//! expected answer or silence, and the server keeps answering OPTIONS afterwards.
//!
//! Most messages name hosts such as 192.0.2.x in their Via without `rport`, so a server
//! that follows RFC 3261 §18.2.2 answers to port 5060 of the source address, where this
//! test cannot listen. Each request therefore gets one more Via on top,
//! `SIP/2.0/UDP 127.0.0.1:PORT;branch=…;rport`, so the answer comes back to the test socket
//! (RFC 3581); the rest of the message is sent byte for byte. Responses are sent as they
//! are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{options, Peer, Server};

/// The answer mss gives to each message, `None` for silence, with why.
fn expected(name: &str) -> Option<u16> {
    match name {
        // Valid requests of methods mss does not know: 501.
        "intmeth" | "esc02" | "mismatch02" => Some(501),
        // Valid requests for foreign domains (example.com …): mss is no open relay, 404
        // (mpart01: a MESSAGE to kumiko@example.org, refused before any challenge; the
        // INVITEs to example.com/example.net users likewise, before any challenge).
        "mpart01" | "escnull" | "lwsdisp" | "dblreq" | "semiuri" | "transports" | "badbranch"
        | "unksm2" | "regaut01" | "zeromf" | "cparam01" | "cparam02" | "regescrt" | "esc01"
        | "longreq" | "invut" | "sdp01" | "inv2543" => Some(404),
        // An INVITE with a To tag: within a dialog mss does not know (RFC 3261 §12.2.2).
        "wsinv" => Some(481),
        "unkscm" | "novelsc" => Some(416),
        "bext01" => Some(420),
        "badvers" => Some(505),
        // Malformed requests whose core headers can be read: 400 naming the problem.
        "badinv01" | "clerr" | "ncl" | "scalar02" | "quotbal" | "ltgtruri" | "lwsstart"
        | "trws" | "escruri" | "baddate" | "regbadct" | "badaspec" | "baddn" | "mismatch01"
        | "multi01" | "mcl01" => Some(400),
        // Responses (no transaction: dropped), a Request-Line that cannot be read, no
        // Call-ID/From/To to answer with: silence.
        "unreason" | "noreason" | "scalarlg" | "bigcode" | "bcast" | "lwsruri" | "insuf"
        | "test" => None,
        other => panic!("no expectation for {other}"),
    }
}

/// The message with our Via on top (requests only).
fn with_our_via(raw: &[u8], peer: &Peer, n: usize) -> Vec<u8> {
    if raw.starts_with(b"SIP/") {
        return raw.to_vec();
    }
    let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
        return raw.to_vec();
    };
    let via = format!(
        "Via: SIP/2.0/UDP {};branch=z9hG4bK-torture-{n};rport\r\n",
        peer.addr()
    );
    let mut out = raw[..eol + 2].to_vec();
    out.extend_from_slice(via.as_bytes());
    out.extend_from_slice(&raw[eol + 2..]);
    out
}

#[test]
fn rfc4475_corpus_gets_its_answers_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "[user:100]\npassword = x\n");
    let peer = Peer::new();
    let cases = mss_testdata::torture::cases();
    assert_eq!(cases.len(), 50, "corpus size");
    let mut report = Vec::new();
    let mut wrong = 0;
    for (n, case) in cases.iter().enumerate() {
        let name = case.name.as_str();
        peer.send(s.sip(), &with_our_via(&case.bytes, &peer, n));
        // The first final answer to this message (our Via's branch), or silence.
        // Provisional answers and Timer G retransmissions of earlier INVITE answers (this
        // test sends no ACK) are skipped.
        let branch = format!("z9hG4bK-torture-{n}");
        // Wait long for an expected answer (a loaded machine is slow), briefly for silence.
        let want = expected(name);
        let wait = if want.is_some() { 3_000 } else { 400 };
        let deadline = std::time::Instant::now() + Duration::from_millis(wait);
        let mut got = None;
        while let Some(r) =
            peer.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            let ours = r
                .headers()
                .top_via()
                .is_ok_and(|v| v.branch() == Some(branch.as_str()));
            if ours && r.status().as_u16() >= 200 {
                got = Some((
                    r.status().as_u16(),
                    String::from_utf8_lossy(r.reason()).into_owned(),
                ));
                break;
            }
        }
        let ok = got.as_ref().map(|g| g.0) == want;
        if !ok {
            wrong += 1;
        }
        report.push(format!(
            "{} {name}: expected {want:?}, got {got:?}",
            if ok { "  " } else { "!!" }
        ));
    }
    let report = report.join("\n");
    assert_eq!(wrong, 0, "answers differ:\n{report}\n{}", s.stderr());

    let r = peer.transact(
        s.sip(),
        &String::from_utf8(options(s.sip(), &peer, "after")).unwrap(),
    );
    assert_eq!(r.status().as_u16(), 200, "the server must keep answering");
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains("mss_sip_stateless_replies_total"),
        "{metrics}"
    );
}
