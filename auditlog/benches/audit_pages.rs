//! The console's audit screen on a large chain: pages of 200 entries from a
//! 1,000,000-entry SQLite chain — the newest page, a page deep in the
//! past, and filtered pages whose matches are rare (one agent of 50, a
//! probe prefix, a rare outcome, a rare action, a time window) — plus a
//! full streaming verification.
//!
//! The database is built once in `target/sonde-audit-bench-<N>.db`
//! (`SONDE_AUDIT_BENCH_ENTRIES` makes it smaller).
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use sonde_auditlog::{PageQuery, SCHEMA, append, head, insert_checkpoint, page, verify};
use sonde_protocol::Digest;
use sonde_protocol::audit::{AuditAction, Checkpoint, NewEntry};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const START_MS: i64 = 1_700_000_000_000;

fn entries() -> u64 {
    std::env::var("SONDE_AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// Entry `i`: 50 agents, probes from four packs, one denial in 1,000 and
/// one enrollment in 10,000, one entry a second.
fn entry(i: u64) -> NewEntry {
    let agent = format!("agent-{:02}", i % 50);
    let (action, outcome) = if i.is_multiple_of(10_000) {
        (AuditAction::EnrollmentApproved, "ok")
    } else if i % 1000 == 7 {
        (AuditAction::Probe, "denied")
    } else {
        (AuditAction::Probe, "ok")
    };
    let probe = [
        "zfs.file_history",
        "system.disk.usage",
        "docker.containers.list",
        "systemd.service.status",
    ][(i % 4) as usize];
    NewEntry::new(format!("key:{}", i % 7), action, outcome)
        .agent(agent)
        .probe(probe)
        .params_digest(Digest::of(&i.to_le_bytes()))
        .detail("duration_ms", i % 900)
}

fn database() -> Connection {
    let n = entries();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("sonde-audit-bench-{n}.db"));
    if let Ok(conn) = Connection::open(&path)
        && head(&conn).map(|h| h.seq == n).unwrap_or(false)
    {
        // Indexes added since the file was built.
        conn.execute_batch(SCHEMA).unwrap();
        return conn;
    }
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
        .unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    let started = Instant::now();
    let key = key();
    let mut i = 0;
    while i < n {
        let tx = conn.transaction().unwrap();
        for _ in 0..10_000.min(n - i) {
            i += 1;
            let e = append(&tx, entry(i), START_MS + i as i64 * 1000).unwrap();
            if i.is_multiple_of(1000) {
                let cp = Checkpoint::sign(e.head(), e.timestamp_ms, &key);
                insert_checkpoint(&tx, &cp).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    eprintln!(
        "built {n} entries in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    conn
}

fn pages(c: &mut Criterion) {
    let conn = database();
    let n = entries();
    let q = |f: &dyn Fn(&mut PageQuery)| {
        let mut q = PageQuery {
            limit: Some(200),
            ..PageQuery::default()
        };
        f(&mut q);
        q
    };
    let cases: Vec<(&str, PageQuery)> = vec![
        ("newest", q(&|_| {})),
        ("deep", q(&|q| q.before_seq = Some(n / 10))),
        ("one_agent", q(&|q| q.agent = Some("agent-17".into()))),
        ("probe_prefix", q(&|q| q.probe = Some("zfs.*".into()))),
        ("rare_outcome", q(&|q| q.outcome = Some("denied".into()))),
        (
            "rare_action",
            q(&|q| q.action = Some("enrollment.approved".into())),
        ),
        (
            "time_window",
            q(&|q| {
                q.since_ms = Some(START_MS + (n as i64 / 2) * 1000);
                q.until_ms = Some(START_MS + (n as i64 / 2 + 3600) * 1000);
            }),
        ),
    ];
    for (name, query) in &cases {
        let got = page(&conn, query).unwrap();
        assert!(!got.is_empty(), "{name} finds entries");
    }
    let mut g = c.benchmark_group(format!("audit_page_200_of_{n}"));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    for (name, query) in &cases {
        g.bench_function(*name, |b| b.iter(|| page(&conn, query).unwrap()));
    }
    g.finish();

    let mut g = c.benchmark_group(format!("audit_verify_{n}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    let public = key().verifying_key();
    g.bench_function("verify", |b| {
        b.iter(|| assert!(verify(&conn, &public).unwrap().is_ok()))
    });
    g.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
