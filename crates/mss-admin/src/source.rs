//! The data behind the API: [`AdminSource`], implemented by the mss binary.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::call_record_view::CallRecordView;
use crate::calls_query::CallsQuery;
use crate::views::{
    ActiveCallView, BanView, LineView, MessageCountView, RegistrationView, StoredMessageView,
};

/// A boxed, sendable future, so that [`AdminSource`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the source (a store query that failed, a worker that is gone…).
///
/// The API answers it with `500` and `{"error": "<message>"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// What went wrong, in words.
    pub message: String,
}

impl SourceError {
    /// A source error with the given message.
    pub fn new(message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
        }
    }
}

/// What the admin API shows. The binary implements it over its services and store.
///
/// The methods are asynchronous because some answers come from the store (SQLite) or from
/// the worker task that owns the state machines.
pub trait AdminSource: Send + Sync + 'static {
    /// Every configured external line (`GET /api/lines`).
    fn lines(&self) -> BoxFuture<'_, Result<Vec<LineView>, SourceError>>;

    /// Every current contact binding of local users (`GET /api/registrations`).
    fn registrations(&self) -> BoxFuture<'_, Result<Vec<RegistrationView>, SourceError>>;

    /// Number of stored messages per local user (`GET /api/messages`).
    fn message_counts(&self) -> BoxFuture<'_, Result<Vec<MessageCountView>, SourceError>>;

    /// The stored messages of `user` (`GET /api/messages/{user}`), oldest first;
    /// `Ok(None)` when `user` is not a local user (answered with `404`).
    fn messages<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<StoredMessageView>>, SourceError>>;

    /// Every ban and user block in force (`GET /api/bans`).
    fn bans(&self) -> BoxFuture<'_, Result<Vec<BanView>, SourceError>>;

    /// Ends every ban and block of the address (or IPv6 /64) of `addr`
    /// (`DELETE /api/bans/{addr}`); `Ok(false)` when nothing was banned there (`404`).
    fn lift_ban(&self, addr: IpAddr) -> BoxFuture<'_, Result<bool, SourceError>>;

    /// Call records (`GET /api/calls`): at most `query.limit`, started at or after
    /// `query.since`, newest first.
    fn calls(&self, query: CallsQuery) -> BoxFuture<'_, Result<Vec<CallRecordView>, SourceError>>;

    /// The calls in progress (`GET /api/calls/active`).
    fn active_calls(&self) -> BoxFuture<'_, Result<Vec<ActiveCallView>, SourceError>>;

    /// The Prometheus text exposition for `GET /metrics` (usually [`crate::Metrics::render`]).
    fn metrics_text(&self) -> String;
}
