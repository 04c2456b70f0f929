//! What the configuration says about one line (`[line:NAME]` of `mss.ini`, DESIGN §2).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use mss_sip::Transport;

use crate::lines::backoff::{BACKOFF_BASE, BACKOFF_MAX};

/// The default `expires` a line asks for, in seconds (DESIGN §2).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// How a line chooses the Call-ID (and From tag) of its REGISTERs.
///
/// The caller resolves it from `gVarSipRegSameDialog` of `mss_var_param.ini` (which wins when
/// set) and the line's `call_id` key, see [`CallIdMode::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallIdMode {
    /// Start as [`CallIdMode::Same`]; switch the line to [`CallIdMode::Fresh`] when the
    /// registrar rejects a same-Call-ID REGISTER because of its CSeq or ordering.
    #[default]
    Auto,
    /// One Call-ID for every REGISTER of the line, CSeq one more each time (RFC 3261 §10.2).
    Same,
    /// A new Call-ID and From tag for every REGISTER, the authenticated retry included.
    Fresh,
}

impl CallIdMode {
    /// The mode of a line from `gVarSipRegSameDialog` (`Some(true)` for `1`, `Some(false)` for
    /// `0`, `None` when unset) and the line's own `call_id` key.
    pub fn resolve(same_dialog_var: Option<bool>, line_key: CallIdMode) -> CallIdMode {
        match same_dialog_var {
            Some(true) => CallIdMode::Same,
            Some(false) => CallIdMode::Fresh,
            None => line_key,
        }
    }

    /// The key's spelling in `mss.ini`: `auto`, `same` or `fresh`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallIdMode::Auto => "auto",
            CallIdMode::Same => "same",
            CallIdMode::Fresh => "fresh",
        }
    }
}

impl fmt::Display for CallIdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `call_id` value that is none of `auto`, `same`, `fresh`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call_id must be auto, same or fresh, not {value:?}")]
pub struct CallIdModeError {
    /// The value found.
    pub value: String,
}

impl FromStr for CallIdMode {
    type Err = CallIdModeError;

    fn from_str(s: &str) -> Result<CallIdMode, CallIdModeError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(CallIdMode::Auto),
            "same" => Ok(CallIdMode::Same),
            "fresh" => Ok(CallIdMode::Fresh),
            _ => Err(CallIdModeError {
                value: s.to_owned(),
            }),
        }
    }
}

/// The settings of one external line.
#[derive(Clone, PartialEq, Eq)]
pub struct LineSettings {
    /// The line's name (`provider1` of `[line:provider1]`); also the key of its stored state.
    pub name: String,
    /// The registrar's host: a DNS name or an IP address (IPv6 with or without brackets).
    pub registrar_host: String,
    /// The registrar's port; `None` asks for DNS SRV on a name (RFC 3263 §4.2), else 5060
    /// (5061 for TLS).
    pub port: Option<u16>,
    /// The transport to register over.
    pub transport: Transport,
    /// The line's number at the provider: the user part of the address of record.
    pub number: String,
    /// The digest user name; `None` means the number.
    pub username: Option<String>,
    /// The digest password.
    pub password: String,
    /// The domain of the address of record; `None` means the registrar host.
    pub domain: Option<String>,
    /// The registration lifetime asked for, in seconds.
    pub expires: u32,
    /// The Call-ID policy, already resolved by the caller (see [`CallIdMode::resolve`]).
    pub call_id_mode: CallIdMode,
    /// The User-Agent header value of our REGISTERs.
    pub user_agent: String,
    /// The first retry delay after a failure (`retry_min`, default [`BACKOFF_BASE`]); each
    /// further failure doubles it, jittered down by up to 20 %. Kept within
    /// [`BACKOFF_FLOOR`](crate::lines::BACKOFF_FLOOR) and
    /// [`BACKOFF_CEILING`](crate::lines::BACKOFF_CEILING).
    pub retry_min: Duration,
    /// The longest retry delay (`retry_max`, default [`BACKOFF_MAX`]); at least
    /// `retry_min`, at most [`BACKOFF_CEILING`](crate::lines::BACKOFF_CEILING).
    pub retry_max: Duration,
}

impl LineSettings {
    /// Settings with the defaults of DESIGN §2: UDP, no port (SRV or 5060), user name = number,
    /// domain = registrar host, `expires = 3600`, `call_id = auto`, User-Agent `mss`,
    /// retries from 30 s up to 30 min.
    pub fn new(name: &str, registrar_host: &str, number: &str, password: &str) -> LineSettings {
        LineSettings {
            name: name.to_owned(),
            registrar_host: registrar_host.to_owned(),
            port: None,
            transport: Transport::Udp,
            number: number.to_owned(),
            username: None,
            password: password.to_owned(),
            domain: None,
            expires: DEFAULT_EXPIRES,
            call_id_mode: CallIdMode::Auto,
            user_agent: "mss".to_owned(),
            retry_min: BACKOFF_BASE,
            retry_max: BACKOFF_MAX,
        }
    }

    /// The digest user name in use.
    pub fn username(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.number)
    }

    /// The domain of the address of record in use.
    pub fn domain(&self) -> &str {
        self.domain.as_deref().unwrap_or(&self.registrar_host)
    }

    /// The Request-URI of the REGISTERs: `sip:domain` (RFC 3261 §10.2: the domain of the
    /// location service, no user part). When the domain is the registrar host and a port is
    /// configured, the port is kept.
    pub fn request_uri(&self) -> String {
        let host = bracket_v6(self.domain());
        match (self.domain.is_none(), self.port) {
            (true, Some(port)) => format!("sip:{host}:{port}"),
            _ => format!("sip:{host}"),
        }
    }

    /// The address of record: `sip:number@domain` (From and To, RFC 3261 §10.2).
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.number, bracket_v6(self.domain()))
    }
}

impl fmt::Debug for LineSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSettings")
            .field("name", &self.name)
            .field("registrar_host", &self.registrar_host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("number", &self.number)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("domain", &self.domain)
            .field("expires", &self.expires)
            .field("call_id_mode", &self.call_id_mode)
            .field("user_agent", &self.user_agent)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

/// An IPv6 literal in brackets, as a URI host needs it; anything else unchanged.
fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_design() {
        let s = LineSettings::new("p1", "sip.provider.example", "2001", "pw");
        assert_eq!(s.username(), "2001");
        assert_eq!(s.domain(), "sip.provider.example");
        assert_eq!(s.request_uri(), "sip:sip.provider.example");
        assert_eq!(s.aor(), "sip:2001@sip.provider.example");
        assert_eq!(s.expires, 3600);
        assert_eq!(s.call_id_mode, CallIdMode::Auto);
        assert_eq!(s.retry_min, Duration::from_secs(30));
        assert_eq!(s.retry_max, Duration::from_secs(1800));
        assert!(!format!("{s:?}").contains("\"pw\""));
    }

    #[test]
    fn request_uri_keeps_port_of_registrar_and_brackets_v6() {
        let mut s = LineSettings::new("p1", "2001:db8::1", "2001", "pw");
        s.port = Some(5080);
        assert_eq!(s.request_uri(), "sip:[2001:db8::1]:5080");
        s.domain = Some("example.net".into());
        assert_eq!(s.request_uri(), "sip:example.net");
        assert_eq!(s.aor(), "sip:2001@example.net");
    }

    #[test]
    fn call_id_mode_resolution_and_parsing() {
        assert_eq!(
            CallIdMode::resolve(Some(false), CallIdMode::Same),
            CallIdMode::Fresh
        );
        assert_eq!(
            CallIdMode::resolve(Some(true), CallIdMode::Fresh),
            CallIdMode::Same
        );
        assert_eq!(
            CallIdMode::resolve(None, CallIdMode::Fresh),
            CallIdMode::Fresh
        );
        assert_eq!(" Fresh ".parse::<CallIdMode>(), Ok(CallIdMode::Fresh));
        assert!("sometimes".parse::<CallIdMode>().is_err());
        assert_eq!(CallIdMode::Auto.to_string(), "auto");
    }
}
