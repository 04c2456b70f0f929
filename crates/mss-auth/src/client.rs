//! The client side, for registrations of external lines: answering
//! `401`/`407` challenges (RFC 7616 §3.4, RFC 8760 §2.4, RFC 3261 §22.2).

use std::fmt;

use rand::RngCore;

use crate::algorithm::{nc_hex, response_hex};
use crate::params::{push_quoted, push_token};
use crate::{AuthError, Challenge, Ha1};

/// Picks the challenge to answer among those of one response, each given
/// as its auth-params (Digest scheme only; the caller skips other schemes).
///
/// The strongest supported algorithm wins (SHA-256 over MD5); among equals
/// the topmost, as RFC 8760 §2.4 asks. Challenges this crate cannot answer
/// (unknown or `-sess` algorithms, `auth-int` only, missing nonce) are
/// ignored (RFC 8760 §2.4: "MUST ignore any challenge it does not understand").
///
/// # Errors
///
/// [`AuthError::NoUsableChallenge`] when none is usable, naming why the
/// last one was refused.
pub fn select_challenge<'a, C, P>(challenges: C) -> Result<Challenge, AuthError>
where
    C: IntoIterator<Item = P>,
    P: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut best: Option<Challenge> = None;
    let mut last_error: Option<AuthError> = None;
    for params in challenges {
        match Challenge::from_params(params) {
            Ok(c) => {
                let stronger = match &best {
                    Some(b) => c.algorithm() > b.algorithm(),
                    None => true,
                };
                if stronger {
                    best = Some(c);
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    best.ok_or_else(|| AuthError::NoUsableChallenge {
        reason: last_error.map_or_else(|| "no Digest challenge".to_owned(), |e| e.to_string()),
    })
}

/// The `Authorization` / `Proxy-Authorization` value answering
/// `challenge` for a request of `method` to `uri`, with nonce count `nc`
/// and client nonce `cnonce`. Without `qop` in the challenge, the RFC 2069
/// form is sent (no `cnonce`, `nc` or `qop`).
///
/// Quoting follows RFC 7616 §3.4: username, realm, nonce, uri, response,
/// cnonce and opaque quoted; algorithm, qop and nc not.
///
/// # Errors
///
/// [`AuthError::InvalidParam`] when username, uri or cnonce cannot be sent
/// in a quoted-string; nc 0 is refused as well.
pub fn authorization(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let ha1 = Ha1::compute(challenge.algorithm(), username, challenge.realm(), password);
    let nc_text = nc_hex(nc);
    let qop = if challenge.qop_auth() {
        if nc == 0 {
            return Err(AuthError::InvalidParam {
                name: "nc",
                reason: "nonce count 0",
            });
        }
        Some((nc_text.as_str(), cnonce))
    } else {
        None
    };
    let response = response_hex(&ha1, challenge.nonce(), qop, method, uri);
    let mut out = String::from("Digest ");
    push_quoted(&mut out, "username", username)?;
    push_quoted(&mut out, "realm", challenge.realm())?;
    push_quoted(&mut out, "nonce", challenge.nonce())?;
    push_quoted(&mut out, "uri", uri)?;
    push_quoted(&mut out, "response", &response)?;
    push_token(&mut out, "algorithm", challenge.algorithm().as_str());
    if qop.is_some() {
        push_quoted(&mut out, "cnonce", cnonce)?;
        push_token(&mut out, "qop", "auth");
        push_token(&mut out, "nc", &nc_text);
    }
    if let Some(opaque) = challenge.opaque() {
        push_quoted(&mut out, "opaque", opaque)?;
    }
    Ok(out)
}

/// [`authorization`] straight from the params of a single challenge.
///
/// # Errors
///
/// The errors of [`Challenge::from_params`] and [`authorization`].
pub fn authorize<'a, I>(
    challenge_params: I,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let challenge = Challenge::from_params(challenge_params)?;
    authorization(&challenge, method, uri, username, password, cnonce, nc)
}

/// The nonce count a client keeps per server nonce: 1 for the first use of
/// a nonce, one more for each reuse (RFC 7616 §3.4 "nc").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientNonceState {
    nonce: Option<String>,
    nc: u32,
}

impl ClientNonceState {
    /// No nonce used yet.
    pub fn new() -> ClientNonceState {
        ClientNonceState::default()
    }

    /// The count to send with `nonce` now: restarts at 1 when the nonce
    /// changes, otherwise increments (saturating at `u32::MAX`, far beyond
    /// any nonce's lifetime).
    pub fn next_nc(&mut self, nonce: &str) -> u32 {
        if self.nonce.as_deref() == Some(nonce) {
            self.nc = self.nc.saturating_add(1);
        } else {
            self.nonce = Some(nonce.to_owned());
            self.nc = 1;
        }
        self.nc
    }

    /// The last count handed out (0 before any).
    pub fn current_nc(&self) -> u32 {
        self.nc
    }
}

/// What a new set of challenges means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeOutcome {
    /// Answer it: first challenge, `stale=true`, or a challenge after a
    /// reused (preemptive) nonce that the server no longer accepts.
    Answer,
    /// The server refused credentials sent in direct answer to its previous
    /// challenge, without `stale`: the password (or user name) is wrong.
    /// The new challenge is stored; retrying is the caller's choice
    /// (a line goes to `auth_failed`).
    Rejected,
}

/// A Digest client for one set of credentials (one line): remembers the
/// challenge and its nonce count, so later requests can be authorized
/// preemptively with `nc` incremented (RFC 7616 §3.6).
pub struct DigestClient {
    username: String,
    password: String,
    challenge: Option<Challenge>,
    counts: ClientNonceState,
}

impl DigestClient {
    /// A client with no challenge yet.
    pub fn new(username: &str, password: &str) -> DigestClient {
        DigestClient {
            username: username.to_owned(),
            password: password.to_owned(),
            challenge: None,
            counts: ClientNonceState::new(),
        }
    }

    /// Takes the Digest challenges of a `401`/`407` (see [`select_challenge`]).
    ///
    /// # Errors
    ///
    /// [`AuthError::NoUsableChallenge`]; the previous challenge is then kept.
    pub fn handle_challenges<'a, C, P>(
        &mut self,
        challenges: C,
    ) -> Result<ChallengeOutcome, AuthError>
    where
        C: IntoIterator<Item = P>,
        P: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let challenge = select_challenge(challenges)?;
        // Answered the previous nonce exactly once: that was the direct
        // answer to a challenge. A later count means a reused nonce the
        // server may simply have dropped (lifetime, restart).
        let rejected =
            !challenge.stale() && self.challenge.is_some() && self.counts.current_nc() == 1;
        self.challenge = Some(challenge);
        self.counts = ClientNonceState::new();
        Ok(if rejected {
            ChallengeOutcome::Rejected
        } else {
            ChallengeOutcome::Answer
        })
    }

    /// The challenge being answered, if any.
    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// Forgets the challenge (e.g. when the line's registrar changes).
    pub fn reset(&mut self) {
        self.challenge = None;
        self.counts = ClientNonceState::new();
    }

    /// The header value for a request of `method` to `uri`, with a fresh
    /// 128-bit cnonce drawn from `rng`; `None` before any challenge (send
    /// the request without credentials).
    ///
    /// # Errors
    ///
    /// As [`authorization`].
    pub fn authorize<R: RngCore + ?Sized>(
        &mut self,
        method: &str,
        uri: &str,
        rng: &mut R,
    ) -> Result<Option<String>, AuthError> {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        self.authorize_with_cnonce(method, uri, &hex::encode(bytes))
    }

    /// As [`DigestClient::authorize`] with a given cnonce.
    ///
    /// # Errors
    ///
    /// As [`authorization`].
    pub fn authorize_with_cnonce(
        &mut self,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<Option<String>, AuthError> {
        let Some(challenge) = &self.challenge else {
            return Ok(None);
        };
        let nc = self.counts.next_nc(challenge.nonce());
        authorization(
            challenge,
            method,
            uri,
            &self.username,
            &self.password,
            cnonce,
            nc,
        )
        .map(Some)
    }
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("challenge", &self.challenge)
            .field("counts", &self.counts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616(alg: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("realm", "http-auth@example.org"),
            ("qop", "auth, auth-int"),
            ("algorithm", alg),
            ("nonce", NONCE),
            ("opaque", OPAQUE),
        ]
    }

    #[test]
    fn rfc7616_example_authorization_values() {
        let md5 = authorize(
            rfc7616("MD5"),
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            CNONCE,
            1,
        )
        .unwrap();
        assert_eq!(
            md5,
            format!(
                "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"{NONCE}\", \
                 uri=\"/dir/index.html\", response=\"8ca523f5e9506fed4657c9700eebdbec\", \
                 algorithm=MD5, cnonce=\"{CNONCE}\", qop=auth, nc=00000001, opaque=\"{OPAQUE}\""
            )
        );
        let sha = authorize(
            rfc7616("SHA-256"),
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            CNONCE,
            1,
        )
        .unwrap();
        assert!(sha.contains(
            "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", algorithm=SHA-256"
        ));
    }

    #[test]
    fn rfc2617_example_authorization() {
        let v = authorize(
            [
                ("realm", "testrealm@host.com"),
                ("qop", "auth,auth-int"),
                ("nonce", "dcd98b7102dd2f0e8b11d0f600bfb0c093"),
                ("opaque", "5ccc069c403ebaf9f0171e9517f40e41"),
            ],
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )
        .unwrap();
        assert!(v.contains("response=\"6629fae49393a05397450978507c4ef1\""));
        assert!(v.contains("algorithm=MD5"));
    }

    #[test]
    fn no_qop_challenge_gets_rfc2069_answer() {
        let v = authorize(
            [("realm", "r"), ("nonce", "n")],
            "REGISTER",
            "sip:r",
            "u",
            "p",
            "c",
            1,
        )
        .unwrap();
        assert!(!v.contains("cnonce"));
        assert!(!v.contains("nc="));
        assert!(!v.contains("qop"));
    }

    #[test]
    fn selects_strongest_supported() {
        let c = select_challenge([rfc7616("MD5"), rfc7616("SHA-256")]).unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        let c =
            select_challenge([rfc7616("SHA-512-256"), rfc7616("MD5"), rfc7616("bogus")]).unwrap();
        assert_eq!(c.algorithm(), Algorithm::Md5);
        let err = select_challenge([rfc7616("MD5-sess")]).unwrap_err();
        assert!(matches!(err, AuthError::NoUsableChallenge { .. }));
        assert!(err.to_string().contains("MD5-sess"));
        let none: [Vec<(&str, &str)>; 0] = [];
        assert!(select_challenge(none).is_err());
        assert!(matches!(
            authorize([("realm", "r")], "REGISTER", "sip:r", "u", "p", "c", 1),
            Err(AuthError::MissingParam { name: "nonce" })
        ));
    }

    #[test]
    fn quoting_of_user_values() {
        let v = authorize(
            [("realm", "r"), ("nonce", "n"), ("qop", "auth")],
            "REGISTER",
            "sip:r",
            r#"a"b\c"#,
            "p",
            "c",
            1,
        )
        .unwrap();
        assert!(v.starts_with(r#"Digest username="a\"b\\c", "#));
        assert!(authorize(
            [("realm", "r"), ("nonce", "n")],
            "REGISTER",
            "sip:r",
            "a\r\nX: y",
            "p",
            "c",
            1
        )
        .is_err());
    }

    #[test]
    fn nonce_state_counts_per_nonce() {
        let mut s = ClientNonceState::new();
        assert_eq!(s.next_nc("a"), 1);
        assert_eq!(s.next_nc("a"), 2);
        assert_eq!(s.next_nc("b"), 1);
        assert_eq!(s.current_nc(), 1);
    }

    #[test]
    fn client_reuses_nonce_and_detects_rejection() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut client = DigestClient::new("2001", "pw");
        assert_eq!(
            client.authorize("REGISTER", "sip:p", &mut rng).unwrap(),
            None
        );
        let first = [("realm", "p"), ("nonce", "n1"), ("qop", "auth")];
        assert_eq!(
            client.handle_challenges([first]).unwrap(),
            ChallengeOutcome::Answer
        );
        let a1 = client
            .authorize("REGISTER", "sip:p", &mut rng)
            .unwrap()
            .unwrap();
        assert!(a1.contains("nc=00000001"));
        // Refused in direct answer, not stale: wrong password.
        let second = [("realm", "p"), ("nonce", "n2"), ("qop", "auth")];
        assert_eq!(
            client.handle_challenges([second]).unwrap(),
            ChallengeOutcome::Rejected
        );
        let a2 = client
            .authorize("REGISTER", "sip:p", &mut rng)
            .unwrap()
            .unwrap();
        assert!(a2.contains("nonce=\"n2\"") && a2.contains("nc=00000001"));
        let a3 = client
            .authorize("REGISTER", "sip:p", &mut rng)
            .unwrap()
            .unwrap();
        assert!(a3.contains("nc=00000002"));
        // A reused nonce dropped by the server: just answer again.
        let third = [("realm", "p"), ("nonce", "n3"), ("qop", "auth")];
        assert_eq!(
            client.handle_challenges([third]).unwrap(),
            ChallengeOutcome::Answer
        );
        // Stale is never a rejection.
        client.authorize("REGISTER", "sip:p", &mut rng).unwrap();
        let stale = [
            ("realm", "p"),
            ("nonce", "n4"),
            ("qop", "auth"),
            ("stale", "true"),
        ];
        assert_eq!(
            client.handle_challenges([stale]).unwrap(),
            ChallengeOutcome::Answer
        );
        // An unusable set keeps the old challenge.
        assert!(client.handle_challenges([[("realm", "p")]]).is_err());
        assert_eq!(client.challenge().unwrap().nonce(), "n4");
        assert!(!format!("{client:?}").contains("pw\""));
        client.reset();
        assert!(client.challenge().is_none());
    }
}
