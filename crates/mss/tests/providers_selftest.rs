//! Proof that the fake providers of `tests/providers/` answer as their
//! README says, driven by a raw UDP socket (no mss involved).
//!
//! Needs `kamailio` and `sipp` (`scripts/install-test-deps.sh`); without them
//! every test fails with a message naming the missing program.

// Helpers outside #[test] functions unwrap too (not in providers/support.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "providers/support.rs"]
mod providers;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use providers::{KamailioOptions, ProviderGuard, Scenario, PROVIDER_REALM};

/// A bare REGISTER client: one dialog (Call-ID, From tag, CSeq) at a time.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    dialogs: u32,
    nc: u32,
}

/// A response: status code and raw text.
struct Answer {
    code: u16,
    text: String,
}

impl Answer {
    /// The first value of header `name` (case-insensitive), if any.
    fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Client {
    fn new(guard: &ProviderGuard, user: &str) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut client = Client {
            socket,
            server: guard.addr(),
            user: user.to_owned(),
            call_id: String::new(),
            from_tag: String::new(),
            cseq: 0,
            dialogs: 0,
            nc: 0,
        };
        client.fresh_call_id();
        client
    }

    fn fresh_call_id(&mut self) {
        self.dialogs += 1;
        let pid = std::process::id();
        let port = self.socket.local_addr().unwrap().port();
        self.call_id = format!("selftest-{pid}-{port}-{}@127.0.0.1", self.dialogs);
        self.from_tag = format!("tag{pid}x{}", self.dialogs);
        self.cseq = 0;
    }

    fn uri(&self) -> String {
        format!("sip:{}", self.server)
    }

    /// Sends one REGISTER (next CSeq) and returns its first non-1xx answer.
    fn send(&mut self, expires: u32, auth: Option<(&str, &str)>) -> Answer {
        self.send_with_timeout(expires, auth, Duration::from_secs(5))
            .expect("no answer to REGISTER")
    }

    fn send_with_timeout(
        &mut self,
        expires: u32,
        auth: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Option<Answer> {
        self.cseq += 1;
        let local = self.socket.local_addr().unwrap();
        let (server, user, uri) = (self.server, self.user.clone(), self.uri());
        let auth_line = auth.map_or(String::new(), |(h, v)| format!("{h}: {v}\r\n"));
        let request = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};rport;branch=z9hG4bK{}x{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{server}>;tag={}\r\n\
             To: <sip:{user}@{server}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: {expires}\r\n\
             {auth_line}Content-Length: 0\r\n\r\n",
            self.from_tag, self.cseq, self.from_tag, self.call_id, self.cseq
        );
        self.socket.send_to(request.as_bytes(), server).unwrap();
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => return None,
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
            if code >= 200 {
                return Some(Answer { code, text });
            }
        }
    }

    /// The (Proxy-)Authorization value answering the challenge in `answer`.
    fn answer_challenge(&mut self, answer: &Answer, password: &str) -> (&'static str, String) {
        let (challenge_header, auth_header) = if answer.code == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let value = answer.header(challenge_header).expect("challenge header");
        let params = value.strip_prefix("Digest ").expect("a Digest challenge");
        let params = parse_auth_params(params);
        self.nc += 1;
        let authorization = mss_auth::authorize(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "REGISTER",
            &self.uri(),
            &self.user,
            password,
            "selftestcnonce",
            self.nc,
        )
        .unwrap();
        (auth_header, authorization)
    }

    /// REGISTER, answering one digest challenge if there is one.
    fn register(&mut self, expires: u32, password: &str) -> Answer {
        let first = self.send(expires, None);
        if first.code != 401 && first.code != 407 {
            return first;
        }
        let (header, value) = self.answer_challenge(&first, password);
        self.send(expires, Some((header, &value)))
    }
}

/// Splits `a="x", b=y` into pairs, honouring quotes.
fn parse_auth_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').unwrap();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap();
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        out.push((name.trim().to_owned(), value.to_owned()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

fn kamailio(cseq_quirk: bool) -> ProviderGuard {
    let options = KamailioOptions {
        password: "pw-selftest".to_owned(),
        cseq_quirk,
        ..KamailioOptions::default()
    };
    providers::start_kamailio(&options).unwrap_or_else(|e| panic!("{e}"))
}

fn sipp(scenario: Scenario, vars: &[(&str, &str)]) -> ProviderGuard {
    providers::start_sipp(scenario, vars).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn kamailio_accepts_a_re_register_on_the_same_call_id() {
    let guard = kamailio(false);
    let mut client = Client::new(&guard, "2001");
    let first = client.send(3600, None);
    assert_eq!(first.code, 401, "{}", first.text);
    let challenge = first.header("WWW-Authenticate").unwrap();
    assert!(challenge.contains(PROVIDER_REALM), "{challenge}");
    let (header, value) = client.answer_challenge(&first, "pw-selftest");
    let ok = client.send(3600, Some((header, &value)));
    assert_eq!(ok.code, 200, "{}\n{}", ok.text, guard.log());
    assert!(ok.header("Contact").unwrap().contains("expires="));
    // Same Call-ID, CSeq + 1.
    let again = client.register(3600, "pw-selftest");
    assert_eq!(again.code, 200, "{}", again.text);
}

#[test]
fn kamailio_answers_423_below_min_expires_and_honours_a_lower_floor() {
    let guard = kamailio(false);
    let mut client = Client::new(&guard, "2001");
    let short = client.register(30, "pw-selftest");
    assert_eq!(short.code, 423, "{}", short.text);
    assert_eq!(short.header("Min-Expires"), Some("60"));
    let ok = client.register(60, "pw-selftest");
    assert_eq!(ok.code, 200, "{}", ok.text);
    assert!(ok.header("Contact").unwrap().ends_with(";expires=60"));

    let options = KamailioOptions {
        password: "pw-selftest".to_owned(),
        min_expires: 2,
        ..KamailioOptions::default()
    };
    let fast = providers::start_kamailio(&options).unwrap_or_else(|e| panic!("{e}"));
    let mut client = Client::new(&fast, "2001");
    let ok = client.register(4, "pw-selftest");
    assert_eq!(ok.code, 200, "{}", ok.text);
    assert!(ok.header("Contact").unwrap().ends_with(";expires=4"));
}

#[test]
fn kamailio_refuses_a_wrong_password() {
    let guard = kamailio(false);
    let mut client = Client::new(&guard, "2001");
    let answer = client.register(3600, "not-the-password");
    assert_eq!(answer.code, 401, "{}", answer.text);
}

#[test]
fn kamailio_quirk_refuses_a_reused_call_id_and_accepts_a_fresh_one() {
    let guard = kamailio(true);
    let mut client = Client::new(&guard, "2001");
    // The challenge and the authenticated retry of a fresh Call-ID pass.
    let ok = client.register(3600, "pw-selftest");
    assert_eq!(ok.code, 200, "{}\n{}", ok.text, guard.log());
    // A re-REGISTER on that Call-ID (CSeq + 1) is refused before any challenge.
    let refused = client.send(3600, None);
    assert_eq!(refused.code, 400, "{}", refused.text);
    assert!(refused.text.starts_with("SIP/2.0 400 Bad Request"));
    assert_eq!(
        refused.header("P-Registrar-Error"),
        Some("Invalid CSeq number")
    );
    // Also with credentials.
    let refused = client.register(3600, "pw-selftest");
    assert_eq!(refused.code, 400, "{}", refused.text);
    // A fresh Call-ID registers again.
    client.fresh_call_id();
    let ok = client.register(3600, "pw-selftest");
    assert_eq!(ok.code, 200, "{}", ok.text);
}

#[test]
fn sipp_423_asks_for_120_seconds_then_accepts() {
    let guard = sipp(Scenario::IntervalTooBrief, &[]);
    let mut client = Client::new(&guard, "2001");
    let first = client.send(3600, None);
    assert_eq!(first.code, 423, "{}", first.text);
    assert_eq!(first.header("Min-Expires"), Some("120"));
    let short = client.send(60, None);
    assert_eq!(short.code, 423, "{}", short.text);
    let ok = client.send(120, None);
    assert_eq!(ok.code, 200, "{}", ok.text);
    assert!(ok.header("Contact").unwrap().ends_with(";expires=120"));
    client.fresh_call_id();
    assert_eq!(client.send(3600, None).code, 200);
}

#[test]
fn sipp_407_challenges_then_accepts_proxy_authorization() {
    let guard = sipp(Scenario::ProxyAuth, &[("user", "2001")]);
    let mut client = Client::new(&guard, "2001");
    let first = client.send(3600, None);
    assert_eq!(first.code, 407, "{}", first.text);
    let (header, value) = client.answer_challenge(&first, "any");
    assert_eq!(header, "Proxy-Authorization");
    let ok = client.send(3600, Some((header, &value)));
    assert_eq!(ok.code, 200, "{}\n{}", ok.text, guard.log());
    // Without credentials: challenged again; as another user: 403.
    assert_eq!(client.send(3600, None).code, 407);
    let mut other = Client::new(&guard, "2002");
    let answer = other.register(3600, "any");
    assert_eq!(answer.code, 403, "{}", answer.text);
}

#[test]
fn sipp_403_forbids_the_first_ones_then_accepts() {
    let guard = sipp(Scenario::Forbidden, &[("fail_count", "2")]);
    let mut client = Client::new(&guard, "2001");
    assert_eq!(client.send(3600, None).code, 403);
    client.fresh_call_id();
    assert_eq!(client.send(3600, None).code, 403);
    let ok = client.send(3600, None);
    assert_eq!(ok.code, 200, "{}", ok.text);
    assert_eq!(ok.header("Expires"), Some("3600"));
}

#[test]
fn sipp_503_sends_retry_after_then_accepts() {
    let guard = sipp(Scenario::Unavailable, &[("retry_after", "2")]);
    let mut client = Client::new(&guard, "2001");
    let first = client.send(3600, None);
    assert_eq!(first.code, 503, "{}", first.text);
    assert_eq!(first.header("Retry-After"), Some("2"));
    assert_eq!(client.send(3600, None).code, 200);
}

#[test]
fn sipp_silence_ignores_the_first_ones_then_accepts() {
    let guard = sipp(Scenario::Silence, &[("silent_count", "2")]);
    let mut client = Client::new(&guard, "2001");
    let short = Duration::from_millis(400);
    for _ in 0..2 {
        let answer = client.send_with_timeout(3600, None, short);
        assert!(
            answer.is_none(),
            "{}\n{}",
            answer.map_or(String::new(), |a| a.text),
            guard.log()
        );
    }
    let ok = client.send(3600, None);
    assert_eq!(ok.code, 200, "{}", ok.text);
}

#[test]
fn guards_stop_their_process_group() {
    let guard = kamailio(false);
    let pid = guard.pid();
    let dir = guard.dir().to_owned();
    assert!(!providers::procfs::group_pids(pid).is_empty());
    drop(guard);
    // Orphaned workers die of the group SIGKILL; give the kernel a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !providers::procfs::group_pids(pid).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        providers::procfs::group_pids(pid).is_empty(),
        "{:?}",
        providers::procfs::group_pids(pid)
    );
    assert!(!dir.exists());
}
