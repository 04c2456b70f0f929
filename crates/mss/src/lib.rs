//! mss: a SIP communications server (registrar, external lines, instant messages).
//!
//! This library holds the parts of the `mss` binary that tests reach directly:
//!
//! - [`config`]: `mss.ini`, `mss_var_param.ini` and the embedded defaults.
//! - [`local_addrs`]: the machine's IP addresses, which all count as our domain.
//! - [`cli`]: the command line (`serve`, `check-config`, `status`).
//! - [`serve`]: `mss serve`: builds the sans-IO core (`mss_core`) from the configuration and
//!   drives it with the sockets, the store, DNS and the admin API.
//! - [`status`]: `mss status`, a small HTTP client of the admin API and text tables.

pub mod cli;
pub mod config;
pub mod local_addrs;
pub mod serve;
pub mod status;
