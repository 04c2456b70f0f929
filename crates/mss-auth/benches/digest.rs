//! Cost of one authenticated REGISTER on the server side: issue the
//! challenges, then parse and verify the answer (the bench also computes
//! the client's answer, roughly half of the time).

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use mss_auth::{
    authorization, Algorithm, Challenge, Credentials, DigestServer, NonceSecret, ServerConfig,
    UserSecret, Verdict,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const REALM: &str = "pbx.example.com";
const URI: &str = "sip:pbx.example.com";

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut server = DigestServer::new(NonceSecret::from_bytes([9; 32]), ServerConfig::default());
    c.bench_function("challenges (SHA-256 + MD5)", |b| {
        b.iter(|| server.challenges(REALM, false, 1_000, &mut rng).unwrap())
    });
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut nc = 0u32;
        let nonce = server.issue_nonce(REALM, 1_000, &mut rng);
        let challenge = Challenge::new(REALM, &nonce, alg).unwrap();
        c.bench_function(&format!("client answer + parse + verify {alg}"), |b| {
            b.iter(|| {
                nc += 1;
                let value = authorization(&challenge, "REGISTER", URI, "100", "pw", "0a4f113b", nc)
                    .unwrap();
                let nc_text = format!("{nc:08x}");
                let response = value
                    .split("response=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap()
                    .to_owned();
                let params = [
                    ("username", "100"),
                    ("realm", REALM),
                    ("nonce", nonce.as_str()),
                    ("uri", URI),
                    ("response", response.as_str()),
                    ("algorithm", alg.as_str()),
                    ("cnonce", "0a4f113b"),
                    ("qop", "auth"),
                    ("nc", nc_text.as_str()),
                ];
                let creds = Credentials::from_params(params).unwrap();
                let v = server.verify(&creds, "REGISTER", UserSecret::Password("pw"), REALM, 1_001);
                assert_eq!(v, Verdict::Ok);
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
