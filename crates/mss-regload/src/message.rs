//! The REGISTER requests the client sends, and the little it reads of responses: the
//! status code, and where a message ends on a stream (RFC 3261 §18.3: Content-Length is
//! mandatory there).

use std::net::SocketAddr;

use crate::error::LoadError;

/// Largest response accepted on a stream.
const MAX_MESSAGE: usize = 64 * 1024;

/// One REGISTER (RFC 3261 §10.2) of `user` at `domain`, sent from `via`.
#[derive(Debug, Clone)]
pub struct Register<'a> {
    /// `UDP` or `TLS` (Via's transport; Contact gets it in lower case).
    pub transport: &'a str,
    /// The client socket's address (Via's sent-by).
    pub via: SocketAddr,
    /// The Via branch (unique per request).
    pub branch: &'a str,
    /// The registered user.
    pub user: &'a str,
    /// The domain (Request-URI, From, To).
    pub domain: &'a str,
    /// The Call-ID (one per user and run, so CSeq grows within it).
    pub call_id: &'a str,
    /// The CSeq number.
    pub cseq: u32,
    /// The Contact's host and port: the same for every registration of a user, so that
    /// each one refreshes its binding (RFC 3261 §10.3 step 7) instead of adding one.
    pub contact: &'a str,
    /// The `Authorization` header line, with its CRLF, if answering a challenge.
    pub authorization: Option<&'a str>,
}

impl Register<'_> {
    /// The request's bytes, appended to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "REGISTER sip:{domain} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {via};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag=r{cseq}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{contact};transport={lower}>\r\n\
             Expires: 3600\r\n\
             User-Agent: mss-regload\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            domain = self.domain,
            transport = self.transport,
            via = self.via,
            branch = self.branch,
            user = self.user,
            cseq = self.cseq,
            call_id = self.call_id,
            contact = self.contact,
            lower = self.transport.to_ascii_lowercase(),
            auth = self.authorization.unwrap_or(""),
        );
        out.extend_from_slice(s.as_bytes());
    }
}

/// The status code of a response; `None` for a request or garbage.
pub fn status(message: &[u8]) -> Option<u16> {
    let rest = message.strip_prefix(b"SIP/2.0 ")?;
    let code = rest.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet.
    Incomplete,
    /// `n` bytes of line ends between messages (keep-alive pongs) to skip.
    KeepAlive(usize),
    /// A whole message of `n` bytes.
    Message(usize),
}

/// Finds the first message in `buf`.
///
/// # Errors
/// [`LoadError::Framing`] for a header without Content-Length or a message over 64 KiB.
pub fn frame(buf: &[u8]) -> Result<Frame, LoadError> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 0 {
        return Ok(Frame::KeepAlive(skip));
    }
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_MESSAGE {
            Err(LoadError::Framing("header over 64 KiB"))
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let head = &buf[..head_end];
    let length = head
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = line[..colon].trim_ascii();
            (name.eq_ignore_ascii_case(b"Content-Length") || name.eq_ignore_ascii_case(b"l"))
                .then(|| std::str::from_utf8(line[colon + 1..].trim_ascii()).ok())
                .flatten()
                .and_then(|v| v.parse::<usize>().ok())
        })
        .ok_or(LoadError::Framing("no Content-Length"))?;
    let total = head_end + 4 + length;
    if total > MAX_MESSAGE {
        return Err(LoadError::Framing("message over 64 KiB"));
    }
    Ok(if buf.len() >= total {
        Frame::Message(total)
    } else {
        Frame::Incomplete
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_register_carries_what_the_registrar_needs() {
        let mut out = Vec::new();
        Register {
            transport: "TLS",
            via: "127.0.0.9:40000".parse().unwrap(),
            branch: "z9hG4bK-1",
            user: "t0001",
            domain: "bench.test",
            call_id: "c1",
            cseq: 3,
            contact: "127.0.0.1:5061",
            authorization: Some("Authorization: Digest x\r\n"),
        }
        .write_to(&mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("REGISTER sip:bench.test SIP/2.0\r\n"));
        assert!(text.contains("Via: SIP/2.0/TLS 127.0.0.9:40000;branch=z9hG4bK-1;rport\r\n"));
        assert!(text.contains("CSeq: 3 REGISTER\r\n"));
        assert!(text.contains("Contact: <sip:t0001@127.0.0.1:5061;transport=tls>\r\n"));
        assert!(text.contains("Authorization: Digest x\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(frame(&out).unwrap(), Frame::Message(out.len()));
    }

    #[test]
    fn status_codes_are_read_from_responses_only() {
        assert_eq!(status(b"SIP/2.0 401 Unauthorized\r\n"), Some(401));
        assert_eq!(status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(status(b"REGISTER sip:x SIP/2.0\r\n"), None);
        assert_eq!(status(b"SIP/2.0 2"), None);
    }

    #[test]
    fn frames_keepalives_messages_and_partial_ones() {
        let msg = b"SIP/2.0 200 OK\r\nl: 2\r\n\r\nhi";
        assert_eq!(frame(b"\r\n\r\nSIP").unwrap(), Frame::KeepAlive(4));
        assert_eq!(frame(&msg[..10]).unwrap(), Frame::Incomplete);
        assert_eq!(frame(&msg[..msg.len() - 1]).unwrap(), Frame::Incomplete);
        let mut two = msg.to_vec();
        two.extend_from_slice(msg);
        assert_eq!(frame(&two).unwrap(), Frame::Message(msg.len()));
        assert!(frame(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n").is_err());
    }
}
