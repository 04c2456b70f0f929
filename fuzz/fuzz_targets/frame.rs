//! Arbitrary bytes as a TCP stream buffer: framing must never panic, what it frames must
//! lie inside the buffer, and the incremental `Framer` fed in small reads must agree with
//! `frame` on the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mss_sip::{frame, parse_datagram, Framed, Framer, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message_len: 4096,
        max_headers: 32,
        max_line_len: 512,
    };
    let mut rest = data;
    // Walk the buffer the way a connection reader does.
    for _ in 0..64 {
        match frame(rest, &limits) {
            Ok(Framed::KeepAlive(n)) => {
                assert!(n > 0 && n <= rest.len());
                rest = &rest[n..];
            }
            Ok(Framed::Message(n)) => {
                assert!(n <= rest.len() && n <= limits.max_message_len);
                let _ = parse_datagram(Bytes::copy_from_slice(&rest[..n]));
                rest = &rest[n..];
            }
            Ok(Framed::Incomplete) | Err(_) => break,
        }
    }
    // The same bytes arriving 7 at a time.
    let mut framer = Framer::new();
    let mut buf: Vec<u8> = Vec::new();
    for chunk in data.chunks(7) {
        buf.extend_from_slice(chunk);
        loop {
            let a = framer.poll(&buf, &limits);
            assert_eq!(a, frame(&buf, &limits));
            match a {
                Ok(Framed::KeepAlive(n)) | Ok(Framed::Message(n)) => {
                    buf.drain(..n);
                }
                Ok(Framed::Incomplete) => break,
                Err(_) => return,
            }
        }
    }
});
