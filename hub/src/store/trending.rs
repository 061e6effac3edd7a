//! Aggregates of probe calls over the audit chain for `crate::trending`.
//!
//! Every probe call is one `probe` entry (allowed, denied, refused, failed
//! or answered); its latency is the `duration_ms` its entry records.
//! Migration 0007 keeps those fields in `probe_calls` (clustered by time,
//! filled by a trigger in the transaction that appends the entry), so both
//! queries read one range of one B-tree and group in SQLite: what reaches
//! Rust is one row per group and duration bucket, never one per entry.

use rusqlite::params;
use std::sync::OnceLock;

use super::{HubStore, Result};

/// Upper bounds (ms) of the latency histogram's buckets (about ×1.5 apart);
/// bucket `BUCKETS_MS.len()` holds longer calls, `-1` calls without a
/// duration (refused before they ran).
pub const BUCKETS_MS: &[i64] = &[
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000,
];

/// What to aggregate: `[from_ms, to_ms)`, split at `split_ms` into the
/// previous and the current window.
#[derive(Debug, Clone, Default)]
pub struct CallStatsQuery {
    pub from_ms: i64,
    pub split_ms: i64,
    pub to_ms: i64,
    /// Only this agent id.
    pub agent: Option<String>,
    /// Only probes matching this SQLite GLOB pattern.
    pub probe_glob: Option<String>,
}

/// Calls of one (agent, probe) in one window with one outcome and one
/// latency bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct CallBucket {
    pub agent: Option<String>,
    pub probe: Option<String>,
    pub current: bool,
    pub outcome: String,
    /// Index into [`BUCKETS_MS`], `BUCKETS_MS.len()` for longer, -1 for none.
    pub bucket: i64,
    pub calls: u64,
    pub max_ms: Option<f64>,
    pub sum_ms: f64,
}

/// Calls of one (agent, probe) in one UTC hour of the current window.
#[derive(Debug, Clone, PartialEq)]
pub struct CallHour {
    pub agent: Option<String>,
    pub probe: Option<String>,
    /// Hours since the epoch.
    pub hour: i64,
    pub calls: u64,
    pub failures: u64,
    pub sum_ms: f64,
    /// Calls with a duration.
    pub timed: u64,
}

/// Both aggregates of one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub buckets: Vec<CallBucket>,
    pub hours: Vec<CallHour>,
}

/// The entries of the range (the index's own WHERE and columns).
const CALLS: &str = "SELECT agent, probe, timestamp_ms, outcome, duration_ms AS d \
     FROM probe_calls \
     WHERE timestamp_ms >= ?1 AND timestamp_ms < ?3 \
     AND (?4 IS NULL OR agent = ?4) AND (?5 IS NULL OR probe GLOB ?5)";

fn bucket_case() -> &'static str {
    static CASE: OnceLock<String> = OnceLock::new();
    CASE.get_or_init(|| {
        let mut s = String::from("CASE WHEN d IS NULL THEN -1");
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            s.push_str(&format!(" WHEN d <= {b} THEN {i}"));
        }
        s.push_str(&format!(" ELSE {} END", BUCKETS_MS.len()));
        s
    })
}

fn buckets_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT agent, probe, timestamp_ms >= ?2 AS cur, outcome, {} AS bucket, count(*), max(d), total(d) \
             FROM ({CALLS}) GROUP BY agent, probe, cur, outcome, bucket",
            bucket_case()
        )
    })
}

fn hours_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT agent, probe, timestamp_ms / 3600000 AS hour, count(*), total(outcome <> 'ok'), total(d), count(d) \
             FROM ({CALLS}) WHERE timestamp_ms >= ?2 GROUP BY agent, probe, hour"
        )
    })
}

impl HubStore {
    /// Probe-call aggregates over a window and the one before it (a long
    /// read: one at a time, so key checks never wait for it).
    pub async fn call_stats(&self, q: CallStatsQuery) -> Result<CallStats> {
        self.read_long(move |c| {
            let tx = c.unchecked_transaction()?;
            let p = params![q.from_ms, q.split_ms, q.to_ms, q.agent, q.probe_glob];
            let buckets = tx
                .prepare_cached(buckets_sql())?
                .query_map(p, |r| {
                    Ok(CallBucket {
                        agent: r.get(0)?,
                        probe: r.get(1)?,
                        current: r.get(2)?,
                        outcome: r.get(3)?,
                        bucket: r.get(4)?,
                        calls: r.get::<_, i64>(5)? as u64,
                        max_ms: r.get(6)?,
                        sum_ms: r.get(7)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let hours = tx
                .prepare_cached(hours_sql())?
                .query_map(p, |r| {
                    Ok(CallHour {
                        agent: r.get(0)?,
                        probe: r.get(1)?,
                        hour: r.get(2)?,
                        calls: r.get::<_, i64>(3)? as u64,
                        failures: r.get::<_, f64>(4)? as u64,
                        sum_ms: r.get(5)?,
                        timed: r.get::<_, i64>(6)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(tx);
            Ok(CallStats { buckets, hours })
        })
        .await
    }
}

/// The query plans of both aggregates (for the test that they stay on the
/// covering index).
#[cfg(test)]
pub(crate) fn plans(c: &rusqlite::Connection) -> Vec<String> {
    [buckets_sql(), hours_sql()]
        .iter()
        .map(|sql| {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows: Vec<String> = stmt
                .query_map(
                    params![0i64, 1i64, 2i64, None::<String>, None::<String>],
                    |r| r.get::<_, String>(3),
                )
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows.join("\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support;
    use super::*;

    #[test]
    fn both_aggregates_read_one_time_range_of_probe_calls() {
        let (dir, store) = test_support::store();
        store.close();
        let c = test_support::raw(&dir);
        for plan in plans(&c) {
            assert!(
                plan.contains(
                    "SEARCH probe_calls USING PRIMARY KEY (timestamp_ms>? AND timestamp_ms<?)"
                ),
                "the trend query must read one time range:\n{plan}"
            );
            assert!(!plan.contains("audit_entries"), "{plan}");
        }
    }

    #[test]
    fn buckets_are_increasing() {
        assert!(BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
    }
}

#[cfg(test)]
mod derived {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support;
    use sonde_protocol::audit::NewEntry;

    #[tokio::test]
    async fn every_probe_entry_and_only_those_land_in_probe_calls() {
        let (dir, store) = test_support::store();
        store
            .record(
                NewEntry::new("a", "probe", "ok")
                    .agent("x")
                    .probe("p.q")
                    .detail("duration_ms", 7),
            )
            .await
            .unwrap();
        store
            .record(
                NewEntry::new("a", "probe", "denied")
                    .agent("x")
                    .probe("p.r"),
            )
            .await
            .unwrap();
        store
            .record(NewEntry::new("a", "key.created", "ok"))
            .await
            .unwrap();
        store.close();
        let c = test_support::raw(&dir);
        let rows: Vec<(i64, String, String, Option<i64>)> = c
            .prepare("SELECT seq, probe, outcome, duration_ms FROM probe_calls ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            rows,
            [
                (1, "p.q".to_owned(), "ok".to_owned(), Some(7)),
                (2, "p.r".to_owned(), "denied".to_owned(), None)
            ]
        );
    }
}
