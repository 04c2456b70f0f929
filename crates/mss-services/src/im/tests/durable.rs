//! The service driven against the real SQLite store (in a temporary folder): the limits,
//! a restart between storing and delivering, partial delivery, expiry. The test is the
//! caller: it awaits every storage operation with `block_on` and plays the device.

use std::time::Duration;

use mss_store::{block_on, SqliteStore, Store};

use super::*;

/// The caller: a store, the device's answers, and the answers the senders got.
struct Driver {
    h: Harness,
    store: SqliteStore,
    /// Status code the device answers the next requests with (then 200).
    device: Vec<u16>,
    /// Bodies the device accepted, in order.
    received: Vec<Vec<u8>>,
    /// Final answers to senders: (server transaction, status).
    answers: Vec<(Txn, u16)>,
}

impl Driver {
    fn new(h: Harness, store: SqliteStore) -> Driver {
        Driver {
            h,
            store,
            device: Vec::new(),
            received: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// Carries out every output until the service is quiet.
    fn run(&mut self) {
        for _ in 0..1_000 {
            let outs = self.h.drain();
            if outs.is_empty() {
                return;
            }
            for o in outs {
                self.carry_out(o);
            }
        }
        panic!("the service never went quiet");
    }

    fn carry_out(&mut self, o: ImOutput<Txn>) {
        let now = self.h.now;
        let im = &mut self.h.im;
        match o {
            ImOutput::Reply { server, response } => {
                self.answers.push((server, response.status().as_u16()));
            }
            ImOutput::Send { token, request, .. } => {
                let code = if self.device.is_empty() {
                    200
                } else {
                    self.device.remove(0)
                };
                if code == 200 {
                    self.received.push(request.body().to_vec());
                }
                im.handle_response(now, token, &answer(&request, code, "X"));
            }
            ImOutput::Store {
                token,
                message,
                limit,
            } => {
                let r = block_on(self.store.insert_message_if_below(message, limit));
                im.handle_stored(now, token, r.map_err(|e| e.to_string()));
            }
            ImOutput::Load { user, now: at } => {
                let r = block_on(self.store.list_messages(&user, at));
                im.handle_loaded(now, &user, r.map_err(|e| e.to_string()));
            }
            ImOutput::Delete { id } => {
                let r = block_on(self.store.delete_message(id));
                im.handle_deleted(now, id, r.map_err(|e| e.to_string()));
            }
            ImOutput::Expire { now: at } => {
                let r = block_on(self.store.delete_expired_messages(at));
                im.handle_expired(now, r.map_err(|e| e.to_string()));
            }
        }
    }

    fn stored_count(&self) -> u64 {
        block_on(self.store.count_messages("102", self.h.now.unix_ms)).unwrap()
    }
}

#[test]
fn nothing_is_lost_across_a_restart_and_a_failed_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Driver::new(Harness::new(), SqliteStore::open(dir.path()).unwrap());
    for i in 0..11u32 {
        d.h.message(i, &text(&format!("m{i}")), vec![]);
        d.run();
    }
    let accepted = d.answers.iter().filter(|(_, c)| *c == 202).count();
    assert_eq!(accepted, 10);
    assert_eq!(d.answers.last(), Some(&(10, 480)));
    assert_eq!(d.stored_count(), 10);

    // Restart: a new store handle and a new service, an hour later.
    drop(d);
    let mut h = Harness::new();
    h.advance(Duration::from_secs(3_600));
    let mut d = Driver::new(h, SqliteStore::open(dir.path()).unwrap());
    // The device takes three, then is unreachable.
    d.device = vec![200, 200, 200, 480];
    let now = d.h.now;
    d.h.im.handle_user_reachable(now, "102", vec![contact(7)]);
    d.run();
    assert_eq!(
        d.received,
        vec![b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]
    );
    assert_eq!(d.stored_count(), 7);
    assert_eq!(d.h.im.stats().delivered, 3);

    // The next registration delivers the rest, in order, each once.
    let now = d.h.now;
    d.h.im.handle_user_reachable(now, "102", vec![contact(7)]);
    d.run();
    let expected: Vec<Vec<u8>> = (0..10).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(d.received, expected);
    assert_eq!(d.stored_count(), 0);
    assert_eq!(d.h.im.stats().delivered, 10);
}

#[test]
fn expired_messages_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Driver::new(Harness::new(), SqliteStore::open(dir.path()).unwrap());
    d.h.message(1, &text("old"), vec![]);
    d.h.message(
        2,
        &message_with("text/plain", "Expires: 30\r\n", b"short"),
        vec![],
    );
    d.run();
    assert_eq!(d.answers, vec![(1, 202), (2, 202)]);
    // After a minute the short-lived one is gone from reads and swept.
    d.h.advance(Duration::from_secs(60));
    let now = d.h.now;
    d.h.im.handle_timeout(now);
    d.run();
    assert_eq!(d.h.im.stats().expired, 1);
    assert_eq!(d.stored_count(), 1);
    // A week later the other one too.
    d.h.advance(Duration::from_secs(7 * 86_400));
    let now = d.h.now;
    d.h.im.handle_timeout(now);
    d.run();
    assert_eq!(d.h.im.stats().expired, 2);
    // Nothing left to deliver.
    let now = d.h.now;
    d.h.im.handle_user_reachable(now, "102", vec![contact(7)]);
    d.run();
    assert!(d.received.is_empty());
}
