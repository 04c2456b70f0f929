//! External lines: the registration client that keeps SIP trunks registered at providers
//! (RFC 3261 §10.2, digest per §22.2/§22.3, RFC 3263 §4 for SRV and failover; DESIGN §2, §3).
//!
//! One [`Registration`] per `[line:NAME]`, sans-IO: it never reads a clock, opens a socket,
//! resolves a name or waits. The caller gives it the time ([`Now`](crate::Now)), randomness
//! (an [`rand::RngCore`], seedable in tests), DNS results and responses, and carries out its
//! [`LineOutput`]s.
//!
//! - [`settings`]: [`LineSettings`] and [`CallIdMode`] (`call_id` / `gVarSipRegSameDialog`).
//! - [`registration`]: the machine.
//! - [`state`]: [`LineStatus`] as shown by `GET /api/lines`.
//! - [`targets`]: [`Target`] and the [`ResolveRequest`] the caller performs.
//! - [`output`]: [`LineOutput`] and [`LineLog`].
//! - `call_id.rs`, `backoff.rs`, `request.rs`, `response.rs`: the Call-ID policy, the timers,
//!   building the REGISTER, reading the answer.
//!
//! What the line does: registers and refreshes at about 85 % of the granted expiry (the
//! `expires` of our Contact in the `200` wins over `Expires`); answers `401`/`407` with
//! digest (MD5, SHA-256, `qop=auth`; CSeq one more per retry, `stale=true` answered again,
//! any other second challenge is `auth_failed`); takes `Min-Expires` from a `423`; honours
//! `Retry-After`; fails over to the next target on a timeout, a connection that could not be
//! made ([`Registration::handle_transport_error`], e.g. a TLS certificate refused: the reason
//! becomes the line's last failure) or `503`; retries every other
//! failure with exponential backoff and jitter from [`LineSettings::retry_min`] (30 s) up to
//! [`LineSettings::retry_max`] (30 min), never giving up; and
//! never sends two REGISTERs less than a second apart. With `call_id = auto` a `400`/`500`
//! whose reason or `P-Registrar-Error` speaks of the CSeq or ordering switches the line to a
//! fresh Call-ID per REGISTER at once, with a [`LogLevel::Warn`] [`LineLog`] telling the admin
//! how to pin it. Call-ID, From tag and last CSeq are handed out for storage
//! ([`LineOutput::Persist`]) before every REGISTER, so a restart continues above the last CSeq.
//!
//! # Run loop
//!
//! ```no_run
//! use std::time::{Instant, SystemTime, UNIX_EPOCH};
//! use mss_services::lines::{CallIdMode, LineOutput, LineSettings, Registration, Target};
//! use mss_services::Now;
//!
//! fn now() -> Now {
//!     let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
//!     Now::new(Instant::now(), ms)
//! }
//! # fn resolve(_: &mss_services::lines::ResolveRequest) -> Vec<Target> { Vec::new() }
//! # fn start_client_transaction(_: mss_sip::Request, _: Target) {}
//! # fn store_line(_: mss_store::LineRecord) {}
//! # fn sleep_until(_: Option<Instant>) -> Event { Event::Timer }
//! # enum Event { Timer, Response(mss_sip::Response), TransactionTimeout, Shutdown }
//! let mut rng = rand::rngs::OsRng;
//! let mut settings = LineSettings::new("provider1", "sip.provider.example", "2001", "secret");
//! settings.call_id_mode = CallIdMode::resolve(None, CallIdMode::Auto);
//! let persisted = None; // store.get_line("provider1").await?
//! let mut line = Registration::new(settings, persisted, now(), &mut rng);
//! loop {
//!     // Drain every output after every input.
//!     while let Some(out) = line.poll_output(now(), &mut rng) {
//!         match out {
//!             LineOutput::Resolve(req) => line.handle_resolved(now(), resolve(&req)),
//!             LineOutput::Send { request, target } => start_client_transaction(*request, target),
//!             LineOutput::Persist(record) => store_line(record),
//!             LineOutput::StateChanged(status) => println!("line state {}", status.state),
//!             LineOutput::Log(log) => println!("{}", log.message),
//!         }
//!     }
//!     if line.is_done() {
//!         break;
//!     }
//!     match sleep_until(line.poll_timeout()) {
//!         Event::Timer => line.handle_timeout(now()),
//!         Event::Response(rsp) => line.handle_response(now(), &rsp, &mut rng),
//!         Event::TransactionTimeout => line.handle_transaction_timeout(now()),
//!         Event::Shutdown => line.shutdown(now()),
//!     }
//! }
//! ```
//!
//! The caller matches responses to the line by the client transaction (the REGISTER's
//! branch); the line also checks CSeq and Call-ID and ignores anything else. DNS lookups may
//! take their time: the line waits in between and `handle_resolved` may come from a later
//! turn of the loop.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod backoff;
mod call_id;
pub mod output;
pub mod registration;
mod request;
mod response;
pub mod settings;
pub mod state;
pub mod targets;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_flows;
#[cfg(test)]
mod sim_quirks;

pub use backoff::{BACKOFF_BASE, BACKOFF_CEILING, BACKOFF_FLOOR, BACKOFF_MAX, RETRY_AFTER_MAX};
pub use call_id::is_cseq_complaint;
pub use output::{LineLog, LineOutput, LogLevel};
pub use registration::{Registration, IN_FLIGHT_GUARD, MIN_REGISTER_INTERVAL};
pub use response::{challenges as digest_challenges, P_REGISTRAR_ERROR};
pub use settings::{CallIdMode, CallIdModeError, LineSettings, DEFAULT_EXPIRES};
pub use state::{CallIdInUse, LastFailure, LineState, LineStatus};
pub use targets::{ResolveRequest, Target};
