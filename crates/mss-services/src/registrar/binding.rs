//! One binding: a contact of a local user, where and how it registered, and until when
//! (RFC 3261 §10.3, RFC 5626 §6).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mss_sip::{Flow, Transport};
use mss_store::{BindingKey, BindingRecord};

use crate::Now;

/// A registered contact of a user, as the location service keeps it in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// What identifies the binding among the user's (instance + reg-id, or contact URI).
    pub key: BindingKey,
    /// The contact URI exactly as sent (inside `<>` when it was enclosed); URI parameters
    /// and escaped URI headers kept (RFC 4475 cparam02, regescrt), contact parameters
    /// outside `<>` not part of it (cparam01).
    pub contact: String,
    /// The `+sip.instance` contact parameter as received (quoted), if any.
    pub instance: Option<String>,
    /// The `reg-id` (RFC 5626), when outbound processing applied.
    pub reg_id: Option<u32>,
    /// The `q` value in thousandths.
    pub q_milli: Option<u16>,
    /// Monotonic deadline.
    pub expires_at: Instant,
    /// The same deadline in Unix milliseconds (stored, shown).
    pub expires_at_unix_ms: i64,
    /// Call-ID of the REGISTER that last wrote the binding (RFC 3261 §10.3 step 7).
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// The flow the REGISTER came on: requests to this contact reuse it (RFC 5626, DESIGN
    /// §7: baresip puts an ephemeral port in Contact over TCP).
    pub flow: Flow,
    /// The REGISTER's `User-Agent`.
    pub user_agent: Option<String>,
    /// When the binding was written, Unix milliseconds.
    pub registered_at_unix_ms: i64,
}

/// Seconds left until `deadline`, rounded up, 0 when past.
pub(crate) fn secs_left(deadline: Instant, now: Instant) -> u32 {
    let left = deadline.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The longest text of a [`SocketAddr`]:
/// `[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535` is 58 bytes.
const SOCKET_ADDR_MAX: usize = 64;

/// A fixed buffer an address is written into before one exact allocation.
struct StackText {
    buf: [u8; SOCKET_ADDR_MAX],
    len: usize,
}

impl StackText {
    /// `n` in decimal, without the formatter ([`mss_sip::fmt_usize`]).
    fn push_decimal(&mut self, n: u16) -> std::fmt::Result {
        let mut digits = [0u8; 20];
        let digits = mss_sip::fmt_usize(usize::from(n), &mut digits);
        // ASCII digits: always UTF-8.
        self.write_str(std::str::from_utf8(digits).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `addr` as [`SocketAddr`]'s `Display` writes it (`192.0.2.7:5060`, `[2001:db8::1]:5060`),
/// in a `String` allocated once at its exact length: `to_string()` starts empty and grows
/// two or three times on the way. The text is built in a stack buffer first: IPv4 by hand,
/// IPv6 (rare, and with `::` compression rules) through the formatter.
pub(crate) fn source_text(addr: SocketAddr) -> String {
    let mut text = StackText {
        buf: [0; SOCKET_ADDR_MAX],
        len: 0,
    };
    let written = match addr {
        SocketAddr::V4(v4) => v4
            .ip()
            .octets()
            .into_iter()
            .enumerate()
            .try_for_each(|(i, octet)| {
                if i > 0 {
                    text.write_char('.')?;
                }
                text.push_decimal(u16::from(octet))
            })
            .and_then(|()| text.write_char(':'))
            .and_then(|()| text.push_decimal(v4.port())),
        SocketAddr::V6(_) => write!(text, "{addr}"),
    };
    match written {
        Ok(()) => std::str::from_utf8(&text.buf[..text.len])
            .map_or_else(|_| addr.to_string(), str::to_owned),
        Err(_) => addr.to_string(),
    }
}

impl Binding {
    /// Whether the binding is still valid at `now`.
    pub fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    /// Seconds left (for `;expires=` in a `200 OK`).
    pub fn expires_in(&self, now: Instant) -> u32 {
        secs_left(self.expires_at, now)
    }

    /// The row written to the store for `user`.
    pub fn to_record(&self, user: &str) -> BindingRecord {
        BindingRecord {
            user: user.to_owned(),
            contact: self.contact.clone(),
            instance: self.instance.clone(),
            reg_id: self.reg_id,
            q_milli: self.q_milli,
            expires_at: self.expires_at_unix_ms,
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            transport: self.flow.transport.as_str().to_owned(),
            source: source_text(self.flow.remote),
            user_agent: self.user_agent.clone(),
            registered_at: self.registered_at_unix_ms,
        }
    }

    /// The binding a stored row stands for at `now`; `None` when it has expired or its
    /// transport or source cannot be read. The connection of a restored TCP binding is
    /// gone: requests open a new one to the source address until the device re-registers.
    pub fn from_record(rec: &BindingRecord, now: Now) -> Option<Binding> {
        let left_ms = rec.expires_at.checked_sub(now.unix_ms)?;
        let left_ms = u64::try_from(left_ms).ok().filter(|ms| *ms > 0)?;
        let transport = Transport::from_token(&rec.transport)?;
        let remote: SocketAddr = rec.source.parse().ok()?;
        // A damaged row far in the future must not overflow the monotonic clock.
        let expires_at = now.mono.checked_add(Duration::from_millis(left_ms))?;
        Some(Binding {
            key: rec.key(),
            contact: rec.contact.clone(),
            instance: rec.instance.clone(),
            reg_id: rec.reg_id,
            q_milli: rec.q_milli,
            expires_at,
            expires_at_unix_ms: rec.expires_at,
            call_id: rec.call_id.clone(),
            cseq: rec.cseq,
            flow: Flow {
                transport,
                remote,
                connection: None,
            },
            user_agent: rec.user_agent.clone(),
            registered_at_unix_ms: rec.registered_at,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(user: &str, contact: &str, expires_at: i64) -> BindingRecord {
        BindingRecord {
            user: user.into(),
            contact: contact.into(),
            instance: None,
            reg_id: None,
            q_milli: Some(500),
            expires_at,
            call_id: "c".into(),
            cseq: 7,
            transport: "TCP".into(),
            source: "192.0.2.7:40000".into(),
            user_agent: Some("phone".into()),
            registered_at: 1_000,
        }
    }

    #[test]
    fn record_round_trip() {
        let now = Now::new(Instant::now(), 1_000_000);
        let rec = record("100", "sip:100@192.0.2.7:40000;transport=tcp", 1_060_000);
        let b = Binding::from_record(&rec, now).unwrap();
        assert_eq!(b.expires_in(now.mono), 60);
        assert_eq!(b.flow.transport, Transport::Tcp);
        assert_eq!(b.flow.connection, None);
        assert_eq!(b.to_record("100"), rec);
        assert!(b.is_live(now.mono));
        assert!(!b.is_live(now.mono + Duration::from_secs(60)));
    }

    #[test]
    fn expired_or_unreadable_records_are_skipped() {
        let now = Now::new(Instant::now(), 1_000_000);
        assert!(Binding::from_record(&record("1", "sip:a@b", 1_000_000), now).is_none());
        let mut r = record("1", "sip:a@b", 2_000_000);
        r.transport = "SCTP".into();
        assert!(Binding::from_record(&r, now).is_none());
        let mut r = record("1", "sip:a@b", 2_000_000);
        r.source = "nowhere".into();
        assert!(Binding::from_record(&r, now).is_none());
        let r = record("1", "sip:a@b", i64::MAX);
        let _ = Binding::from_record(&r, now);
    }

    #[test]
    fn source_text_is_the_display_text_at_exact_length() {
        let mut addrs: Vec<SocketAddr> = [
            "0.0.0.0:0",
            "192.0.2.7:5060",
            "255.255.255.255:65535",
            "10.0.0.1:9",
            "1.22.103.4:10000",
            "[::]:0",
            "[2001:db8::1]:5060",
            "[::ffff:192.0.2.1]:5061",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
            "[fe80::1%3]:5060",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        // Every octet and port width.
        for n in [0u16, 7, 9, 10, 99, 100, 255, 999, 1000, 9999, 10000, 65535] {
            let o = u8::try_from(n.min(255)).unwrap();
            addrs.push(SocketAddr::from(([o, 255 - o, o / 2, 1], n)));
        }
        for a in addrs {
            let text = source_text(a);
            assert_eq!(text, a.to_string());
            assert_eq!(text.capacity(), text.len(), "{a}");
        }
    }

    #[test]
    fn seconds_round_up() {
        let t = Instant::now();
        assert_eq!(secs_left(t + Duration::from_millis(1_001), t), 2);
        assert_eq!(secs_left(t, t + Duration::from_secs(1)), 0);
    }
}
