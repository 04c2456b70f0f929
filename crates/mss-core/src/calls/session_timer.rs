//! Session timers in calls (RFC 4028), each leg negotiated on its own:
//!
//! - A leg (mss is UAS, §9): an INVITE whose `Session-Expires` is below mss's `Min-SE`
//!   gets `422` + `Min-SE` when the caller supports `timer` (else the interval is raised);
//!   the `2xx` carries the negotiated `Session-Expires` (refresher `uas`, mss, unless the
//!   caller chose) and `Require: timer` when the caller supports it.
//! - B legs (mss is UAC, §7): mss's INVITE offers `Supported: timer`,
//!   `Session-Expires: <interval>;refresher=uac` and `Min-SE`; the `2xx` decides (no
//!   `Session-Expires`: no timer on that leg); a `422` is retried once with the `Min-SE` it
//!   names (§7.4).
//! - On a leg where mss refreshes, it sends its refresh at half the interval: `UPDATE`
//!   without body when the peer allows it, else a re-INVITE with the session description
//!   mss last sent on that leg (the same `o=` version: no new offer, §7.4). Any `2xx` to a
//!   re-INVITE or UPDATE on the leg, either way, restarts the interval.
//! - On a leg where the peer refreshes and no refresh comes before the interval less
//!   min(32 s, interval/3) (§10), or when mss's refresh fails with `408`/`481` or no
//!   answer: BYE on both legs, the call ended by mss.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_dialog::DialogId;
use mss_dialog::{
    expiry_after, min_se_header, negotiate_uas, negotiated_by_2xx, refresh_after, Refresher,
    ResponseEffect, ResponseOutcome, SessionExpires, TimerPolicy, UasTimer,
    SESSION_INTERVAL_TOO_SMALL,
};
use mss_services::Now;
use mss_sip::{HeaderName, Method, Request, Response};
use mss_store::EndedBy;

use super::outgoing::copy_body_request;
use super::{CallClient, CallKey, HashMap};
use crate::core::Core;

/// How long a refresh waits when the leg has an INVITE in progress, or after a refresh
/// that failed with a response that allows another try.
const REFRESH_RETRY: Duration = Duration::from_secs(2);

/// The session timer of one leg.
#[derive(Debug, Clone)]
pub(crate) struct LegTimer {
    /// The call.
    key: CallKey,
    /// The session interval, in seconds.
    interval: u32,
    /// mss refreshes (else the peer does).
    we_refresh: bool,
    /// The peer listed `UPDATE` in its `Allow`.
    allows_update: bool,
    /// When the interval last started (the `2xx` of the last refresh).
    refreshed_at: Instant,
    /// mss's refresh is on its way.
    in_flight: bool,
    /// A refresh that failed waits until then.
    retry_at: Option<Instant>,
    /// The session description mss last sent on this leg, for a re-INVITE refresh.
    body: Option<(Bytes, Bytes)>,
}

impl LegTimer {
    /// When something is due: mss's refresh, or the end of the session.
    fn deadline(&self) -> Instant {
        let interval = Duration::from_secs(u64::from(self.interval));
        if !self.we_refresh {
            return self.refreshed_at + expiry_after(self.interval);
        }
        let end = self.refreshed_at + interval;
        if self.in_flight {
            return end;
        }
        self.retry_at
            .unwrap_or(self.refreshed_at + refresh_after(self.interval))
            .min(end)
    }
}

/// Every leg's session timer, with a heap of deadlines (stale entries skipped).
#[derive(Debug, Default)]
pub(crate) struct SessionTimers {
    legs: HashMap<DialogId, LegTimer>,
    heap: BinaryHeap<Reverse<(Instant, DialogId)>>,
}

impl SessionTimers {
    /// An empty set with the call table's hasher.
    pub(crate) fn new(hasher: ahash::RandomState) -> SessionTimers {
        SessionTimers {
            legs: HashMap::with_hasher(hasher),
            heap: BinaryHeap::new(),
        }
    }

    fn set(&mut self, id: DialogId, timer: LegTimer) {
        self.heap.push(Reverse((timer.deadline(), id.clone())));
        self.legs.insert(id, timer);
    }

    fn reschedule(&mut self, id: &DialogId) {
        if let Some(t) = self.legs.get(id) {
            self.heap.push(Reverse((t.deadline(), id.clone())));
        }
    }

    /// Dialog `id` now belongs to call `key` (a transfer joined it to another call, or an
    /// INVITE with Replaces made it a call's leg): its expiry ends that call.
    pub(crate) fn move_to_call(&mut self, id: &DialogId, key: CallKey) {
        if let Some(t) = self.legs.get_mut(id) {
            t.key = key;
        }
    }

    /// Forgets the timer of dialog `id` (its dialog is gone).
    pub(crate) fn remove(&mut self, id: &DialogId) {
        self.legs.remove(id);
        self.prune();
    }

    /// How many legs have a timer (for tests: nothing may be left).
    pub(crate) fn len(&self) -> usize {
        self.legs.len()
    }

    fn prune(&mut self) {
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if self.legs.get(id).is_some_and(|t| t.deadline() == *at) {
                break;
            }
            self.heap.pop();
        }
    }

    /// The next deadline.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The legs whose deadline is due at `now`, taken off the heap.
    fn due(&mut self, now: Instant) -> Vec<DialogId> {
        let mut ids = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().cloned() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.legs.get(&id).is_some_and(|t| t.deadline() == at) && !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.prune();
        ids
    }
}

/// The Content-Type and body of a message, `None` without body.
pub(crate) fn body_of(headers: &mss_sip::Headers, body: &Bytes) -> Option<(Bytes, Bytes)> {
    if body.is_empty() {
        return None;
    }
    let ct = headers.get(&HeaderName::ContentType).map_or_else(
        || Bytes::from_static(b"application/sdp"),
        Bytes::copy_from_slice,
    );
    Some((ct, body.clone()))
}

fn allows_update(headers: &mss_sip::Headers) -> bool {
    headers
        .allow()
        .is_ok_and(|m| m.iter().any(|x| x.eq_ignore_ascii_case("UPDATE")))
}

impl Core {
    /// mss's session-timer policy.
    fn timer_policy(&self) -> TimerPolicy {
        TimerPolicy::new(
            self.calls.settings.session_expires,
            self.calls.settings.min_se,
        )
    }

    /// The session-timer check of a new INVITE (RFC 4028 §9): `Err` with the answer when
    /// it asks for less than mss's `Min-SE` (`422` + `Min-SE`) or its `Session-Expires` or
    /// `Min-SE` does not parse (`400`).
    pub(crate) fn check_session_expires(&self, req: &Request) -> Result<(), Box<Response>> {
        match negotiate_uas(req.headers(), self.timer_policy()) {
            Ok(UasTimer::TooSmall { min_se }) => {
                let mut rsp = self.answer.response(
                    req,
                    SESSION_INTERVAL_TOO_SMALL,
                    "Session Interval Too Small",
                );
                rsp.headers_mut().push(min_se_header(), min_se.to_string());
                Err(Box::new(rsp))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(Box::new(self.answer.response(
                req,
                e.status_code(),
                e.reason_phrase(),
            ))),
        }
    }

    /// Adds mss's session-timer offer to a B leg's INVITE (RFC 4028 §7.1): `Supported`,
    /// `Session-Expires` with refresher `uac` (mss), `Min-SE`.
    pub(crate) fn add_session_offer(&self, invite: &mut Request) {
        let policy = self.timer_policy();
        Self::add_supported(invite);
        let se = SessionExpires {
            delta: policy.interval,
            refresher: Some(Refresher::Uac),
        };
        let h = invite.headers_mut();
        h.replace(HeaderName::SessionExpires, se.value());
        h.replace(min_se_header(), policy.min_se.to_string());
    }

    /// mss answers `request` (the caller's INVITE, or a re-INVITE or UPDATE of the peer of
    /// dialog `id`) with the `2xx` `rsp` on `side` of call `key`: the negotiated
    /// `Session-Expires` (and `Require: timer`) go into it and the leg's interval starts
    /// again (RFC 4028 §9).
    pub(crate) fn session_timer_answer(
        &mut self,
        now: Now,
        key: CallKey,
        id: &DialogId,
        request: &Request,
        rsp: &mut Response,
    ) {
        let policy = self.timer_policy();
        let negotiated = match negotiate_uas(request.headers(), policy) {
            Ok(UasTimer::Use { expires, require }) => Some((expires, require)),
            // A peer that does not support timers sends a re-INVITE without them: the
            // interval mss chose at the start goes on, mss refreshing (§9, Table 2).
            Ok(UasTimer::Off) => self.calls.session_timers.legs.get(id).map(|t| {
                (
                    SessionExpires {
                        delta: t.interval,
                        refresher: Some(Refresher::Uas),
                    },
                    false,
                )
            }),
            Ok(UasTimer::TooSmall { .. }) | Err(_) => None,
        };
        let Some((expires, require)) = negotiated else {
            return;
        };
        let h = rsp.headers_mut();
        h.replace(HeaderName::SessionExpires, expires.value());
        if require {
            h.replace(HeaderName::Require, "timer");
        }
        let body = body_of(rsp.headers(), rsp.body());
        let old = self.calls.session_timers.legs.get(id).cloned();
        let timer = LegTimer {
            key,
            interval: expires.delta,
            we_refresh: expires.refresher == Some(Refresher::Uas),
            allows_update: allows_update(request.headers())
                || old.as_ref().is_some_and(|t| t.allows_update),
            refreshed_at: now.mono,
            in_flight: false,
            retry_at: None,
            body: body.or(old.and_then(|t| t.body)),
        };
        self.calls.session_timers.set(id.clone(), timer);
    }

    /// A `2xx` to mss's INVITE, re-INVITE or UPDATE in dialog `id` (`side` of call `key`;
    /// `sent` is the session description mss sent with the request, if any): the leg's
    /// timer follows its `Session-Expires` (RFC 4028 §7.2), none turns it off.
    pub(crate) fn session_timer_2xx(
        &mut self,
        now: Now,
        key: CallKey,
        id: &DialogId,
        rsp: &Response,
        sent: Option<(Bytes, Bytes)>,
    ) {
        let expires = match negotiated_by_2xx(rsp.headers()) {
            Ok(Some(se)) => se,
            Ok(None) => {
                self.calls.session_timers.remove(id);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "Session-Expires of a 2xx ignored");
                return;
            }
        };
        let old = self.calls.session_timers.legs.get(id).cloned();
        let timer = LegTimer {
            key,
            interval: expires.delta,
            we_refresh: expires.refresher == Some(Refresher::Uac),
            allows_update: allows_update(rsp.headers())
                || old.as_ref().is_some_and(|t| t.allows_update),
            refreshed_at: now.mono,
            in_flight: false,
            retry_at: None,
            body: sent.or(old.and_then(|t| t.body)),
        };
        self.calls.session_timers.set(id.clone(), timer);
    }

    /// mss sent `request` (an ACK with the answer to a delayed offer) in dialog `id`: its
    /// session description is what a re-INVITE refresh of that leg repeats.
    pub(crate) fn session_timer_sent(&mut self, id: &DialogId, request: &Request) {
        if let (Some(t), Some(body)) = (
            self.calls.session_timers.legs.get_mut(id),
            body_of(request.headers(), request.body()),
        ) {
            t.body = Some(body);
        }
    }

    /// Adds the leg's session timer to a re-INVITE or UPDATE mss sends in dialog `id`
    /// (RFC 4028 §7.4: the same interval, the refresher as it is).
    pub(crate) fn add_session_refresh(&self, id: &DialogId, request: &mut Request) {
        let Some(t) = self.calls.session_timers.legs.get(id) else {
            return;
        };
        let policy = self.timer_policy();
        Self::add_supported(request);
        let se = SessionExpires {
            delta: t.interval.max(policy.min_se),
            refresher: Some(if t.we_refresh {
                Refresher::Uac
            } else {
                Refresher::Uas
            }),
        };
        let h = request.headers_mut();
        h.replace(HeaderName::SessionExpires, se.value());
        h.replace(min_se_header(), policy.min_se.to_string());
    }

    /// A `422` to B leg `leg`'s INVITE: sent again once with the `Min-SE` it names as
    /// interval (RFC 4028 §7.3, §7.4); false when it cannot be (no usable `Min-SE`, or
    /// the INVITE asked for that much already).
    pub(crate) fn retry_after_422(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        rsp: &Response,
    ) -> bool {
        let Ok(Some(their_min)) = mss_dialog::min_se(rsp.headers()) else {
            return false;
        };
        let Some(b) = self.calls.table.get(&key).and_then(|c| c.leg(leg)) else {
            return false;
        };
        let asked = mss_dialog::session_expires(b.invite.headers())
            .ok()
            .flatten()
            .map_or(0, |se| se.delta);
        if their_min <= asked || their_min > 86_400 {
            return false;
        }
        let (invite, flow) = (b.invite.clone(), b.flow);
        let Some(mut next) =
            super::outgoing::next_attempt(&invite, &self.calls.branch_prefix, &mut self.rng)
        else {
            return false;
        };
        let se = SessionExpires {
            delta: their_min,
            refresher: Some(Refresher::Uac),
        };
        let h = next.headers_mut();
        h.replace(HeaderName::SessionExpires, se.value());
        h.replace(min_se_header(), their_min.to_string());
        tracing::info!(
            leg,
            min_se = their_min,
            "422 from the callee's side: INVITE again"
        );
        self.resend_b_invite(now, key, leg, next, flow)
    }

    /// Runs the session timers due at `now`: mss's refreshes, and sessions whose peer did
    /// not refresh in time.
    pub(crate) fn session_timers_on_timeout(&mut self, now: Now) {
        for id in self.calls.session_timers.due(now.mono) {
            // An earlier one of these may have moved this deadline (a refresh sent).
            let Some(t) = self
                .calls
                .session_timers
                .legs
                .get(&id)
                .filter(|t| t.deadline() <= now.mono)
                .cloned()
            else {
                continue;
            };
            let end = t.refreshed_at + Duration::from_secs(u64::from(t.interval));
            let expired = if t.we_refresh { now.mono >= end } else { true };
            if expired {
                self.session_expired(now, &id, t.key);
            } else {
                self.send_refresh(now, &id, t);
            }
        }
    }

    /// The session of dialog `id` expired: BYE on both legs (RFC 4028 §10).
    fn session_expired(&mut self, now: Now, id: &DialogId, key: CallKey) {
        tracing::info!(
            call = ?self.calls.table.get(&key).map(|c| c.record.id.clone()),
            "session expired: no refresh in time (RFC 4028 §10); ending the call"
        );
        self.calls.session_timers.remove(id);
        if self.calls.table.contains_key(&key) {
            self.hang_up(now, key, None, EndedBy::Mss);
        } else {
            self.send_bye(now, id);
        }
    }

    /// Sends mss's refresh in dialog `id` (RFC 4028 §7.4, §10).
    fn send_refresh(&mut self, now: Now, id: &DialogId, t: LegTimer) {
        let Some(flow) = self.flow_of_dialog(id) else {
            self.calls.session_timers.remove(id);
            return;
        };
        let method = if t.allows_update || t.body.is_none() {
            Method::Update
        } else {
            Method::Invite
        };
        let request = match self.dialogs.request(id, method.clone(), &mut self.rng) {
            Ok(mut r) => {
                if method == Method::Invite {
                    if let Some((ct, body)) = &t.body {
                        let mut h = mss_sip::Headers::new();
                        h.push(HeaderName::ContentType, ct.clone());
                        copy_body_request(&h, body, &mut r);
                    }
                }
                r
            }
            Err(e) => {
                // An INVITE in progress (it refreshes the session itself when answered)
                // or a glare wait: try again shortly.
                tracing::debug!(error = %e, "session refresh waits");
                if let Some(leg) = self.calls.session_timers.legs.get_mut(id) {
                    leg.retry_at = Some(now.mono + REFRESH_RETRY);
                }
                self.calls.session_timers.reschedule(id);
                return;
            }
        };
        let mut request = request;
        self.add_session_refresh(id, &mut request);
        let sent = self.call_send(
            now,
            request,
            flow,
            CallClient::Refresh {
                key: t.key,
                dialog: id.clone(),
            },
        );
        if let Some(leg) = self.calls.session_timers.legs.get_mut(id) {
            leg.in_flight = sent.is_some();
            leg.retry_at = None;
            if sent.is_none() {
                leg.retry_at = Some(now.mono + REFRESH_RETRY);
            }
        }
        self.calls.session_timers.reschedule(id);
    }

    /// The final answer (or `None`: no answer) to mss's refresh in dialog `dialog`.
    pub(crate) fn on_refresh_response(
        &mut self,
        now: Now,
        key: CallKey,
        dialog: &DialogId,
        response: Option<Response>,
    ) {
        let Some(rsp) = response else {
            // §10: a refresh that times out ends the session.
            self.session_expired(now, dialog, key);
            return;
        };
        let status = rsp.status().as_u16();
        let outcome = self.dialogs.handle_response(now.mono, &rsp, &mut self.rng);
        self.drain_dialogs(now);
        let method = rsp.headers().cseq().map(|c| c.method).ok();
        match outcome {
            Ok(ResponseOutcome::Applied {
                effect: ResponseEffect::AckNeeded { cseq, .. },
                ..
            }) => {
                if let Err(e) = self.dialogs.ack(dialog, cseq, &mut self.rng) {
                    tracing::debug!(error = %e, "ACK of the refresh not sent");
                }
                self.drain_dialogs(now);
            }
            Ok(ResponseOutcome::Applied {
                effect: ResponseEffect::Terminated,
                ..
            }) => {
                self.session_expired(now, dialog, key);
                return;
            }
            _ => {}
        }
        let Some(t) = self.calls.session_timers.legs.get_mut(dialog) else {
            return;
        };
        t.in_flight = false;
        if (200..300).contains(&status) {
            let sent = t.body.clone();
            self.session_timer_2xx(now, key, dialog, &rsp, sent);
            return;
        }
        if matches!(status, 405 | 501) && method == Some(Method::Update) && t.body.is_some() {
            // The peer takes no UPDATE after all: a re-INVITE next time, now.
            t.allows_update = false;
            t.retry_at = Some(now.mono);
        } else {
            // §10: follow the response's rules and try again, but not without end: the
            // session still expires at its time.
            t.retry_at = Some(now.mono + REFRESH_RETRY.max(refresh_after(t.interval) / 4));
        }
        self.calls.session_timers.reschedule(dialog);
    }
}
