//! `trending` on a 1,000,000-entry hub audit (issue 18).
//!
//! The database is built once (and kept in `target/bench-trending/hub.db`
//! for later runs; delete it to rebuild): the hub's migrations, then
//! 1,000,000 chained entries appended with `sonde_auditlog::append` in
//! transactions of 20,000, spread evenly over 14 days ending now: 95 %
//! probe calls (20 agents × 25 probes, outcomes 94 % ok, 3 % error, 1 %
//! timeout, 1 % refused, 1 % denied, durations 1 ms – 20 s, skewed short), 5 %
//! other events. So a 1 h window holds about 2,800 probe calls, a 24 h
//! window about 68,000 and its previous window as many; a 7 d window about
//! 475,000 and 475,000; a 30 d or 90 d window the whole audit (and an empty
//! previous window). A database built by an older hub is migrated first
//! (as the hub does at start-up), so the roll-up is back-filled.
//!
//! Each case is timed by criterion and, before that, 20 times by hand to
//! print p50 / p95 / max per query.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use sonde_hub::store::HubStore;
use sonde_hub::trending::{TrendParams, summarise_with};
use sonde_protocol::audit::{AuditAction, NewEntry};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ENTRIES: u64 = 1_000_000;
const BATCH: u64 = 20_000;
const SPAN_MS: i64 = 14 * 24 * 3_600_000;

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn db_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-trending")
}

/// Builds the database (unless a complete one is there); returns its path
/// and the time its last entry was written at.
fn build() -> (PathBuf, i64) {
    let dir = db_path();
    let path = dir.join("hub.db");
    let done = dir.join("complete");
    if let Ok(t) = std::fs::read_to_string(&done) {
        return (path, t.trim().parse().unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    HubStore::open(&path, key(), 1000).unwrap().close();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let end = sonde_protocol::time::now_ms();
    let start = end - SPAN_MS;
    let step = SPAN_MS / ENTRIES as i64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let probes: Vec<String> = (0..25)
        .map(|i| {
            let pack = ["system", "zfs", "docker", "systemd", "nginx"][i % 5];
            format!("{pack}.probe_{i:02}")
        })
        .collect();
    let started = Instant::now();
    let mut n = 0;
    while n < ENTRIES {
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..BATCH {
            let t = start + n as i64 * step;
            let entry = if rng.below(100) < 5 {
                NewEntry::new("operator:bench", AuditAction::KeyCreated, "ok").detail("i", n)
            } else {
                let agent = format!("agt-{:02}", rng.below(20));
                let probe = &probes[rng.below(25) as usize];
                let roll = rng.below(100);
                let outcome = match roll {
                    0..94 => "ok",
                    94..97 => "error",
                    97 => "timeout",
                    98 => "refused",
                    _ => "denied",
                };
                let mut e = NewEntry::new("api-key:sk_bench000", AuditAction::Probe, outcome)
                    .agent(agent)
                    .probe(probe.clone())
                    .detail("via", "mcp.probe");
                if matches!(outcome, "ok" | "error" | "timeout") {
                    // Mostly short, a long tail.
                    let d = match rng.below(100) {
                        0..70 => 1 + rng.below(30),
                        70..95 => 30 + rng.below(500),
                        _ => 500 + rng.below(20_000),
                    };
                    e = e.detail("duration_ms", d);
                }
                e
            };
            sonde_auditlog::append(&conn, entry, t).unwrap();
            n += 1;
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    eprintln!(
        "built {ENTRIES} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let last = start + (ENTRIES as i64 - 1) * step;
    std::fs::write(&done, last.to_string()).unwrap();
    (path, last)
}

fn bench(c: &mut Criterion) {
    let (path, last) = build();
    let now = last + 1;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A database built by an older hub is migrated (and its derived tables
    // back-filled) as the hub would at start-up; the time is printed.
    let t = Instant::now();
    HubStore::open(&path, key(), 1000).unwrap().close();
    eprintln!(
        "opened (migrations applied) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let store = HubStore::open_read_only(&path).unwrap();
    let cases = [
        ("1h", None, None),
        ("24h", None, None),
        ("7d", None, None),
        ("30d", None, None),
        ("90d", None, None),
        ("7d", Some("zfs.*"), None),
        ("7d", None, Some("agt-07")),
    ];
    let mut g = c.benchmark_group("trending_1m");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for (window, probe, agent) in cases {
        let params =
            TrendParams::parse(Some(window), None, probe.map(str::to_owned), Some(20)).unwrap();
        let run = || {
            rt.block_on(summarise_with(
                &store,
                |id| Some(id.to_owned()),
                |_| true,
                agent.map(str::to_owned),
                &params,
                now,
            ))
            .unwrap()
        };
        let v = run();
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(run());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let name = format!(
            "{window}{}{}",
            probe.map(|p| format!(" probe={p}")).unwrap_or_default(),
            agent.map(|a| format!(" agent={a}")).unwrap_or_default()
        );
        eprintln!(
            "trending {name}: {} calls now, {} before, {} groups; p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            v["totals"]["current"]["calls"],
            v["totals"]["previous"]["calls"],
            v["groups"],
            times[9],
            times[18],
            times[19]
        );
        g.bench_function(name, |b| b.iter(run));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
