//! Cost of the server side of one authenticated REGISTER: issue the challenges, then
//! read and verify the answer. The client's answer is computed outside the timed part.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mss_auth::{
    authorization, Algorithm, Challenge, Credentials, CredentialsRef, DigestServer, Ha1,
    NonceSecret, Origin, ServerConfig, UserSecret, Verdict,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const REALM: &str = "pbx.example.com";
const URI: &str = "sip:pbx.example.com";

/// `(name, value)` pairs of a header value as a header parser hands them over.
fn params(value: &str) -> Vec<(String, String)> {
    value
        .trim_start_matches("Digest ")
        .split(", ")
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap();
            (n.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut server = DigestServer::new(NonceSecret::from_bytes([9; 32]), ServerConfig::default());
    c.bench_function("challenges (SHA-256 + MD5)", |b| {
        b.iter(|| server.challenges(REALM, false, 1_000, &mut rng).unwrap())
    });
    let algs = [Algorithm::Md5, Algorithm::Sha256];
    let origin = Origin([0, 0, 0, 0, 192, 0, 2, 1]);
    c.bench_function("challenge_values (SHA-256 + MD5)", |b| {
        b.iter(|| {
            let mut n = 0;
            server
                .challenge_values(REALM, false, &algs, 1_000, &mut rng, origin, |v| {
                    n += v.len();
                })
                .unwrap();
            n
        })
    });
    for alg in algs {
        let ha1 = Ha1::compute(alg, "100", REALM, "pw");
        let nonce = server.issue_nonce(REALM, 1_000, &mut rng);
        let challenge = Challenge::new(REALM, &nonce, alg).unwrap();
        let mut nc = 0u32;
        let mut answer = move || {
            nc += 1;
            authorization(&challenge, "REGISTER", URI, "100", "pw", "0a4f113b", nc).unwrap()
        };
        c.bench_function(&format!("from_params + verify {alg}"), |b| {
            b.iter_batched(
                || params(&answer()),
                |p| {
                    let creds =
                        Credentials::from_params(p.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                            .unwrap();
                    let v = server.verify(&creds, "REGISTER", UserSecret::Ha1(&ha1), REALM, 1_001);
                    assert_eq!(v, Verdict::Ok);
                },
                BatchSize::SmallInput,
            )
        });
        c.bench_function(&format!("from_header_value + verify_ref {alg}"), |b| {
            b.iter_batched(
                &mut answer,
                |value| {
                    let creds = CredentialsRef::from_header_value(&value).unwrap();
                    let v =
                        server.verify_ref(&creds, "REGISTER", UserSecret::Ha1(&ha1), REALM, 1_001);
                    assert_eq!(v, Verdict::Ok);
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
