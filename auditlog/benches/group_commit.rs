//! Appending to a durable chain (WAL, `synchronous=FULL`, a file in
//! `target/`): one transaction and one fsync per entry (how the hub and
//! the agent appended before group commit) against the group-commit writer
//! with 1 and 8 concurrent callers (each caller waits for its own entry to
//! be committed, as the hub's and the agent's callers do).
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use rusqlite::{Connection, TransactionBehavior};
use sonde_auditlog::{GroupCommit, SCHEMA, append};
use sonde_protocol::Digest;
use sonde_protocol::audit::{AuditAction, NewEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open(name: &str) -> Connection {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("sonde-group-commit-bench-{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn
}

fn entry(i: u64) -> NewEntry {
    NewEntry::new("api-key:sk_12345678", AuditAction::Probe, "ok")
        .agent("agt-0123456789ab")
        .probe("system.disk.usage")
        .params_digest(Digest::of(&i.to_le_bytes()))
        .result_digest(Digest::of(&(i + 1).to_le_bytes()))
        .detail("duration_ms", i % 900)
        .detail("request_id", format!("req-{i:016x}"))
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// `callers` threads append `per_caller` entries each, every append waiting
/// for its commit. Returns the elapsed time.
fn group(writer: &Arc<GroupCommit>, callers: u64, per_caller: u64) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|t| {
            let w = Arc::clone(writer);
            std::thread::spawn(move || {
                for i in 0..per_caller {
                    w.run_blocking(move |tx| tx.append(entry(t * 1_000_000 + i)))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    started.elapsed()
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    let conn = std::cell::RefCell::new(open("per-entry"));
    let mut i = 0u64;
    g.bench_function("one_transaction_per_entry", |b| {
        b.iter(|| {
            let mut conn = conn.borrow_mut();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .unwrap();
            i += 1;
            append(&tx, entry(i), i as i64).unwrap();
            tx.commit().unwrap();
        })
    });

    for callers in [1u64, 8] {
        let writer = Arc::new(GroupCommit::start(open("group"), key(), 1000, "bench").unwrap());
        g.bench_function(format!("group_commit_{callers}_callers_per_entry"), |b| {
            b.iter_custom(|iters| {
                let per_caller = iters.div_ceil(callers).max(1);
                let elapsed = group(&writer, callers, per_caller);
                // Time per entry, scaled back to `iters` entries.
                elapsed.mul_f64(iters as f64 / (per_caller * callers) as f64)
            })
        });
        let stats = writer.stats();
        eprintln!(
            "group commit, {callers} callers: {} entries in {} commits ({:.1} per fsync)",
            stats.jobs(),
            stats.batches(),
            stats.jobs() as f64 / stats.batches().max(1) as f64
        );
    }
    g.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
