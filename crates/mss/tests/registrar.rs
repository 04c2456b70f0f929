//! The registrar of the real `mss` binary over raw UDP: no user enumeration, replay refused,
//! registrations surviving `kill -9`, clean shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{authorization, register, Peer, Server};
use mss_sip::{HeaderName, Response};

const USERS: &str = "[user:100]\npassword = right-one\n\n[user:101]\npassword = other\n";

/// Registers `user` with digest from `peer`; returns the final response.
fn register_with_auth(
    s: &Server,
    peer: &Peer,
    user: &str,
    password: &str,
    call_id: &str,
) -> Response {
    let challenge = peer.transact(s.sip(), &register(s.sip(), peer, user, call_id, 1, ""));
    assert_eq!(challenge.status().as_u16(), 401);
    let auth = authorization(&challenge, s.sip(), user, password, 1);
    peer.transact(
        s.sip(),
        &register(
            s.sip(),
            peer,
            user,
            call_id,
            2,
            &format!("Authorization: {auth}\r\n"),
        ),
    )
}

/// The response as text without the headers echoed from the request (Via, From, To,
/// Call-ID, CSeq) and with the nonce masked: what the server itself says.
fn own_part(r: &Response) -> String {
    let text = String::from_utf8_lossy(&r.to_bytes()).into_owned();
    let mut out = Vec::new();
    for line in text.split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
            continue;
        }
        let masked = match line.find("nonce=\"") {
            Some(i) => {
                let start = i + 7;
                let end = start + line[start..].find('"').unwrap();
                format!("{}NONCE{}", &line[..start], &line[end..])
            }
            None => line.to_string(),
        };
        out.push(masked);
    }
    out.join("\r\n")
}

#[test]
fn wrong_password_and_unknown_user_look_the_same_and_replays_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), USERS);
    let peer = Peer::new();

    let wrong = register_with_auth(&s, &peer, "100", "not-the-password", "enum-1");
    let unknown = register_with_auth(&s, &peer, "999", "whatever", "enum-2");
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(own_part(&wrong), own_part(&unknown));
    assert!(
        own_part(&wrong).contains("WWW-Authenticate: Digest"),
        "{}",
        own_part(&wrong)
    );

    // A good registration, then the very same Authorization again (nc=1 replayed).
    let challenge = peer.transact(s.sip(), &register(s.sip(), &peer, "100", "replay", 1, ""));
    let auth = format!(
        "Authorization: {}\r\n",
        authorization(&challenge, s.sip(), "100", "right-one", 1)
    );
    let ok = peer.transact(
        s.sip(),
        &register(s.sip(), &peer, "100", "replay", 2, &auth),
    );
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.headers().contains(&HeaderName::Contact));
    let again = peer.transact(
        s.sip(),
        &register(s.sip(), &peer, "100", "replay", 3, &auth),
    );
    assert_eq!(
        again.status().as_u16(),
        401,
        "a replayed nonce count must be refused"
    );
    let www = String::from_utf8_lossy(again.headers().get(&HeaderName::WwwAuthenticate).unwrap())
        .into_owned();
    assert!(www.contains("stale=true"), "{www}");
}

#[test]
fn registrations_survive_kill_9_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), USERS);
    let peer = Peer::new();
    let ok = register_with_auth(&s, &peer, "101", "other", "persist-1");
    assert_eq!(ok.status().as_u16(), 200);
    let before = s.registrations();
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["user"], "101");
    assert_eq!(before[0]["source"], peer.addr().to_string());
    assert_eq!(before[0]["transport"], "UDP");
    assert_eq!(before[0]["user_agent"], "mss-test");

    // The 200 was sent only after the commit: a SIGKILL right after loses nothing.
    s.kill9();
    s.spawn();
    let after = s.registrations();
    assert_eq!(
        after, before,
        "the binding and its flow come back after a restart"
    );
    assert!(s.stderr().contains("restored=1"), "{}", s.stderr());
    let (status, metrics) = s.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("mss_registered_contacts 1") || metrics.contains("registered_contacts"),
        "{metrics}"
    );

    // A refresh from the same device is still in order (same Call-ID, higher CSeq).
    let challenge = peer.transact(
        s.sip(),
        &register(s.sip(), &peer, "101", "persist-1", 3, ""),
    );
    let auth = format!(
        "Authorization: {}\r\n",
        authorization(&challenge, s.sip(), "101", "other", 1)
    );
    let refreshed = peer.transact(
        s.sip(),
        &register(s.sip(), &peer, "101", "persist-1", 4, &auth),
    );
    assert_eq!(refreshed.status().as_u16(), 200);

    let status = s.terminate();
    assert!(
        status.success(),
        "SIGTERM must end mss with status 0, got {status}"
    );
    let log = std::fs::read_to_string(dir.path().join("mss-2.err")).unwrap();
    for step in [
        "shutting down",
        "worker stopped",
        "transports closed",
        "store closed",
    ] {
        assert!(log.contains(step), "missing `{step}` in:\n{log}");
    }
    // Nothing answers any more.
    peer.send(s.sip(), &common::options(s.sip(), &peer, "after-stop"));
    assert!(peer.recv_timeout(Duration::from_millis(300)).is_none());
}

#[test]
fn broken_config_stops_serve_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mss.ini");
    std::fs::write(
        &cfg,
        "[server]\ndomain = pbx.test\n\n[user:101]\npasword = typo\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mss.ini:5: [user:101] pasword"), "{err}");
}
