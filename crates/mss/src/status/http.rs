//! A tiny HTTP/1.1 GET client over `std::net::TcpStream`, enough for the admin API.
//!
//! It sends one request with `Connection: close`, reads to the end, and decodes a body sent
//! with `Content-Length`, chunked transfer coding (RFC 9112 §7.1) or none (read to close).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest response accepted.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be resolved.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Nothing answers at the address.
    #[error("cannot connect to the admin API at {addr} ({source}); is mss running? (try --admin HOST:PORT)")]
    Connect {
        /// The address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The connection failed while sending or reading.
    #[error("admin API at {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The answer is not a valid HTTP/1.1 response.
    #[error("admin API sent an invalid HTTP response: {0}")]
    BadResponse(String),
}

/// A response: status code and decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body, after transfer decoding.
    pub body: Vec<u8>,
}

/// Sends `GET path` to `addr` (`HOST:PORT`) and returns the response.
///
/// # Errors
/// See [`HttpError`].
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
    let targets: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| HttpError::Resolve {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?
        .collect();
    let mut last = None;
    let mut stream = None;
    for t in &targets {
        match TcpStream::connect_timeout(t, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(HttpError::Connect {
            addr: addr.to_string(),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        });
    };
    let io = |source| HttpError::Io {
        addr: addr.to_string(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         User-Agent: mss-status\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(io)?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 response.
///
/// # Errors
/// [`HttpError::BadResponse`] for anything malformed or truncated.
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, HttpError> {
    let bad = |m: &str| HttpError::BadResponse(m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of header"))?;
    let head = std::str::from_utf8(raw.get(..end).unwrap_or_default())
        .map_err(|_| bad("header is not UTF-8"))?;
    let body = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| bad("bad status code"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("header line without ':'"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| bad("bad Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().ends_with("chunked");
        }
    }
    let body = if chunked {
        decode_chunked(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or_else(|| bad("body shorter than Content-Length"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(HttpResponse { status, body })
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let bad = |m: &str| HttpError::BadResponse(m.to_string());
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk size"))?;
        let size_line = std::str::from_utf8(data.get(..eol).unwrap_or_default())
            .map_err(|_| bad("bad chunk size"))?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        let start = eol + 2;
        if size == 0 {
            return Ok(out);
        }
        let chunk = data
            .get(start..start + size)
            .ok_or_else(|| bad("truncated chunk"))?;
        out.extend_from_slice(chunk);
        if data.get(start + size..start + size + 2) != Some(b"\r\n") {
            return Err(bad("chunk not followed by CRLF"));
        }
        data = data.get(start + size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"[]"[..]));
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn body_until_close() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nhello").unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn malformed_responses() {
        for raw in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
        ] {
            assert!(
                parse_response(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn nothing_listening_says_so() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = get(&format!("127.0.0.1:{port}"), "/", Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("is mss running?"), "{e}");
    }
}
