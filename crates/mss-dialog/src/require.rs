//! The `Require` check of a UAS (RFC 3261 §8.2.2.3).

use mss_sip::{Method, Request};

use crate::rejection::Rejection;

/// The option tags the dialogs of mss support: reliable provisional responses (RFC 3262)
/// and session timers (RFC 4028).
pub const SUPPORTED: &[&str] = &["100rel", "timer"];

/// Checks the `Require` header of `request` against the option tags mss `supported`
/// (compared ignoring ASCII case, as tokens are); for a request of a call, pass
/// [`SUPPORTED`].
///
/// CANCEL and ACK are not checked (§8.2.2.3: the check is not made for CANCEL, and an ACK is
/// never answered).
///
/// # Errors
/// [`Rejection::BadExtension`] listing every required tag not in `supported`, in the order
/// they came; [`Rejection::Malformed`] when `Require` does not parse.
pub fn check_require(request: &Request, supported: &[&str]) -> Result<(), Rejection> {
    if matches!(request.method(), Method::Cancel | Method::Ack) {
        return Ok(());
    }
    let required = request.headers().require().map_err(Rejection::Malformed)?;
    let unsupported: Vec<String> = required
        .into_iter()
        .filter(|tag| !supported.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .map(str::to_owned)
        .collect();
    if unsupported.is_empty() {
        Ok(())
    } else {
        Err(Rejection::BadExtension(unsupported))
    }
}
