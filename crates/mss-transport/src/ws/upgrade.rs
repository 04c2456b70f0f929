//! The HTTP Upgrade that opens a SIP WebSocket (RFC 6455 §4.2, RFC 7118 §4): checks on the
//! client's request head and the answers to it. Pure functions, no I/O.
//!
//! A request is accepted when it is an HTTP/1.1 `GET` with a `Host`, asks to upgrade the
//! connection to `websocket` (`Upgrade: websocket`, `Connection: Upgrade`), speaks
//! version 13 and carries a well-formed `Sec-WebSocket-Key` and `sip` among the
//! subprotocols of `Sec-WebSocket-Protocol` (RFC 7118 §4.1: a SIP WebSocket server
//! speaks nothing else). The answer is `101 Switching Protocols` naming `sip`. Anything
//! else is refused with an HTTP answer that says why ([`Refusal`]), and the connection
//! is closed: `400` for what is not a request for a SIP WebSocket, `426` with the version
//! or protocol to upgrade to, `405` for a method other than `GET`, `431` for a head
//! larger than [`MAX_HEAD`].

use base64::Engine as _;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The largest request head read before the upgrade (browsers send well under 4 KiB;
/// cookies of the page's site may add some).
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// Most header lines of a request head.
const MAX_HEADERS: usize = 64;

/// The WebSocket subprotocol of SIP (RFC 7118 §4.1).
const SIP: &str = "sip";

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Head {
    /// The request head is not complete yet (and within [`MAX_HEAD`]).
    Incomplete,
    /// The head ends after `len` bytes; bytes after it are the first WebSocket frames.
    Accepted {
        /// Length of the head, through its empty line.
        len: usize,
        /// The answer to send, `101 Switching Protocols`.
        response: Vec<u8>,
    },
    /// The request is refused: answer [`Refusal::response`] and close.
    Refused(Refusal),
}

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not an HTTP request at all, or not HTTP/1.1 (`400`).
    Malformed,
    /// The head is larger than [`MAX_HEAD`], or has too many lines (`431`).
    TooLarge,
    /// A method other than `GET` (`405`).
    NotGet,
    /// No `Host` header (`400`, RFC 6455 §4.2.1).
    NoHost,
    /// A plain HTTP request that does not ask for a WebSocket (`426`, `Upgrade: websocket`).
    NotUpgrade,
    /// A WebSocket version other than 13 (`426`, `Sec-WebSocket-Version: 13`).
    Version,
    /// `Sec-WebSocket-Key` missing or not 16 bytes in base64 (`400`).
    BadKey,
    /// `Sec-WebSocket-Protocol` missing or without `sip` (`400`, RFC 7118 §4.1).
    NoSipProtocol,
}

impl Refusal {
    /// Status code, reason phrase, extra header lines and the text of the body.
    fn parts(self) -> (u16, &'static str, &'static str, &'static str) {
        match self {
            Refusal::Malformed => (400, "Bad Request", "", "not an HTTP/1.1 request"),
            Refusal::TooLarge => (
                431,
                "Request Header Fields Too Large",
                "",
                "request head too large",
            ),
            Refusal::NotGet => (
                405,
                "Method Not Allowed",
                "Allow: GET\r\n",
                "a WebSocket is opened with GET",
            ),
            Refusal::NoHost => (400, "Bad Request", "", "no Host header"),
            Refusal::NotUpgrade => (
                426,
                "Upgrade Required",
                "Upgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n",
                "this port speaks SIP over WebSocket (RFC 7118) only",
            ),
            Refusal::Version => (
                426,
                "Upgrade Required",
                "Sec-WebSocket-Version: 13\r\n",
                "WebSocket version 13 required",
            ),
            Refusal::BadKey => (
                400,
                "Bad Request",
                "",
                "missing or malformed Sec-WebSocket-Key",
            ),
            Refusal::NoSipProtocol => (
                400,
                "Bad Request",
                "",
                "the sip WebSocket subprotocol is required (Sec-WebSocket-Protocol: sip, RFC 7118)",
            ),
        }
    }

    /// The HTTP status code of the answer.
    pub(crate) fn status(self) -> u16 {
        self.parts().0
    }

    /// What the refusal is about, for the log.
    pub(crate) fn reason(self) -> &'static str {
        self.parts().3
    }

    /// The whole HTTP answer; the connection is closed after it.
    pub(crate) fn response(self) -> Vec<u8> {
        let (code, phrase, extra, text) = self.parts();
        format!(
            "HTTP/1.1 {code} {phrase}\r\n{extra}Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}\n",
            text.len() + 1
        )
        .into_bytes()
    }
}

/// Reads the request head at the start of `buf`; see [`Head`].
pub(crate) fn check(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => match accept(&request) {
            Ok(response) => Head::Accepted { len, response },
            Err(refusal) => Head::Refused(refusal),
        },
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Head::Refused(Refusal::TooLarge),
        Ok(httparse::Status::Partial) => Head::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Head::Refused(Refusal::TooLarge),
        Err(_) => Head::Refused(Refusal::Malformed),
    }
}

/// The `101` answer to a complete request, or why not.
fn accept(request: &httparse::Request<'_, '_>) -> Result<Vec<u8>, Refusal> {
    if request.version != Some(1) {
        return Err(Refusal::Malformed);
    }
    if request.method != Some("GET") {
        return Err(Refusal::NotGet);
    }
    let value = |name: &'static str| {
        request
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &'static str, token: &str| {
        value(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if value("host").all(|h| h.trim().is_empty()) {
        return Err(Refusal::NoHost);
    }
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(Refusal::NotUpgrade);
    }
    if !value("sec-websocket-version").any(|v| v.trim() == "13") {
        return Err(Refusal::Version);
    }
    let mut keys = value("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.trim(),
        _ => return Err(Refusal::BadKey),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| Refusal::BadKey)?;
    if decoded.len() != 16 {
        return Err(Refusal::BadKey);
    }
    if !has_token("sec-websocket-protocol", SIP) {
        return Err(Refusal::NoSipProtocol);
    }
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {SIP}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// What JsSIP's browser sends (Chromium, with an Origin and the page's cookies left out).
    const BROWSER: &str = "GET /ws HTTP/1.1\r\nHost: pbx.test:5062\r\nConnection: Upgrade\r\nPragma: no-cache\r\nUpgrade: websocket\r\nOrigin: https://pbx.test\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nSec-WebSocket-Protocol: sip\r\n\r\n";

    fn refused(text: &str) -> Refusal {
        match check(text.as_bytes()) {
            Head::Refused(r) => r,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_browser_upgrade_is_accepted_with_the_rfc_6455_key() {
        let Head::Accepted { len, response } = check(BROWSER.as_bytes()) else {
            panic!("refused");
        };
        assert_eq!(len, BROWSER.len());
        let response = String::from_utf8(response).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        // RFC 6455 §1.3's example key and answer.
        assert!(
            response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{response}"
        );
        assert!(response.contains("Sec-WebSocket-Protocol: sip\r\n"));
        // No extension is taken (permessage-deflate is not offered back).
        assert!(!response.contains("Extensions"));
        assert!(response.ends_with("\r\n\r\n"));
    }

    #[test]
    fn frames_after_the_head_are_not_part_of_it() {
        let mut bytes = BROWSER.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4]);
        let Head::Accepted { len, .. } = check(&bytes) else {
            panic!("refused");
        };
        assert_eq!(len, BROWSER.len());
    }

    #[test]
    fn sip_may_be_one_of_several_subprotocols_in_any_case() {
        let text = BROWSER.replace(
            "Sec-WebSocket-Protocol: sip",
            "Sec-WebSocket-Protocol: chat, SIP",
        );
        assert!(matches!(check(text.as_bytes()), Head::Accepted { .. }));
        let text = BROWSER.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade");
        assert!(matches!(check(text.as_bytes()), Head::Accepted { .. }));
    }

    #[test]
    fn a_partial_head_waits_and_a_huge_one_is_refused() {
        assert_eq!(check(b""), Head::Incomplete);
        assert_eq!(check(&BROWSER.as_bytes()[..40]), Head::Incomplete);
        let mut slow = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        slow.resize(MAX_HEAD, b'a');
        assert_eq!(check(&slow), Head::Refused(Refusal::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: a\r\n")).collect();
        let text = BROWSER.replace("Pragma: no-cache\r\n", &many);
        assert_eq!(refused(&text), Refusal::TooLarge);
    }

    #[test]
    fn each_missing_piece_is_named() {
        assert_eq!(
            refused(&BROWSER.replace("Sec-WebSocket-Protocol: sip\r\n", "")),
            Refusal::NoSipProtocol
        );
        assert_eq!(
            refused(&BROWSER.replace("Protocol: sip", "Protocol: sipx, chat")),
            Refusal::NoSipProtocol
        );
        assert_eq!(
            refused(&BROWSER.replace("Version: 13", "Version: 8")),
            Refusal::Version
        );
        assert_eq!(
            refused(&BROWSER.replace("dGhlIHNhbXBsZSBub25jZQ==", "short")),
            Refusal::BadKey
        );
        assert_eq!(
            refused(&BROWSER.replace("dGhlIHNhbXBsZSBub25jZQ==", "aGVsbG8=")),
            Refusal::BadKey
        );
        assert_eq!(
            refused(&BROWSER.replace("Upgrade: websocket\r\n", "")),
            Refusal::NotUpgrade
        );
        assert_eq!(
            refused(&BROWSER.replace("Connection: Upgrade", "Connection: close")),
            Refusal::NotUpgrade
        );
        assert_eq!(
            refused(&BROWSER.replace("Host: pbx.test:5062\r\n", "")),
            Refusal::NoHost
        );
        assert_eq!(
            refused(&BROWSER.replace("GET /ws", "POST /ws")),
            Refusal::NotGet
        );
        assert_eq!(
            refused(&BROWSER.replace("HTTP/1.1", "HTTP/1.0")),
            Refusal::Malformed
        );
    }

    #[test]
    fn garbage_and_sip_are_not_http() {
        assert_eq!(
            refused("OPTIONS sip:pbx.test SIP/2.0\r\nContent-Length: 0\r\n\r\n"),
            Refusal::Malformed
        );
        assert_eq!(
            check(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
            Head::Refused(Refusal::Malformed)
        );
        assert_eq!(refused("\0\0\0\r\n\r\n"), Refusal::Malformed);
    }

    #[test]
    fn refusals_are_whole_http_answers() {
        for r in [
            Refusal::Malformed,
            Refusal::TooLarge,
            Refusal::NotGet,
            Refusal::NoHost,
            Refusal::NotUpgrade,
            Refusal::Version,
            Refusal::BadKey,
            Refusal::NoSipProtocol,
        ] {
            let text = String::from_utf8(r.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {} ", r.status())),
                "{head}"
            );
            assert!(head.contains("Connection: close"));
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
            assert_eq!(body.trim_end(), r.reason());
        }
        let text = String::from_utf8(Refusal::Version.response()).unwrap();
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }
}
