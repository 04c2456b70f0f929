//! The common server path allocates nothing: reading an `Authorization` value into
//! borrowed credentials and verifying them against an HA1 (known or unknown user), once
//! the nonce is in the nonce-count table.

#![allow(missing_docs, clippy::unwrap_used)]
// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mss_auth::{
    authorization, Algorithm, Challenge, CredentialsRef, DigestServer, Ha1, NonceSecret,
    ServerConfig, UserSecret, Verdict,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Counts the allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the counter is a
// thread-local `Cell` with a const initializer, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const REALM: &str = "pbx.example.com";

#[test]
fn reading_and_verifying_allocate_nothing() {
    let mut server = DigestServer::new(NonceSecret::from_bytes([4; 32]), ServerConfig::default());
    let mut rng = StdRng::seed_from_u64(3);
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let ha1 = Ha1::compute(alg, "100", REALM, "pw");
        let nonce = server.issue_nonce(REALM, 1_000, &mut rng);
        let challenge = Challenge::new(REALM, &nonce, alg).unwrap();
        let values: Vec<String> = (1..=50)
            .map(|nc| {
                authorization(&challenge, "REGISTER", "sip:x", "100", "pw", "cn", nc).unwrap()
            })
            .collect();
        // The first use of the nonce creates its entry in the nonce-count table.
        let first = CredentialsRef::from_header_value(&values[0]).unwrap();
        let v = server.verify_ref(&first, "REGISTER", UserSecret::Ha1(&ha1), REALM, 1_001);
        assert_eq!(v, Verdict::Ok);

        let before = allocations();
        for value in &values[1..] {
            let creds = CredentialsRef::from_header_value(value).unwrap();
            let v = server.verify_ref(&creds, "REGISTER", UserSecret::Ha1(&ha1), REALM, 1_001);
            assert_eq!(v, Verdict::Ok);
            let v = server.verify_unknown_user_ha1(&creds, "REGISTER", REALM, 1_001);
            assert_eq!(v, Verdict::Invalid);
            // Whose failure it is, asked after a failed answer: no allocation either.
            assert!(server.issued_to(creds.nonce, REALM, mss_auth::Origin::NONE));
        }
        assert_eq!(allocations() - before, 0, "{alg}");
        let before = allocations();
        for value in &values[1..] {
            let creds = CredentialsRef::from_header_value(value).unwrap();
            assert!(!server.issued_to(creds.nonce, REALM, mss_auth::Origin([1; 8])));
        }
        assert_eq!(allocations() - before, 0, "{alg}");
        // The counter works: the owned form does allocate.
        let before = allocations();
        let owned = mss_auth::Credentials::from(first);
        assert!(allocations() > before);
        drop(owned);
    }
}
