//! The registrar's part of the core: REGISTER in, store write out, `200` once the write is
//! durable (DESIGN §3, §5), the periodic sweep of expired bindings, and the admin view.

use mss_admin::RegistrationView;
use mss_services::registrar::{PendingRegister, RegisterOutcome};
use mss_services::Now;
use mss_sip::{Flow, Request, RequestCore};
use mss_store::StoreError;
use mss_txn::ServerTransactionId;

use crate::core::{Core, Then};
use crate::output::StoreOp;

impl Core {
    /// A REGISTER (RFC 3261 §10.3): answered at once, or after its changes are committed.
    pub(crate) fn on_register(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        checked: &RequestCore<'_>,
        from: &Flow,
    ) {
        match self
            .registrar
            .handle_register(&mut self.directory, now, req, checked, from)
        {
            // A challenge is sent once and keeps no transaction (RFC 3261 §26.3.2.4): a
            // flood of unauthenticated REGISTERs then costs no state for Timer J's 32 s.
            RegisterOutcome::Reply(rsp) => self.respond_final(now, id, rsp),
            RegisterOutcome::Commit(mut pending) => {
                let op = StoreOp::ApplyBindingChanges {
                    user: pending.user().to_owned(),
                    changes: pending.take_changes(),
                };
                let pending = Box::new(pending);
                self.store(
                    op,
                    Then::Register {
                        server: id,
                        pending,
                    },
                );
            }
        }
    }

    /// The store answered for an accepted REGISTER: apply to memory and answer `200`, or
    /// answer `500` with `Retry-After` and keep memory as it was.
    pub(crate) fn on_register_stored(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        pending: Box<PendingRegister>,
        result: Result<(), StoreError>,
    ) {
        match result {
            Ok(()) => {
                let done = self
                    .registrar
                    .complete(&mut self.directory.location, now, *pending);
                tracing::debug!(user = %done.user, "registered");
                self.respond(now, server, done.response);
                self.update_registered_gauge();
                // After the 200: stored messages go out (`messaging.rs`).
                self.im_user_registered(now, &done.user);
            }
            Err(e) => {
                tracing::warn!(user = %pending.user(), error = %e, "binding not stored; answering 500");
                let rsp = self.registrar.failed(*pending);
                self.respond(now, server, rsp);
            }
        }
    }

    /// Drops expired bindings from memory and forgets old nonce counts; the store deletes
    /// them in one batched write, not one write per expiry.
    pub(crate) fn sweep(&mut self, now: Now) {
        let removed = self.directory.sweep(now);
        if removed.is_empty() {
            return;
        }
        tracing::debug!(count = removed.len(), "bindings expired");
        self.update_registered_gauge();
        if !self.sweep_running {
            self.sweep_running = true;
            let op = StoreOp::DeleteExpiredBindings { now: now.unix_ms };
            self.store(op, Then::Swept);
        }
    }

    /// The batched delete of expired bindings finished.
    pub(crate) fn on_swept(&mut self, result: Result<u64, StoreError>) {
        self.sweep_running = false;
        match result {
            Ok(n) => tracing::debug!(deleted = n, "expired bindings deleted from the store"),
            // The next sweep with expiries tries again; `load_bindings` skips expired rows.
            Err(e) => tracing::warn!(error = %e, "expired bindings not deleted"),
        }
    }

    fn update_registered_gauge(&self) {
        let n = self.directory.location.binding_count();
        self.metrics
            .set_registered_contacts(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// `GET /api/registrations`: every live binding (times in Unix seconds).
    pub fn registrations(&self, now: Now) -> Vec<RegistrationView> {
        self.directory
            .location
            .snapshot(now.mono)
            .into_iter()
            .map(|r| RegistrationView {
                user: r.user,
                contact: r.contact,
                transport: r.transport.to_owned(),
                source: r.source,
                expires_at: u64::try_from(r.expires_at / 1000).unwrap_or(0),
                user_agent: r.user_agent,
            })
            .collect()
    }
}
