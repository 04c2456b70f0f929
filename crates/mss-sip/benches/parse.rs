//! Parser and serializer benchmarks, with allocations per operation counted by a global
//! allocator wrapper and printed before the timings.
//!
//! `cargo bench -p mss-sip -- --warm-up-time 1 --measurement-time 3`

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion};
use mss_sip::{parse_datagram, HeaderName, Message, Request, Response, StatusCode};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REGISTER: &[u8] = b"REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.44:5060;rport;branch=z9hG4bKPj3f0a2c8e1b7d4e6f\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@pbx.example.com>;tag=6d1c3b0c9e5a4f2b\r\n\
To: <sip:1001@pbx.example.com>\r\n\
Call-ID: 4b1f0f2e6c7d4a9b8e3c2d1f0a9b8c7d\r\n\
CSeq: 21731 REGISTER\r\n\
User-Agent: baresip v1.0.0 (x86_64/linux)\r\n\
Contact: <sip:1001@192.0.2.44:5060;transport=udp>;+sip.instance=\"<urn:uuid:0f3e5b4a-1c2d-4e6f-8a9b-0c1d2e3f4a5b>\";reg-id=1;expires=3600\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY, REFER\r\n\
Supported: path, outbound, gruu\r\n\
Authorization: Digest username=\"1001\", realm=\"pbx.example.com\", nonce=\"Y2hhbGxlbmdlLW5vbmNlLTE3MzI2MjM0NTY=\", uri=\"sip:pbx.example.com\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
Content-Length: 0\r\n\r\n";

const MESSAGE: &[u8] = b"MESSAGE sip:1002@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.44:51234;rport;branch=z9hG4bK776sgdkse\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:1001@pbx.example.com>;tag=49583\r\n\
To: <sip:1002@pbx.example.com>\r\n\
Call-ID: asd88asd77a@192.0.2.44\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain;charset=UTF-8\r\n\
Content-Length: 18\r\n\r\n\
Watson, come here.";

fn owned(b: &[u8]) -> Bytes {
    // Like a received datagram: a heap buffer, not a static.
    Bytes::from(b.to_vec())
}

fn parse_req(b: &Bytes) -> Request {
    match parse_datagram(b.clone()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn typed_six(r: &Request) -> usize {
    let h = r.headers();
    let via = h.via().unwrap();
    let from = h.from().unwrap();
    let to = h.to().unwrap();
    let call_id = h.call_id().unwrap();
    let cseq = h.cseq().unwrap();
    let contacts = h.contacts().unwrap();
    black_box((&via, &from, &to, call_id, &cseq, &contacts));
    via.len() + call_id.len() + cseq.seq as usize
}

fn ok_to_register(r: &Request, out: &mut BytesMut) {
    let mut rsp = Response::for_request(r, StatusCode::OK, "OK");
    rsp.set_to_tag("a1b2c3d4");
    rsp.headers_mut().push(
        HeaderName::Contact,
        Bytes::from_static(b"<sip:1001@192.0.2.44:5060;transport=udp>;expires=3600"),
    );
    rsp.encode(out);
}

fn allocs_per_op(label: &str, n: usize, mut f: impl FnMut()) {
    f();
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..n {
        f();
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    println!(
        "allocations/op {label}: {:.2}",
        (after - before) as f64 / n as f64
    );
}

fn benches(c: &mut Criterion) {
    let register = owned(REGISTER);
    let message = owned(MESSAGE);
    let parsed = parse_req(&register);

    allocs_per_op("parse REGISTER", 1000, || {
        black_box(parse_req(&register));
    });
    allocs_per_op("parse MESSAGE", 1000, || {
        black_box(parse_req(&message));
    });
    allocs_per_op("typed read of six", 1000, || {
        black_box(typed_six(&parsed));
    });
    allocs_per_op("serialize 200 OK (fresh buffer)", 1000, || {
        let mut out = BytesMut::new();
        ok_to_register(&parsed, &mut out);
        black_box(out);
    });

    c.bench_function("parse REGISTER with Authorization", |b| {
        b.iter(|| parse_req(black_box(&register)))
    });
    c.bench_function("parse MESSAGE", |b| {
        b.iter(|| parse_req(black_box(&message)))
    });
    c.bench_function("typed read Via+From+To+Call-ID+CSeq+Contact", |b| {
        b.iter(|| typed_six(black_box(&parsed)))
    });
    c.bench_function("serialize 200 OK to REGISTER", |b| {
        let mut out = BytesMut::with_capacity(1024);
        b.iter(|| {
            out.clear();
            ok_to_register(black_box(&parsed), &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(parse_benches, benches);
criterion_main!(parse_benches);
