//! Client and server talking through header values, as the registrar and a
//! line would: challenges formatted by the server, parsed (here by a small
//! stand-in for mss-sip), answered by the client, verified by the server.

// Test helpers below are not `#[test]` functions, so allow-unwrap-in-tests
// does not reach them; a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use mss_auth::{
    Algorithm, ChallengeOutcome, Credentials, DigestClient, DigestServer, NonceSecret,
    ServerConfig, UserSecret, Verdict,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const REALM: &str = "pbx.example.com";
const URI: &str = "sip:pbx.example.com";

/// Splits `Digest a="x", b=y` into unquoted pairs (what mss-sip hands over).
fn split_params(value: &str) -> Vec<(String, String)> {
    let rest = value.strip_prefix("Digest ").unwrap();
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
            chars.next(); // the ',' after the closing quote
        } else {
            val = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        out.push((name.trim().to_owned(), val));
    }
    out
}

fn hand_challenges(client: &mut DigestClient, values: &[String]) -> ChallengeOutcome {
    let parsed: Vec<Vec<(String, String)>> = values.iter().map(|v| split_params(v)).collect();
    client
        .handle_challenges(
            parsed
                .iter()
                .map(|p| p.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        )
        .unwrap()
}

fn credentials(value: &str) -> Credentials {
    let fields = split_params(value);
    Credentials::from_params(fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap()
}

#[test]
fn register_refresh_stale_and_replay() {
    let mut server = DigestServer::new(NonceSecret::from_bytes([3; 32]), ServerConfig::default());
    let mut rng = StdRng::seed_from_u64(11);
    let mut client = DigestClient::new("100", "s3cret");
    let pw = UserSecret::Password("s3cret");

    let values = server.challenges(REALM, false, 100, &mut rng).unwrap();
    assert_eq!(
        hand_challenges(&mut client, &values),
        ChallengeOutcome::Answer
    );
    assert_eq!(client.challenge().unwrap().algorithm(), Algorithm::Sha256);

    // First answer and two preemptive refreshes with the same nonce.
    for (nc, now) in [(1u32, 101u64), (2, 150), (3, 399)] {
        let value = client
            .authorize("REGISTER", URI, &mut rng)
            .unwrap()
            .unwrap();
        let creds = credentials(&value);
        assert_eq!(creds.qop.as_ref().unwrap().nc, nc);
        assert_eq!(
            server.verify(&creds, "REGISTER", pw, REALM, now),
            Verdict::Ok
        );
        // The same request again is a replay.
        assert_eq!(
            server.verify(&creds, "REGISTER", pw, REALM, now),
            Verdict::Replay
        );
    }

    // Past the lifetime the reused nonce is stale; the client answers anew.
    let creds = credentials(
        &client
            .authorize("REGISTER", URI, &mut rng)
            .unwrap()
            .unwrap(),
    );
    let verdict = server.verify(&creds, "REGISTER", pw, REALM, 401);
    assert_eq!(verdict, Verdict::Stale);
    let values = server
        .challenges(REALM, verdict.is_stale(), 401, &mut rng)
        .unwrap();
    assert!(values[0].contains("stale=true"));
    assert_eq!(
        hand_challenges(&mut client, &values),
        ChallengeOutcome::Answer
    );
    let creds = credentials(
        &client
            .authorize("REGISTER", URI, &mut rng)
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        server.verify(&creds, "REGISTER", pw, REALM, 402),
        Verdict::Ok
    );
}

#[test]
fn wrong_password_is_reported_to_the_line() {
    let mut server = DigestServer::new(NonceSecret::from_bytes([4; 32]), ServerConfig::default());
    let mut rng = StdRng::seed_from_u64(12);
    let mut client = DigestClient::new("100", "wrong");
    let values = server.challenges(REALM, false, 0, &mut rng).unwrap();
    hand_challenges(&mut client, &values);
    let creds = credentials(
        &client
            .authorize("REGISTER", URI, &mut rng)
            .unwrap()
            .unwrap(),
    );
    let verdict = server.verify(&creds, "REGISTER", UserSecret::Password("s3cret"), REALM, 1);
    assert_eq!(verdict, Verdict::Invalid);
    // Same answer for a user that does not exist.
    assert_eq!(
        server.verify_unknown_user(&creds, "REGISTER", REALM, 1),
        Verdict::Invalid
    );
    let values = server
        .challenges(REALM, verdict.is_stale(), 1, &mut rng)
        .unwrap();
    assert_eq!(
        hand_challenges(&mut client, &values),
        ChallengeOutcome::Rejected
    );
}

#[test]
fn md5_first_for_md5_only_peers_and_restart() {
    let config = ServerConfig {
        algorithms: vec![Algorithm::Md5],
        ..ServerConfig::default()
    };
    let server = DigestServer::new(NonceSecret::from_bytes([5; 32]), config.clone());
    let mut rng = StdRng::seed_from_u64(13);
    let values = server.challenges(REALM, false, 0, &mut rng).unwrap();
    assert_eq!(values.len(), 1);
    let mut client = DigestClient::new("101", "pw");
    hand_challenges(&mut client, &values);
    let creds = credentials(&client.authorize("MESSAGE", URI, &mut rng).unwrap().unwrap());
    assert_eq!(creds.algorithm, Algorithm::Md5);
    // A restarted server with the persisted secret accepts the nonce.
    let mut restarted = DigestServer::new(NonceSecret::from_bytes([5; 32]), config);
    let verdict = restarted.verify(&creds, "MESSAGE", UserSecret::Password("pw"), REALM, 30);
    assert_eq!(verdict, Verdict::Ok);
    assert_eq!(restarted.tracked_nonces(), 1);
    restarted.handle_timeout(10_000);
    assert_eq!(restarted.tracked_nonces(), 0);
}
