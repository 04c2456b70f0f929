//! The REGISTER algorithm of RFC 3261 §10.3, steps 1–8, split in two halves around the
//! store write: [`Registrar::handle_register`] decides (and answers everything that needs
//! no write), [`Registrar::complete`] applies a committed change to memory and builds the
//! `200 OK`.
//!
//! Order of the checks, and why:
//! 1. Request-URI: `sip`/`sips` (else `416`) naming one of our domains (else `404`, RFC 3261
//!    §21.4.5: "the domain in the Request-URI does not match any of the domains handled").
//!    mss is not a proxy for other domains, so it never forwards (§10.3 step 1).
//! 2. `Require` with unknown option tags → `420` (§8.2.2.3).
//! 3. Syntax of To (`sip`/`sips` AOR in our domain, else `400`/`404`), Contact and Expires
//!    → `400` naming the problem. These reveal nothing about which users exist, so they
//!    come before authentication: a broken client sees what is wrong instead of looping
//!    on challenges.
//! 4. Authentication (§10.3 step 3) → `401`. An unknown user gets the same challenge as a
//!    wrong password, so a flood of REGISTERs for unknown users costs no write.
//! 5. Authorization (step 4): the To user must be the authenticated user → `403`.
//! 6. Contacts (steps 6–7): `423` + `Min-Expires`, Call-ID/CSeq ordering per binding
//!    (a CSeq not above the binding's with the same Call-ID aborts the whole request: `500
//!    CSeq Out Of Order`, as §12.2.2 answers out-of-order requests), contact limit → `403
//!    Too Many Contacts`.
//! 7. The changes go to the store; after the commit, memory and the `200` (step 8).

use std::borrow::Cow;
use std::time::Duration;

use mss_sip::{
    unescape, Flow, HeaderName, Method, NameAddr, ParseError, Request, RequestCore, Response,
    StatusCode, Uri,
};
use mss_store::BindingChange;

use super::binding::Binding;
use super::contacts::{self, Limits, Parsed, Wanted};
use super::location::{Location, Update};
use super::ok::{ok_response, DateCache};
use crate::answer::{Answer, Reject};
use crate::digest::AuthKind;
use crate::directory::Directory;
use crate::domains::LocalDomains;
use crate::precheck::check_require;
use crate::Now;

/// The longest expiry any configuration may grant: one year, which keeps every deadline
/// far inside the range of the monotonic clock.
pub const MAX_EXPIRES_CAP: u32 = 365 * 24 * 3600;

/// Settings of the registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Expiry when the REGISTER gives none, seconds (default 3600).
    pub default_expires: u32,
    /// Shortest expiry accepted, seconds (default 60): below it `423`.
    pub min_expires: u32,
    /// Longest expiry granted, seconds (default 3600): above it is shortened.
    pub max_expires: u32,
    /// Most bindings per user (default 10).
    pub max_contacts: usize,
    /// `Retry-After` of the `500` sent when the store write failed, seconds (default 5).
    pub retry_after_secs: u32,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 3600,
            max_contacts: 10,
            retry_after_secs: 5,
        }
    }
}

/// What [`Registrar::handle_register`] decided.
#[derive(Debug)]
pub enum RegisterOutcome {
    /// Send this response; nothing to write (challenges, errors, queries, no-ops).
    Reply(Response),
    /// Write [`PendingRegister::take_changes`] to the store, then call
    /// [`Registrar::complete`] (or [`Registrar::failed`] if the write failed).
    Commit(PendingRegister),
}

/// An accepted REGISTER waiting for its store write.
#[derive(Debug)]
pub struct PendingRegister {
    user: String,
    changes: Vec<BindingChange>,
    updates: Vec<Update>,
    /// The `200` without its Contact and Date lines yet.
    response: Response,
    require_outbound: bool,
}

impl PendingRegister {
    /// The user whose bindings change.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The changes to write (`store.apply_binding_changes(user, changes)`), all or nothing.
    pub fn changes(&self) -> &[BindingChange] {
        &self.changes
    }

    /// Moves the changes out, for the store call.
    pub fn take_changes(&mut self) -> Vec<BindingChange> {
        std::mem::take(&mut self.changes)
    }
}

/// A REGISTER whose changes are committed and applied.
#[derive(Debug)]
pub struct Completed {
    /// The `200 OK` listing every current contact.
    pub response: Response,
    /// The user.
    pub user: String,
    /// The user had no live binding before, or a new binding was added: stored instant
    /// messages can be delivered now.
    pub became_reachable: bool,
}

/// The registrar for local users (RFC 3261 §10.3); the location service and the digest
/// guard it works on are the core's [`Directory`], lent per request.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    domains: LocalDomains,
    answer: Answer,
    /// The `Date` of the `200`s, formatted once per second.
    dates: DateCache,
}

/// The core headers a REGISTER is processed from (parsed once by the caller's check).
struct Fields<'r, 'a> {
    uri: &'r Uri<'a>,
    to: Result<&'r NameAddr<'a>, &'r ParseError>,
    call_id: &'a str,
    cseq: u32,
    read: contacts::Read<'r, 'a>,
}

impl Registrar {
    /// The settings in use (after correction, see [`Registrar::new`]).
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// A registrar serving `domains`, answering with `answer`; the location service and the
    /// digest guard it works on are lent per request ([`Directory`]).
    /// Incoherent limits are corrected: both expiry limits are capped at
    /// [`MAX_EXPIRES_CAP`], `max_expires` is raised to `min_expires`, the
    /// default is brought within them, `max_contacts` is at least 1.
    pub fn new(config: RegistrarConfig, domains: LocalDomains, answer: Answer) -> Registrar {
        let mut config = config;
        // Keep the limits coherent: min ≤ default ≤ max, at least one contact.
        config.min_expires = config.min_expires.min(MAX_EXPIRES_CAP);
        config.max_expires = config
            .max_expires
            .clamp(1, MAX_EXPIRES_CAP)
            .max(config.min_expires);
        config.default_expires = config
            .default_expires
            .clamp(config.min_expires.max(1), config.max_expires);
        config.max_contacts = config.max_contacts.max(1);
        Registrar {
            config,
            domains,
            answer,
            dates: DateCache::default(),
        }
    }

    /// Handles a REGISTER received on `flow` at `now` that passed [`Request::check`] and
    /// the prechecks (`crate::precheck`): the Request-URI, To, Call-ID, CSeq, Contact,
    /// Expires and the Via count come from `checked`, parsed once. A request that fails
    /// the check never gets here: the prechecks answer it (`400` naming the problem).
    pub fn handle_register(
        &mut self,
        dir: &mut Directory,
        now: Now,
        req: &Request,
        checked: &RequestCore<'_>,
        flow: &Flow,
    ) -> RegisterOutcome {
        let result = if req.method() == &Method::Register {
            let c = &checked.core;
            let fields = Fields {
                uri: &checked.uri,
                to: Ok(&c.to),
                call_id: c.call_id,
                cseq: c.cseq.seq,
                read: contacts::Read {
                    expires: Ok(c.expires),
                    contacts: Ok(&c.contacts),
                    via_count: c.via_count,
                },
            };
            self.process_fields(dir, now, req, flow, fields)
        } else {
            Err(Reject::MethodNotAllowed)
        };
        self.finish(req, flow, result)
    }

    fn finish(
        &self,
        req: &Request,
        flow: &Flow,
        result: Result<RegisterOutcome, Reject>,
    ) -> RegisterOutcome {
        match result {
            Ok(outcome) => outcome,
            Err(reject) => {
                let rsp = self.answer.reject(req, &reject);
                tracing::debug!(
                    call_id = req.headers().get_str(&HeaderName::CallId).ok().flatten(),
                    peer = %flow,
                    status = rsp.status().as_u16(),
                    reason = %String::from_utf8_lossy(rsp.reason()),
                    "REGISTER refused"
                );
                RegisterOutcome::Reply(rsp)
            }
        }
    }

    /// Steps 1–5 on the request's core headers, then [`Registrar::plan`].
    fn process_fields(
        &mut self,
        dir: &mut Directory,
        now: Now,
        req: &Request,
        flow: &Flow,
        f: Fields<'_, '_>,
    ) -> Result<RegisterOutcome, Reject> {
        // Step 1: the Request-URI names one of our domains.
        match f.uri {
            Uri::Sip(u) if self.domains.is_local(u.host) => {}
            Uri::Sip(_) => return Err(Reject::NotFound),
            _ => return Err(Reject::UnsupportedUriScheme),
        }
        // Step 2: Require.
        check_require(req)?;
        // Step 5 (syntax part): the AOR in To is a SIP URI of ours with a user.
        let to = f.to.map_err(|e| Reject::Malformed(e.clone()))?;
        let Uri::Sip(aor) = to.uri else {
            return Err(Reject::BadRequest("To Must Be a SIP URI"));
        };
        if !self.domains.is_local(aor.host) {
            return Err(Reject::NotFound);
        }
        let Some(aor_user) = aor.user else {
            return Err(Reject::BadRequest("Missing User In To"));
        };
        let limits = Limits {
            default: self.config.default_expires,
            min: self.config.min_expires,
            max: self.config.max_expires,
        };
        let parsed = contacts::parse(req, f.read, limits)?;
        // Step 3: authentication.
        let user = match dir.authenticate(now, req, AuthKind::Www, &self.answer, flow.remote.ip()) {
            Ok(u) => u.name,
            Err(rsp) => return Ok(RegisterOutcome::Reply(rsp)),
        };
        // Step 4: a user registers its own address only (AOR compared unescaped, §10.3
        // step 5 canonical form).
        if unescape(aor_user).as_ref() != user.as_bytes() {
            return Err(Reject::Forbidden("Not Allowed To Register This Address"));
        }
        self.plan(
            &dir.location,
            now,
            req,
            flow,
            user,
            f.call_id,
            f.cseq,
            parsed,
        )
    }

    /// Steps 6–7: turns the wanted contacts into changes against the live bindings.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        location: &Location,
        now: Now,
        req: &Request,
        flow: &Flow,
        user: String,
        call_id: &str,
        cseq: u32,
        parsed: Parsed<'_, '_>,
    ) -> Result<RegisterOutcome, Reject> {
        // The live bindings, walked where needed rather than collected.
        let bindings = location.bindings(&user);
        let live = || bindings.iter().filter(|b| b.is_live(now.mono));
        // §10.3 step 7: same Call-ID and a CSeq not higher aborts the whole update.
        let in_order = |b: &Binding| b.call_id != call_id || cseq > b.cseq;
        let out_of_order = Reject::OutOfOrder("CSeq Out Of Order");
        let mut updates: Vec<Update> = Vec::new();
        match parsed.wanted {
            Wanted::Query => {}
            Wanted::RemoveAll => {
                for b in live() {
                    if !in_order(b) {
                        return Err(out_of_order);
                    }
                    updates.push(Update::Remove(b.key.clone()));
                }
            }
            Wanted::List(wanted) => {
                if wanted.any_too_brief() {
                    return Err(Reject::IntervalTooBrief {
                        min: self.config.min_expires,
                    });
                }
                let mut user_agent = req
                    .headers()
                    .get_str(&HeaderName::UserAgent)
                    .ok()
                    .flatten()
                    .map(str::to_owned);
                let last = wanted.len().saturating_sub(1);
                for (i, c) in wanted.iter().enumerate() {
                    let c = c?;
                    let existing = live().find(|b| c.has_key(&b.key));
                    if existing.is_some_and(|b| !in_order(b)) {
                        return Err(out_of_order);
                    }
                    // A key listed twice in one request: the last one wins.
                    updates.retain(|u| match u {
                        Update::Upsert(b) => !c.has_key(&b.key),
                        Update::Remove(k) => !c.has_key(k),
                    });
                    if c.expires == 0 {
                        if existing.is_some() {
                            updates.push(Update::Remove(c.key()));
                        }
                        continue;
                    }
                    // The last contact takes the User-Agent, the others a copy.
                    let user_agent = if i == last {
                        user_agent.take()
                    } else {
                        user_agent.clone()
                    };
                    let secs = Duration::from_secs(u64::from(c.expires));
                    updates.push(Update::Upsert(Binding {
                        key: c.key(),
                        contact: c.contact.to_owned(),
                        instance: c.instance.map(Cow::into_owned),
                        reg_id: c.reg_id,
                        q_milli: c.q_milli,
                        expires_at: now.mono + secs,
                        expires_at_unix_ms: now.unix_ms.saturating_add(i64::from(c.expires) * 1000),
                        call_id: call_id.to_owned(),
                        cseq,
                        flow: *flow,
                        user_agent,
                        registered_at_unix_ms: now.unix_ms,
                    }));
                }
                let added = updates
                    .iter()
                    .filter(|u| matches!(u, Update::Upsert(b) if !live().any(|l| l.key == b.key)))
                    .count();
                let removed = updates
                    .iter()
                    .filter(|u| matches!(u, Update::Remove(_)))
                    .count();
                if (live().count() + added).saturating_sub(removed) > self.config.max_contacts {
                    return Err(Reject::Forbidden("Too Many Contacts"));
                }
            }
        }
        let response = self.answer.response(req, StatusCode::OK, "OK");
        if updates.is_empty() {
            let rsp = ok_response(
                location,
                &self.dates,
                now,
                &user,
                response,
                parsed.require_outbound,
            );
            return Ok(RegisterOutcome::Reply(rsp));
        }
        let changes = updates
            .iter()
            .map(|u| match u {
                Update::Upsert(b) => BindingChange::Upsert(b.to_record(&user)),
                Update::Remove(k) => BindingChange::Remove(k.clone()),
            })
            .collect();
        Ok(RegisterOutcome::Commit(PendingRegister {
            user,
            changes,
            updates,
            response,
            require_outbound: parsed.require_outbound,
        }))
    }

    /// The store committed `pending`'s changes: applies them to memory and builds the `200`.
    pub fn complete(
        &mut self,
        location: &mut Location,
        now: Now,
        pending: PendingRegister,
    ) -> Completed {
        let PendingRegister {
            user,
            updates,
            response,
            require_outbound,
            ..
        } = pending;
        let was_reachable = location.is_reachable(&user, now.mono);
        let added_new = updates.iter().any(|u| match u {
            Update::Upsert(b) => !location.live(&user, now.mono).any(|l| l.key == b.key),
            Update::Remove(_) => false,
        });
        location.apply(&user, updates);
        let became_reachable =
            location.is_reachable(&user, now.mono) && (!was_reachable || added_new);
        let response = ok_response(
            location,
            &self.dates,
            now,
            &user,
            response,
            require_outbound,
        );
        tracing::debug!(
            user = %user,
            bindings = location.bindings(&user).len(),
            became_reachable,
            "REGISTER committed"
        );
        Completed {
            response,
            user,
            became_reachable,
        }
    }

    /// The store write of `pending` failed: `500 Server Internal Error` with `Retry-After`;
    /// memory is unchanged.
    pub fn failed(&self, pending: PendingRegister) -> Response {
        tracing::warn!(user = %pending.user, "REGISTER not committed: the store write failed");
        let mut rsp = Response::new(StatusCode::SERVER_INTERNAL_ERROR, "Server Internal Error");
        let src = pending.response.headers();
        let h = rsp.headers_mut();
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            h.copy_from(src, &name);
        }
        h.push(
            HeaderName::RetryAfter,
            self.config.retry_after_secs.to_string(),
        );
        rsp
    }
}
