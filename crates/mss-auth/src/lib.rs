//! mss-auth: HTTP Digest authentication for SIP (RFC 7616 as applied to SIP
//! by RFC 8760, with RFC 2617 compatibility), server and client side.
//!
//! Sans-IO: no clock reads, no sockets, no global state. Time comes in as
//! `now_unix_secs: u64`, randomness as an [`rand::RngCore`] the caller
//! passes (seedable in tests). Header syntax is parsed by `mss-sip`; this
//! crate takes a header's auth-params as `(name, value)` pairs with quotes
//! removed, and formats the header values it produces.
//!
//! Components:
//! - [`Algorithm`] (`algorithm.rs`): MD5 and SHA-256, `H()`, [`Ha1`].
//! - [`Nonces`] / [`NonceSecret`] / [`Origin`] (`nonce.rs`): self-verifying,
//!   time-limited nonces (HMAC-SHA256 over issue time, randomness, the origin
//!   they were sent to, and realm).
//! - [`NonceCounts`] (`replay.rs`): bounded nonce-count table that refuses
//!   replayed `nc` values.
//! - [`Challenge`] (`challenge.rs`): builds and parses `WWW-Authenticate` /
//!   `Proxy-Authenticate` values.
//! - [`Credentials`] (`credentials.rs`): parses `Authorization` /
//!   `Proxy-Authorization` values; [`CredentialsRef`] (`credentials_ref.rs`) is the
//!   borrowed form the server checks, read without copies by
//!   [`CredentialsRef::from_header_value`] (`scan.rs`) in the common case.
//! - [`DigestServer`] (`server.rs`): challenges and verification for the
//!   registrar and the message service; [`Verdict`] and [`UserSecret`]
//!   (`verdict.rs`) are its answer and its input about the user.
//! - [`DigestClient`] (`client.rs`): answers challenges for external lines.
//!
//! Server use, one request at a time:
//!
//! ```
//! use mss_auth::{Credentials, DigestServer, NonceSecret, ServerConfig, UserSecret, Verdict};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let mut server = DigestServer::new(NonceSecret::generate(&mut rand::rngs::OsRng), ServerConfig::default());
//! let now = 1_700_000_000;
//! // No credentials: answer 401 with one WWW-Authenticate per value.
//! let challenges = server.challenges("pbx.example.com", false, now, &mut rng)?;
//! assert_eq!(challenges.len(), 2);
//! // With credentials (params from mss-sip):
//! # let params: Vec<(&str, &str)> = vec![];
//! match Credentials::from_params(params) {
//!     Err(e) if e.is_rechallenge() => { /* 401 with fresh challenges */ }
//!     Err(_) => { /* 400 Bad Request */ }
//!     Ok(creds) => {
//!         let verdict = match Some("password-from-store") {
//!             Some(pw) => server.verify(&creds, "REGISTER", UserSecret::Password(pw), "pbx.example.com", now),
//!             None => server.verify_unknown_user(&creds, "REGISTER", "pbx.example.com", now),
//!         };
//!         if verdict != Verdict::Ok {
//!             let _again = server.challenges("pbx.example.com", verdict.is_stale(), now, &mut rng)?;
//!         }
//!     }
//! }
//! # Ok::<(), mss_auth::AuthError>(())
//! ```

mod algorithm;
mod challenge;
mod client;
mod credentials;
mod credentials_ref;
mod error;
mod ha2_cache;
mod nonce;
mod params;
mod replay;
mod scan;
mod server;
mod verdict;
mod verify;

pub use algorithm::{Algorithm, Ha1};
pub use challenge::Challenge;
pub use client::{
    authorization, authorize, select_challenge, ChallengeOutcome, ClientNonceState, DigestClient,
};
pub use credentials::{Credentials, QopAuth};
pub use credentials_ref::{CredentialsRef, QopRef};
pub use error::AuthError;
pub use nonce::{NonceCheck, NonceSecret, Nonces, Origin, DEFAULT_NONCE_LIFETIME_SECS};
pub use params::MAX_PARAM_LEN;
pub use replay::{CountCheck, NonceCounts, NonceUse, DEFAULT_MAX_TRACKED_NONCES};
pub use server::{DigestServer, ServerConfig};
pub use verdict::{UserSecret, Verdict};

/// The randomly seeded `ahash` hasher this crate keys its nonce-count table with; use it
/// for other maps keyed by peer input that sit on the authentication path (e.g. a user
/// directory looked up by the digest `username`).
pub use ahash::RandomState;
