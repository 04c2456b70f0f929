//! Offline-message insert throughput: one caller at a time (one commit, one fsync per
//! insert) against many concurrent callers sharing group commits.
//!
//! `cargo bench -p mss-store --bench insert`; results in `BENCHMARKS.md`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mss_store::{block_on, NewMessage, SqliteStore, Store};

fn message(i: u64) -> NewMessage {
    NewMessage {
        recipient: format!("{}", 100 + i % 50),
        sender: "\"Alice\" <sip:101@pbx.example.com>;tag=9fx".into(),
        original_to: Some("<sip:102@pbx.example.com>".into()),
        content_type: "text/plain;charset=UTF-8".into(),
        body: b"Watson, come here. I want to see you.".to_vec(),
        received_at: 1_700_000_000_000,
        expires_at: 1_700_000_000_000 + 7 * 86_400_000,
    }
}

/// Concurrent callers per measured burst.
const CONCURRENT: u64 = 256;

fn inserts(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut group = c.benchmark_group("insert_message");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));

    group.throughput(Throughput::Elements(1));
    group.bench_function("sequential", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            block_on(store.insert_message(message(i))).unwrap()
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    group.throughput(Throughput::Elements(CONCURRENT));
    group.bench_function("concurrent_256", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                runtime.block_on(async {
                    let tasks: Vec<_> = (0..CONCURRENT)
                        .map(|i| tokio::spawn(store.insert_message(message(i))))
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                });
            }
            start.elapsed()
        })
    });
    group.finish();
    let s = store.stats();
    eprintln!(
        "commits {} writes {} (mean batch {:.1}, largest {})",
        s.commits,
        s.writes,
        s.writes as f64 / s.commits.max(1) as f64,
        s.largest_batch
    );
}

criterion_group!(benches, inserts);
criterion_main!(benches);
