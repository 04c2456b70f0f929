//! mss-rtpload: the RTP load tool of mss (issue 16).
//!
//! N calls, each two endpoints on loopback (A on 127.0.0.2, B on 127.0.0.3) that send
//! G.711-sized RTP (160-byte payload every 20 ms, absolute deadlines) through a media relay
//! and receive each other's packets. The far side checks every stream's sequence numbers
//! and timestamps and counts loss, reordering and duplicates, RFC 3550 interarrival
//! jitter and the transit time (send to arrival) — against the direct path, that is the
//! jitter the relay adds. Meanwhile the relay's CPU time and resident memory are read
//! from `/proc`.
//!
//! - `rtp.rs`: the packets (what the payload carries for the checks).
//! - `accounting.rs`: the far side's per-stream checks and the transit histogram.
//! - `bencode.rs`: rtpengine's ng control protocol encoding.
//! - `target.rs`: the relays under test: none (direct), the mss relay thread
//!   (`mss_media::io::MediaRelay`, in this process), a rtpengine daemon (userspace).
//! - `load.rs`: one run: sockets, pacing, the receiving thread, the readings.
//! - `procfs.rs`: CPU and memory readings.
//!
//! The binary `mss-rtpload run` runs several targets one after another in one invocation
//! and writes a JSON report; `bench/run.sh --only media` uses it.

pub mod accounting;
pub mod bencode;
pub mod load;
pub mod procfs;
pub mod rtp;
pub mod stamp;
pub mod target;

pub use load::{run, LoadConfig, LoadError, RelayUsage, RunReport};
pub use target::{RtpengineOptions, TargetKind};
