//! Admission of a new call (DESIGN §8): who calls, where the call goes, or the answer that
//! refuses it.
//!
//! In this order:
//! 1. a loop (an INVITE that carries a Via branch of mss's own INVITEs: it came back) →
//!    `482 Loop Detected`; `Max-Forwards: 0` → `483 Too Many Hops` (RFC 3261 §16.3 step 3
//!    asks it of proxies; a B2BUA that would forward must not forward either);
//! 2. who calls: a call from a line's registrar to the line's number (Request-URI or To
//!    user) is the line's incoming call and goes to its owner without a challenge (the provider cannot answer it; `404` when the line has no
//!    owner); any other caller answers a `407` challenge like a MESSAGE (the shared digest
//!    guard), its From must name the authenticated user (`403`), and the Request-URI must
//!    name one of our domains (`404`: mss is no open relay);
//! 3. the server's `max_calls` → `503` + `Retry-After`;
//! 4. the body: none (a delayed offer, RFC 3264 §5) or SDP that parses; another type →
//!    `415` with `Accept`, SDP that cannot be used → `488` with a Warning in words;
//! 5. the dial plan: a local user, a group, or the out-group prefix and a number
//!    ([`Target`], carried out by `routing.rs`); anything else `404`.

use bytes::Bytes;
use mss_services::{AuthKind, Now, Reject};
use mss_sip::{HeaderName, Request, Response, StatusCode, Uri};
use mss_store::CallDirection;

use crate::core::Core;

/// Seconds a caller refused for the server's `max_calls` is asked to wait.
const BUSY_RETRY_AFTER: &str = "10";

/// Who calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A local user, authenticated.
    Local {
        /// The user's name.
        user: String,
    },
    /// The provider of line `line`, calling its owner.
    Line {
        /// The line's index.
        line: usize,
        /// The line's name.
        name: String,
        /// The number that calls (the From user), as the record shows it.
        number: String,
    },
}

/// Where a call goes (what the dial plan or a forward names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A local user: every registered device at once.
    User(String),
    /// A group (`[group:NAME]`).
    Group(String),
    /// A number out through the lines, without the out-group prefix.
    Out(String),
}

/// An admitted call: who, what was dialled, where it goes, which way.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// Who calls.
    pub(crate) caller: Caller,
    /// The Request-URI user, as dialled.
    pub(crate) dialled: String,
    /// Where it goes.
    pub(crate) target: Target,
    /// Internal, outbound or inbound.
    pub(crate) direction: CallDirection,
    /// The offer of the INVITE: Content-Type and body (none for a delayed offer).
    pub(crate) offer: Option<(Bytes, Bytes)>,
}

/// A refusal: the response to send (boxed: admission of a good INVITE is the common case).
pub(crate) type Refusal = Box<Response>;

/// The user part of `req`'s From, for records of calls from outside.
fn from_user(req: &Request) -> String {
    match req.headers().from() {
        Ok(f) => match f.uri {
            Uri::Sip(u) => u.user.unwrap_or_default().to_owned(),
            Uri::Tel(t) => t.number.to_owned(),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether `number` is an out-group number: digits, optionally with a leading `+`, and
/// the `*`/`#` a phone may send.
pub fn is_dialable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

impl Core {
    /// Admits `req` (a new INVITE from `from`) or gives the answer that refuses it (see the
    /// module docs).
    pub(crate) fn admit_call(
        &mut self,
        now: Now,
        req: &Request,
        from: &mss_sip::Flow,
    ) -> Result<Admitted, Refusal> {
        let refuse = |core: &Core, status: StatusCode, reason: &'static str| -> Refusal {
            Box::new(core.answer.response(req, status, reason))
        };
        // 1. Loops and hops.
        let looped = req
            .headers()
            .values(&HeaderName::Via)
            .any(|v| contains(v, self.calls.branch_prefix.as_bytes()));
        if looped {
            tracing::info!("INVITE came back to mss: loop");
            return Err(refuse(self, StatusCode::LOOP_DETECTED, "Loop Detected"));
        }
        if matches!(req.headers().max_forwards(), Ok(Some(0))) {
            return Err(refuse(self, StatusCode::TOO_MANY_HOPS, "Too Many Hops"));
        }
        // 2. Who calls, and what was dialled.
        let (target_user, target_local) = match req.uri() {
            Ok(Uri::Sip(u)) => (
                u.user.unwrap_or_default().to_owned(),
                self.domains.is_local(u.host),
            ),
            Ok(Uri::Tel(t)) => (t.number.to_owned(), true),
            _ => (String::new(), false),
        };
        let caller = self.who_calls(now, req, from, target_local)?;
        // 3. The server's limit.
        let max = usize::try_from(self.calls.settings.max_calls).unwrap_or(usize::MAX);
        if self.calls.len() >= max {
            tracing::warn!(max, "call refused: the server's max_calls is reached");
            let mut rsp = *refuse(self, StatusCode::SERVICE_UNAVAILABLE, "Too Many Calls");
            rsp.headers_mut()
                .push(HeaderName::RetryAfter, BUSY_RETRY_AFTER);
            return Err(Box::new(rsp));
        }
        // 4. The offer.
        let offer = self.check_offer(req)?;
        // 5. Where it goes.
        let (target, direction) = self.dial_plan(req, &caller, &target_user)?;
        Ok(Admitted {
            caller,
            dialled: target_user,
            target,
            direction,
            offer,
        })
    }

    /// Step 2 of the module docs.
    pub(crate) fn who_calls(
        &mut self,
        now: Now,
        req: &Request,
        from: &mss_sip::Flow,
        target_local: bool,
    ) -> Result<Caller, Refusal> {
        // Only the provider may call a line's number unchallenged: from the address the line
        // registers at, like its MESSAGEs. Anyone else who dials the number is challenged,
        // so that a scanner can neither ring the owner's phones nor tell line numbers from
        // other extensions.
        let number = self
            .lines
            .lines_for_peer(from)
            .find(|line| crate::messaging::addressed_to(req, line.number))
            .map(|l| l.number.to_owned());
        let line = number.and_then(|n| {
            self.lines
                .line_with_number(&n)
                .map(|(i, l)| (i, l.name.to_owned()))
        });
        if let Some((line, name)) = line {
            tracing::debug!(line = %name, "call through a line");
            return Ok(Caller::Line {
                line,
                name,
                number: from_user(req),
            });
        }
        if !target_local {
            return Err(Box::new(self.answer.reject(req, &Reject::NotFound)));
        }
        let user = self
            .directory
            .authenticate(now, req, AuthKind::Proxy, &self.answer, from.remote.ip())
            .map_err(Box::new)?
            .name;
        let from_ok = match req.headers().from() {
            Ok(f) => match f.uri {
                Uri::Sip(u) => u.user == Some(user.as_str()) && self.domains.is_local(u.host),
                _ => false,
            },
            Err(_) => false,
        };
        if !from_ok {
            tracing::debug!(%user, "INVITE whose From is not the authenticated user");
            return Err(Box::new(self.answer.reject(
                req,
                &Reject::Forbidden("From Does Not Match Credentials"),
            )));
        }
        Ok(Caller::Local { user })
    }

    /// Step 4 of the module docs: the INVITE's offer, if any.
    pub(crate) fn check_offer(&self, req: &Request) -> Result<Option<(Bytes, Bytes)>, Refusal> {
        if req.body().is_empty() {
            return Ok(None);
        }
        let content_type = req
            .headers()
            .get(&HeaderName::ContentType)
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        let is_sdp = matches!(
            req.headers().content_type(),
            Ok(Some(ct)) if ct.mtype.eq_ignore_ascii_case("application")
                && ct.subtype.eq_ignore_ascii_case("sdp")
        );
        if !is_sdp {
            let mut rsp = self.answer.response(
                req,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
            );
            rsp.headers_mut()
                .push(HeaderName::Accept, Bytes::from_static(b"application/sdp"));
            return Err(Box::new(rsp));
        }
        if let Err(e) = mss_sdp::SessionDescription::parse(req.body().clone()) {
            tracing::info!(error = %e, "INVITE with SDP that cannot be used");
            let mut rsp =
                self.answer
                    .response(req, StatusCode::NOT_ACCEPTABLE_HERE, "Not Acceptable Here");
            rsp.headers_mut().push(
                HeaderName::Warning,
                Bytes::from(e.warning_value(self.answer.agent())),
            );
            return Err(Box::new(rsp));
        }
        Ok(Some((content_type, req.body().clone())))
    }

    /// What `name` names: a local user, a group, or the out-group prefix and a number
    /// (`None`: nothing). Forward targets are written the same way.
    pub(crate) fn target_of(&self, name: &str) -> Option<Target> {
        if self.directory.guard.users().contains(name) {
            return Some(Target::User(name.to_owned()));
        }
        if self.calls.settings.groups.contains_key(name) {
            return Some(Target::Group(name.to_owned()));
        }
        let prefix = self.calls.settings.outgroup_prefix.as_str();
        name.strip_prefix(prefix)
            .filter(|n| is_dialable(n))
            .map(|n| Target::Out(n.to_owned()))
    }

    /// Step 5 of the module docs.
    fn dial_plan(
        &mut self,
        req: &Request,
        caller: &Caller,
        target_user: &str,
    ) -> Result<(Target, CallDirection), Refusal> {
        match caller {
            Caller::Line { line, .. } => {
                let owner = self
                    .lines
                    .line_peer(*line)
                    .and_then(|l| l.owner.map(str::to_owned));
                match owner {
                    Some(owner) if self.directory.guard.users().contains(&owner) => {
                        Ok((Target::User(owner), CallDirection::Inbound))
                    }
                    _ => {
                        tracing::info!(line = %line, "incoming call on a line without owner");
                        Err(Box::new(self.answer.reject(req, &Reject::NotFound)))
                    }
                }
            }
            Caller::Local { .. } => match self.target_of(target_user) {
                Some(t @ Target::Out(_)) => Ok((t, CallDirection::Outbound)),
                Some(t) => Ok((t, CallDirection::Internal)),
                None => Err(Box::new(self.answer.reject(req, &Reject::NotFound))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialable_numbers() {
        for ok in ["5551234", "+4930123", "*21#", "0"] {
            assert!(is_dialable(ok), "{ok}");
        }
        for bad in ["", "+", "alice", "55a1", "5 5"] {
            assert!(!is_dialable(bad), "{bad}");
        }
    }
}
