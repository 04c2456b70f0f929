//! [`Registration`]: the sans-IO registration client of one line (RFC 3261 §10.2, §22.2,
//! RFC 3263 §4).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mss_auth::DigestClient;
use mss_sip::{HeaderName, Response};
use mss_store::LineRecord;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::lines::backoff::{retry_after_delay, Backoff};
use crate::lines::call_id::{new_branch, CallIdPolicy};
use crate::lines::output::{LineLog, LineOutput, LogLevel};
use crate::lines::request::{build_register, contact_uri, RegisterParts};
use crate::lines::response::{self, MAX_GRANTED_SECS};
use crate::lines::settings::{LineSettings, DEFAULT_EXPIRES};
use crate::lines::state::{LastFailure, LineState, LineStatus};
use crate::lines::targets::{ResolveRequest, Target, Targets};
use crate::Now;

mod answers;

/// The hard floor between two REGISTERs of one line, whatever the provider answers.
pub const MIN_REGISTER_INTERVAL: Duration = Duration::from_secs(1);
/// How long a REGISTER may stay without a final answer before the line treats it as timed
/// out by itself: Timer F (64·T1 = 32 s, RFC 3261 §17.1.2.2) plus a margin, in case the
/// transaction layer's report is lost.
pub const IN_FLIGHT_GUARD: Duration = Duration::from_secs(40);
/// Challenges answered in a row before the line counts the credentials as failed (a `stale`
/// nonce is answered again, RFC 7616 §3.3; a registrar that never accepts is not).
const MAX_AUTH_ROUNDS: u8 = 3;
/// `423`s answered in a row before the line stops raising its expiry and backs off.
const MAX_BRIEF_ROUNDS: u8 = 3;

/// What the line waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The next REGISTER goes out at this instant (or as soon as the floor allows).
    SendAt(Instant),
    /// A lookup is with the caller.
    Resolving,
    /// A REGISTER is in its client transaction.
    InFlight,
    /// Shut down: nothing more to send.
    Done,
}

/// The REGISTER in its client transaction.
#[derive(Debug, Clone)]
struct InFlight {
    call_id: String,
    cseq: u32,
    sent_at: Instant,
    target: Target,
    contact: String,
    expires: u32,
    unregister: bool,
}

/// The registration client of one external line. See the [module docs](crate::lines) for the
/// run loop.
pub struct Registration {
    settings: LineSettings,
    policy: CallIdPolicy,
    digest: DigestClient,
    /// `Authorization` after a `401`, `Proxy-Authorization` after a `407` (RFC 3261 §22.2, §22.3).
    credentials_header: HeaderName,
    targets: Targets,
    step: Step,
    in_flight: Option<InFlight>,
    /// The lifetime asked for; raised by a `423` (RFC 3261 §10.2.8).
    expires: u32,
    backoff: Backoff,
    auth_rounds: u8,
    /// `423`s taken in a row; a registrar that keeps raising `Min-Expires` is not followed
    /// for ever.
    brief_rounds: u8,
    last_sent_at: Option<Instant>,
    registered_until: Option<Instant>,
    shutting_down: bool,
    unregister_sent: bool,
    /// Jitter for timers, reseeded from the caller's RNG at every response, so a seeded test
    /// replays exactly.
    jitter: StdRng,
    status: LineStatus,
    out: VecDeque<LineOutput>,
}

fn unix_at(now: Now, at: Instant) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if at >= now.mono {
        now.unix_ms.saturating_add(ms(at - now.mono))
    } else {
        now.unix_ms.saturating_sub(ms(now.mono - at))
    }
}

/// The state a final failure puts the line in.
fn state_for(code: u16) -> LineState {
    match code {
        403 => LineState::AuthFailed,
        408 | 480 | 500..=599 => LineState::BackingOff,
        _ => LineState::Rejected,
    }
}

impl Registration {
    /// A line about to register: the first [`Registration::poll_output`] asks for the
    /// registrar's address. `persisted` is the line's stored record (`Store::get_line`):
    /// with it, the line continues its Call-ID above the last CSeq sent, and an `auto` line
    /// that had switched to fresh Call-IDs stays switched (logged at start).
    pub fn new(
        settings: LineSettings,
        persisted: Option<LineRecord>,
        now: Now,
        rng: &mut dyn RngCore,
    ) -> Registration {
        let policy = CallIdPolicy::new(
            &settings.name,
            settings.call_id_mode,
            persisted.as_ref(),
            rng,
        );
        let mut out = VecDeque::new();
        if let Some(message) = policy.restored_note(&settings.name) {
            let level = LogLevel::Info;
            out.push_back(LineOutput::Log(LineLog { level, message }));
        }
        let expires = if settings.expires == 0 || settings.expires > MAX_GRANTED_SECS {
            out.push_back(LineOutput::Log(LineLog {
                level: LogLevel::Warn,
                message: format!(
                    "expires = {} is not usable for a registration; asking for {DEFAULT_EXPIRES}",
                    settings.expires
                ),
            }));
            DEFAULT_EXPIRES
        } else {
            settings.expires
        };
        let status = LineStatus {
            state: LineState::Registering,
            since: now.unix_ms,
            expires_at: None,
            next_attempt_at: Some(now.unix_ms),
            call_id_mode: policy.in_use(),
            last_failure: None,
            notice: None,
        };
        let backoff = Backoff::new(settings.retry_min, settings.retry_max);
        Registration {
            digest: DigestClient::new(settings.username(), &settings.password),
            settings,
            policy,
            credentials_header: HeaderName::Authorization,
            targets: Targets::default(),
            step: Step::SendAt(now.mono),
            in_flight: None,
            expires,
            backoff,
            auth_rounds: 0,
            brief_rounds: 0,
            last_sent_at: None,
            registered_until: None,
            shutting_down: false,
            unregister_sent: false,
            jitter: StdRng::seed_from_u64(rng.next_u64()),
            status,
            out,
        }
    }

    /// The line's status, for the admin API.
    pub fn status(&self) -> &LineStatus {
        &self.status
    }

    /// The line's settings.
    pub fn settings(&self) -> &LineSettings {
        &self.settings
    }

    /// The registrar address the line registers at now (the lookup's current target),
    /// `None` before a lookup answered or after every target failed. Requests the provider
    /// sends to the line come from there (the caller tells them from other peers by it).
    pub fn target(&self) -> Option<&Target> {
        self.targets.current()
    }

    /// True once shut down and the un-REGISTER (if any) is answered: drop the machine.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done && self.out.is_empty()
    }

    /// The next thing to do, `None` when nothing is due now. Call until `None` after every
    /// `handle_*`. A REGISTER is built here (with randomness from `rng`: Call-ID, tags,
    /// branch, cnonce), never sooner than [`MIN_REGISTER_INTERVAL`] after the previous one.
    pub fn poll_output(&mut self, now: Now, rng: &mut dyn RngCore) -> Option<LineOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        let Step::SendAt(at) = self.step else {
            return None;
        };
        if now.mono < self.due(at) {
            return None;
        }
        if self.targets.is_empty() {
            self.step = Step::Resolving;
            return Some(LineOutput::Resolve(ResolveRequest::new(
                &self.settings.registrar_host,
                self.settings.port,
                self.settings.transport,
            )));
        }
        self.send(now, rng);
        self.out.pop_front()
    }

    /// When [`Registration::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let step = match self.step {
            Step::SendAt(at) => Some(self.due(at)),
            Step::InFlight => self.in_flight.as_ref().map(|f| f.sent_at + IN_FLIGHT_GUARD),
            Step::Resolving | Step::Done => None,
        };
        match (step, self.registered_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drives the line's own deadlines (safe to call at any time): a registration whose
    /// expiry passed is forgotten, and a REGISTER without an answer after
    /// [`IN_FLIGHT_GUARD`] counts as timed out. Due REGISTERs come out of
    /// [`Registration::poll_output`].
    pub fn handle_timeout(&mut self, now: Now) {
        if let Some(until) = self.registered_until {
            if now.mono >= until {
                self.registered_until = None;
                self.status.expires_at = None;
                if self.status.state == LineState::Online {
                    self.set_state(now, LineState::Registering);
                }
            }
        }
        if let Some(f) = &self.in_flight {
            if now.mono >= f.sent_at + IN_FLIGHT_GUARD {
                self.handle_transaction_timeout(now);
            }
        }
    }

    /// The lookup asked for by [`LineOutput::Resolve`] finished: `targets` in the order to
    /// try (SRV priority and weight applied by the caller), empty when it failed.
    pub fn handle_resolved(&mut self, now: Now, targets: Vec<Target>) {
        if self.step != Step::Resolving {
            return;
        }
        if targets.is_empty() {
            let delay = self.backoff.next_delay(&mut self.jitter);
            let failure = LastFailure {
                code: None,
                reason: format!("no address for {}", self.settings.registrar_host),
                p_registrar_error: None,
            };
            self.fail(now, LineState::Unreachable, failure, delay);
            self.after_final(now);
            return;
        }
        self.targets.set(targets);
        self.schedule(now, now.mono);
    }

    /// The REGISTER's client transaction timed out (Timer F) or its transport failed:
    /// like a `408` from the target (RFC 3261 §8.1.3.1), so the next target is tried
    /// (RFC 3263 §4.3); with none left the line is `unreachable` and retries with backoff.
    pub fn handle_transaction_timeout(&mut self, now: Now) {
        self.unanswered(now, |target| LastFailure {
            code: Some(408),
            reason: format!("no answer from {} (transaction timeout)", target.addr),
            p_registrar_error: None,
        });
    }

    /// The REGISTER never reached its target: the connection to it failed before anything
    /// was sent (`reason` says why, e.g. the TLS certificate was refused: unknown issuer,
    /// name mismatch, expired). As a transaction timeout (the next target is tried; with
    /// none left the line is `unreachable` and retries with backoff), except that the
    /// line's last failure carries `reason` and no status code.
    pub fn handle_transport_error(&mut self, now: Now, reason: &str) {
        self.unanswered(now, |target| LastFailure {
            code: None,
            reason: format!("{} to {}: {reason}", target.transport, target.addr),
            p_registrar_error: None,
        });
    }

    fn unanswered(&mut self, now: Now, failure: impl FnOnce(&Target) -> LastFailure) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        if f.unregister {
            self.finish(now);
            return;
        }
        let failure = failure(&f.target);
        self.fail_over_or_fail(now, LineState::Unreachable, failure, None);
        self.after_final(now);
    }

    /// A response of the REGISTER's client transaction. Provisional ones are ignored, as are
    /// answers that do not match the REGISTER in flight (CSeq and Call-ID).
    pub fn handle_response(&mut self, now: Now, rsp: &Response, rng: &mut dyn RngCore) {
        let Some(f) = &self.in_flight else {
            return;
        };
        let h = rsp.headers();
        let ours =
            h.cseq().is_ok_and(|c| c.seq == f.cseq) && h.call_id().is_ok_and(|c| c == f.call_id);
        if !ours {
            self.log(
                LogLevel::Info,
                "ignored an answer that is not for the REGISTER in flight".to_owned(),
            );
            return;
        }
        let code = rsp.status().as_u16();
        if code < 200 {
            return;
        }
        let Some(f) = self.in_flight.take() else {
            return;
        };
        self.jitter = StdRng::seed_from_u64(rng.next_u64());
        if f.unregister {
            self.unregister_answered(now, rsp, code);
            return;
        }
        match code {
            200..=299 => self.registered(now, rsp, &f),
            401 | 407 => {
                if let Err(why) = self.answer_challenge(rsp, code) {
                    let mut failure = response::failure(rsp);
                    failure.reason = format!("{} ({why})", failure.reason);
                    let delay = self.backoff.next_delay(&mut self.jitter);
                    self.fail(now, LineState::AuthFailed, failure, delay);
                } else {
                    self.schedule(now, now.mono);
                }
            }
            423 => self.interval_too_brief(now, rsp),
            400 | 500 if self.is_cseq_complaint(rsp) => self.cseq_rejected(now, rsp),
            408 | 503 => {
                let retry_after = response::retry_after(rsp);
                self.fail_over_or_fail(now, state_for(code), response::failure(rsp), retry_after);
            }
            _ => {
                let delay = self.retry_delay(response::retry_after(rsp));
                self.fail(now, state_for(code), response::failure(rsp), delay);
            }
        }
        self.after_final(now);
    }

    /// Stops the line: the next REGISTER is an un-REGISTER (`Expires: 0` for our Contact,
    /// RFC 3261 §10.2.2) when the line is registered, then the line is `offline` and
    /// [`Registration::is_done`]. A REGISTER in flight is answered first.
    pub fn shutdown(&mut self, now: Now) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        match self.step {
            Step::InFlight | Step::Done => {}
            Step::SendAt(_) | Step::Resolving => {
                if self.registered_until.is_some() && !self.targets.is_empty() {
                    self.schedule(now, now.mono);
                } else {
                    self.finish(now);
                }
            }
        }
    }

    // ---- internals ----

    /// `at`, or later when the floor between REGISTERs demands it.
    fn due(&self, at: Instant) -> Instant {
        match self.last_sent_at {
            Some(last) => at.max(last + MIN_REGISTER_INTERVAL),
            None => at,
        }
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.out
            .push_back(LineOutput::Log(LineLog { level, message }));
    }

    fn set_state(&mut self, now: Now, state: LineState) {
        if self.status.state != state {
            self.status.state = state;
            self.status.since = now.unix_ms;
            self.out
                .push_back(LineOutput::StateChanged(self.status.clone()));
        }
    }

    fn schedule(&mut self, now: Now, at: Instant) {
        self.step = Step::SendAt(at);
        self.status.next_attempt_at = Some(unix_at(now, self.due(at)));
    }

    fn retry_delay(&mut self, retry_after: Option<u32>) -> Duration {
        match retry_after {
            // RFC 3261 §20.33: do not retry before the time asked.
            Some(secs) => retry_after_delay(secs, &mut self.jitter),
            None => self.backoff.next_delay(&mut self.jitter),
        }
    }

    fn send(&mut self, now: Now, rng: &mut dyn RngCore) {
        let Some(target) = self.targets.current().copied() else {
            // Nothing resolved: the next poll asks for a lookup.
            self.targets.clear();
            self.step = Step::SendAt(now.mono);
            return;
        };
        let unregister = self.shutting_down;
        let expires = if unregister { 0 } else { self.expires };
        let ids = self.policy.next(rng);
        self.out.push_back(LineOutput::Persist(
            self.policy.record(&self.settings.name, now.unix_ms),
        ));
        let uri = self.settings.request_uri();
        let credentials = match self.digest.authorize("REGISTER", &uri, rng) {
            Ok(Some(value)) => Some((self.credentials_header.clone(), value)),
            Ok(None) => None,
            Err(e) => {
                self.log(LogLevel::Warn, format!("cannot compute credentials: {e}"));
                None
            }
        };
        let branch = new_branch(rng);
        let request = build_register(&RegisterParts {
            settings: &self.settings,
            target: &target,
            ids: &ids,
            branch: &branch,
            expires,
            credentials,
        });
        self.in_flight = Some(InFlight {
            call_id: ids.call_id,
            cseq: ids.cseq,
            sent_at: now.mono,
            target,
            contact: contact_uri(&self.settings, &target),
            expires,
            unregister,
        });
        self.unregister_sent |= unregister;
        self.last_sent_at = Some(now.mono);
        self.status.next_attempt_at = None;
        self.step = Step::InFlight;
        self.out.push_back(LineOutput::Send {
            request: Box::new(request),
            target,
        });
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("line", &self.settings.name)
            .field("step", &self.step)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::sim::{settings, target};

    #[test]
    fn unix_at_maps_instants_both_ways() {
        let now = Now::new(Instant::now(), 10_000);
        assert_eq!(unix_at(now, now.mono + Duration::from_millis(1500)), 11_500);
        let later = now.after(Duration::from_secs(5));
        assert_eq!(unix_at(later, now.mono), 10_000);
    }

    #[test]
    fn failure_states_by_code() {
        assert_eq!(state_for(403), LineState::AuthFailed);
        assert_eq!(state_for(480), LineState::BackingOff);
        assert_eq!(state_for(503), LineState::BackingOff);
        assert_eq!(state_for(404), LineState::Rejected);
        assert_eq!(state_for(603), LineState::Rejected);
    }

    #[test]
    fn starts_by_resolving_and_respects_the_floor() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Now::new(Instant::now(), 0);
        let mut s = settings();
        s.expires = 0;
        let mut reg = Registration::new(s, None, now, &mut rng);
        assert!(matches!(
            reg.poll_output(now, &mut rng),
            Some(LineOutput::Log(_))
        ));
        assert_eq!(reg.status().state, LineState::Registering);
        assert_eq!(reg.poll_timeout(), Some(now.mono));
        let Some(LineOutput::Resolve(r)) = reg.poll_output(now, &mut rng) else {
            panic!("no lookup first");
        };
        assert!(r.srv);
        assert_eq!(reg.poll_timeout(), None);
        assert!(reg.poll_output(now, &mut rng).is_none());
        assert_eq!(reg.target(), None);
        reg.handle_resolved(now, vec![target(1)]);
        assert_eq!(reg.target(), Some(&target(1)));
        assert!(matches!(
            reg.poll_output(now, &mut rng),
            Some(LineOutput::Persist(_))
        ));
        let Some(LineOutput::Send { request, .. }) = reg.poll_output(now, &mut rng) else {
            panic!("no REGISTER");
        };
        assert_eq!(request.headers().expires().unwrap(), Some(DEFAULT_EXPIRES));
        assert_eq!(reg.poll_timeout(), Some(now.mono + IN_FLIGHT_GUARD));
        // A transport error right away: the retry waits for backoff, and at least 1 s.
        reg.handle_transaction_timeout(now);
        assert_eq!(reg.status().state, LineState::Unreachable);
        let due = reg.poll_timeout().unwrap();
        assert!(due >= now.mono + MIN_REGISTER_INTERVAL);
        assert!(reg.poll_output(now, &mut rng).is_some()); // StateChanged
        assert!(reg.poll_output(now, &mut rng).is_none());
    }

    /// Runs the line up to its first REGISTER towards `targets`.
    fn sent(targets: Vec<Target>) -> (Registration, Now, StdRng) {
        let mut rng = StdRng::seed_from_u64(2);
        let now = Now::new(Instant::now(), 0);
        let mut reg = Registration::new(settings(), None, now, &mut rng);
        while reg.poll_output(now, &mut rng).is_some() {}
        reg.handle_resolved(now, targets);
        while let Some(out) = reg.poll_output(now, &mut rng) {
            if matches!(out, LineOutput::Send { .. }) {
                break;
            }
        }
        (reg, now, rng)
    }

    #[test]
    fn a_transport_error_fails_over_then_makes_the_line_unreachable_with_its_reason() {
        let (mut reg, now, mut rng) = sent(vec![target(1), target(2)]);
        reg.handle_transport_error(now, "certificate name mismatch: not valid for x.test");
        assert_eq!(reg.target(), Some(&target(2)));
        assert_ne!(reg.status().state, LineState::Unreachable);
        let later = now.after(MIN_REGISTER_INTERVAL);
        let mut sent_again = false;
        while let Some(out) = reg.poll_output(later, &mut rng) {
            sent_again |= matches!(out, LineOutput::Send { .. });
        }
        assert!(sent_again, "the next target is tried");
        reg.handle_transport_error(later, "certificate of x.test expired");
        let status = reg.status();
        assert_eq!(status.state, LineState::Unreachable);
        let failure = status.last_failure.clone().unwrap();
        assert_eq!(failure.code, None);
        assert_eq!(
            failure.reason,
            "UDP to 192.0.2.2:5060: certificate of x.test expired"
        );
        // Nothing in flight any more: a second report changes nothing.
        reg.handle_transport_error(later, "again");
        assert_eq!(reg.status().last_failure, Some(failure));
    }
}
