//! Session timers (RFC 4028): the `Session-Expires` and `Min-SE` headers, and how one leg's
//! session interval and refresher are decided, as UAS (§9) and as UAC (§7). Pure functions;
//! the timers themselves are the call layer's.

use std::time::Duration;

use mss_sip::{HeaderName, Headers, ParseError, ParseErrorKind};

/// The lowest `Min-SE` there may be, and the one assumed when a request has none (RFC 4028
/// §4, §5: "MUST NOT be less than 90 seconds").
pub const MIN_SE_FLOOR: u32 = 90;

/// The `Min-SE` header name (RFC 4028 §5).
pub fn min_se_header() -> HeaderName {
    HeaderName::from_static("Min-SE")
}

/// `422 Session Interval Too Small` (RFC 4028 §6); mss-sip has no constant for it.
pub const SESSION_INTERVAL_TOO_SMALL: mss_sip::StatusCode = mss_sip::StatusCode(422);

/// Who sends the refreshes of a session (the `refresher` parameter, RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC of the request that negotiated it.
    Uac,
    /// Its UAS.
    Uas,
}

impl Refresher {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: the session interval in seconds and the refresher, if named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval, in seconds.
    pub delta: u32,
    /// The `refresher` parameter.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// The header value: `1800;refresher=uas`.
    pub fn value(&self) -> String {
        // Written part by part: every call's INVITE carries one.
        let mut out = String::with_capacity(10 + ";refresher=uas".len());
        mss_sip::push_decimal(&mut out, self.delta as usize);
        if let Some(r) = self.refresher {
            out.push_str(";refresher=");
            out.push_str(r.as_str());
        }
        out
    }
}

fn bad(name: HeaderName) -> ParseError {
    ParseError::in_header(ParseErrorKind::BadHeaderValue, name, 0)
}

fn delta_seconds(text: &str, name: &HeaderName) -> Result<u32, ParseError> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(name.clone()));
    }
    // RFC 4028 §4: delta-seconds; a value beyond u32 is out of range, not a crash.
    t.parse::<u32>()
        .map_err(|_| ParseError::in_header(ParseErrorKind::ValueOutOfRange, name.clone(), 0))
}

fn single_value<'a>(
    headers: &'a Headers,
    name: &HeaderName,
) -> Result<Option<&'a str>, ParseError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ParseError::in_header(
            ParseErrorKind::DuplicateHeader,
            name.clone(),
            0,
        ));
    }
    std::str::from_utf8(first)
        .map(Some)
        .map_err(|_| bad(name.clone()))
}

/// The `Session-Expires` header (`x` in compact form), if any (RFC 4028 §4:
/// `delta-seconds *(;se-params)`, `refresher=uac|uas`; other parameters ignored).
///
/// # Errors
/// `BadHeaderValue` for a value that is not a number or a refresher other than `uac`/`uas`,
/// `ValueOutOfRange` beyond 32 bits, `DuplicateHeader` when it appears twice.
pub fn session_expires(headers: &Headers) -> Result<Option<SessionExpires>, ParseError> {
    let name = HeaderName::SessionExpires;
    let Some(text) = single_value(headers, &name)? else {
        return Ok(None);
    };
    let mut parts = text.split(';');
    let delta = delta_seconds(parts.next().unwrap_or(""), &name)?;
    let mut refresher = None;
    for param in parts {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (param.trim(), ""),
        };
        if key.eq_ignore_ascii_case("refresher") {
            refresher = Some(if value.eq_ignore_ascii_case("uac") {
                Refresher::Uac
            } else if value.eq_ignore_ascii_case("uas") {
                Refresher::Uas
            } else {
                return Err(bad(name));
            });
        }
    }
    Ok(Some(SessionExpires { delta, refresher }))
}

/// The `Min-SE` header, if any (RFC 4028 §5).
///
/// # Errors
/// As [`session_expires`].
pub fn min_se(headers: &Headers) -> Result<Option<u32>, ParseError> {
    let name = min_se_header();
    let Some(text) = single_value(headers, &name)? else {
        return Ok(None);
    };
    // Parameters are allowed (generic-param) and ignored.
    let delta = text.split(';').next().unwrap_or("");
    delta_seconds(delta, &name).map(Some)
}

/// True when `tag` is listed in `Supported` or `Require` (a malformed list lists nothing).
pub fn supports(headers: &Headers, tag: &str) -> bool {
    let listed = |tags: Result<Vec<&str>, ParseError>| {
        tags.is_ok_and(|t| t.iter().any(|x| x.eq_ignore_ascii_case(tag)))
    };
    listed(headers.supported()) || listed(headers.require())
}

/// mss's own session-timer policy: the interval it asks for and the least it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerPolicy {
    /// The session interval mss asks for, in seconds (at least `min_se`).
    pub interval: u32,
    /// The least interval mss accepts, in seconds (at least [`MIN_SE_FLOOR`]).
    pub min_se: u32,
}

impl TimerPolicy {
    /// A policy with both values raised to what RFC 4028 allows (`min_se` ≥ 90,
    /// `interval` ≥ `min_se`).
    pub fn new(interval: u32, min_se: u32) -> TimerPolicy {
        let min_se = min_se.max(MIN_SE_FLOOR);
        TimerPolicy {
            interval: interval.max(min_se),
            min_se,
        }
    }
}

/// What a UAS answers to a session refresh request (an INVITE or UPDATE) (RFC 4028 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTimer {
    /// `422` with `Min-SE: min_se`: the UAC supports timers and asked for less than mss
    /// accepts.
    TooSmall {
        /// mss's minimum.
        min_se: u32,
    },
    /// Use a session timer: the `2xx` carries `Session-Expires` with this value (and
    /// `Require: timer` when `require`).
    Use {
        /// The session interval and the refresher (always named in a response).
        expires: SessionExpires,
        /// The UAC supports timers: the `2xx` says `Require: timer` (§9).
        require: bool,
    },
    /// No session timer on this dialog.
    Off,
}

/// The UAS side of the negotiation for a request with `headers` (RFC 4028 §9):
/// - `Session-Expires` below mss's `Min-SE`: `422` when the UAC supports `timer`, else the
///   interval raised to it (§8.1 lets an element do so when the UAC cannot retry);
/// - an interval larger than mss's is reduced to mss's, never below the request's `Min-SE`;
/// - the refresher is the UAC's choice when it supports timers and made one, else mss
///   (`uas`, Table 2);
/// - no `Session-Expires` from a UAC that supports timers: mss asks for its own interval,
///   refreshing itself; from one that does not: no timer.
///
/// # Errors
/// A `Session-Expires` or `Min-SE` that does not parse (answer `400`).
pub fn negotiate_uas(headers: &Headers, policy: TimerPolicy) -> Result<UasTimer, ParseError> {
    let supported = supports(headers, "timer");
    let their_min = min_se(headers)?.unwrap_or(MIN_SE_FLOOR).max(MIN_SE_FLOOR);
    let floor = their_min.max(policy.min_se);
    match session_expires(headers)? {
        Some(se) if se.delta < policy.min_se && supported => Ok(UasTimer::TooSmall {
            min_se: policy.min_se,
        }),
        Some(se) => {
            let delta = if se.delta < floor {
                floor
            } else {
                // §9: the UAS may reduce the interval, never below the request's Min-SE,
                // and never increase it.
                se.delta.min(policy.interval.max(their_min))
            };
            let refresher = match (supported, se.refresher) {
                (true, Some(r)) => r,
                _ => Refresher::Uas,
            };
            Ok(UasTimer::Use {
                expires: SessionExpires {
                    delta,
                    refresher: Some(refresher),
                },
                require: supported,
            })
        }
        None if supported => Ok(UasTimer::Use {
            expires: SessionExpires {
                delta: policy.interval.max(their_min),
                refresher: Some(Refresher::Uas),
            },
            require: true,
        }),
        None => Ok(UasTimer::Off),
    }
}

/// The session timer a `2xx` to mss's session refresh request sets up (RFC 4028 §7.2): its
/// `Session-Expires` with the refresher it names (`uac` when it names none: mss asked), or
/// `None` (no `Session-Expires`: no session timer, the peer does not support them).
///
/// # Errors
/// A `Session-Expires` that does not parse.
pub fn negotiated_by_2xx(headers: &Headers) -> Result<Option<SessionExpires>, ParseError> {
    Ok(session_expires(headers)?.map(|se| SessionExpires {
        delta: se.delta.max(MIN_SE_FLOOR),
        refresher: Some(se.refresher.unwrap_or(Refresher::Uac)),
    }))
}

/// When the refresher refreshes: half the interval after the last refresh (RFC 4028 §9,
/// §10 "RECOMMENDED").
pub fn refresh_after(interval: u32) -> Duration {
    Duration::from_secs(u64::from(interval)) / 2
}

/// When the side that does not refresh gives up on a session: the interval less the
/// minimum of 32 seconds and a third of it (RFC 4028 §10).
pub fn expiry_after(interval: u32) -> Duration {
    let margin = 32.min(interval / 3);
    Duration::from_secs(u64::from(interval - margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&'static str, &'static str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in lines {
            h.push(HeaderName::from_static(n), *v);
        }
        h
    }

    const POLICY: TimerPolicy = TimerPolicy {
        interval: 1800,
        min_se: 90,
    };

    #[test]
    fn session_expires_parses_with_and_without_refresher() {
        let h = headers(&[("Session-Expires", "1800;refresher=UAS")]);
        assert_eq!(
            session_expires(&h).unwrap(),
            Some(SessionExpires {
                delta: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        let h = headers(&[("x", " 90 ; foo=bar")]);
        assert_eq!(session_expires(&h).unwrap().unwrap().delta, 90);
        for bad in ["abc", "", "-1", "99999999999", "90;refresher=me"] {
            let h = headers(&[("Session-Expires", bad)]);
            assert!(session_expires(&h).is_err(), "{bad:?}");
        }
        let h = headers(&[("Session-Expires", "90"), ("Session-Expires", "100")]);
        assert!(session_expires(&h).is_err(), "twice");
        let h = headers(&[("Min-SE", "120;x=1")]);
        assert_eq!(min_se(&h).unwrap(), Some(120));
    }

    #[test]
    fn below_our_min_se_is_422_only_when_the_uac_supports_timers() {
        let h = headers(&[("Session-Expires", "60"), ("Supported", "timer")]);
        assert_eq!(
            negotiate_uas(&h, TimerPolicy::new(1800, 120)).unwrap(),
            UasTimer::TooSmall { min_se: 120 }
        );
        let h = headers(&[("Session-Expires", "60")]);
        assert_eq!(
            negotiate_uas(&h, TimerPolicy::new(1800, 120)).unwrap(),
            UasTimer::Use {
                expires: SessionExpires {
                    delta: 120,
                    refresher: Some(Refresher::Uas)
                },
                require: false
            }
        );
    }

    #[test]
    fn the_uas_follows_table_2() {
        let h = headers(&[
            ("Session-Expires", "300;refresher=uac"),
            ("Supported", "100rel, timer"),
        ]);
        assert_eq!(
            negotiate_uas(&h, POLICY).unwrap(),
            UasTimer::Use {
                expires: SessionExpires {
                    delta: 300,
                    refresher: Some(Refresher::Uac)
                },
                require: true
            }
        );
        // Not supported: the refresher is always the UAS.
        let h = headers(&[("Session-Expires", "300;refresher=uac")]);
        assert!(matches!(
            negotiate_uas(&h, POLICY).unwrap(),
            UasTimer::Use {
                expires: SessionExpires {
                    refresher: Some(Refresher::Uas),
                    ..
                },
                require: false
            }
        ));
        // Supported without a Session-Expires: ours, refreshed by us.
        let h = headers(&[("Supported", "timer"), ("Min-SE", "2000")]);
        assert_eq!(
            negotiate_uas(&h, POLICY).unwrap(),
            UasTimer::Use {
                expires: SessionExpires {
                    delta: 2000,
                    refresher: Some(Refresher::Uas)
                },
                require: true
            }
        );
        // Neither: no timer.
        assert_eq!(negotiate_uas(&headers(&[]), POLICY).unwrap(), UasTimer::Off);
        // Too long: reduced to ours.
        let h = headers(&[("Session-Expires", "86400"), ("Supported", "timer")]);
        assert!(matches!(
            negotiate_uas(&h, POLICY).unwrap(),
            UasTimer::Use {
                expires: SessionExpires { delta: 1800, .. },
                ..
            }
        ));
    }

    #[test]
    fn refresh_and_expiry_follow_section_10() {
        assert_eq!(refresh_after(1800), Duration::from_secs(900));
        assert_eq!(expiry_after(1800), Duration::from_secs(1768));
        assert_eq!(expiry_after(90), Duration::from_secs(60));
        assert_eq!(TimerPolicy::new(10, 5), TimerPolicy::new(90, 90));
    }

    #[test]
    fn a_2xx_without_refresher_leaves_it_to_the_uac() {
        let h = headers(&[("Session-Expires", "600")]);
        assert_eq!(
            negotiated_by_2xx(&h).unwrap().unwrap().refresher,
            Some(Refresher::Uac)
        );
        assert_eq!(negotiated_by_2xx(&headers(&[])).unwrap(), None);
    }

    #[test]
    fn values_are_what_the_formatter_writes() {
        for delta in [0, 7, 90, 1800, u32::MAX] {
            let plain = SessionExpires {
                delta,
                refresher: None,
            };
            assert_eq!(plain.value(), delta.to_string());
            let uas = SessionExpires {
                delta,
                refresher: Some(Refresher::Uas),
            };
            assert_eq!(uas.value(), format!("{delta};refresher=uas"));
        }
    }
}
