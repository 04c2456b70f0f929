//! The admin API's view of the running server: [`Source`] implements
//! [`mss_admin::AdminSource`].
//!
//! Registrations, lines and bans live in the core the worker drives. They are read with a
//! [`Query`] over a channel that the worker answers between two packets, rather than a
//! snapshot the worker would publish every N ms: the answer is always current (a test or an admin sees a
//! registration as soon as its `200` left), and an idle admin API costs the hot path
//! nothing, while a periodic snapshot would copy every binding even when nobody asks.
//! Stored messages and call records come straight from the store, active calls from the
//! core (a [`Query`] like the lines); `/metrics` adds the transport, store and
//! core's counters to [`Metrics::render`].

use std::sync::Arc;
use std::time::Duration;

use mss_admin::{
    ActiveCallView, AdminSource, BanView, BoxFuture, CallRecordView, CallsQuery, LineView,
    MessageCountView, Metrics, RegistrationView, SourceError, StoredMessageView, TlsView,
};
use mss_store::Store;
use mss_transport::TransportStats;
use tokio::sync::{mpsc, oneshot};

use super::names::NameSet;
use mss_core::CoreStats;

use super::stats;
use super::worker::Query;

/// How long the admin API waits for the worker before answering `500`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin API reads from.
pub(crate) struct Source {
    /// Questions to the worker.
    pub(crate) queries: mpsc::Sender<Query>,
    /// The store, for stored messages and call records.
    pub(crate) store: Arc<dyn Store>,
    /// Local user names (`GET /api/messages/{user}` answers `404` for others).
    pub(crate) users: NameSet,
    /// SIP metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The core's counters.
    pub(crate) core: Arc<CoreStats>,
    /// Transport counters.
    pub(crate) transport: Arc<TransportStats>,
    /// The certificate of the `tls:` listeners, if any.
    pub(crate) tls: Option<Arc<super::tls::Certificate>>,
    /// The media relay's counters (`None` with `relay = never`).
    pub(crate) media: Option<Arc<mss_media::io::Counters>>,
}

fn unix_secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

fn now_ms() -> i64 {
    super::setup::now().unix_ms
}

impl Source {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Query,
    ) -> Result<T, SourceError> {
        let (tx, rx) = oneshot::channel();
        self.queries
            .send(make(tx))
            .await
            .map_err(|_| SourceError::new("the SIP worker has stopped"))?;
        match tokio::time::timeout(QUERY_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(SourceError::new("the SIP worker has stopped")),
            Err(_) => Err(SourceError::new("the SIP worker did not answer in time")),
        }
    }
}

impl AdminSource for Source {
    fn lines(&self) -> BoxFuture<'_, Result<Vec<LineView>, SourceError>> {
        Box::pin(self.ask(Query::Lines))
    }

    fn registrations(&self) -> BoxFuture<'_, Result<Vec<RegistrationView>, SourceError>> {
        Box::pin(self.ask(Query::Registrations))
    }

    fn bans(&self) -> BoxFuture<'_, Result<Vec<BanView>, SourceError>> {
        Box::pin(self.ask(Query::Bans))
    }

    fn lift_ban(&self, addr: std::net::IpAddr) -> BoxFuture<'_, Result<bool, SourceError>> {
        Box::pin(self.ask(move |reply| Query::LiftBan(addr, reply)))
    }

    fn message_counts(&self) -> BoxFuture<'_, Result<Vec<MessageCountView>, SourceError>> {
        let op = self.store.message_counts(now_ms());
        Box::pin(async move {
            let counts = op.await.map_err(|e| SourceError::new(e.to_string()))?;
            Ok(counts
                .into_iter()
                .map(|c| MessageCountView {
                    user: c.user,
                    stored: c.stored,
                })
                .collect())
        })
    }

    fn messages<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<StoredMessageView>>, SourceError>> {
        Box::pin(async move {
            if !self.users.contains(user) {
                return Ok(None);
            }
            let stored = self
                .store
                .list_messages(user, now_ms())
                .await
                .map_err(|e| SourceError::new(e.to_string()))?;
            Ok(Some(
                stored
                    .into_iter()
                    .map(|m| StoredMessageView {
                        id: u64::try_from(m.id).unwrap_or(0),
                        from: m.message.sender,
                        content_type: m.message.content_type,
                        body: String::from_utf8_lossy(&m.message.body).into_owned(),
                        received_at: unix_secs(m.message.received_at),
                        expires_at: unix_secs(m.message.expires_at),
                    })
                    .collect(),
            ))
        })
    }

    fn calls(&self, query: CallsQuery) -> BoxFuture<'_, Result<Vec<CallRecordView>, SourceError>> {
        let op = self.store.list_calls(query.since, query.limit);
        Box::pin(async move {
            let records = op.await.map_err(|e| SourceError::new(e.to_string()))?;
            Ok(records.iter().map(CallRecordView::from).collect())
        })
    }

    fn active_calls(&self) -> BoxFuture<'_, Result<Vec<ActiveCallView>, SourceError>> {
        Box::pin(self.ask(Query::ActiveCalls))
    }

    fn tls(&self) -> BoxFuture<'_, Result<Option<TlsView>, SourceError>> {
        let view = self.tls.as_ref().map(|c| c.view());
        Box::pin(async move { Ok(view) })
    }

    fn reload_tls(&self) -> BoxFuture<'_, Result<Option<TlsView>, SourceError>> {
        Box::pin(async move {
            let Some(c) = &self.tls else {
                return Ok(None);
            };
            c.reload("admin API").await.map(Some).map_err(|e| {
                SourceError::new(format!("{e}; the previous certificate stays in use"))
            })
        })
    }

    fn metrics_text(&self) -> String {
        let mut text = self.metrics.render();
        text.push_str(&stats::render(
            &self.core,
            &self.transport.snapshot(),
            &self.store.stats(),
        ));
        let media = self
            .media
            .as_ref()
            .map(|c| c.snapshot())
            .unwrap_or_default();
        stats::media(&mut text, &media);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_from_milliseconds() {
        assert_eq!(unix_secs(1_700_000_000_999), 1_700_000_000);
        assert_eq!(unix_secs(-5), 0);
    }
}
