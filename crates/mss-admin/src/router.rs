//! The axum router of the admin API and the function that serves it.
//!
//! | route                      | answer                                        |
//! |----------------------------|-----------------------------------------------|
//! | `GET /api/lines`           | `[LineView]`                                  |
//! | `GET /api/registrations`   | `[RegistrationView]`                          |
//! | `GET /api/messages`        | `[MessageCountView]`                          |
//! | `GET /api/messages/{user}` | `[StoredMessageView]`, `404` for unknown user |
//! | `GET /api/bans`            | `[BanView]`                                   |
//! | `DELETE /api/bans/{addr}`  | `204`; `404` when not banned, `400` for a bad address |
//! | `GET /api/calls?since=&limit=` | `[CallRecordView]`, newest first; `since` in Unix seconds, `limit` 1–1000 (default 100); `400` for a bad or unknown parameter |
//! | `GET /api/calls/active`    | `[ActiveCallView]`                            |
//! | `GET /api/tls`             | `TlsView`; `404` without a `tls:` listener    |
//! | `POST /api/tls/reload`     | `TlsView` of the reloaded certificate; `500` when the files will not do (the old certificate stays), `404` without a `tls:` listener |
//! | `GET /metrics`             | Prometheus text format                        |
//! | `GET /healthz`             | `ok`                                          |
//!
//! Errors are JSON `{"error": "..."}` ([`ErrorView`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::calls_query::CallsQuery;
use crate::source::{AdminSource, SourceError};
use crate::views::ErrorView;

/// Failure to run the admin HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The listening socket could not be bound.
    #[error("cannot listen for the admin API on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("admin API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

type Shared = Arc<dyn AdminSource>;

/// Builds the router of every admin route over `source`.
pub fn router(source: Arc<dyn AdminSource>) -> Router {
    Router::new()
        .route("/api/lines", get(lines))
        .route("/api/registrations", get(registrations))
        .route("/api/messages", get(message_counts))
        .route("/api/messages/{user}", get(messages))
        .route("/api/bans", get(bans))
        .route("/api/bans/{addr}", delete(lift_ban))
        .route("/api/calls", get(calls))
        .route("/api/calls/active", get(active_calls))
        .route("/api/tls", get(tls))
        .route("/api/tls/reload", post(reload_tls))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(source)
}

/// Binds `addr` and serves `router` until `shutdown` completes.
///
/// # Errors
/// [`AdminError::Bind`] if the address cannot be bound, [`AdminError::Serve`] if serving fails.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    serve_listener(listener, router, shutdown).await
}

/// Serves `router` on an already bound listener until `shutdown` completes (useful when the
/// caller binds port 0 and needs the port first).
///
/// # Errors
/// [`AdminError::Serve`] if serving fails.
pub async fn serve_listener(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(AdminError::Serve)
}

fn json_or_500<T: Serialize>(result: Result<T, SourceError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "admin API source failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.message)
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorView { error: message })).into_response()
}

async fn lines(State(s): State<Shared>) -> Response {
    json_or_500(s.lines().await)
}

async fn registrations(State(s): State<Shared>) -> Response {
    json_or_500(s.registrations().await)
}

async fn message_counts(State(s): State<Shared>) -> Response {
    json_or_500(s.message_counts().await)
}

async fn messages(State(s): State<Shared>, Path(user): Path<String>) -> Response {
    match s.messages(&user).await {
        Ok(Some(list)) => Json(list).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("unknown user {user:?}")),
        Err(e) => json_or_500::<()>(Err(e)),
    }
}

async fn bans(State(s): State<Shared>) -> Response {
    json_or_500(s.bans().await)
}

/// The address of `DELETE /api/bans/{addr}`: an IP address, optionally with the prefix
/// length `GET /api/bans` shows (`/32` for IPv4, `/64` for IPv6, `/` written `%2F`).
fn ban_address(text: &str) -> Option<IpAddr> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    match (prefix, ip) {
        (None, _) | (Some("32"), IpAddr::V4(_)) | (Some("64"), IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

async fn lift_ban(State(s): State<Shared>, Path(addr): Path<String>) -> Response {
    let Some(ip) = ban_address(&addr) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{addr:?} is not an IP address (or an IPv6 /64)"),
        );
    };
    match s.lift_ban(ip).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("{addr} is not banned")),
        Err(e) => json_or_500::<()>(Err(e)),
    }
}

async fn calls(
    State(s): State<Shared>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let parsed = params
        .map_err(|e| e.body_text())
        .and_then(|Query(params)| CallsQuery::from_params(&params));
    match parsed {
        Ok(query) => json_or_500(s.calls(query).await),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn active_calls(State(s): State<Shared>) -> Response {
    json_or_500(s.active_calls().await)
}

/// `Some` as JSON, `None` as `404` (nothing listens on TLS), an error as `500`.
fn tls_answer(result: Result<Option<crate::views::TlsView>, SourceError>) -> Response {
    match result {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no tls: listener is configured".to_string(),
        ),
        Err(e) => json_or_500::<()>(Err(e)),
    }
}

async fn tls(State(s): State<Shared>) -> Response {
    tls_answer(s.tls().await)
}

async fn reload_tls(State(s): State<Shared>) -> Response {
    tls_answer(s.reload_tls().await)
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics_text(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_record_view::CallRecordView;
    use crate::metrics::{Direction, Method, Metrics};
    use crate::source::BoxFuture;
    use crate::views::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Fake {
        metrics: Metrics,
        fail: bool,
    }

    impl AdminSource for Fake {
        fn lines(&self) -> BoxFuture<'_, Result<Vec<LineView>, SourceError>> {
            let fail = self.fail;
            Box::pin(async move {
                if fail {
                    return Err(SourceError::new("store is down"));
                }
                Ok(vec![LineView {
                    name: "provider1".into(),
                    number: "2001".into(),
                    state: LineState::Online,
                    since: 1,
                    expires_at: Some(3601),
                    next_attempt_at: Some(3000),
                    call_id_mode: CallIdModeView::Same,
                    last_failure: None,
                }])
            })
        }
        fn registrations(&self) -> BoxFuture<'_, Result<Vec<RegistrationView>, SourceError>> {
            Box::pin(async {
                Ok(vec![RegistrationView {
                    user: "101".into(),
                    contact: "<sip:101@127.0.0.1:5070>".into(),
                    transport: "UDP".into(),
                    source: "127.0.0.1:5070".into(),
                    expires_at: 99,
                    user_agent: None,
                }])
            })
        }
        fn message_counts(&self) -> BoxFuture<'_, Result<Vec<MessageCountView>, SourceError>> {
            Box::pin(async {
                Ok(vec![MessageCountView {
                    user: "101".into(),
                    stored: 2,
                }])
            })
        }
        fn messages<'a>(
            &'a self,
            user: &'a str,
        ) -> BoxFuture<'a, Result<Option<Vec<StoredMessageView>>, SourceError>> {
            Box::pin(async move {
                if user != "101" {
                    return Ok(None);
                }
                Ok(Some(vec![StoredMessageView {
                    id: 7,
                    from: "<sip:100@pbx>;tag=a".into(),
                    content_type: "text/plain".into(),
                    body: "hello".into(),
                    received_at: 5,
                    expires_at: 10,
                }]))
            })
        }
        fn bans(&self) -> BoxFuture<'_, Result<Vec<BanView>, SourceError>> {
            Box::pin(async {
                Ok(vec![BanView {
                    address: "203.0.113.7".into(),
                    scope: BanScopeView::Address,
                    reason: BanReasonView::Auth,
                    user: Some("101".into()),
                    failures: 10,
                    since: 1,
                    until: 901,
                    offence: 1,
                }])
            })
        }
        fn lift_ban(&self, addr: IpAddr) -> BoxFuture<'_, Result<bool, SourceError>> {
            let fail = self.fail;
            Box::pin(async move {
                if fail {
                    return Err(SourceError::new("the SIP worker has stopped"));
                }
                let banned: [IpAddr; 2] = [
                    "203.0.113.7".parse().unwrap(),
                    "2001:db8:1:2::".parse().unwrap(),
                ];
                Ok(banned.contains(&addr))
            })
        }
        fn calls(
            &self,
            query: CallsQuery,
        ) -> BoxFuture<'_, Result<Vec<CallRecordView>, SourceError>> {
            let fail = self.fail;
            Box::pin(async move {
                if fail {
                    return Err(SourceError::new("store is down"));
                }
                // The query, echoed in the record so the test sees what arrived.
                Ok(vec![CallRecordView {
                    id: format!("c-{}", query.limit),
                    started_at: query.since.map_or(0, |ms| (ms / 1000) as u64),
                    answered_at: None,
                    ended_at: Some(3),
                    duration_s: Some(3),
                    billsec_s: Some(0),
                    caller: "101".into(),
                    callee: "102".into(),
                    answered_by: None,
                    direction: "internal".into(),
                    line: None,
                    disposition: Some("busy".into()),
                    sip_code: Some(486),
                    ended_by: Some("callee".into()),
                    forwarded_from: None,
                    transferred_by: None,
                }])
            })
        }
        fn active_calls(&self) -> BoxFuture<'_, Result<Vec<ActiveCallView>, SourceError>> {
            Box::pin(async {
                Ok(vec![ActiveCallView {
                    id: "c-9".into(),
                    caller: "101".into(),
                    callee: "102".into(),
                    state: "ringing".into(),
                    since: 7,
                    legs: vec![CallLegView {
                        call_id: "a@x".into(),
                        peer: "127.0.0.1:5070".into(),
                        codec: None,
                        rtp_in: 0,
                        rtp_out: 0,
                        no_rtp_from: false,
                    }],
                }])
            })
        }
        fn metrics_text(&self) -> String {
            self.metrics.render()
        }
        fn reload_tls(&self) -> BoxFuture<'_, Result<Option<TlsView>, SourceError>> {
            let fail = self.fail;
            Box::pin(async move {
                if fail {
                    return Err(SourceError::new(
                        "cannot read the private key /etc/mss/key.pem: No such file or directory (os error 2)",
                    ));
                }
                Ok(Some(TlsView {
                    certificate: "/etc/mss/cert.pem".into(),
                    private_key: "/etc/mss/key.pem".into(),
                    fingerprint_sha256: "AB:CD".into(),
                }))
            })
        }
    }

    fn app(fail: bool) -> Router {
        let metrics = Metrics::new();
        metrics.request(Direction::In, Method::Message);
        router(Arc::new(Fake { metrics, fail }))
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, String) {
        send(app, Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn send(app: Router, req: Request<Body>) -> (StatusCode, String) {
        let rsp = app.oneshot(req).await.unwrap();
        let status = rsp.status();
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn lines_are_json() {
        let (status, body) = get(app(false), "/api/lines").await;
        assert_eq!(status, StatusCode::OK);
        let v: Vec<LineView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].name, "provider1");
        assert!(body.contains("\"last_failure\":null"));
    }

    #[tokio::test]
    async fn source_failure_is_500_json() {
        let (status, body) = get(app(true), "/api/lines").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let e: ErrorView = serde_json::from_str(&body).unwrap();
        assert_eq!(e.error, "store is down");
    }

    #[tokio::test]
    async fn registrations_and_counts() {
        let (status, body) = get(app(false), "/api/registrations").await;
        assert_eq!(status, StatusCode::OK);
        let v: Vec<RegistrationView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].user, "101");
        let (status, body) = get(app(false), "/api/messages").await;
        assert_eq!(status, StatusCode::OK);
        let v: Vec<MessageCountView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].stored, 2);
    }

    #[tokio::test]
    async fn messages_of_user_and_404() {
        let (status, body) = get(app(false), "/api/messages/101").await;
        assert_eq!(status, StatusCode::OK);
        let v: Vec<StoredMessageView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].body, "hello");
        let (status, body) = get(app(false), "/api/messages/999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let e: ErrorView = serde_json::from_str(&body).unwrap();
        assert!(e.error.contains("999"));
    }

    #[tokio::test]
    async fn bans_are_listed_and_lifted() {
        let (status, body) = get(app(false), "/api/bans").await;
        assert_eq!(status, StatusCode::OK);
        let v: Vec<BanView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].address, "203.0.113.7");
        assert!(body.contains("\"reason\":\"auth\""));
        let delete = |uri: &str| Request::delete(uri).body(Body::empty()).unwrap();
        for uri in [
            "/api/bans/203.0.113.7",
            "/api/bans/203.0.113.7%2F32",
            "/api/bans/2001:db8:1:2::%2F64",
        ] {
            let (status, body) = send(app(false), delete(uri)).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::NO_CONTENT, ""),
                "{uri}"
            );
        }
        let (status, body) = send(app(false), delete("/api/bans/198.51.100.1")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let e: ErrorView = serde_json::from_str(&body).unwrap();
        assert_eq!(e.error, "198.51.100.1 is not banned");
        for bad in ["/api/bans/pbx.example.com", "/api/bans/203.0.113.7%2F24"] {
            let (status, body) = send(app(false), delete(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(body.contains("is not an IP address"), "{body}");
        }
        let (status, _) = send(app(true), delete("/api/bans/203.0.113.7")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        // Listing is GET only, lifting DELETE only.
        let (status, _) = send(app(false), delete("/api/bans")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = get(app(false), "/api/bans/203.0.113.7").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn calls_take_since_and_limit() {
        let (status, body) = get(app(false), "/api/calls").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Vec<CallRecordView> = serde_json::from_str(&body).unwrap();
        assert_eq!((v[0].id.as_str(), v[0].started_at), ("c-100", 0));
        assert!(body.contains("\"disposition\":\"busy\""), "{body}");
        let (status, body) = get(app(false), "/api/calls?since=1700000000&limit=5").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Vec<CallRecordView> = serde_json::from_str(&body).unwrap();
        assert_eq!((v[0].id.as_str(), v[0].started_at), ("c-5", 1_700_000_000));
        for (uri, needle) in [
            ("/api/calls?limit=0", "limit=\\\"0\\\""),
            ("/api/calls?limit=5000", "from 1 to 1000"),
            ("/api/calls?since=soon", "Unix seconds"),
            ("/api/calls?max=3", "unknown query parameter"),
        ] {
            let (status, body) = get(app(false), uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            let e: ErrorView = serde_json::from_str(&body).unwrap();
            assert!(body.contains(needle), "{uri}: {body}");
            assert!(!e.error.is_empty());
        }
        let (status, _) = get(app(true), "/api/calls").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn active_calls_are_json() {
        let (status, body) = get(app(false), "/api/calls/active").await;
        assert_eq!(status, StatusCode::OK);
        let v: Vec<ActiveCallView> = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0].state, "ringing");
        assert_eq!(v[0].legs[0].call_id, "a@x");
    }

    #[tokio::test]
    async fn tls_reload_answers_the_new_certificate_or_why_not() {
        let post = |uri: &str| Request::post(uri).body(Body::empty()).unwrap();
        let (status, body) = send(app(false), post("/api/tls/reload")).await;
        assert_eq!(status, StatusCode::OK);
        let v: TlsView = serde_json::from_str(&body).unwrap();
        assert_eq!(v.fingerprint_sha256, "AB:CD");
        let (status, body) = send(app(true), post("/api/tls/reload")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let e: ErrorView = serde_json::from_str(&body).unwrap();
        assert!(e.error.contains("key.pem"), "{body}");
        // The default `tls`: nothing listens on TLS.
        let (status, body) = get(app(false), "/api/tls").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no tls: listener"), "{body}");
        let (status, _) = get(app(false), "/api/tls/reload").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn metrics_health_and_unknown_route() {
        let (status, body) = get(app(false), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("method=\"MESSAGE\"} 1"));
        let (status, body) = get(app(false), "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        let (status, _) = get(app(false), "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serves_on_loopback_and_shuts_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(listener, app(false), async {
            let _ = rx.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("ok\n"));
        tx.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let err = serve(addr, app(false), async {}).await.unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
