//! CPU cost of the registrar: the `401` to an unauthenticated REGISTER, and the whole
//! authenticated path (`Request::check` + `handle_register` + `complete`, the server's one path) on a warm location service with
//! 100,000 registered users. Requests are built and parsed outside the timed loop; the
//! store write is the caller's and not included.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use mss_auth::NonceSecret;
use mss_services::registrar::{RegisterOutcome, Registrar, RegistrarConfig};
use mss_services::{Answer, DigestGuard, Directory, GuardConfig, LocalDomains, Now, Users};
use mss_sip::{parse_datagram, Flow, HeaderName, Message, Request, Response};
use mss_store::BindingRecord;

const USERS: usize = 100_000;
const DOMAIN: &str = "pbx.example.com";

fn parse(text: &str) -> Request {
    match parse_datagram(Bytes::copy_from_slice(text.as_bytes())).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn register_text(user: usize, cseq: u64, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK{cseq}x{user};rport\r\nMax-Forwards: 70\r\nFrom: <sip:u{user}@{DOMAIN}>;tag=f{user}\r\nTo: <sip:u{user}@{DOMAIN}>\r\nCall-ID: bench-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:u{user}@10.0.0.1:5062>;expires=3600\r\nUser-Agent: bench\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

fn setup(now: Now) -> (Registrar, Directory) {
    let mut users = Users::new(DOMAIN);
    for i in 0..USERS {
        users.insert(&format!("u{i}"), "s3cret", None);
    }
    let guard = DigestGuard::new(
        users,
        NonceSecret::from_bytes([5; 32]),
        GuardConfig::default(),
        1,
    );
    let reg = Registrar::new(
        RegistrarConfig::default(),
        LocalDomains::new(DOMAIN),
        Answer::new(DOMAIN),
    );
    let mut dir = Directory::new(guard);
    let records: Vec<BindingRecord> = (0..USERS)
        .map(|i| BindingRecord {
            user: format!("u{i}"),
            contact: format!("sip:u{i}@10.0.0.1:5062"),
            instance: None,
            reg_id: None,
            q_milli: None,
            expires_at: now.unix_ms + 3_600_000,
            call_id: format!("bench-{i}"),
            cseq: 1,
            transport: "UDP".into(),
            source: "10.0.0.1:5062".into(),
            user_agent: None,
            registered_at: now.unix_ms,
        })
        .collect();
    assert_eq!(dir.restore(&records, now), USERS);
    (reg, dir)
}

fn challenge(reg: &mut Registrar, dir: &mut Directory, now: Now, flow: &Flow) -> Response {
    let req = parse(&register_text(0, 1, None));
    let checked = req.check().unwrap();
    match reg.handle_register(dir, now, &req, &checked, flow) {
        RegisterOutcome::Reply(r) => r,
        RegisterOutcome::Commit(_) => unreachable!(),
    }
}

fn bench(c: &mut Criterion) {
    let now = Now::new(Instant::now(), 1_700_000_000_000);
    let flow = Flow::udp("10.0.0.1:5062".parse().unwrap());
    let (mut reg, mut dir) = setup(now);

    // The production path: the request is checked once, the registrar takes what the
    // check parsed.
    let plain = parse(&register_text(7, 2, None));
    c.bench_function("REGISTER without credentials -> 401", |b| {
        b.iter(|| {
            match reg.handle_register(&mut dir, now, &plain, &plain.check().unwrap(), &flow) {
                RegisterOutcome::Reply(r) => r,
                RegisterOutcome::Commit(_) => unreachable!(),
            }
        })
    });

    let mut cseq = 1u64;
    c.bench_function("REGISTER with digest -> commit -> 200 (100k users)", |b| {
        b.iter_custom(|iters| {
            // A fresh nonce per batch, nc 1..=iters; CSeq above everything before.
            let ch = challenge(&mut reg, &mut dir, now, &flow);
            let params = ch.headers().auth(&HeaderName::WwwAuthenticate).unwrap();
            cseq += 1;
            let reqs: Vec<Request> = (0..iters)
                .map(|k| {
                    let user = (k as usize) % USERS;
                    let p = params[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
                    let nc = u32::try_from(k + 1).unwrap();
                    let auth = mss_auth::authorize(
                        p,
                        "REGISTER",
                        &format!("sip:{DOMAIN}"),
                        &format!("u{user}"),
                        "s3cret",
                        "cn0nce",
                        nc,
                    )
                    .unwrap();
                    parse(&register_text(user, cseq + k / USERS as u64, Some(&auth)))
                })
                .collect();
            cseq += iters / USERS as u64 + 1;
            let start = Instant::now();
            for r in &reqs {
                match reg.handle_register(&mut dir, now, r, &r.check().unwrap(), &flow) {
                    RegisterOutcome::Commit(p) => {
                        let done = reg.complete(&mut dir.location, now, p);
                        assert_eq!(done.response.status().as_u16(), 200);
                    }
                    RegisterOutcome::Reply(r) => panic!("{}", r.status()),
                }
            }
            start.elapsed()
        })
    });
    let _ = Duration::ZERO;
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
