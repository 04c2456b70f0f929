//! How a [`Registration`] takes each kind of final answer: success, challenges (RFC 3261
//! §22.2, §22.3), `423` (§10.2.8), the CSeq quirk, failover (RFC 3263 §4.3), failures with
//! backoff, and the end of a shutdown.

use std::time::Duration;

use mss_auth::ChallengeOutcome;
use mss_sip::{HeaderName, Response};

use super::{unix_at, InFlight, Registration, Step, MAX_AUTH_ROUNDS, MAX_BRIEF_ROUNDS};
use crate::lines::backoff::refresh_delay;
use crate::lines::call_id::is_cseq_complaint;
use crate::lines::output::{LineOutput, LogLevel};
use crate::lines::response::{self, MAX_GRANTED_SECS};
use crate::lines::settings::CallIdMode;
use crate::lines::state::{LastFailure, LineState};
use crate::Now;

impl Registration {
    pub(super) fn registered(&mut self, now: Now, rsp: &Response, f: &InFlight) {
        let grant = response::granted(rsp, &f.contact, f.expires);
        if let Some(n) = grant.notice {
            self.log(LogLevel::Warn, n.clone());
            self.status.notice = Some(n);
        }
        let until = now.mono + Duration::from_secs(u64::from(grant.seconds));
        self.registered_until = Some(until);
        self.status.expires_at = Some(unix_at(now, until));
        self.backoff.reset();
        self.auth_rounds = 0;
        self.brief_rounds = 0;
        let refresh = refresh_delay(grant.seconds, &mut self.jitter);
        self.schedule(now, now.mono + refresh);
        self.set_state(now, LineState::Online);
    }

    /// Takes a `401`/`407` challenge; `Err` says in words why it is not answered.
    pub(super) fn answer_challenge(&mut self, rsp: &Response, code: u16) -> Result<(), String> {
        self.auth_rounds = self.auth_rounds.saturating_add(1);
        if self.auth_rounds > MAX_AUTH_ROUNDS {
            return Err(format!("challenged {MAX_AUTH_ROUNDS} times in a row"));
        }
        let (header, credentials) = if code == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let list = response::challenges(rsp, &header)?;
        let outcome = self.digest.handle_challenges(
            list.iter()
                .map(|c| c.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        );
        match outcome {
            Ok(ChallengeOutcome::Answer) => {
                self.credentials_header = credentials;
                Ok(())
            }
            Ok(ChallengeOutcome::Rejected) => {
                Err("credentials refused: check username and password".to_owned())
            }
            Err(e) => Err(format!("cannot answer the challenge: {e}")),
        }
    }

    /// RFC 3261 §10.2.8: `423` names the shortest lifetime accepted; ask again with it.
    pub(super) fn interval_too_brief(&mut self, now: Now, rsp: &Response) {
        self.brief_rounds = self.brief_rounds.saturating_add(1);
        let problem = match rsp.headers().min_expires() {
            _ if self.brief_rounds > MAX_BRIEF_ROUNDS => {
                format!("{MAX_BRIEF_ROUNDS} times 423 in a row")
            }
            Ok(Some(m)) if m > self.expires && m <= MAX_GRANTED_SECS => {
                self.log(
                    LogLevel::Info,
                    format!("registrar wants at least {m} s (423); asking again with that"),
                );
                self.expires = m;
                self.schedule(now, now.mono);
                return;
            }
            Ok(Some(m)) if m <= self.expires => {
                format!("Min-Expires {m} is not above the {} s asked", self.expires)
            }
            Ok(Some(m)) => format!("absurd Min-Expires {m}"),
            Ok(None) => "no Min-Expires".to_owned(),
            Err(e) => format!("malformed Min-Expires: {e}"),
        };
        let mut failure = response::failure(rsp);
        failure.reason = format!("{} ({problem})", failure.reason);
        let delay = self.retry_delay(response::retry_after(rsp));
        self.fail(now, LineState::Rejected, failure, delay);
    }

    pub(super) fn is_cseq_complaint(&self, rsp: &Response) -> bool {
        is_cseq_complaint(&response::reason(rsp))
            || response::p_registrar_error(rsp).is_some_and(|p| is_cseq_complaint(&p))
    }

    /// A `400`/`500` about the CSeq or ordering of a same-Call-ID REGISTER.
    pub(super) fn cseq_rejected(&mut self, now: Now, rsp: &Response) {
        let failure = response::failure(rsp);
        if self.policy.switch_to_fresh() {
            let said = failure
                .p_registrar_error
                .as_ref()
                .map_or_else(String::new, |p| format!(", P-Registrar-Error: {p}"));
            self.log(
                LogLevel::Warn,
                format!(
                    "registrar rejected a re-REGISTER on the same Call-ID ({} {}{said}); this \
                     registrar only accepts a fresh Call-ID per REGISTER, so line {} now uses \
                     one. To pin this, set call_id = fresh in [line:{}] of mss.ini or \
                     gVarSipRegSameDialog = 0 in [sip] of mss_var_param.ini",
                    failure.code.unwrap_or(0),
                    failure.reason,
                    self.settings.name,
                    self.settings.name
                ),
            );
            self.status.call_id_mode = self.policy.in_use();
            self.status.last_failure = Some(failure);
            self.out
                .push_back(LineOutput::StateChanged(self.status.clone()));
            self.schedule(now, now.mono);
            return;
        }
        if self.policy.configured() == CallIdMode::Same {
            self.log(
                LogLevel::Warn,
                format!(
                    "registrar rejects the CSeq of line {} with call_id = same; set \
                     call_id = auto or fresh if it only accepts fresh Call-IDs",
                    self.settings.name
                ),
            );
        }
        let delay = self.retry_delay(response::retry_after(rsp));
        self.fail(now, LineState::Rejected, failure, delay);
    }

    /// RFC 3263 §4.3: on a timeout or `503`, the next target; with none left, a retry later
    /// from a fresh lookup.
    pub(super) fn fail_over_or_fail(
        &mut self,
        now: Now,
        state: LineState,
        failure: LastFailure,
        retry_after: Option<u32>,
    ) {
        let from = self.targets.current().map(|t| t.addr);
        if self.targets.advance() {
            if let (Some(from), Some(to)) = (from, self.targets.current().map(|t| t.addr)) {
                self.log(
                    LogLevel::Info,
                    format!("{} from {from}; trying {to}", failure.reason),
                );
            }
            self.status.last_failure = Some(failure);
            self.schedule(now, now.mono);
            return;
        }
        self.targets.clear();
        let delay = self.retry_delay(retry_after);
        self.fail(now, state, failure, delay);
    }

    pub(super) fn fail(
        &mut self,
        now: Now,
        state: LineState,
        failure: LastFailure,
        delay: Duration,
    ) {
        self.auth_rounds = 0;
        self.brief_rounds = 0;
        self.status.last_failure = Some(failure);
        self.schedule(now, now.mono + delay);
        self.set_state(now, state);
    }

    /// During shutdown, once the REGISTER in flight is answered: un-REGISTER if registered.
    pub(super) fn after_final(&mut self, now: Now) {
        if !self.shutting_down || self.unregister_sent || self.step == Step::Done {
            return;
        }
        if self.registered_until.is_some() && !self.targets.is_empty() {
            self.schedule(now, now.mono);
        } else {
            self.finish(now);
        }
    }

    pub(super) fn unregister_answered(&mut self, now: Now, rsp: &Response, code: u16) {
        if matches!(code, 401 | 407) && self.answer_challenge(rsp, code).is_ok() {
            self.schedule(now, now.mono);
            return;
        }
        if !(200..300).contains(&code) {
            self.log(
                LogLevel::Info,
                format!("un-REGISTER answered {code} {}", response::reason(rsp)),
            );
        }
        self.finish(now);
    }

    pub(super) fn finish(&mut self, now: Now) {
        self.step = Step::Done;
        self.in_flight = None;
        self.registered_until = None;
        self.status.expires_at = None;
        self.status.next_attempt_at = None;
        self.set_state(now, LineState::Offline);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mss_sip::StatusCode;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::lines::sim::settings;

    fn line() -> Registration {
        let mut rng = StdRng::seed_from_u64(1);
        Registration::new(settings(), None, Now::new(Instant::now(), 0), &mut rng)
    }

    #[test]
    fn cseq_complaint_in_reason_or_p_registrar_error() {
        let reg = line();
        let mut r = Response::new(StatusCode(400), "Bad Request");
        assert!(!reg.is_cseq_complaint(&r));
        r.headers_mut().push(
            HeaderName::from_static("P-Registrar-Error"),
            "Invalid CSeq number",
        );
        assert!(reg.is_cseq_complaint(&r));
        let r = Response::new(StatusCode(500), "Request out of ORDER");
        assert!(reg.is_cseq_complaint(&r));
    }

    #[test]
    fn failure_schedules_a_retry_and_reports_the_state() {
        let mut reg = line();
        let now = Now::new(Instant::now(), 1_000);
        let failure = LastFailure {
            code: Some(404),
            reason: "Not Found".into(),
            p_registrar_error: None,
        };
        reg.fail(
            now,
            LineState::Rejected,
            failure.clone(),
            Duration::from_secs(30),
        );
        assert_eq!(reg.status.state, LineState::Rejected);
        assert_eq!(reg.status.since, 1_000);
        assert_eq!(reg.status.next_attempt_at, Some(31_000));
        assert_eq!(reg.status.last_failure, Some(failure));
        assert_eq!(reg.step, Step::SendAt(now.mono + Duration::from_secs(30)));
    }
}
