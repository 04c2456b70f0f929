//! The registrar for local users and the location service (RFC 3261 §10, RFC 5626 §6).
//!
//! - `binding.rs`: [`Binding`], one registered contact (URI as sent, instance, reg-id, q,
//!   expiry on both clocks, Call-ID/CSeq, the [`mss_sip::Flow`] it came on).
//! - `location.rs`: [`Location`], user → bindings in memory; [`ContactTarget`]s for other
//!   services, restore, sweep, counts, the admin snapshot ([`RegistrationView`]).
//! - `contacts.rs`: what a REGISTER asks for (query, `*`, contacts with their expiry).
//! - `register.rs`: [`Registrar`], the REGISTER algorithm of RFC 3261 §10.3.
//! - `ok.rs`: the `200 OK` listing the user's contacts (step 8).
//!
//! Run loop of one REGISTER (the caller owns the store and the clock):
//!
//! ```no_run
//! # use mss_services::registrar::{Registrar, RegisterOutcome};
//! # use mss_services::{Directory, Now};
//! # fn demo(registrar: &mut Registrar, dir: &mut Directory, now: Now, req: &mss_sip::Request, flow: &mss_sip::Flow,
//! #         write: impl Fn(&str, Vec<mss_store::BindingChange>) -> bool) -> mss_sip::Response {
//! // The request passed `Request::check` and the prechecks; `checked` is what the check
//! // parsed (the same once-parsed headers the server core passes on).
//! let checked = req.check().expect("checked by the caller");
//! match registrar.handle_register(dir, now, req, &checked, flow) {
//!     RegisterOutcome::Reply(rsp) => rsp,
//!     RegisterOutcome::Commit(mut pending) => {
//!         let changes = pending.take_changes();
//!         // `store.apply_binding_changes(pending.user(), changes).await`
//!         if write(pending.user(), changes) {
//!             let done = registrar.complete(&mut dir.location, now, pending);
//!             // if done.became_reachable: deliver stored messages to done.user
//!             done.response
//!         } else {
//!             registrar.failed(pending)
//!         }
//!     }
//! }
//! # }
//! ```

mod binding;
mod contacts;
mod location;
mod ok;
mod register;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod torture_tests;

pub use binding::Binding;
pub use location::{ContactTarget, Location, RegistrationView, Update};
pub use register::{
    Completed, PendingRegister, RegisterOutcome, Registrar, RegistrarConfig, MAX_EXPIRES_CAP,
};
