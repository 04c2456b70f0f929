//! Helpers of the core's unit tests: a request from its text, the credentials that answer a
//! digest challenge (computed by `mss-auth`'s client side), and a registrar for users `100`
//! and `101` (passwords `pw-100`, `pw-101`) at `pbx.test` with MD5 challenges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use mss_auth::NonceSecret;
use mss_services::registrar::{Registrar, RegistrarConfig};
use mss_services::{Answer, DigestGuard, Directory, GuardConfig, LocalDomains, Offer, Users};
use mss_sip::{parse_datagram, HeaderName, Message, Request, Response};

/// Our domain in the unit tests: `pbx.test`, `localhost` and loopback.
pub(crate) fn domains() -> LocalDomains {
    let mut d = LocalDomains::new("pbx.test").with_alias("localhost");
    d.add_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    d
}

/// A registrar with the directory it works on, as the core lends it.
pub(crate) struct Reg {
    pub(crate) registrar: Registrar,
    pub(crate) dir: Directory,
}

/// The registrar of users `100` and `101` (`pw-100`, `pw-101`), MD5 challenges only.
pub(crate) fn registrar() -> Reg {
    let mut users = Users::new("pbx.test");
    users.insert("100", "pw-100", None);
    users.insert("101", "pw-101", None);
    let guard = DigestGuard::new(
        users,
        NonceSecret::from_bytes([7; 32]),
        GuardConfig {
            offer: Offer::Configured(vec![mss_auth::Algorithm::Md5]),
            ..GuardConfig::default()
        },
        1,
    );
    Reg {
        registrar: Registrar::new(
            RegistrarConfig::default(),
            domains(),
            Answer::new("pbx.test"),
        ),
        dir: Directory::new(guard),
    }
}

/// `text` parsed as a request (panics when it is not one).
pub(crate) fn request(text: String) -> Request {
    match parse_datagram(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

/// The value of an `Authorization` / `Proxy-Authorization` header answering the first
/// challenge of `challenge`'s `header` (`WWW-Authenticate` / `Proxy-Authenticate`) for
/// `method` to `uri` as `user` with `password`, nonce count `nc`.
pub(crate) fn digest_answer(
    challenge: &Response,
    header: &HeaderName,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    let ch = challenge.headers().auth(header).unwrap();
    let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
    mss_auth::authorize(params, method, uri, user, password, "c0ffee", nc).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_answered_for_the_method_and_uri() {
        let rsp = mss_sip::parse_datagram(Bytes::from_static(
            b"SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nProxy-Authenticate: Digest realm=\"pbx.test\", nonce=\"n1\", qop=\"auth\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let Message::Response(rsp) = rsp else {
            panic!("not a response");
        };
        let value = digest_answer(
            &rsp,
            &HeaderName::ProxyAuthenticate,
            "MESSAGE",
            "sip:101@pbx.test",
            "100",
            "pw",
            2,
        );
        for part in [
            "username=\"100\"",
            "uri=\"sip:101@pbx.test\"",
            "nc=00000002",
        ] {
            assert!(value.contains(part), "{part}: {value}");
        }
        let req = request("OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-2\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".into());
        assert_eq!(req.method().as_str(), "OPTIONS");
    }
}
