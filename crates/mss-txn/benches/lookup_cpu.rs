//! The same lookup as `lookup.rs`, timed in CPU time of this thread instead of wall time,
//! so that a busy shared machine inflates it less (preemption is not counted; cache
//! contention still is).
//!
//! Run: `cargo bench -p mss-txn --bench lookup_cpu` (prints CPU ns per operation).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use mss_sip::{parse_datagram, Flow, Message, Request};
use mss_txn::{Config, TransactionKey, Transactions};

const LIVE: usize = 100_000;
const PROBES: usize = 1024;
const OPS: usize = 5_000_000;

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

/// User + system CPU time of this thread, in nanoseconds (from `/proc/thread-self/stat`,
/// fields 14 and 15, in USER_HZ = 100 ticks: 10 ms resolution, so run for seconds).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux /proc");
    // The command name (field 2) may hold spaces; count fields after its closing ')'.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = after
        .split(' ')
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    (f[0] + f[1]) * 10_000_000
}

fn measure(name: &str, mut op: impl FnMut(usize)) {
    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
    for i in 0..OPS {
        op(i);
    }
    let cpu = thread_cpu_ns() - cpu0;
    let wall = wall0.elapsed().as_nanos();
    println!(
        "{name:<32} {:>7.1} ns CPU/op   ({:.1} ns wall/op, {OPS} ops)",
        cpu as f64 / OPS as f64,
        wall as f64 / OPS as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the long run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let now = Instant::now();
    let flow = Flow::udp("192.0.2.10:5060".parse().unwrap());
    let mut txns = Transactions::new(Config::default());
    for i in 0..LIVE {
        txns.handle_message(now, Message::Request(invite(i)), flow);
        while txns.poll_output().is_some() {}
    }
    let probes: Vec<Request> = (0..PROBES).map(|p| invite(p * 9_973 % LIVE)).collect();
    let keys: Vec<TransactionKey> = probes
        .iter()
        .map(|r| TransactionKey::for_request(r).unwrap())
        .collect();
    println!(
        "server transaction lookup among {} live transactions",
        txns.len()
    );
    measure("key_from_request_and_find", |i| {
        let key = TransactionKey::for_request(black_box(&probes[i % PROBES])).unwrap();
        black_box(txns.find_server(&key));
    });
    measure("key_from_request", |i| {
        black_box(TransactionKey::for_request(black_box(&probes[i % PROBES])).unwrap());
    });
    measure("find_prebuilt_key", |i| {
        black_box(txns.find_server(black_box(&keys[i % PROBES])));
    });
}
