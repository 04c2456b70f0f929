//! mss-admin: the HTTP admin API of mss (DESIGN.md §4).
//!
//! - [`views`]: the JSON types of `/api/*` ([`LineView`], [`RegistrationView`],
//!   [`MessageCountView`], [`StoredMessageView`], [`BanView`], [`TlsView`]); they derive both
//!   `Serialize` and `Deserialize` so that `mss status` reads what the server writes; the
//!   active calls ([`ActiveCallView`]) among them.
//! - [`call_record_view`]: [`CallRecordView`], a call record of `GET /api/calls`, made from
//!   the store's [`mss_store::CallRecord`] (the one other mss crate this crate uses, for its
//!   record types only).
//! - [`calls_query`]: [`CallsQuery`], the `since` and `limit` of `GET /api/calls`.
//! - [`source`]: the [`AdminSource`] trait the binary implements to feed the API.
//! - [`router`](mod@router): the axum [`router()`] with every route, and [`serve`] to run it.
//! - [`metrics`]: [`Metrics`], a lock-free registry of counters and gauges rendered in the
//!   Prometheus text format for `GET /metrics`.
//!
//! The crate knows nothing of SIP internals: the binary maps its state onto these views.

pub mod call_record_view;
pub mod calls_query;
pub mod metrics;
pub mod router;
pub mod source;
pub mod views;

pub use call_record_view::CallRecordView;
pub use calls_query::{CallsQuery, DEFAULT_CALLS_LIMIT, MAX_CALLS_LIMIT};
pub use metrics::{AuthFailure, CallLeg, Direction, MessageOutcome, Method, Metrics};
pub use router::{router, serve, serve_listener, AdminError};
pub use source::{AdminSource, BoxFuture, SourceError};
pub use views::{
    ActiveCallView, BanReasonView, BanScopeView, BanView, CallIdModeView, CallLegView, ErrorView,
    LastFailure, LineState, LineView, MessageCountView, RegistrationView, StoredMessageView,
    TlsView,
};
