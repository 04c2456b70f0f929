//! Whole-REGISTER tests: challenge → digest → commit → complete, in simulated time, with
//! real digests computed by `mss-auth`'s client side and RFC 4475 messages.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_auth::NonceSecret;
use mss_sip::{parse_datagram, Flow, HeaderName, Message, Request, Response};
use mss_store::BindingChange;

use super::*;
use crate::{Answer, DigestGuard, Directory, GuardConfig, LocalDomains, Now, Users};

const DOMAIN: &str = "example.com";

/// A registrar with the directory it works on, as the server core lends it.
pub(super) struct Reg {
    pub(super) registrar: Registrar,
    pub(super) dir: Directory,
}

impl Reg {
    pub(super) fn complete(&mut self, now: Now, pending: PendingRegister) -> Completed {
        self.registrar
            .complete(&mut self.dir.location, now, pending)
    }

    pub(super) fn failed(&self, pending: PendingRegister) -> Response {
        self.registrar.failed(pending)
    }

    pub(super) fn location(&self) -> &Location {
        &self.dir.location
    }

    pub(super) fn config(&self) -> &RegistrarConfig {
        self.registrar.config()
    }
}

pub(super) fn registrar_with(config: RegistrarConfig) -> Reg {
    let mut users = Users::new(DOMAIN);
    for u in ["100", "101", "watson", "user"] {
        users.insert(u, "s3cret", None);
    }
    let guard = DigestGuard::new(
        users,
        NonceSecret::from_bytes([9; 32]),
        GuardConfig::default(),
        7,
    );
    Reg {
        registrar: Registrar::new(
            config,
            LocalDomains::new(DOMAIN).with_addr("192.0.2.1".parse().unwrap()),
            Answer::new(DOMAIN),
        ),
        dir: Directory::new(guard),
    }
}

pub(super) fn registrar() -> Reg {
    registrar_with(RegistrarConfig::default())
}

pub(super) fn start() -> Now {
    Now::new(Instant::now(), 1_700_000_000_000)
}

pub(super) fn flow() -> Flow {
    Flow::udp("192.0.2.50:5062".parse().unwrap())
}

pub(super) fn parse(text: &str) -> Request {
    match parse_datagram(Bytes::copy_from_slice(text.as_bytes())).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

/// What the server core does: a request that passes [`Request::check`] and the prechecks
/// takes [`Registrar::handle_register`] with what the check parsed; the prechecks
/// answer any other.
pub(super) fn handle(reg: &mut Reg, now: Now, req: &Request, flow: &Flow) -> RegisterOutcome {
    let checked = req.check();
    match crate::Precheck::default().check_parsed(req, checked.as_ref()) {
        Ok(checked) => reg
            .registrar
            .handle_register(&mut reg.dir, now, req, checked, flow),
        Err(reject) => RegisterOutcome::Reply(Answer::new(DOMAIN).reject(req, &reject)),
    }
}

/// A REGISTER for `user` with `extra` header lines.
pub(super) fn register(user: &str, call_id: &str, cseq: u32, extra: &str) -> String {
    format!("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bK{cseq}{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=f1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nUser-Agent: test-phone\r\n{extra}Content-Length: 0\r\n\r\n")
}

/// Adds an Authorization answering the first challenge of `challenge` to `text`.
pub(super) fn with_auth(
    text: &str,
    challenge: &Response,
    user: &str,
    password: &str,
    nc: u32,
) -> Request {
    let ch = challenge
        .headers()
        .auth(&HeaderName::WwwAuthenticate)
        .unwrap();
    let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
    let auth = mss_auth::authorize(
        params,
        "REGISTER",
        "sip:example.com",
        user,
        password,
        "c0ffee",
        nc,
    )
    .unwrap();
    // Right after the Request-Line: torture messages use the compact `l:`/`L:`.
    parse(&text.replacen("\r\n", &format!("\r\nAuthorization: {auth}\r\n"), 1))
}

pub(super) fn reply(o: RegisterOutcome) -> Response {
    match o {
        RegisterOutcome::Reply(r) => r,
        RegisterOutcome::Commit(p) => panic!("expected a reply, got a commit for {}", p.user()),
    }
}

pub(super) fn commit(o: RegisterOutcome) -> PendingRegister {
    match o {
        RegisterOutcome::Commit(p) => p,
        RegisterOutcome::Reply(r) => panic!(
            "expected a commit, got {} {}",
            r.status().as_u16(),
            String::from_utf8_lossy(r.reason())
        ),
    }
}

/// Drives one REGISTER through challenge and authentication; returns the outcome of the
/// authenticated request.
pub(super) fn authed(reg: &mut Reg, now: Now, text: &str, user: &str) -> RegisterOutcome {
    let challenge = reply(handle(reg, now, &parse(text), &flow()));
    assert_eq!(challenge.status().as_u16(), 401);
    handle(
        reg,
        now,
        &with_auth(text, &challenge, user, "s3cret", 1),
        &flow(),
    )
}

pub(super) fn ok(reg: &mut Reg, now: Now, text: &str, user: &str) -> Completed {
    let pending = commit(authed(reg, now, text, user));
    reg.complete(now, pending)
}

pub(super) fn contacts(rsp: &Response) -> Vec<String> {
    rsp.headers()
        .get_all(&HeaderName::Contact)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn challenge_then_register_then_refresh() {
    let mut reg = registrar();
    let now = start();
    let text = register("100", "a1", 1, "Contact: <sip:100@192.0.2.50:5062>\r\n");
    let challenge = reply(handle(&mut reg, now, &parse(&text), &flow()));
    let www: Vec<_> = challenge
        .headers()
        .get_all(&HeaderName::WwwAuthenticate)
        .collect();
    assert_eq!(www.len(), 2);
    assert!(String::from_utf8_lossy(www[0]).contains("algorithm=MD5"));
    assert!(String::from_utf8_lossy(www[1]).contains("algorithm=SHA-256"));
    let mut pending = commit(handle(
        &mut reg,
        now,
        &with_auth(&text, &challenge, "100", "s3cret", 1),
        &flow(),
    ));
    assert_eq!(pending.user(), "100");
    let changes = pending.take_changes();
    let [BindingChange::Upsert(rec)] = changes.as_slice() else {
        panic!("{changes:?}")
    };
    assert_eq!(rec.contact, "sip:100@192.0.2.50:5062");
    assert_eq!(rec.expires_at, now.unix_ms + 3_600_000);
    assert_eq!(rec.source, "192.0.2.50:5062");
    assert_eq!(rec.user_agent.as_deref(), Some("test-phone"));
    // Memory only changes on completion.
    assert!(!reg.location().is_reachable("100", now.mono));
    let done = reg.complete(now, pending);
    assert!(done.became_reachable);
    assert_eq!(done.response.status().as_u16(), 200);
    assert_eq!(
        contacts(&done.response),
        vec!["<sip:100@192.0.2.50:5062>;expires=3600"]
    );
    assert!(done.response.headers().date().unwrap().is_some());
    assert!(done.response.headers().to().unwrap().tag().is_some());
    // Refresh with the same Call-ID, higher CSeq, and nc=2 on the same nonce.
    let later = now.after(Duration::from_secs(100));
    let text2 = register(
        "100",
        "a1",
        2,
        "Contact: <sip:100@192.0.2.50:5062>;expires=600\r\n",
    );
    let pending = commit(handle(
        &mut reg,
        later,
        &with_auth(&text2, &challenge, "100", "s3cret", 2),
        &flow(),
    ));
    let done = reg.complete(later, pending);
    assert!(!done.became_reachable);
    assert_eq!(
        contacts(&done.response),
        vec!["<sip:100@192.0.2.50:5062>;expires=600"]
    );
    assert_eq!(reg.location().binding_count(), 1);
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let mut reg = registrar();
    let now = start();
    let text = register("100", "e1", 1, "Contact: <sip:100@192.0.2.50>\r\n");
    let challenge = reply(handle(&mut reg, now, &parse(&text), &flow()));
    let wrong = reply(handle(
        &mut reg,
        now,
        &with_auth(&text, &challenge, "100", "guess", 1),
        &flow(),
    ));
    let text_u = register("nobody", "e1", 1, "Contact: <sip:100@192.0.2.50>\r\n");
    let unknown = reply(handle(
        &mut reg,
        now,
        &with_auth(&text_u, &challenge, "nobody", "guess", 1),
        &flow(),
    ));
    let strip = |r: &Response, user: &str| {
        let s = String::from_utf8(r.to_bytes().to_vec()).unwrap();
        let mut out = String::new();
        for line in s.split("\r\n") {
            let line = line.replace(user, "USER");
            let line = match line.find("nonce=\"") {
                Some(i) => {
                    let end = line[i + 7..].find('"').unwrap() + i + 8;
                    format!("{}{}", &line[..i], &line[end..])
                }
                None => line,
            };
            // To tags are per request (keyed hash of Call-ID, From, CSeq, Via).
            let line = match line.find(";tag=") {
                Some(i) if line.starts_with("To:") => line[..i].to_owned(),
                _ => line,
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    };
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(strip(&wrong, "100"), strip(&unknown, "nobody"));
    assert!(!strip(&wrong, "100").contains("stale"));
    // The same REGISTER with an unknown digest user name: byte-identical apart from the
    // nonce, To tag included.
    let unknown_same = reply(handle(
        &mut reg,
        now,
        &with_auth(&text, &challenge, "nobody", "guess", 1),
        &flow(),
    ));
    let no_nonce = |r: &Response| {
        let s = String::from_utf8(r.to_bytes().to_vec()).unwrap();
        s.split("nonce=\"")
            .map(|p| p.split_once('"').map_or(p, |(_, rest)| rest).to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(no_nonce(&wrong), no_nonce(&unknown_same));
    assert_ne!(wrong.to_bytes(), unknown_same.to_bytes());
    // A flood of unknown users costs no write: always a reply.
    for i in 0..50 {
        let t = register(&format!("u{i}"), "f", i, "Contact: <sip:x@192.0.2.50>\r\n");
        let r = reply(handle(
            &mut reg,
            now,
            &with_auth(&t, &challenge, &format!("u{i}"), "x", 1),
            &flow(),
        ));
        assert_eq!(r.status().as_u16(), 401);
    }
    assert_eq!(reg.location().binding_count(), 0);
}

#[test]
fn replay_and_stale_nonce() {
    let mut reg = registrar();
    let now = start();
    let text = register("100", "r1", 1, "Contact: <sip:100@192.0.2.50>\r\n");
    let challenge = reply(handle(&mut reg, now, &parse(&text), &flow()));
    let req = with_auth(&text, &challenge, "100", "s3cret", 1);
    let p = commit(handle(&mut reg, now, &req, &flow()));
    reg.complete(now, p);
    // The same Authorization again (same nc): refused with a stale challenge.
    let again = reply(handle(&mut reg, now, &req, &flow()));
    assert_eq!(again.status().as_u16(), 401);
    assert!(
        String::from_utf8_lossy(again.headers().get(&HeaderName::WwwAuthenticate).unwrap())
            .contains("stale=true")
    );
    // A right digest on an expired nonce: stale=true.
    let later = now.after(Duration::from_secs(1_000));
    let text2 = register("100", "r1", 2, "Contact: <sip:100@192.0.2.50>\r\n");
    let stale = reply(handle(
        &mut reg,
        later,
        &with_auth(&text2, &challenge, "100", "s3cret", 2),
        &flow(),
    ));
    assert_eq!(stale.status().as_u16(), 401);
    assert!(
        String::from_utf8_lossy(stale.headers().get(&HeaderName::WwwAuthenticate).unwrap())
            .contains("stale=true")
    );
}

#[test]
fn several_contacts_expiry_rules_and_removal() {
    let mut reg = registrar();
    let now = start();
    let text = register("100", "m1", 1, "Expires: 1800\r\nContact: <sip:100@192.0.2.50>;q=0.5, <sip:100@192.0.2.51>;expires=99999\r\nContact: <sip:100@192.0.2.52>;expires=120\r\n");
    let done = ok(&mut reg, now, &text, "100");
    let mut c = contacts(&done.response);
    c.sort();
    assert_eq!(
        c,
        vec![
            "<sip:100@192.0.2.50>;expires=1800;q=0.5",
            "<sip:100@192.0.2.51>;expires=3600",
            "<sip:100@192.0.2.52>;expires=120",
        ]
    );
    // Remove one with expires=0, keep the others.
    let text = register(
        "100",
        "m1",
        2,
        "Contact: <sip:100@192.0.2.51>;expires=0\r\n",
    );
    let done = ok(&mut reg, now, &text, "100");
    assert_eq!(contacts(&done.response).len(), 2);
    // 423 for a too brief interval.
    let text = register(
        "100",
        "m1",
        3,
        "Contact: <sip:100@192.0.2.53>;expires=30\r\n",
    );
    let rsp = reply(authed(&mut reg, now, &text, "100"));
    assert_eq!(rsp.status().as_u16(), 423);
    assert_eq!(rsp.headers().min_expires(), Ok(Some(60)));
    // Query: the list, no write.
    let text = register("100", "q1", 1, "");
    let rsp = reply(authed(&mut reg, now, &text, "100"));
    assert_eq!(rsp.status().as_u16(), 200);
    assert_eq!(contacts(&rsp).len(), 2);
    // Contact: * with Expires: 0 removes everything.
    let text = register("100", "m1", 4, "Expires: 0\r\nContact: *\r\n");
    let mut p = commit(authed(&mut reg, now, &text, "100"));
    assert_eq!(p.take_changes().len(), 2);
    let done = reg.complete(now, p);
    assert!(contacts(&done.response).is_empty());
    assert!(!done.became_reachable);
    assert_eq!(reg.location().user_count(), 0);
    // * on nothing: nothing to write.
    let text = register("100", "m1", 5, "Expires: 0\r\nContact: *\r\n");
    assert_eq!(
        reply(authed(&mut reg, now, &text, "100")).status().as_u16(),
        200
    );
}

#[test]
fn star_and_contact_syntax_are_400_before_auth() {
    let mut reg = registrar();
    let now = start();
    for (extra, reason) in [
        ("Contact: *\r\n", "Contact * Requires Expires 0"),
        (
            "Expires: 0\r\nContact: *, <sip:a@b>\r\n",
            "Malformed Contact Header",
        ),
        // The request's check refuses the header before the registrar sees it.
        (
            "Contact: <sip:a@b>;expires=x\r\n",
            "Malformed Contact Header",
        ),
        (
            "Expires: abc\r\nContact: <sip:a@b>\r\n",
            "Malformed Expires Header",
        ),
        ("Require: foo\r\nContact: <sip:a@b>\r\n", "Bad Extension"),
    ] {
        let rsp = reply(handle(
            &mut reg,
            now,
            &parse(&register("100", "s", 1, extra)),
            &flow(),
        ));
        assert_eq!(String::from_utf8_lossy(rsp.reason()), reason, "{extra}");
    }
    let missing = register("100", "s", 1, "").replace("Call-ID: s\r\n", "");
    let rsp = reply(handle(&mut reg, now, &parse(&missing), &flow()));
    assert_eq!(rsp.reason(), b"Missing Call-ID Header");
    let dup = register("100", "s", 1, "To: <sip:101@example.com>\r\n");
    let rsp = reply(handle(&mut reg, now, &parse(&dup), &flow()));
    assert_eq!(rsp.reason(), b"Multiple To Headers");
    // Foreign domains are answered, not forwarded.
    let foreign = register("100", "s", 1, "")
        .replace("REGISTER sip:example.com", "REGISTER sip:evil.example.org");
    assert_eq!(
        reply(handle(&mut reg, now, &parse(&foreign), &flow()))
            .status()
            .as_u16(),
        404
    );
    // Our address with a port is ours (DESIGN §7).
    let by_ip = register("100", "s", 1, "")
        .replace("REGISTER sip:example.com", "REGISTER sip:192.0.2.1:5070");
    assert_eq!(
        reply(handle(&mut reg, now, &parse(&by_ip), &flow()))
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn third_party_registration_is_forbidden() {
    let mut reg = registrar();
    let now = start();
    let text = register("101", "t", 1, "Contact: <sip:101@192.0.2.50>\r\n");
    let rsp = reply(authed(&mut reg, now, &text, "100"));
    assert_eq!(rsp.status().as_u16(), 403);
}

#[test]
fn instance_and_reg_id_replace_the_old_binding() {
    let mut reg = registrar();
    let now = start();
    let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1";
    let text = register(
        "100",
        "o1",
        1,
        &format!(
            "Supported: outbound\r\nContact: <sip:100@192.0.2.50:5062;transport=tcp>;{inst}\r\n"
        ),
    );
    let done = ok(&mut reg, now, &text, "100");
    assert_eq!(done.response.headers().require().unwrap(), vec!["outbound"]);
    // The device moved: a new Call-ID, new address, same instance and reg-id.
    let text = register(
        "100",
        "o2",
        1,
        &format!("Contact: <sip:100@198.51.100.9:6000>;{inst}\r\n"),
    );
    let done = ok(&mut reg, now, &text, "100");
    assert!(!done.became_reachable);
    let c = contacts(&done.response);
    assert_eq!(c.len(), 1);
    assert!(c[0].starts_with("<sip:100@198.51.100.9:6000>;expires=3600;+sip.instance=\"<urn:uuid:"));
    assert!(c[0].ends_with(";reg-id=1"));
    assert!(done.response.headers().require().unwrap().is_empty());
}

#[test]
fn contact_limit_and_cseq_order() {
    let mut reg = registrar_with(RegistrarConfig {
        max_contacts: 2,
        ..RegistrarConfig::default()
    });
    let now = start();
    ok(
        &mut reg,
        now,
        &register(
            "100",
            "l1",
            5,
            "Contact: <sip:100@192.0.2.50>, <sip:100@192.0.2.51>\r\n",
        ),
        "100",
    );
    let rsp = reply(authed(
        &mut reg,
        now,
        &register("100", "l2", 1, "Contact: <sip:100@192.0.2.52>\r\n"),
        "100",
    ));
    assert_eq!(rsp.status().as_u16(), 403);
    assert_eq!(rsp.reason(), b"Too Many Contacts");
    assert!(rsp.headers().contains(&HeaderName::Warning));
    // Replacing one while adding one stays within the limit.
    ok(
        &mut reg,
        now,
        &register(
            "100",
            "l2",
            2,
            "Contact: <sip:100@192.0.2.50>;expires=0, <sip:100@192.0.2.52>\r\n",
        ),
        "100",
    );
    // Same Call-ID as the binding, CSeq not higher: the whole request fails.
    let rsp = reply(authed(
        &mut reg,
        now,
        &register(
            "100",
            "l1",
            5,
            "Contact: <sip:100@192.0.2.51>;expires=0\r\n",
        ),
        "100",
    ));
    assert_eq!(rsp.status().as_u16(), 500);
    assert_eq!(rsp.reason(), b"CSeq Out Of Order");
    assert_eq!(reg.location().binding_count(), 2);
    // A higher CSeq works.
    ok(
        &mut reg,
        now,
        &register(
            "100",
            "l1",
            6,
            "Contact: <sip:100@192.0.2.51>;expires=0\r\n",
        ),
        "100",
    );
    assert_eq!(reg.location().binding_count(), 1);
}

#[test]
fn two_pending_registers_complete_in_order_and_failure_changes_nothing() {
    let mut reg = registrar();
    let now = start();
    let a = commit(authed(
        &mut reg,
        now,
        &register("100", "p1", 1, "Contact: <sip:100@192.0.2.50>\r\n"),
        "100",
    ));
    let b = commit(authed(
        &mut reg,
        now,
        &register("100", "p2", 1, "Contact: <sip:100@192.0.2.51>\r\n"),
        "100",
    ));
    let c = commit(authed(
        &mut reg,
        now,
        &register("101", "p3", 1, "Contact: <sip:101@192.0.2.52>\r\n"),
        "101",
    ));
    let done_b = reg.complete(now, b);
    assert!(done_b.became_reachable);
    let done_a = reg.complete(now, a);
    assert!(done_a.became_reachable, "a new binding was added");
    assert_eq!(contacts(&done_a.response).len(), 2);
    let failed = reg.failed(c);
    assert_eq!(failed.status().as_u16(), 500);
    assert_eq!(failed.headers().retry_after().unwrap().unwrap().seconds, 5);
    assert!(failed.headers().call_id().is_ok());
    assert!(!reg.location().is_reachable("101", now.mono));
}

#[test]
fn restore_and_sweep() {
    let now = start();
    let mut reg = registrar();
    ok(
        &mut reg,
        now,
        &register(
            "100",
            "x1",
            1,
            "Contact: <sip:100@192.0.2.50>;expires=60\r\n",
        ),
        "100",
    );
    let records: Vec<_> = reg
        .location()
        .bindings("100")
        .iter()
        .map(|b| b.to_record("100"))
        .collect();
    let mut fresh = registrar();
    let later = now.after(Duration::from_secs(10));
    assert_eq!(fresh.dir.restore(&records, later), 1);
    let targets = fresh.location().contacts("100", later.mono);
    assert_eq!(targets[0].uri, "sip:100@192.0.2.50");
    assert_eq!(targets[0].flow, flow());
    // The restored binding keeps its Call-ID/CSeq for ordering.
    let rsp = reply(authed(
        &mut fresh,
        later,
        &register("100", "x1", 1, "Contact: <sip:100@192.0.2.50>\r\n"),
        "100",
    ));
    assert_eq!(rsp.status().as_u16(), 500);
    let gone = fresh.dir.sweep(now.after(Duration::from_secs(61)));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0, "100");
    assert_eq!(fresh.location().binding_count(), 0);
}

#[test]
fn incoherent_limits_are_corrected() {
    let reg = registrar_with(RegistrarConfig {
        default_expires: 10,
        min_expires: 120,
        max_expires: 60,
        max_contacts: 0,
        retry_after_secs: 1,
    });
    let c = reg.config();
    assert_eq!(
        (
            c.min_expires,
            c.default_expires,
            c.max_expires,
            c.max_contacts
        ),
        (120, 120, 120, 1)
    );
}
