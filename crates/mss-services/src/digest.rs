//! Digest authentication of local users, for the registrar (`401` + `WWW-Authenticate`,
//! checks `Authorization`) and for instant messages (`407` + `Proxy-Authenticate`, checks
//! `Proxy-Authorization`), on top of `mss-auth` (RFC 3261 §22, RFC 8760).
//!
//! Policies, and why:
//! - **Challenge order**: MD5 first, then SHA-256, by default. RFC 8760 §2.3 prefers the
//!   strongest first, but SIPp answers only MD5 and takes the first challenge it sees, and
//!   many deployed phones do the same (bench/README.md, pitfalls); clients that know SHA-256 pick it from
//!   anywhere in the list (RFC 8760 §2.4, as `mss-auth`'s client does). Configurable.
//! - **Clients that fail on SHA-256**: on the default algorithms ([`Offer::Automatic`]) a
//!   client known to give up when any challenge names SHA-256 (by its `User-Agent`, the
//!   table in `digest_clients.rs`: baresip before 3.11, JsSIP) gets the MD5 challenge alone, so
//!   every common phone registers on the defaults. An explicit list
//!   ([`Offer::Configured`]) is offered to every client as it is.
//! - **No user enumeration**: an unknown user runs the same digest work against a stand-in
//!   secret ([`mss_auth::DigestServer::verify_unknown_user`]) and gets the same challenge as
//!   a wrong password: the same status line and headers, only the nonce differs.
//! - **Credentials for another realm or scheme** are treated as absent (a fresh challenge,
//!   RFC 4475 regaut01); a malformed Digest header for our realm is `400`.
//! - **Stale**: an authentic expired nonce or a replayed nonce count gets a new challenge
//!   with `stale=true`, so an honest client retries without asking its user.
//! - **Who failed** ([`AuthWatch`], the ban table `crate::bans`): each nonce is sent to the
//!   requester's address (`mss_auth::Origin`, an IPv4 address or IPv6 /64); a right answer
//!   is reported as passed, a wrong one only when its nonce was sent to the address it
//!   comes from (a spoofed source cannot have received it). Stale and replayed answers
//!   are neither. A user the watcher blocks at an address is challenged again without
//!   its answer being checked.

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use mss_auth::{
    Algorithm, CredentialsRef, DigestServer, Ha1, NonceSecret, RandomState, ServerConfig,
    UserSecret,
};
use mss_sip::{HeaderName, Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::answer::Answer;
use crate::bans::SourceKey;
use crate::Now;

#[path = "digest_clients.rs"]
mod clients;
#[path = "digest_header.rs"]
mod header;

/// A local user as the digest check knows it.
#[derive(Clone)]
pub struct User {
    /// HA1 for MD5, computed from the configured password.
    md5: Ha1,
    /// HA1 for SHA-256.
    sha256: Ha1,
    /// Display name, if configured.
    pub display_name: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

impl User {
    fn ha1(&self, alg: Algorithm) -> &Ha1 {
        match alg {
            Algorithm::Md5 => &self.md5,
            _ => &self.sha256,
        }
    }
}

/// The directory of local users: name → HA1s (passwords are not kept), computed once
/// per user and algorithm when the user is added.
///
/// Looked up by the digest `username` of every request, so the map hashes with a randomly
/// seeded `ahash` (fast, and not predictable from outside).
#[derive(Debug, Clone, Default)]
pub struct Users {
    realm: String,
    map: HashMap<String, User, RandomState>,
}

impl Users {
    /// An empty directory for `realm` (the HA1s depend on it).
    pub fn new(realm: &str) -> Users {
        Users {
            realm: realm.to_owned(),
            map: HashMap::default(),
        }
    }

    /// Adds (or replaces) user `name` with `password`.
    pub fn insert(&mut self, name: &str, password: &str, display_name: Option<&str>) {
        let user = User {
            md5: Ha1::compute(Algorithm::Md5, name, &self.realm, password),
            sha256: Ha1::compute(Algorithm::Sha256, name, &self.realm, password),
            display_name: display_name.map(str::to_owned),
        };
        self.map.insert(name.to_owned(), user);
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.map.get(name)
    }

    /// Whether `name` exists (for services that must tell, e.g. `404` to a MESSAGE target).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there is no user.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }
}

/// Which pair of headers a check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// A registrar (UAS): `401`, `WWW-Authenticate`, `Authorization`.
    Www,
    /// A proxy-like service (MESSAGE): `407`, `Proxy-Authenticate`, `Proxy-Authorization`.
    Proxy,
}

impl AuthKind {
    pub(crate) fn credentials_header(self) -> HeaderName {
        match self {
            AuthKind::Www => HeaderName::Authorization,
            AuthKind::Proxy => HeaderName::ProxyAuthorization,
        }
    }
    fn challenge_header(self) -> HeaderName {
        match self {
            AuthKind::Www => HeaderName::WwwAuthenticate,
            AuthKind::Proxy => HeaderName::ProxyAuthenticate,
        }
    }
}

/// A user whose credentials were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user name (digest `username`, equal to a key of [`Users`]).
    pub name: String,
}

/// Which digest challenges a `401`/`407` offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// The default: MD5 then SHA-256, but MD5 alone to a client known to fail when a
    /// challenge names SHA-256 (`digest_clients.rs`).
    Automatic,
    /// Exactly these, in this order, to every client (`digest_algorithms` set by the
    /// operator).
    Configured(Vec<Algorithm>),
}

impl Offer {
    /// What [`Offer::Automatic`] offers to a client not in the table.
    pub const AUTOMATIC: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

    /// The algorithms offered to clients not in the table, in order.
    pub fn algorithms(&self) -> &[Algorithm] {
        match self {
            Offer::Automatic => &Offer::AUTOMATIC,
            Offer::Configured(list) => list,
        }
    }
}

/// Settings of a [`DigestGuard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// Challenges offered (default [`Offer::Automatic`]; see the module docs).
    pub offer: Offer,
    /// Seconds a nonce stays fresh.
    pub nonce_lifetime_secs: u64,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            offer: Offer::Automatic,
            nonce_lifetime_secs: mss_auth::DEFAULT_NONCE_LIFETIME_SECS,
        }
    }
}

/// Who is told how the answers to our challenges went: the ban table
/// ([`crate::bans::Bans`]), or `()` to tell no one.
pub trait AuthWatch {
    /// Whether `user`'s answers from `source` are refused without being checked (a
    /// fresh challenge).
    fn blocked(&mut self, now: Now, source: IpAddr, user: &str) -> bool;
    /// `user` answered right from `source`.
    fn passed(&mut self, now: Now, source: IpAddr, user: &str);
    /// `user` answered wrong from `source`, to a nonce sent to `source`.
    fn failed(&mut self, now: Now, source: IpAddr, user: &str);
}

impl AuthWatch for () {
    fn blocked(&mut self, _: Now, _: IpAddr, _: &str) -> bool {
        false
    }
    fn passed(&mut self, _: Now, _: IpAddr, _: &str) {}
    fn failed(&mut self, _: Now, _: IpAddr, _: &str) {}
}

/// How many answers to a challenge failed since start, by why (`mss_auth_failures_total`).
/// A request without credentials for our realm is no failure: it gets its first challenge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Unknown user or wrong password (indistinguishable on the wire), or a nonce mss did
    /// not issue.
    pub credentials: u64,
    /// An expired nonce (answered with `stale=true`).
    pub stale: u64,
    /// A nonce count used before (answered with `stale=true`).
    pub replay: u64,
    /// A malformed `Authorization`/`Proxy-Authorization` of our realm (`400`).
    pub malformed: u64,
}

/// Checks digest credentials of local users and builds challenges. Sans-IO: time comes in
/// as [`Now`], randomness from a generator seeded by the caller.
pub struct DigestGuard {
    server: DigestServer,
    users: Users,
    rng: StdRng,
    /// Whether clients in the `digest_clients.rs` table get MD5 alone.
    adapt_to_client: bool,
    /// Failed answers so far.
    stats: AuthStats,
}

impl std::fmt::Debug for DigestGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestGuard")
            .field("server", &self.server)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn unix_secs(now: Now) -> u64 {
    u64::try_from(now.unix_ms / 1000).unwrap_or(0)
}

/// Why the credentials of a request were not accepted.
pub(crate) enum Refusal {
    /// Answer with a fresh challenge.
    Challenge {
        /// With `stale=true`.
        stale: bool,
    },
    /// Answer `400` with this warning text.
    Malformed(String),
}

impl DigestGuard {
    /// A guard over `users` (whose realm is ours), signing nonces with `secret` (persist it
    /// so nonces survive a restart), drawing nonce randomness from a generator seeded with
    /// `seed`.
    pub fn new(users: Users, secret: NonceSecret, config: GuardConfig, seed: u64) -> DigestGuard {
        let server = DigestServer::new(
            secret,
            ServerConfig {
                nonce_lifetime_secs: config.nonce_lifetime_secs,
                algorithms: config.offer.algorithms().to_vec(),
                ..ServerConfig::default()
            },
        );
        DigestGuard {
            server,
            users,
            rng: StdRng::seed_from_u64(seed),
            adapt_to_client: config.offer == Offer::Automatic,
            stats: AuthStats::default(),
        }
    }

    /// Failed answers since start, by why.
    pub fn stats(&self) -> AuthStats {
        self.stats
    }

    /// The user directory.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        self.users.realm()
    }

    /// Checks the credentials of `req`, which came from `source`, telling `watch` how the
    /// answer went (module docs); `Err` is the response to send instead: a challenge
    /// (`401`/`407`, its nonce sent to `source`) or `400` for a malformed header of our
    /// realm.
    ///
    /// # Errors
    ///
    /// The challenge or `400` response. (Not boxed: a challenge is the common answer to a
    /// first REGISTER, and it is sent right away.)
    #[allow(clippy::result_large_err)]
    pub fn check(
        &mut self,
        now: Now,
        req: &Request,
        kind: AuthKind,
        answer: &Answer,
        source: IpAddr,
        watch: &mut impl AuthWatch,
    ) -> Result<AuthenticatedUser, Response> {
        match self.verify(now, req, kind, source, watch) {
            Ok(user) => Ok(user),
            Err(Refusal::Challenge { stale }) => {
                Err(self.challenge(now, req, kind, stale, answer, source))
            }
            Err(Refusal::Malformed(why)) => {
                self.stats.malformed += 1;
                let reason = match kind {
                    AuthKind::Www => "Bad Authorization Header",
                    AuthKind::Proxy => "Bad Proxy-Authorization Header",
                };
                let mut rsp = answer.response(req, StatusCode::BAD_REQUEST, reason);
                rsp.headers_mut()
                    .push(HeaderName::Warning, answer.warning(&why));
                Err(rsp)
            }
        }
    }

    fn verify(
        &mut self,
        now: Now,
        req: &Request,
        kind: AuthKind,
        source: IpAddr,
        watch: &mut impl AuthWatch,
    ) -> Result<AuthenticatedUser, Refusal> {
        let found = header::find_credentials(req, kind, self.users.realm())?;
        let creds = found.get();
        if watch.blocked(now, source, creds.username) {
            tracing::debug!(peer = %source, "answer of a user blocked at this address not checked");
            return Err(Refusal::Challenge { stale: false });
        }
        let verdict = self.verify_credentials(now, req, &creds);
        match verdict {
            mss_auth::Verdict::Ok => {}
            mss_auth::Verdict::Invalid => self.stats.credentials += 1,
            mss_auth::Verdict::Stale => self.stats.stale += 1,
            mss_auth::Verdict::Replay => self.stats.replay += 1,
        }
        match verdict {
            mss_auth::Verdict::Ok => {
                watch.passed(now, source, creds.username);
                return Ok(AuthenticatedUser {
                    name: creds.username.to_owned(),
                });
            }
            mss_auth::Verdict::Invalid
                if self.server.issued_to(
                    creds.nonce,
                    self.users.realm(),
                    SourceKey::of(source).origin(),
                ) =>
            {
                watch.failed(now, source, creds.username);
            }
            _ => {}
        }
        Err(Refusal::Challenge {
            stale: verdict.is_stale(),
        })
    }

    /// Checks credentials of our realm against the directory; an unknown user gets the
    /// same work and the same answer as a wrong password.
    fn verify_credentials(
        &mut self,
        now: Now,
        req: &Request,
        creds: &CredentialsRef<'_>,
    ) -> mss_auth::Verdict {
        let method = req.method().as_str();
        let secs = unix_secs(now);
        let realm = self.users.realm();
        match self.users.get(creds.username) {
            Some(user) => self.server.verify_ref(
                creds,
                method,
                UserSecret::Ha1(user.ha1(creds.algorithm)),
                realm,
                secs,
            ),
            None => self
                .server
                .verify_unknown_user_ha1(creds, method, realm, secs),
        }
    }

    /// Whether the client that sent `req` gets MD5 alone: the offer is automatic and its
    /// `User-Agent` is in the table of clients that fail on SHA-256.
    fn md5_only_for(&self, req: &Request) -> bool {
        self.adapt_to_client
            && req
                .headers()
                .get(&HeaderName::UserAgent)
                .is_some_and(clients::fails_on_sha256)
    }

    /// A `401`/`407` with one challenge per offered algorithm ([`Offer`]: for most clients
    /// every configured one, for a client known to fail on SHA-256 MD5 alone), sharing a
    /// fresh nonce sent to `source` (the address `req` came from).
    pub fn challenge(
        &mut self,
        now: Now,
        req: &Request,
        kind: AuthKind,
        stale: bool,
        answer: &Answer,
        source: IpAddr,
    ) -> Response {
        let (status, reason) = match kind {
            AuthKind::Www => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            AuthKind::Proxy => (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "Proxy Authentication Required",
            ),
        };
        let algorithms: &[Algorithm] = if self.md5_only_for(req) {
            &[Algorithm::Md5]
        } else {
            &self.server.config().algorithms
        };
        let mut rsp = answer.response(req, status, reason);
        let name = kind.challenge_header();
        let headers = rsp.headers_mut();
        // Each value comes in a buffer of exactly its length: `Bytes` takes it as it is.
        match self.server.challenge_values(
            self.users.realm(),
            stale,
            algorithms,
            unix_secs(now),
            &mut self.rng,
            SourceKey::of(source).origin(),
            |v| headers.push(name.clone(), Bytes::from(v)),
        ) {
            Ok(()) => rsp,
            // Only a realm with control characters fails; configuration refuses those.
            Err(_) => answer.reject(req, &crate::answer::Reject::ServerError { retry_after: 60 }),
        }
    }

    /// Forgets nonce counts of expired nonces; call with the registrar's sweep.
    pub fn handle_timeout(&mut self, now: Now) {
        self.server.handle_timeout(unix_secs(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::tests::req;
    use std::time::{Duration, Instant};

    const REALM: &str = "pbx.example.com";

    /// Where the test requests come from.
    fn src() -> IpAddr {
        IpAddr::from([192, 0, 2, 1])
    }

    pub(crate) fn guard() -> DigestGuard {
        let mut users = Users::new(REALM);
        users.insert("100", "s3cret", Some("Alice"));
        DigestGuard::new(
            users,
            NonceSecret::from_bytes([3; 32]),
            GuardConfig::default(),
            1,
        )
    }

    fn message(extra: &str) -> Request {
        req(&format!("MESSAGE sip:101@pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:100@pbx.example.com>;tag=1\r\nTo: <sip:101@pbx.example.com>\r\nCall-ID: m1\r\nCSeq: 1 MESSAGE\r\n{extra}Content-Length: 0\r\n\r\n"))
    }

    fn answer_to(rsp: &Response, user: &str, password: &str, nc: u32) -> String {
        answer_challenge(rsp, 0, user, password, nc)
    }

    /// Credentials answering the `index`-th Proxy-Authenticate of `rsp` (0: MD5, 1: SHA-256).
    fn answer_challenge(
        rsp: &Response,
        index: usize,
        user: &str,
        password: &str,
        nc: u32,
    ) -> String {
        let ch = rsp.headers().auth(&HeaderName::ProxyAuthenticate).unwrap();
        let params = ch[index].params.iter().map(|(n, v)| (*n, v.as_ref()));
        mss_auth::authorize(
            params,
            "MESSAGE",
            "sip:101@pbx.example.com",
            user,
            password,
            "cn",
            nc,
        )
        .unwrap()
    }

    /// The response with every nonce value blanked out.
    fn without_nonces(rsp: &Response) -> String {
        let mut out = bytes::BytesMut::new();
        rsp.encode(&mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let mut parts = text.split("nonce=\"");
        let mut blanked = parts.next().unwrap().to_owned();
        for p in parts {
            blanked.push_str("nonce=\"\"");
            blanked.push_str(p.split_once('"').unwrap().1);
        }
        blanked
    }

    #[test]
    fn unknown_user_and_wrong_password_get_the_same_answer() {
        let a = Answer::new(REALM);
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        for sha in [false, true] {
            let mut g = guard();
            let first = g
                .check(now, &message(""), AuthKind::Proxy, &a, src(), &mut ())
                .unwrap_err();
            let mut answers = Vec::new();
            for (user, password) in [("100", "wrong"), ("999", "s3cret"), ("999", "wrong")] {
                let auth = answer_challenge(&first, usize::from(sha), user, password, 1);
                if sha {
                    assert!(auth.contains("algorithm=SHA-256"));
                }
                let r = message(&format!("Proxy-Authorization: {auth}\r\n"));
                let rsp = g
                    .check(now, &r, AuthKind::Proxy, &a, src(), &mut ())
                    .unwrap_err();
                assert_eq!(rsp.status().as_u16(), 407);
                answers.push(without_nonces(&rsp));
            }
            assert_eq!(answers[0], answers[1]);
            assert_eq!(answers[0], answers[2]);
            // The right password gets in, over the same (borrowed) path.
            let auth = answer_to(&first, "100", "s3cret", 2);
            let r = message(&format!("Proxy-Authorization: {auth}\r\n"));
            assert_eq!(
                g.check(now, &r, AuthKind::Proxy, &a, src(), &mut ())
                    .unwrap()
                    .name,
                "100"
            );
        }
    }

    /// The algorithm names of every challenge in `rsp`, in order.
    fn offered(rsp: &Response, name: &HeaderName) -> Vec<String> {
        rsp.headers()
            .auth(name)
            .unwrap()
            .iter()
            .map(|c| {
                c.params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("algorithm"))
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn old_baresip_gets_md5_alone_on_the_automatic_offer() {
        let a = Answer::new(REALM);
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        let mut g = guard();
        let old = message("User-Agent: baresip v1.0.0 (x86_64/linux)\r\n");
        let rsp = g
            .check(now, &old, AuthKind::Proxy, &a, src(), &mut ())
            .unwrap_err();
        assert_eq!(offered(&rsp, &HeaderName::ProxyAuthenticate), ["MD5"]);
        // It answers MD5 and gets in.
        let auth = answer_to(&rsp, "100", "s3cret", 1);
        let r = message(&format!(
            "User-Agent: baresip v1.0.0 (x86_64/linux)\r\nProxy-Authorization: {auth}\r\n"
        ));
        assert_eq!(
            g.check(now, &r, AuthKind::Proxy, &a, src(), &mut ())
                .unwrap()
                .name,
            "100"
        );
        // Everyone else, a newer baresip among them, still gets both.
        for ua in [
            "",
            "User-Agent: baresip v3.11.0 (x86_64/linux)\r\n",
            "User-Agent: PJSUA v2.15\r\n",
        ] {
            let rsp = g
                .check(now, &message(ua), AuthKind::Proxy, &a, src(), &mut ())
                .unwrap_err();
            assert_eq!(
                offered(&rsp, &HeaderName::ProxyAuthenticate),
                ["MD5", "SHA-256"],
                "{ua}"
            );
        }
    }

    #[test]
    fn a_configured_offer_is_the_same_for_every_client() {
        let a = Answer::new(REALM);
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        let mut users = Users::new(REALM);
        users.insert("100", "s3cret", None);
        for list in [
            vec![Algorithm::Sha256, Algorithm::Md5],
            vec![Algorithm::Sha256],
        ] {
            let mut g = DigestGuard::new(
                users.clone(),
                NonceSecret::from_bytes([3; 32]),
                GuardConfig {
                    offer: Offer::Configured(list.clone()),
                    ..GuardConfig::default()
                },
                1,
            );
            let want: Vec<&str> = list.iter().map(|a| a.as_str()).collect();
            for ua in ["", "User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"] {
                let rsp = g
                    .check(now, &message(ua), AuthKind::Proxy, &a, src(), &mut ())
                    .unwrap_err();
                assert_eq!(offered(&rsp, &HeaderName::ProxyAuthenticate), want, "{ua}");
            }
        }
    }

    #[test]
    fn proxy_flow_and_replay() {
        let a = Answer::new(REALM);
        let mut g = guard();
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        let rsp = g
            .check(now, &message(""), AuthKind::Proxy, &a, src(), &mut ())
            .unwrap_err();
        assert_eq!(rsp.status().as_u16(), 407);
        let v: Vec<_> = rsp
            .headers()
            .get_all(&HeaderName::ProxyAuthenticate)
            .collect();
        assert_eq!(v.len(), 2);
        assert!(std::str::from_utf8(v[0]).unwrap().contains("algorithm=MD5"));
        let auth = answer_to(&rsp, "100", "s3cret", 1);
        let r = message(&format!("Proxy-Authorization: {auth}\r\n"));
        assert_eq!(
            g.check(now, &r, AuthKind::Proxy, &a, src(), &mut ())
                .unwrap()
                .name,
            "100"
        );
        // Replayed nc: a stale challenge.
        let again = g
            .check(now, &r, AuthKind::Proxy, &a, src(), &mut ())
            .unwrap_err();
        assert_eq!(again.status().as_u16(), 407);
        assert!(
            std::str::from_utf8(again.headers().get(&HeaderName::ProxyAuthenticate).unwrap())
                .unwrap()
                .contains("stale=true")
        );
        // Expired nonce with a right digest: stale too.
        let later = now.after(Duration::from_secs(3_600));
        let r2 = message(&format!(
            "Proxy-Authorization: {}\r\n",
            answer_to(&rsp, "100", "s3cret", 2)
        ));
        let stale = g
            .check(later, &r2, AuthKind::Proxy, &a, src(), &mut ())
            .unwrap_err();
        assert!(
            std::str::from_utf8(stale.headers().get(&HeaderName::ProxyAuthenticate).unwrap())
                .unwrap()
                .contains("stale=true")
        );
        g.handle_timeout(later);
    }

    #[test]
    fn other_realm_or_scheme_is_absent_and_bad_header_is_400() {
        let a = Answer::new(REALM);
        let mut g = guard();
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        for extra in [
            "Proxy-Authorization: Digest username=\"100\", realm=\"elsewhere\", nonce=\"x\", uri=\"sip:a\", response=\"00\"\r\n",
            "Proxy-Authorization: NoOneKnowsThisScheme opaque-data=here\r\n",
        ] {
            let rsp = g.check(now, &message(extra), AuthKind::Proxy, &a, src(), &mut ()).unwrap_err();
            assert_eq!(rsp.status().as_u16(), 407, "{extra}");
        }
        let rsp = g
            .check(
                now,
                &message(
                    "Proxy-Authorization: Digest username=\"100\", realm=\"pbx.example.com\"\r\n",
                ),
                AuthKind::Proxy,
                &a,
                src(),
                &mut (),
            )
            .unwrap_err();
        assert_eq!(rsp.status().as_u16(), 400);
        assert_eq!(rsp.reason(), b"Bad Proxy-Authorization Header");
        assert!(rsp.headers().contains(&HeaderName::Warning));
        let rsp = g
            .check(
                now,
                &message("Proxy-Authorization: Digest realm=\"open\r\n"),
                AuthKind::Proxy,
                &a,
                src(),
                &mut (),
            )
            .unwrap_err();
        assert_eq!(rsp.status().as_u16(), 400);
        assert!(g.users().contains("100"));
        assert_eq!(
            g.users().get("100").unwrap().display_name.as_deref(),
            Some("Alice")
        );
        assert!(!format!("{:?}", g.users().get("100").unwrap()).contains("md5"));
    }

    /// What a watcher was told, in order.
    #[derive(Default)]
    struct Told {
        events: Vec<(&'static str, IpAddr, String)>,
        block: Option<(IpAddr, String)>,
    }

    impl AuthWatch for Told {
        fn blocked(&mut self, _: Now, source: IpAddr, user: &str) -> bool {
            self.block == Some((source, user.to_owned()))
        }
        fn passed(&mut self, _: Now, source: IpAddr, user: &str) {
            self.events.push(("passed", source, user.to_owned()));
        }
        fn failed(&mut self, _: Now, source: IpAddr, user: &str) {
            self.events.push(("failed", source, user.to_owned()));
        }
    }

    #[test]
    fn only_wrong_answers_to_a_nonce_sent_to_the_same_address_are_failures() {
        let a = Answer::new(REALM);
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        let mut g = guard();
        let mut told = Told::default();
        let here = src();
        let there = IpAddr::from([198, 51, 100, 9]);
        let first = g
            .check(now, &message(""), AuthKind::Proxy, &a, here, &mut told)
            .unwrap_err();
        assert!(told.events.is_empty(), "a challenge is no answer");
        let wrong = |nc| {
            message(&format!(
                "Proxy-Authorization: {}\r\n",
                answer_to(&first, "100", "guess", nc)
            ))
        };
        // From where the challenge went: a failure; an unknown user too.
        assert!(g
            .check(now, &wrong(1), AuthKind::Proxy, &a, here, &mut told)
            .is_err());
        let unknown = message(&format!(
            "Proxy-Authorization: {}\r\n",
            answer_to(&first, "999", "guess", 2)
        ));
        assert!(g
            .check(now, &unknown, AuthKind::Proxy, &a, here, &mut told)
            .is_err());
        // The same nonce answered from elsewhere (a spoofed source): not counted.
        assert!(g
            .check(now, &wrong(3), AuthKind::Proxy, &a, there, &mut told)
            .is_err());
        // A made-up nonce: not counted either.
        let forged = message("Proxy-Authorization: Digest username=\"100\", realm=\"pbx.example.com\", nonce=\"bm90LW91cnM\", uri=\"sip:101@pbx.example.com\", response=\"00112233445566778899aabbccddeeff\"\r\n");
        assert_eq!(
            g.check(now, &forged, AuthKind::Proxy, &a, here, &mut told)
                .unwrap_err()
                .status()
                .as_u16(),
            407
        );
        // A right answer, then its replay (stale: neither passed nor failed).
        let right = message(&format!(
            "Proxy-Authorization: {}\r\n",
            answer_to(&first, "100", "s3cret", 4)
        ));
        assert!(g
            .check(now, &right, AuthKind::Proxy, &a, there, &mut told)
            .is_ok());
        assert!(g
            .check(now, &right, AuthKind::Proxy, &a, there, &mut told)
            .is_err());
        assert_eq!(
            told.events,
            [
                ("failed", here, "100".to_owned()),
                ("failed", here, "999".to_owned()),
                ("passed", there, "100".to_owned()),
            ]
        );
    }

    #[test]
    fn a_blocked_user_is_challenged_without_its_answer_being_checked() {
        let a = Answer::new(REALM);
        let now = Now::new(Instant::now(), 1_700_000_000_000);
        let mut g = guard();
        let mut told = Told {
            block: Some((src(), "100".to_owned())),
            ..Told::default()
        };
        let first = g
            .check(now, &message(""), AuthKind::Proxy, &a, src(), &mut told)
            .unwrap_err();
        let right = |nc| {
            message(&format!(
                "Proxy-Authorization: {}\r\n",
                answer_to(&first, "100", "s3cret", nc)
            ))
        };
        let rsp = g
            .check(now, &right(1), AuthKind::Proxy, &a, src(), &mut told)
            .unwrap_err();
        assert_eq!(rsp.status().as_u16(), 407);
        assert!(told.events.is_empty());
        // Not checked, so not spent: the same count is accepted once unblocked, and
        // elsewhere the user is not blocked at all.
        told.block = None;
        assert!(g
            .check(now, &right(1), AuthKind::Proxy, &a, src(), &mut told)
            .is_ok());
    }
}
