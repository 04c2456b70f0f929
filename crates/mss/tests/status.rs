//! `mss status` against a real admin API served on loopback.

// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mss_admin::{
    ActiveCallView, AdminSource, BanView, BoxFuture, CallIdModeView, CallLegView, CallRecordView,
    CallsQuery, LineState, LineView, MessageCountView, Metrics, RegistrationView, SourceError,
    StoredMessageView,
};

struct Fake;

impl AdminSource for Fake {
    fn lines(&self) -> BoxFuture<'_, Result<Vec<LineView>, SourceError>> {
        Box::pin(async {
            Ok(vec![LineView {
                name: "provider1".into(),
                number: "2001".into(),
                state: LineState::Online,
                since: 0,
                expires_at: None,
                next_attempt_at: None,
                call_id_mode: CallIdModeView::Same,
                last_failure: None,
            }])
        })
    }
    fn registrations(&self) -> BoxFuture<'_, Result<Vec<RegistrationView>, SourceError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn message_counts(&self) -> BoxFuture<'_, Result<Vec<MessageCountView>, SourceError>> {
        Box::pin(async {
            Ok(vec![MessageCountView {
                user: "102".into(),
                stored: 3,
            }])
        })
    }
    fn messages<'a>(
        &'a self,
        _user: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<StoredMessageView>>, SourceError>> {
        Box::pin(async { Ok(None) })
    }
    fn bans(&self) -> BoxFuture<'_, Result<Vec<BanView>, SourceError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn lift_ban(&self, _addr: std::net::IpAddr) -> BoxFuture<'_, Result<bool, SourceError>> {
        Box::pin(async { Ok(false) })
    }
    fn calls(&self, _query: CallsQuery) -> BoxFuture<'_, Result<Vec<CallRecordView>, SourceError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn active_calls(&self) -> BoxFuture<'_, Result<Vec<ActiveCallView>, SourceError>> {
        Box::pin(async {
            Ok(vec![ActiveCallView {
                id: "c-1".into(),
                caller: "101".into(),
                callee: "95551234".into(),
                state: "answered".into(),
                since: 0,
                legs: vec![CallLegView {
                    call_id: "a@phone".into(),
                    peer: "192.0.2.7:5060".into(),
                    codec: Some("PCMU/8000".into()),
                    rtp_in: 0,
                    rtp_out: 0,
                    no_rtp_from: false,
                }],
            }])
        })
    }
    fn metrics_text(&self) -> String {
        Metrics::new().render()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_tables_from_a_running_api() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mss_admin::serve_listener(
        listener,
        mss_admin::router(Arc::new(Fake)),
        async {
            let _ = stopped.await;
        },
    ));
    let text = tokio::task::spawn_blocking(move || mss::status::run(&addr.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert!(text.contains("provider1  2001    online"), "{text}");
    assert!(
        text.contains(
            "ACTIVE CALLS (1)\nID   CALL            STATE     SINCE\nc-1  101 → 95551234  answered"
        ),
        "{text}"
    );
    assert!(text.contains("REGISTRATIONS\nUSER  CONTACT"), "{text}");
    assert!(text.contains("102   3"), "{text}");
    assert!(text.contains("BANS\nADDRESS  SCOPE"), "{text}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
