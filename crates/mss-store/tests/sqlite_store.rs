//! End-to-end tests of `SqliteStore` through the `Store` trait: durability across reopen,
//! the per-user limit under concurrency, group commit, and failure reporting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mss_store::{
    block_on, BindingChange, BindingKey, BindingRecord, CallDirection, CallDisposition, CallRecord,
    EndedBy, InsertOutcome, LineRecord, NewMessage, SqliteStore, Store, StoreError,
    UserMessageCount,
};

fn binding(user: &str, contact: &str, expires_at: i64) -> BindingRecord {
    BindingRecord {
        user: user.into(),
        contact: contact.into(),
        instance: None,
        reg_id: None,
        q_milli: None,
        expires_at,
        call_id: format!("{contact}-cid"),
        cseq: 1,
        transport: "UDP".into(),
        source: "127.0.0.1:5070".into(),
        user_agent: Some("sipp".into()),
        registered_at: 1,
    }
}

fn message(to: &str, body: &str, received_at: i64) -> NewMessage {
    NewMessage {
        recipient: to.into(),
        sender: "\"Alice\" <sip:101@pbx.example.com>;tag=9fx".into(),
        original_to: Some("<sip:102@pbx.example.com>".into()),
        content_type: "text/plain".into(),
        body: body.as_bytes().to_vec(),
        received_at,
        expires_at: received_at + 1_000_000,
    }
}

#[test]
fn bindings_survive_reopen_and_expired_are_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut with_instance = binding("101", "sip:101@10.0.0.5:5060", 10_000);
        with_instance.instance = Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".into());
        with_instance.reg_id = Some(1);
        with_instance.q_milli = Some(500);
        block_on(store.apply_binding_changes(
            "101",
            vec![
                BindingChange::Upsert(with_instance),
                BindingChange::Upsert(binding("101", "sip:101@10.0.0.6", 500)),
            ],
        ))
        .unwrap();
        block_on(store.apply_binding_changes(
            "102",
            vec![BindingChange::Upsert(binding(
                "102",
                "sip:102@10.0.0.7",
                20_000,
            ))],
        ))
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let loaded = block_on(store.load_bindings(1_000)).unwrap();
    let contacts: Vec<_> = loaded.iter().map(|b| b.contact.as_str()).collect();
    assert_eq!(contacts, ["sip:101@10.0.0.5:5060", "sip:102@10.0.0.7"]);
    assert_eq!(loaded[0].reg_id, Some(1));
    assert_eq!(loaded[0].q_milli, Some(500));

    assert_eq!(block_on(store.delete_expired_bindings(1_000)).unwrap(), 1);
    assert_eq!(block_on(store.delete_user_bindings("101")).unwrap(), 1);
    let key = BindingKey::Contact("sip:102@10.0.0.7".into());
    block_on(store.apply_binding_changes("102", vec![BindingChange::Remove(key)])).unwrap();
    assert!(block_on(store.load_bindings(0)).unwrap().is_empty());
}

#[test]
fn binding_changes_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    block_on(store.apply_binding_changes(
        "101",
        vec![BindingChange::Upsert(binding("101", "sip:a@h", 100))],
    ))
    .unwrap();
    // A reader racing with a 51-change REGISTER sees all of it or none of it (the rollback
    // of a failing change set is covered by the writer's unit tests).
    let changes: Vec<_> = (0..50)
        .map(|i| BindingChange::Upsert(binding("101", &format!("sip:{i}@h"), 100)))
        .chain([BindingChange::Remove(BindingKey::Contact("sip:a@h".into()))])
        .collect();
    let write = store.apply_binding_changes("101", changes);
    let seen = block_on(store.load_bindings(0)).unwrap().len();
    assert!(seen == 1 || seen == 50, "saw a partial change set: {seen}");
    block_on(write).unwrap();
    assert_eq!(block_on(store.load_bindings(0)).unwrap().len(), 50);
}

#[test]
fn messages_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let a = block_on(store.insert_message(message("102", "one", 10))).unwrap();
    let b = block_on(store.insert_message(message("102", "two", 11))).unwrap();
    let c = block_on(store.insert_message(message("103", "three", 12))).unwrap();
    assert!(a < b && b < c);
    assert_eq!(block_on(store.count_messages("102", 10)).unwrap(), 2);
    let listed = block_on(store.list_messages("102", 10)).unwrap();
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(listed[0].message, message("102", "one", 10));
    assert_eq!(
        block_on(store.message_counts(10)).unwrap(),
        [
            UserMessageCount {
                user: "102".into(),
                stored: 2
            },
            UserMessageCount {
                user: "103".into(),
                stored: 1
            },
        ]
    );
    assert!(block_on(store.delete_message(a)).unwrap());
    assert!(
        !block_on(store.delete_message(a)).unwrap(),
        "second delete finds nothing"
    );
    assert_eq!(
        block_on(store.delete_expired_messages(1_000_011)).unwrap(),
        1
    );
    assert_eq!(block_on(store.count_messages("102", 0)).unwrap(), 0);
    assert_eq!(block_on(store.count_messages("103", 0)).unwrap(), 1);
}

#[test]
fn lines_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let line = LineRecord {
        name: "provider1".into(),
        call_id: "reg-1@mss".into(),
        from_tag: "ft1".into(),
        last_cseq: 41,
        updated_at: 5,
        call_id_mode: Some("auto_fresh".into()),
    };
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(block_on(store.get_line("provider1")).unwrap(), None);
        block_on(store.put_line(line.clone())).unwrap();
        block_on(store.put_secret("nonce", vec![1, 2, 3])).unwrap();
        let kept = block_on(store.secret_or_insert("pw:100", b"gen1".to_vec())).unwrap();
        assert_eq!(kept, b"gen1");
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        block_on(store.get_line("provider1")).unwrap(),
        Some(line.clone())
    );
    assert_eq!(block_on(store.list_lines()).unwrap(), [line]);
    assert_eq!(
        block_on(store.get_secret("nonce")).unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(block_on(store.get_secret("other")).unwrap(), None);
    let kept = block_on(store.secret_or_insert("pw:100", b"gen2".to_vec())).unwrap();
    assert_eq!(kept, b"gen1", "an existing secret is never replaced");
}

/// A call answered before a crash: its open record is `interrupted` at the next start,
/// once, and listed with the finished ones, newest first.
#[test]
fn open_call_records_are_interrupted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let call = |id: &str, started_at: i64, finished: bool| CallRecord {
        id: id.into(),
        started_at,
        answered_at: Some(started_at + 1_000),
        ended_at: finished.then_some(started_at + 5_000),
        caller: "101".into(),
        callee: "102".into(),
        answered_by: Some("102".into()),
        direction: CallDirection::Internal,
        line: None,
        disposition: finished.then_some(CallDisposition::Answered),
        sip_code: Some(200),
        ended_by: finished.then_some(EndedBy::Callee),
        forwarded_from: None,
        transferred_by: finished.then(|| "101".into()),
    };
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        block_on(store.put_call(call("c1", 1_000, true))).unwrap();
        block_on(store.put_call(call("c2", 2_000, false))).unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let changed = block_on(store.interrupt_open_calls(10_000)).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].id, "c2");
    assert_eq!(changed[0].disposition, Some(CallDisposition::Interrupted));
    assert_eq!(changed[0].ended_by, Some(EndedBy::Mss));
    assert_eq!(changed[0].ended_at, None);
    assert!(block_on(store.interrupt_open_calls(10_000))
        .unwrap()
        .is_empty());
    let listed = block_on(store.list_calls(None, 10)).unwrap();
    assert_eq!(listed, [changed[0].clone(), call("c1", 1_000, true)]);
    let since = block_on(store.list_calls(Some(1_500), 10)).unwrap();
    assert_eq!(since, [changed[0].clone()]);
}

#[test]
fn messages_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let pending = store.insert_message(message("102", "keep me", 1));
        // Once the future resolves the message is committed with synchronous=FULL.
        let id = block_on(pending).unwrap();
        drop(store);
        id
    };
    // The WAL file may still hold the commit; the reopened database must see it.
    let store = SqliteStore::open(dir.path()).unwrap();
    let listed = block_on(store.list_messages("102", 0)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].message.body, b"keep me");
    let next = block_on(store.insert_message(message("102", "later", 2))).unwrap();
    assert!(next > id);
}

#[test]
fn dropped_future_still_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    drop(store.insert_message(message("102", "fire and forget", 1)));
    drop(store.clone());
    let store2 = store.clone();
    drop(store);
    // Reads after a later write's commit see the earlier one: writes are committed in order.
    block_on(store2.put_secret("barrier", vec![])).unwrap();
    assert_eq!(block_on(store2.count_messages("102", 0)).unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_holds_under_concurrent_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .insert_message_if_below(message("102", &format!("m{i}"), 100), 10)
                .await
        }));
    }
    let mut stored = 0;
    let mut full = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            InsertOutcome::Stored(_) => stored += 1,
            InsertOutcome::Full { stored: n } => {
                assert_eq!(n, 10);
                full += 1;
            }
        }
    }
    assert_eq!((stored, full), (10, 10));
    assert_eq!(store.count_messages("102", 100).await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let before = store.stats();
    let mut tasks = Vec::new();
    for i in 0..1_000 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_message(message("102", &format!("m{i}"), i))
                .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_000);
    let after = store.stats();
    eprintln!("group commit: {after:?}");
    let commits = after.commits - before.commits;
    assert_eq!(after.writes - before.writes, 1_000);
    assert!(
        commits < 1_000,
        "{commits} commits for 1000 inserts: no batching"
    );
    assert!(after.largest_batch > 1);
    assert_eq!(store.count_messages("102", 0).await.unwrap(), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deliveries_delete_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let id = store.insert_message(message("102", "x", 1)).await.unwrap();
    let a = tokio::spawn(store.delete_message(id));
    let b = tokio::spawn(store.delete_message(id));
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(a ^ b, "exactly one delete reports the message: {a} {b}");
}

#[test]
fn folder_without_write_permission_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    // Root ignores permissions; probe rather than call geteuid (unsafe code is denied).
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(locked.join("probe"), b"").is_ok() {
        eprintln!("skipped: running with permission to write anywhere (root)");
        return;
    }
    let err = SqliteStore::open(&locked).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("mss.db"), "{text}");

    let err = SqliteStore::open(locked.join("sub")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("sub"), "{err}");
}

#[test]
fn not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mss.db"), vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("mss.db"), "{err}");
}
