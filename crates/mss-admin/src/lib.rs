//! mss-admin: the HTTP admin API of mss (DESIGN.md §4).
//!
//! - [`views`]: the JSON types of `/api/*` ([`LineView`], [`RegistrationView`],
//!   [`MessageCountView`], [`StoredMessageView`], [`BanView`], [`TlsView`]); they derive both `Serialize` and
//!   `Deserialize` so that `mss status` reads what the server writes.
//! - [`source`]: the [`AdminSource`] trait the binary implements to feed the API.
//! - [`router`](mod@router): the axum [`router()`] with every route, and [`serve`] to run it.
//! - [`metrics`]: [`Metrics`], a lock-free registry of counters and gauges rendered in the
//!   Prometheus text format for `GET /metrics`.
//!
//! The crate knows nothing of SIP internals: the binary maps its state onto these views.

pub mod metrics;
pub mod router;
pub mod source;
pub mod views;

pub use metrics::{AuthFailure, Direction, MessageOutcome, Method, Metrics};
pub use router::{router, serve, serve_listener, AdminError};
pub use source::{AdminSource, BoxFuture, SourceError};
pub use views::{
    ActiveCallView, BanReasonView, BanScopeView, BanView, CallIdModeView, CallLegView, ErrorView,
    LastFailure, LineState, LineView, MessageCountView, RegistrationView, StoredMessageView,
    TlsView,
};
