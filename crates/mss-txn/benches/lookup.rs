//! Matching a request to its server transaction among 100,000 live ones (RFC 3261 §17.2.3).
//!
//! Run: `cargo bench -p mss-txn -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mss_sip::{parse_datagram, Flow, Message, Request};
use mss_txn::{Config, TransactionKey, Transactions};

const LIVE: usize = 100_000;
const PROBES: usize = 1024;

fn invite(i: usize) -> Request {
    let text = format!(
        "INVITE sip:bob@biloxi.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP pc33.atlanta.example:5060;branch=z9hG4bK{i:016x};rport\r\n\
         Max-Forwards: 70\r\n\
         To: Bob <sip:bob@biloxi.example>\r\n\
         From: Alice <sip:alice@atlanta.example>;tag={i:x}\r\n\
         Call-ID: {i:x}-a84b4c76e66710@pc33.atlanta.example\r\n\
         CSeq: 314159 INVITE\r\n\
         Contact: <sip:alice@pc33.atlanta.example>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn table() -> (Transactions, Vec<Request>, Instant, Flow) {
    let now = Instant::now();
    let flow = Flow::udp("192.0.2.10:5060".parse().unwrap());
    let mut txns = Transactions::new(Config::default());
    for i in 0..LIVE {
        txns.handle_message(now, Message::Request(invite(i)), flow);
        while txns.poll_output().is_some() {}
    }
    assert_eq!(txns.len(), LIVE);
    // Probes spread over the whole table (a fixed stride, coprime with LIVE).
    let probes = (0..PROBES).map(|p| invite(p * 9_973 % LIVE)).collect();
    (txns, probes, now, flow)
}

fn lookup(c: &mut Criterion) {
    let (mut txns, probes, now, flow) = table();
    let keys: Vec<TransactionKey> = probes
        .iter()
        .map(|r| TransactionKey::for_request(r).unwrap())
        .collect();
    let mut group = c.benchmark_group("server_lookup_100k");

    // The whole matching step from a parsed request: read Via/CSeq/Call-ID/From/To, build
    // the key, one probe of the key index (aHash of the key, then a comparison).
    let mut i = 0;
    group.bench_function("key_from_request_and_find", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            let key = TransactionKey::for_request(black_box(&probes[i])).unwrap();
            black_box(txns.find_server(&key))
        })
    });

    // Building the key alone (lean top-Via read, one small allocation).
    let mut i = 0;
    group.bench_function("key_from_request", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            black_box(TransactionKey::for_request(black_box(&probes[i])).unwrap())
        })
    });

    // The key-index probe alone (aHash of the key + comparison), with a key already built.
    let mut i = 0;
    group.bench_function("find_prebuilt_key", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            black_box(txns.find_server(black_box(&keys[i])))
        })
    });

    // A retransmitted INVITE through the public surface: match, absorb, re-send the last
    // provisional (the message clone is set-up, not measured).
    let mut i = 0;
    group.bench_function("handle_retransmission", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % PROBES;
                Message::Request(probes[i].clone())
            },
            |msg| {
                txns.handle_message(now, msg, flow);
                while let Some(out) = txns.poll_output() {
                    black_box(out);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
