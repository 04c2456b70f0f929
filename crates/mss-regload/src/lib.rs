//! mss-regload: the registration load client of mss (issue 17).
//!
//! Client threads, each with its own users and its own UDP socket or TLS connection,
//! register in closed loops: REGISTER → `401` → REGISTER with an MD5 digest → `200`
//! (RFC 3261 §10.2, §22.4). Over TLS (rustls on ring) a thread keeps its connection, as a
//! phone does (RFC 5626 flows; RFC 3261 §18), or opens a new one every K registrations,
//! resuming its session (TLS 1.3 tickets, TLS 1.2 tickets or session ids) or not. The
//! same client serves UDP and TLS, so that their rates compare; it is light enough
//! (blocking sockets, a thread per connection, no allocation beyond the messages) that
//! on a shared machine the server, not the client, is what the rate measures. The
//! server's CPU time per registration is read from `/proc/PID/stat` over the measured
//! time.
//!
//! - `users.rs`: the bench users and their passwords.
//! - `message.rs`: the REGISTER, status codes, stream framing.
//! - `digest.rs`: the challenge and its answer.
//! - `tls.rs`: the rustls client configuration (versions, resumption).
//! - `channel.rs`: a UDP socket or a TLS connection, request in, final response out.
//! - `load.rs`: one run: the threads, the measured time, the readings.
//! - `procfs.rs`: CPU time and load average.
//!
//! The binary `mss-regload` runs one load and prints its [`Report`] as JSON;
//! `bench/tls.sh` (`bench/lib/tls_probe.py`) runs it once per mode and round.

pub mod channel;
pub mod digest;
pub mod error;
pub mod load;
pub mod message;
pub mod procfs;
pub mod tls;
pub mod users;

pub use error::LoadError;
pub use load::{run, LoadConfig, Mode, Report};
pub use tls::{ResumeWith, TlsVersions};
