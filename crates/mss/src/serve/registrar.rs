//! The registrar's glue: REGISTER in, store write out, `200` once the write is durable
//! (DESIGN §3, §5), the periodic sweep of expired bindings, and the admin view.

use mss_admin::{Direction, RegistrationView};
use mss_services::registrar::{PendingRegister, RegisterOutcome};
use mss_services::Now;
use mss_sip::{Flow, Request, RequestCore, Response, StatusCode};
use mss_store::StoreError;
use mss_txn::ServerTransactionId;

use super::worker::{Completion, Worker};

impl Worker {
    /// A REGISTER (RFC 3261 §10.3): answered at once, or after its changes are committed.
    pub(super) fn on_register(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        checked: &RequestCore<'_>,
        from: &Flow,
    ) {
        match self
            .registrar
            .handle_checked_register(now, req, checked, from)
        {
            // A challenge is sent once and keeps no transaction (RFC 3261 §26.3.2.4): a
            // flood of unauthenticated REGISTERs then costs no state for Timer J's 32 s.
            RegisterOutcome::Reply(rsp) if rsp.status() == StatusCode::UNAUTHORIZED => {
                self.respond_once(now, id, rsp);
            }
            RegisterOutcome::Reply(rsp) => self.respond(now, id, rsp),
            RegisterOutcome::Commit(mut pending) => {
                let changes = pending.take_changes();
                let op = self.store.apply_binding_changes(pending.user(), changes);
                self.spawn_store(op, move |result| Completion::Register {
                    server: id,
                    pending: Box::new(pending),
                    result,
                });
            }
        }
    }

    /// Answers server transaction `id` with a final response sent once, ending the
    /// transaction at once ([`mss_txn::Transactions::send_response_once`]).
    fn respond_once(&mut self, now: Now, id: ServerTransactionId, rsp: Response) {
        let code = rsp.status().as_u16();
        match self.txns.send_response_once(now.mono, id, rsp) {
            Ok(()) => self.metrics.response(Direction::Out, code),
            Err(e) => tracing::debug!(?id, code, error = %e, "response not sent"),
        }
    }

    /// The store answered for an accepted REGISTER: apply to memory and answer `200`, or
    /// answer `500` with `Retry-After` and keep memory as it was.
    pub(super) fn on_register_stored(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        pending: Box<PendingRegister>,
        result: Result<(), StoreError>,
    ) {
        match result {
            Ok(()) => {
                let done = self.registrar.complete(now, *pending);
                tracing::debug!(user = %done.user, "registered");
                self.respond(now, server, done.response);
                self.update_registered_gauge();
                // After the 200: stored messages go out (serve/im.rs).
                self.im_user_registered(now, &done.user);
            }
            Err(e) => {
                tracing::warn!(user = %pending.user(), error = %e, "binding not stored; answering 500");
                let rsp = self.registrar.failed(*pending);
                self.respond(now, server, rsp);
            }
        }
    }

    /// Drops expired bindings from memory and forgets old nonce counts; the store deletes
    /// them in one batched write, not one write per expiry.
    pub(super) fn sweep(&mut self, now: Now) {
        let removed = self.registrar.sweep(now);
        if removed.is_empty() {
            return;
        }
        tracing::debug!(count = removed.len(), "bindings expired");
        self.update_registered_gauge();
        if !self.sweep_running {
            self.sweep_running = true;
            let op = self.store.delete_expired_bindings(now.unix_ms);
            self.spawn_store(op, Completion::Swept);
        }
    }

    /// The batched delete of expired bindings finished.
    pub(super) fn on_swept(&mut self, result: Result<u64, StoreError>) {
        self.sweep_running = false;
        match result {
            Ok(n) => tracing::debug!(deleted = n, "expired bindings deleted from the store"),
            // The next sweep with expiries tries again; `load_bindings` skips expired rows.
            Err(e) => tracing::warn!(error = %e, "expired bindings not deleted"),
        }
    }

    fn update_registered_gauge(&self) {
        let n = self.registrar.location().binding_count();
        self.metrics
            .set_registered_contacts(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// `GET /api/registrations`: every live binding (times in Unix seconds).
    pub(super) fn registrations(&self, now: Now) -> Vec<RegistrationView> {
        self.registrar
            .location()
            .snapshot(now.mono)
            .into_iter()
            .map(|r| RegistrationView {
                user: r.user,
                contact: r.contact,
                transport: r.transport.to_owned(),
                source: r.source,
                expires_at: u64::try_from(r.expires_at / 1000).unwrap_or(0),
                user_agent: r.user_agent,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use mss_auth::NonceSecret;
    use mss_sip::{parse_datagram, HeaderName, Message, Response};
    use mss_store::{SqliteStore, Store};
    use mss_transport::{TransportConfig, Transports};
    use tokio::net::UdpSocket;
    use tokio::sync::{mpsc, oneshot, watch};

    use super::super::im::Im;
    use super::super::lines::Lines;
    use super::super::setup;
    use super::super::stats::WorkerStats;
    use super::super::testing::digest_answer;
    use super::super::worker::{Inputs, Parts, Query, Worker};

    async fn exchange(sock: &UdpSocket, to: std::net::SocketAddr, req: String) -> Response {
        sock.send_to(req.as_bytes(), to).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            let Ok(Message::Response(r)) = parse_datagram(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            if r.status().as_u16() >= 200 {
                return r;
            }
        }
    }

    fn register(
        to: std::net::SocketAddr,
        me: std::net::SocketAddr,
        cseq: u32,
        auth: &str,
    ) -> String {
        format!(
            "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-w{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=t\r\nTo: <sip:100@pbx.test>\r\nCall-ID: worker-test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@{me}>\r\nExpires: 120\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    }

    /// The worker end to end in one process: OPTIONS, a challenged REGISTER, its `200`
    /// only after the store has the binding, the admin query, and a drained shutdown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn register_through_the_worker_is_durable_before_its_200() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        std::fs::write(
            &cfg,
            "[server]\ndomain = pbx.test\n[user:100]\npassword = pw\n",
        )
        .unwrap();
        let loaded = crate::config::load(Some(&cfg), None).unwrap();
        let c = &loaded.config;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let listen = vec![mss_transport::ListenSpec::new(
            mss_sip::Transport::Udp,
            "127.0.0.1:0".parse().unwrap(),
        )];
        let (transports, received) = Transports::bind(TransportConfig::with_listen(listen))
            .await
            .unwrap();
        let server = transports.local_addr(mss_sip::Transport::Udp).unwrap();
        let domains = setup::local_domains(c, &[]);
        let registrar = setup::registrar(c, domains.clone(), NonceSecret::from_bytes([5; 32]), 1);
        let (completions_tx, completions) = mpsc::unbounded_channel();
        let (queries_tx, queries) = mpsc::channel(4);
        let (stop, shutdown) = watch::channel(false);
        let worker = Worker::new(
            Parts {
                transports: transports.clone(),
                store: Arc::clone(&store),
                metrics: Arc::new(mss_admin::Metrics::new()),
                stats: Arc::new(WorkerStats::default()),
                registrar,
                domains,
                lines: Lines::new(&loaded, setup::now()),
                im: Im::new(c, "127.0.0.1", setup::now(), 1),
                completions: completions_tx,
            },
            setup::answer(c),
            setup::precheck(),
        );
        let task = tokio::spawn(worker.run(Inputs {
            received,
            completions,
            queries,
            shutdown,
        }));

        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let me = sock.local_addr().unwrap();
        let options = format!("OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-o;rport\r\nFrom: <sip:x@pbx.test>;tag=1\r\nTo: <sip:{server}>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            exchange(&sock, server, options).await.status().as_u16(),
            200
        );

        let challenge = exchange(&sock, server, register(server, me, 1, "")).await;
        assert_eq!(challenge.status().as_u16(), 401);
        let auth = digest_answer(
            &challenge,
            &HeaderName::WwwAuthenticate,
            "REGISTER",
            &format!("sip:{server}"),
            "100",
            "pw",
            1,
        );
        let ok = exchange(
            &sock,
            server,
            register(server, me, 2, &format!("Authorization: {auth}\r\n")),
        )
        .await;
        assert_eq!(ok.status().as_u16(), 200);
        // Durable before the 200 left.
        let stored = store.load_bindings(setup::now().unix_ms).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].source, me.to_string());

        let (tx, rx) = oneshot::channel();
        queries_tx.send(Query::Registrations(tx)).await.unwrap();
        let regs = rx.await.unwrap();
        assert_eq!(regs.len(), 1);
        assert_eq!(regs[0].user, "100");

        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        transports.shutdown().await;
        tokio::task::spawn_blocking(move || drop(store))
            .await
            .unwrap();
    }
}
