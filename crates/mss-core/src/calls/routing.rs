//! Where a call rings, stage by stage (DESIGN §8): a user's devices, a group's members,
//! the lines; and the forwards that move it on.
//!
//! - A user: `forward_always` first; at its `max_calls` it counts as busy; no registered
//!   device → `forward_unreachable` or `480`; else every device rings, for
//!   `no_answer_timeout` when `forward_no_answer` is set. Every device busy (`486`/`600`)
//!   → `forward_busy`. A forward sends `181 Call Is Being Forwarded` with `Call-Info`
//!   naming the user to the caller, marks the record `forwarded_from`, and a call that
//!   then goes out through a line carries `Diversion` (RFC 5806). A user reached twice in
//!   one call is a loop: `482`.
//! - A group: members with a registered device and no call in progress; none → `480`.
//!   `ring_all` rings all at once for `ring_timeout`; `linear` one after another, each for
//!   `ring_timeout`; `circular` the same, starting after the member who answered last.
//! - Out: the number needs the `call_level` of the user it is dialled for (`403` with the
//!   reason in words otherwise); then the online outgoing lines in order (`start.rs`).

use std::time::Duration;

use bytes::Bytes;
use mss_services::Now;
use mss_sip::{HeaderName, StatusCode};

use super::admission::Target;
use super::model::{BState, CallState, Stage};
use super::CallKey;
use crate::core::Core;
use crate::messaging::contact_targets;

/// Forwards one call may take before it is refused as a loop (beside the repeated-user
/// check): a chain of groups and numbers cannot go on for ever either.
const MAX_FORWARDS: usize = 10;

/// `Diversion` reasons (RFC 5806 §4).
const UNCONDITIONAL: &str = "unconditional";
const USER_BUSY: &str = "user-busy";
const NO_ANSWER: &str = "no-answer";
const UNAVAILABLE: &str = "unavailable";
const DEFLECTION: &str = "deflection";

impl Core {
    /// Sends call `key` to `target`.
    pub(crate) fn route_to(&mut self, now: Now, key: CallKey, target: Target) {
        match target {
            Target::User(user) => self.ring_user(now, key, user),
            Target::Group(group) => self.ring_group(now, key, group),
            Target::Out(number) => self.go_out(now, key, number),
        }
    }

    /// The stage of user `user` (see the module docs).
    fn ring_user(&mut self, now: Now, key: CallKey, user: String) {
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        if call.chain.contains(&user) || call.chain.len() > MAX_FORWARDS {
            tracing::info!(%user, chain = ?call.chain, "forward loop");
            self.fail_call(now, key, StatusCode::LOOP_DETECTED, "Loop Detected");
            return;
        }
        call.chain.push(user.clone());
        let rules = self.calls.settings.user(&user);
        if let Some(to) = rules.forward_always {
            self.forward_call(now, key, &user, UNCONDITIONAL, &to);
            return;
        }
        let is_caller = self
            .calls
            .table
            .get(&key)
            .is_some_and(|c| c.caller_user.as_deref() == Some(user.as_str()));
        if !is_caller && !self.calls.take_user_slot(&user) {
            tracing::info!(%user, "the callee is at its max_calls");
            match rules.forward_busy {
                Some(to) => self.forward_call(now, key, &user, USER_BUSY, &to),
                None => self.fail_call(now, key, StatusCode::BUSY_HERE, "Busy Here"),
            }
            return;
        }
        if !is_caller {
            if let Some(call) = self.calls.table.get_mut(&key) {
                call.slots.push(user.clone());
            }
        }
        let contacts = contact_targets(&self.directory.location, &*self.network, &user, now);
        if contacts.is_empty() {
            tracing::info!(%user, "call to a user with no registered device");
            match rules.forward_unreachable {
                Some(to) => self.forward_call(now, key, &user, UNAVAILABLE, &to),
                None => self.fail_call(
                    now,
                    key,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "Temporarily Unavailable",
                ),
            }
            return;
        }
        let ring = match rules.forward_no_answer {
            Some(_) => rules
                .no_answer_timeout
                .unwrap_or(super::DEFAULT_NO_ANSWER_TIMEOUT),
            None => self.calls.settings.ring_timeout,
        };
        self.begin_stage(now, key, Stage::User(user.clone()), ring);
        let mut started = 0;
        for contact in &contacts {
            if self.start_device_leg(now, key, &user, contact) {
                started += 1;
            }
        }
        if started == 0 {
            self.stage_failed(now, key);
        }
    }

    /// The stage of group `group` (see the module docs).
    fn ring_group(&mut self, now: Now, key: CallKey, group: String) {
        let Some(settings) = self.calls.settings.groups.get(&group).cloned() else {
            self.fail_call(now, key, StatusCode::NOT_FOUND, "Not Found");
            return;
        };
        let chain = self
            .calls
            .table
            .get(&key)
            .map(|c| c.chain.clone())
            .unwrap_or_default();
        let available: Vec<String> = settings
            .members
            .iter()
            .filter(|m| !chain.contains(m))
            .filter(|m| !self.calls.per_user.contains_key(m.as_str()))
            .filter(|m| {
                !contact_targets(&self.directory.location, &*self.network, m, now).is_empty()
            })
            .cloned()
            .collect();
        if available.is_empty() {
            tracing::info!(%group, "nobody of the group is available");
            self.fail_call(
                now,
                key,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable",
            );
            return;
        }
        match settings.strategy {
            super::GroupStrategy::RingAll => {
                self.begin_stage(now, key, Stage::GroupAll(group), settings.ring_timeout);
                for member in &available {
                    self.ring_member(now, key, member);
                }
                self.stage_failed_if_idle(now, key);
            }
            strategy => {
                let mut members = available;
                if strategy == super::GroupStrategy::Circular {
                    if let Some(last) = self.calls.last_answered.get(&group) {
                        let after = settings
                            .members
                            .iter()
                            .position(|m| m == last)
                            .map_or(0, |i| i + 1);
                        // Members in configuration order, starting after the last answer.
                        let order: Vec<&String> = settings
                            .members
                            .iter()
                            .cycle()
                            .skip(after)
                            .take(settings.members.len())
                            .collect();
                        members.sort_by_key(|m| order.iter().position(|o| *o == m));
                    }
                }
                let stage = Stage::GroupHunt {
                    group,
                    members,
                    next: 0,
                };
                self.begin_stage(now, key, stage, settings.ring_timeout);
                self.hunt_next(now, key);
            }
        }
    }

    /// Rings every device of group member `member`; counts its call.
    fn ring_member(&mut self, now: Now, key: CallKey, member: &str) {
        let contacts = contact_targets(&self.directory.location, &*self.network, member, now);
        for contact in &contacts {
            self.start_device_leg(now, key, member, contact);
        }
    }

    /// Rings the next member of a hunting group, or ends the stage when none is left.
    fn hunt_next(&mut self, now: Now, key: CallKey) {
        let next = match self.calls.table.get_mut(&key).map(|c| &mut c.stage) {
            Some(Stage::GroupHunt { members, next, .. }) => {
                let m = members.get(*next).cloned();
                *next += 1;
                m
            }
            _ => None,
        };
        match next {
            Some(member) => {
                let ring = self.stage_ring_time(key);
                if let Some(call) = self.calls.table.get_mut(&key) {
                    call.stage_start = call.b.len();
                }
                self.set_deadline(now, key, ring);
                self.ring_member(now, key, &member);
                self.stage_failed_if_idle(now, key);
            }
            None => self.answer_caller_with_best(now, key),
        }
    }

    /// The ring time of the call's group stage.
    fn stage_ring_time(&self, key: CallKey) -> Duration {
        let group = match self.calls.table.get(&key).map(|c| &c.stage) {
            Some(Stage::GroupHunt { group, .. } | Stage::GroupAll(group)) => group,
            _ => return self.calls.settings.ring_timeout,
        };
        self.calls
            .settings
            .groups
            .get(group)
            .map_or(self.calls.settings.ring_timeout, |g| g.ring_timeout)
    }

    /// A call out to `number`, if the `call_level` of the user it is dialled for allows it.
    fn go_out(&mut self, now: Now, key: CallKey, number: String) {
        let level_user = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.level_user.clone());
        if let Some(user) = level_user {
            let needed = self.calls.settings.level_needed(&number);
            let level = self.calls.settings.user(&user).call_level;
            if level < needed {
                tracing::warn!(
                    %user, %number, level = level.as_str(), needed = needed.as_str(),
                    "call out refused by the user's call_level"
                );
                let text = format!(
                    "user {user} may not dial {} numbers (call_level = {})",
                    needed.as_str(),
                    level.as_str()
                );
                if let Some(mut rsp) =
                    self.a_response(key, StatusCode::FORBIDDEN, "Call Level Forbids Number")
                {
                    rsp.headers_mut()
                        .push(HeaderName::Warning, self.answer.warning(&text));
                    self.send_to_a(now, key, rsp);
                }
                self.end_call(now, key, 403, mss_store::EndedBy::Mss);
                self.finish_if_done(now, key);
                return;
            }
        }
        let mut lines = self.lines.outgoing_lines(now.unix_ms);
        if lines.is_empty() {
            tracing::info!(%number, "call out with no line online");
            self.fail_call(
                now,
                key,
                StatusCode::SERVICE_UNAVAILABLE,
                "No Line Available",
            );
            return;
        }
        let first = lines.remove(0);
        let ring = self.calls.settings.ring_timeout;
        self.begin_stage(now, key, Stage::Out, ring);
        if let Some(call) = self.calls.table.get_mut(&key) {
            call.lines_left = lines;
            call.out_number = Some(number);
        }
        self.start_line_leg(now, key, first);
    }

    /// Forwards call `key` from `user` (`reason`, RFC 5806) to `to`: `181` to the caller,
    /// the record and the `Diversion` remember who forwarded.
    fn forward_call(&mut self, now: Now, key: CallKey, user: &str, reason: &'static str, to: &str) {
        let Some(target) = self.target_of(to) else {
            tracing::warn!(%user, %to, "forward to nobody");
            self.answer_caller_with_best(now, key);
            return;
        };
        tracing::info!(%user, %to, reason, "call forwarded");
        let domain = self.domains.primary().to_owned();
        if let Some(call) = self.calls.table.get_mut(&key) {
            if call.record.forwarded_from.is_none() {
                call.record.forwarded_from = Some(user.to_owned());
            }
            call.diversion = Some((user.to_owned(), reason));
            if let Target::Out(_) = target {
                // A call forwarded out is dialled for the user who forwarded it.
                call.level_user = Some(user.to_owned());
            }
        }
        let answered = self.calls.table.get(&key).is_some_and(|c| c.a.answered);
        if !answered {
            if let Some(mut rsp) = self.a_response(key, StatusCode(181), "Call Is Being Forwarded")
            {
                rsp.headers_mut().push(
                    HeaderName::from_bytes(Bytes::from_static(b"Call-Info")),
                    Bytes::from(format!("<sip:{user}@{domain}>;purpose=info")),
                );
                self.send_to_a(now, key, rsp);
            }
        }
        self.route_to(now, key, target);
    }

    /// Starts stage `stage` of call `key`, ringing for `ring`.
    fn begin_stage(&mut self, now: Now, key: CallKey, stage: Stage, ring: Duration) {
        if let Some(call) = self.calls.table.get_mut(&key) {
            call.stage = stage;
            call.stage_start = call.b.len();
        }
        self.set_deadline(now, key, ring);
    }

    /// The current stage gives up ringing `ring` from now.
    fn set_deadline(&mut self, now: Now, key: CallKey, ring: Duration) {
        let at = now.mono + ring;
        if let Some(call) = self.calls.table.get_mut(&key) {
            call.ring_deadline = Some(at);
        }
        self.calls.schedule(key, at);
    }

    /// Ends the stage when it started no leg at all.
    fn stage_failed_if_idle(&mut self, now: Now, key: CallKey) {
        let idle = self.calls.table.get(&key).is_some_and(|c| {
            c.b[c.stage_start.min(c.b.len())..]
                .iter()
                .all(|b| !b.pending())
        });
        if idle {
            self.stage_failed(now, key);
        }
    }

    /// Every leg of the current stage failed (and none answered): busy → the user's
    /// `forward_busy`; a hunting group → its next member; else the best failure.
    pub(crate) fn stage_failed(&mut self, now: Now, key: CallKey) {
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        if call.a.answered || call.winner.is_some() || call.any_pending() {
            return;
        }
        if call.redirect.is_some() {
            let redirect = self
                .calls
                .table
                .get_mut(&key)
                .and_then(|c| c.redirect.take());
            if let Some((user, to)) = redirect {
                // RFC 5806 §4: a redirection by the called device is a deflection.
                self.forward_call(now, key, &user, DEFLECTION, &to);
            }
            return;
        }
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        let legs = &call.b[call.stage_start.min(call.b.len())..];
        let all_busy = !legs.is_empty()
            && legs
                .iter()
                .all(|b| matches!(b.state, BState::Failed(486 | 600)));
        match call.stage.clone() {
            Stage::User(user) if all_busy => match self.calls.settings.user(&user).forward_busy {
                Some(to) => self.forward_call(now, key, &user, USER_BUSY, &to),
                None => self.answer_caller_with_best(now, key),
            },
            Stage::GroupHunt { .. } => self.hunt_next(now, key),
            _ => self.answer_caller_with_best(now, key),
        }
    }

    /// The ring time of the current stage is over (and nobody answered): a user's
    /// `forward_no_answer`, a hunting group's next member, a line's next line, else `480`.
    /// Returns false when the stage has no next step (the caller gives up the call).
    pub(crate) fn stage_timed_out(&mut self, now: Now, key: CallKey) -> bool {
        let Some(call) = self.calls.table.get(&key) else {
            return true;
        };
        let stage = call.stage.clone();
        let next_step = match &stage {
            Stage::User(user) => self
                .calls
                .settings
                .user(user)
                .forward_no_answer
                .map(|to| (user.clone(), to)),
            _ => None,
        };
        let hunting = matches!(stage, Stage::GroupHunt { .. });
        if next_step.is_none() && !hunting {
            return false;
        }
        let legs = call.b.len();
        for leg in 0..legs {
            self.cancel_leg(now, key, leg);
        }
        if let Some(call) = self.calls.table.get_mut(&key) {
            call.state = CallState::Trying;
        }
        match next_step {
            Some((user, to)) => self.forward_call(now, key, &user, NO_ANSWER, &to),
            None => self.hunt_next(now, key),
        }
        true
    }
}
