//! `mss status`: reads `/api/lines`, `/api/calls/active`, `/api/registrations`,
//! `/api/messages` and `/api/bans` from a running mss and prints them as aligned text
//! tables.

pub mod http;
pub mod table;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mss_admin::{ActiveCallView, BanView, ErrorView, LineView, MessageCountView, RegistrationView};
use serde::de::DeserializeOwned;

use self::http::HttpError;
use self::table::Table;

/// How long `mss status` waits for each answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why `mss status` failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The HTTP exchange failed (including "mss is not running").
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The API answered with an error status.
    #[error("{path}: HTTP {status}: {message}")]
    Api {
        /// The path asked for.
        path: String,
        /// Status code.
        status: u16,
        /// The API's error message (or the raw body).
        message: String,
    },
    /// The API answered with JSON of an unexpected shape.
    #[error("{path}: unexpected JSON: {source}")]
    Json {
        /// The path asked for.
        path: String,
        /// The decoding error.
        source: serde_json::Error,
    },
}

fn fetch<T: DeserializeOwned>(admin: &str, path: &str) -> Result<T, StatusError> {
    let rsp = http::get(admin, path, TIMEOUT)?;
    if rsp.status != 200 {
        let message = serde_json::from_slice::<ErrorView>(&rsp.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&rsp.body).trim().to_string());
        return Err(StatusError::Api {
            path: path.to_string(),
            status: rsp.status,
            message,
        });
    }
    serde_json::from_slice(&rsp.body).map_err(|source| StatusError::Json {
        path: path.to_string(),
        source,
    })
}

/// Fetches the five lists from the admin API at `admin` (`HOST:PORT`) and renders them.
///
/// # Errors
/// See [`StatusError`]; a server that is not running gives [`HttpError::Connect`].
pub fn run(admin: &str) -> Result<String, StatusError> {
    let lines: Vec<LineView> = fetch(admin, "/api/lines")?;
    let calls: Vec<ActiveCallView> = fetch(admin, "/api/calls/active")?;
    let regs: Vec<RegistrationView> = fetch(admin, "/api/registrations")?;
    let counts: Vec<MessageCountView> = fetch(admin, "/api/messages")?;
    let bans: Vec<BanView> = fetch(admin, "/api/bans")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(render(&lines, &calls, &regs, &counts, &bans, now))
}

/// Renders the five tables as of `now` (Unix seconds); the calls' title counts them.
pub fn render(
    lines: &[LineView],
    calls: &[ActiveCallView],
    regs: &[RegistrationView],
    counts: &[MessageCountView],
    bans: &[BanView],
    now: u64,
) -> String {
    let mut out = String::new();
    out.push_str("LINES\n");
    let mut t = Table::new(&[
        "NAME",
        "NUMBER",
        "STATE",
        "SINCE",
        "EXPIRES",
        "NEXT ATTEMPT",
        "CALL-ID",
        "LAST FAILURE",
    ]);
    for l in lines {
        let failure = l.last_failure.as_ref().map_or_else(String::new, |f| {
            let mut s = match f.code {
                Some(c) => format!("{c} {}", f.reason),
                None => f.reason.clone(),
            };
            if let Some(p) = &f.p_registrar_error {
                s.push_str(&format!(" (P-Registrar-Error: {p})"));
            }
            s
        });
        t.row(vec![
            l.name.clone(),
            l.number.clone(),
            l.state.as_str().to_string(),
            relative(l.since, now),
            l.expires_at
                .map_or_else(|| "-".into(), |t| relative(t, now)),
            l.next_attempt_at
                .map_or_else(|| "-".into(), |t| relative(t, now)),
            l.call_id_mode.as_str().to_string(),
            failure,
        ]);
    }
    out.push_str(&t.render());

    out.push_str(&format!("\nACTIVE CALLS ({})\n", calls.len()));
    let mut t = Table::new(&["ID", "CALL", "STATE", "SINCE"]);
    for c in calls {
        t.row(vec![
            c.id.clone(),
            format!("{} → {}", c.caller, c.callee),
            c.state.clone(),
            relative(c.since, now),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nREGISTRATIONS\n");
    let mut t = Table::new(&[
        "USER",
        "CONTACT",
        "TRANSPORT",
        "SOURCE",
        "EXPIRES",
        "USER-AGENT",
    ]);
    for r in regs {
        t.row(vec![
            r.user.clone(),
            r.contact.clone(),
            r.transport.clone(),
            r.source.clone(),
            relative(r.expires_at, now),
            r.user_agent.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nSTORED MESSAGES\n");
    let mut t = Table::new(&["USER", "STORED"]);
    for c in counts {
        t.row(vec![c.user.clone(), c.stored.to_string()]);
    }
    out.push_str(&t.render());

    out.push_str("\nBANS\n");
    let mut t = Table::new(&[
        "ADDRESS", "SCOPE", "USER", "REASON", "FAILURES", "SINCE", "UNTIL", "OFFENCE",
    ]);
    for b in bans {
        t.row(vec![
            b.address.clone(),
            b.scope.as_str().to_owned(),
            b.user.clone().unwrap_or_else(|| "-".into()),
            b.reason.as_str().to_owned(),
            b.failures.to_string(),
            relative(b.since, now),
            relative(b.until, now),
            b.offence.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// `in 5m 3s`, `2h 1m ago` or `now`.
fn relative(t: u64, now: u64) -> String {
    if t == now {
        "now".to_string()
    } else if t > now {
        format!("in {}", span(t - now))
    } else {
        format!("{} ago", span(now - t))
    }
}

/// A span in its two largest units: `3d 4h`, `5m 3s`, `45s`.
fn span(secs: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() {
            parts.push(format!("{n}{name}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.last().is_some_and(|p| p.starts_with('0')) && parts.len() == 2 {
        parts.pop();
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_admin::{CallIdModeView, LastFailure, LineState};

    #[test]
    fn spans() {
        assert_eq!(span(45), "45s");
        assert_eq!(span(303), "5m 3s");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(86_400 * 3 + 3600 * 4 + 5), "3d 4h");
        assert_eq!(relative(10, 10), "now");
        assert_eq!(relative(70, 10), "in 1m");
        assert_eq!(relative(10, 70), "1m ago");
    }

    #[test]
    fn renders_tables() {
        let lines = [LineView {
            name: "provider1".into(),
            number: "2001".into(),
            state: LineState::Rejected,
            since: 940,
            expires_at: None,
            next_attempt_at: Some(1030),
            call_id_mode: CallIdModeView::AutoFresh,
            last_failure: Some(LastFailure {
                code: Some(400),
                reason: "Bad Request".into(),
                p_registrar_error: Some("CSeq out of order".into()),
            }),
        }];
        let regs = [RegistrationView {
            user: "101".into(),
            contact: "<sip:101@127.0.0.1:5070>".into(),
            transport: "UDP".into(),
            source: "127.0.0.1:5070".into(),
            expires_at: 4600,
            user_agent: Some("baresip".into()),
        }];
        let bans = [mss_admin::BanView {
            address: "203.0.113.7".into(),
            scope: mss_admin::BanScopeView::Address,
            reason: mss_admin::BanReasonView::Auth,
            user: Some("101".into()),
            failures: 10,
            since: 940,
            until: 1840,
            offence: 1,
        }];
        let calls = [
            ActiveCallView {
                id: "c-1".into(),
                caller: "101".into(),
                callee: "95551234".into(),
                state: "answered".into(),
                since: 697,
                legs: Vec::new(),
            },
            ActiveCallView {
                id: "c-22".into(),
                caller: "5550000".into(),
                callee: "2001".into(),
                state: "ringing".into(),
                since: 995,
                legs: Vec::new(),
            },
        ];
        let text = render(&lines, &calls, &regs, &[], &bans, 1000);
        assert!(
            text.starts_with("LINES\nNAME       NUMBER  STATE"),
            "{text}"
        );
        assert!(
            text.contains("provider1  2001    rejected  1m ago  -        in 30s"),
            "{text}"
        );
        assert!(text.contains("auto_fresh  400 Bad Request (P-Registrar-Error: CSeq out of order)"));
        assert!(
            text.contains(
                "101   <sip:101@127.0.0.1:5070>  UDP        127.0.0.1:5070  in 1h    baresip"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "\nACTIVE CALLS (2)\n\
                 ID    CALL            STATE     SINCE\n\
                 c-1   101 → 95551234  answered  5m 3s ago\n\
                 c-22  5550000 → 2001  ringing   5s ago\n\nREGISTRATIONS\n"
            ),
            "{text}"
        );
        let none = render(&[], &[], &[], &[], &[], 1000);
        assert!(
            none.contains("ACTIVE CALLS (0)\nID  CALL  STATE  SINCE\n(none)\n"),
            "{none}"
        );
        assert!(
            text.contains("STORED MESSAGES\nUSER  STORED\n(none)\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "BANS\nADDRESS      SCOPE    USER  REASON  FAILURES  SINCE   UNTIL   OFFENCE\n\
                 203.0.113.7  address  101   auth    10        1m ago  in 14m  1\n"
            ),
            "{text}"
        );
    }
}
