//! Aggregates of probe calls over the audit chain for `crate::trending`.
//!
//! Every probe call is one `probe` entry (allowed, denied, refused, failed
//! or answered); its latency is the `duration_ms` its entry records.
//! Migration 0007 keeps those fields in `probe_calls` (clustered by time,
//! filled by a trigger in the transaction that appends the entry), and
//! migration 0008 rolls them up by UTC hour in `probe_calls_hourly` (one
//! row per hour, agent, probe and outcome: calls, timed calls, total and
//! largest duration, the latency histogram; kept by a trigger on
//! `probe_calls`, back-filled by the migration; derived, never evidence).
//!
//! A window `[lo, hi)` is answered from the roll-up for the whole hours it
//! covers and from `probe_calls` for the part-hours at its edges (a window
//! without a whole hour: `probe_calls` alone), so the work grows with the
//! hours and the groups of the window, not with its calls. Each part is one
//! range of one clustered B-tree grouped in SQLite; Rust adds up the parts
//! (at most one roll-up range and two edges per window), keyed by group.
//! The answer is exactly the one the raw rows give (property test
//! `rollup::the_roll_up_answers_exactly_as_the_raw_rows`): counts and
//! histograms are sums of integers, the largest duration a maximum, and
//! the total duration a sum of the integer milliseconds the hub records
//! (exact in `f64` below 2^53 ms).
//!
//! Calls without an agent or a probe (refused before an agent was found)
//! belong to no target: they are neither rolled up nor returned.

use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::{HubStore, Result};

/// Upper bounds (ms) of the latency histogram's buckets (about ×1.5 apart);
/// bucket `BUCKETS_MS.len()` holds longer calls; calls without a duration
/// (refused before they ran) are in none. Migration 0008 spells these
/// bounds out in `probe_calls_hourly`'s trigger and back-fill: changing
/// them needs a migration that rebuilds that table (test
/// `rollup::the_migration_uses_the_bucket_bounds`).
pub const BUCKETS_MS: &[i64] = &[
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000,
];

/// Slots of a latency histogram: one per bucket and one for longer calls.
pub const HIST_LEN: usize = BUCKETS_MS.len() + 1;

const HOUR_MS: i64 = 3_600_000;

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

/// Calls of one (agent, probe) in one window with one outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CallGroup {
    pub agent: String,
    pub probe: String,
    pub current: bool,
    pub outcome: String,
    pub calls: u64,
    /// Calls with a duration.
    pub timed: u64,
    /// Their total duration.
    pub sum_ms: f64,
    /// The longest of them.
    pub max_ms: Option<f64>,
    /// Timed calls per latency bucket ([`HIST_LEN`] slots: slot `i` up to
    /// `BUCKETS_MS[i]`, the last one longer).
    pub hist: Vec<u64>,
}

impl CallGroup {
    /// No calls yet.
    fn empty(agent: String, probe: String, current: bool, outcome: String) -> CallGroup {
        CallGroup {
            agent,
            probe,
            current,
            outcome,
            calls: 0,
            timed: 0,
            sum_ms: 0.0,
            max_ms: None,
            hist: vec![0; HIST_LEN],
        }
    }
}

/// Calls of one (agent, probe) in one UTC hour of the current window.
#[derive(Debug, Clone, PartialEq)]
pub struct CallHour {
    pub agent: String,
    pub probe: String,
    /// Hours since the epoch.
    pub hour: i64,
    pub calls: u64,
    pub failures: u64,
    pub sum_ms: f64,
    /// Calls with a duration.
    pub timed: u64,
}

/// Both aggregates of one query, each sorted by its key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub groups: Vec<CallGroup>,
    pub hours: Vec<CallHour>,
}

/// Where the calls of `[lo, hi)` are read: the roll-up's hours
/// `[first, end)` (`hours`) and `probe_calls` for each `raw` range.
#[derive(Debug, Clone, PartialEq)]
struct Parts {
    hours: Option<(i64, i64)>,
    raw: Vec<(i64, i64)>,
}

/// Cuts a window into its whole hours (at or after the epoch: the roll-up
/// holds no earlier call) and the part-hours at its edges.
fn parts(lo: i64, hi: i64) -> Parts {
    if lo >= hi {
        return Parts {
            hours: None,
            raw: Vec::new(),
        };
    }
    let first = (lo.div_euclid(HOUR_MS) + i64::from(lo.rem_euclid(HOUR_MS) != 0)).max(0);
    let end = hi.div_euclid(HOUR_MS);
    if first >= end {
        return Parts {
            hours: None,
            raw: vec![(lo, hi)],
        };
    }
    let (a, b) = (first * HOUR_MS, end * HOUR_MS);
    Parts {
        hours: Some((first, end)),
        raw: [(lo, a), (b, hi)]
            .into_iter()
            .filter(|(l, h)| l < h)
            .collect(),
    }
}

/// `sum(bNN)` for every histogram column of the roll-up.
fn hist_sums(column: impl Fn(usize) -> String) -> String {
    (0..HIST_LEN)
        .map(|i| format!("sum({})", column(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The latency bucket of `d` (-1 without a duration), as SQL.
fn bucket_case() -> String {
    let mut s = String::from("CASE WHEN d IS NULL THEN -1");
    for (i, b) in BUCKETS_MS.iter().enumerate() {
        s.push_str(&format!(" WHEN d <= {b} THEN {i}"));
    }
    s.push_str(&format!(" ELSE {} END", BUCKETS_MS.len()));
    s
}

/// The filters both tables share (`?3` agent, `?4` probe pattern), as a
/// macro so that the constant queries below can `concat!` it.
macro_rules! filters {
    () => {
        "(?3 IS NULL OR agent = ?3) AND (?4 IS NULL OR probe GLOB ?4)"
    };
}
const FILTERS: &str = filters!();

/// Groups of the roll-up's hours `[?1, ?2)`.
fn hourly_groups_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT agent, probe, outcome, sum(calls), sum(timed), total(sum_ms), max(max_ms), {} \
             FROM probe_calls_hourly WHERE hour >= ?1 AND hour < ?2 AND {FILTERS} \
             GROUP BY agent, probe, outcome",
            hist_sums(|i| format!("b{i:02}"))
        )
    })
}

/// Groups of `probe_calls` in `[?1, ?2)`.
fn raw_groups_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT agent, probe, outcome, count(*), count(d), total(d), max(d), {} \
             FROM (SELECT agent, probe, outcome, d, {} AS b FROM \
                   (SELECT agent, probe, outcome, duration_ms AS d FROM probe_calls \
                    WHERE timestamp_ms >= ?1 AND timestamp_ms < ?2 \
                    AND agent IS NOT NULL AND probe IS NOT NULL AND {FILTERS})) \
             GROUP BY agent, probe, outcome",
            hist_sums(|i| format!("b = {i}")),
            bucket_case()
        )
    })
}

/// Hours of the roll-up's `[?1, ?2)`.
const HOURLY_HOURS: &str = concat!(
    "SELECT agent, probe, hour, sum(calls), \
     sum(calls * (outcome <> 'ok')), total(sum_ms), sum(timed) \
     FROM probe_calls_hourly WHERE hour >= ?1 AND hour < ?2 AND ",
    filters!(),
    " GROUP BY agent, probe, hour"
);

/// Hours of `probe_calls` in `[?1, ?2)`.
const RAW_HOURS: &str = concat!(
    "SELECT agent, probe, timestamp_ms / 3600000 AS hour, count(*), \
     sum(outcome <> 'ok'), total(duration_ms), count(duration_ms) \
     FROM probe_calls WHERE timestamp_ms >= ?1 AND timestamp_ms < ?2 \
     AND agent IS NOT NULL AND probe IS NOT NULL AND ",
    filters!(),
    " GROUP BY agent, probe, hour"
);

type GroupKey = (String, String, bool, String);
type HourKey = (String, String, i64);

/// The larger of two optional durations (either may be missing).
pub(crate) fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Adds the groups `sql` finds in `range` to `out`.
fn add_groups(
    c: &Connection,
    sql: &str,
    range: (i64, i64),
    current: bool,
    q: &CallStatsQuery,
    out: &mut BTreeMap<GroupKey, CallGroup>,
) -> Result<()> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params![range.0, range.1, q.agent, q.probe_glob])?;
    while let Some(r) = rows.next()? {
        let (agent, probe, outcome): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let g = out
            .entry((agent.clone(), probe.clone(), current, outcome.clone()))
            .or_insert_with(|| CallGroup::empty(agent, probe, current, outcome));
        g.calls += r.get::<_, i64>(3)? as u64;
        g.timed += r.get::<_, i64>(4)? as u64;
        g.sum_ms += r.get::<_, f64>(5)?;
        g.max_ms = max_of(g.max_ms, r.get(6)?);
        for (i, slot) in g.hist.iter_mut().enumerate() {
            *slot += r.get::<_, i64>(7 + i)? as u64;
        }
    }
    Ok(())
}

/// Adds the hours `sql` finds in `range` to `out`.
fn add_hours(
    c: &Connection,
    sql: &str,
    range: (i64, i64),
    q: &CallStatsQuery,
    out: &mut BTreeMap<HourKey, CallHour>,
) -> Result<()> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params![range.0, range.1, q.agent, q.probe_glob])?;
    while let Some(r) = rows.next()? {
        let (agent, probe, hour): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let h = out
            .entry((agent.clone(), probe.clone(), hour))
            .or_insert_with(|| CallHour {
                agent,
                probe,
                hour,
                calls: 0,
                failures: 0,
                sum_ms: 0.0,
                timed: 0,
            });
        h.calls += r.get::<_, i64>(3)? as u64;
        h.failures += r.get::<_, i64>(4)? as u64;
        h.sum_ms += r.get::<_, f64>(5)?;
        h.timed += r.get::<_, i64>(6)? as u64;
    }
    Ok(())
}

/// Both aggregates of `q`, read on `c` (inside one read transaction, so
/// the parts see one state of the chain).
fn call_stats_on(c: &Connection, q: &CallStatsQuery) -> Result<CallStats> {
    let mut groups = BTreeMap::new();
    let mut hours = BTreeMap::new();
    for (current, lo, hi) in [(false, q.from_ms, q.split_ms), (true, q.split_ms, q.to_ms)] {
        let p = parts(lo, hi);
        if let Some(range) = p.hours {
            add_groups(c, hourly_groups_sql(), range, current, q, &mut groups)?;
            if current {
                add_hours(c, HOURLY_HOURS, range, q, &mut hours)?;
            }
        }
        for range in p.raw {
            add_groups(c, raw_groups_sql(), range, current, q, &mut groups)?;
            if current {
                add_hours(c, RAW_HOURS, range, q, &mut hours)?;
            }
        }
    }
    Ok(CallStats {
        groups: groups.into_values().collect(),
        hours: hours.into_values().collect(),
    })
}

impl HubStore {
    /// Probe-call aggregates over a window and the one before it (a long
    /// read: one at a time, so key checks never wait for it).
    pub async fn call_stats(&self, q: CallStatsQuery) -> Result<CallStats> {
        self.read_long(move |c| {
            let tx = c.unchecked_transaction()?;
            let stats = call_stats_on(&tx, &q)?;
            drop(tx);
            Ok(stats)
        })
        .await
    }
}

/// The query plans of every query (for the test that each reads one range
/// of its clustered table).
#[cfg(test)]
pub(crate) fn plans(c: &Connection) -> Vec<(&'static str, String)> {
    [
        ("probe_calls_hourly", hourly_groups_sql()),
        ("probe_calls", raw_groups_sql()),
        ("probe_calls_hourly", HOURLY_HOURS),
        ("probe_calls", RAW_HOURS),
    ]
    .into_iter()
    .map(|(table, sql)| {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = stmt
            .query_map(params![0i64, 1i64, None::<String>, None::<String>], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        (table, rows.join("\n"))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support;
    use super::*;

    #[test]
    fn every_query_reads_one_range_of_its_clustered_table() {
        let (dir, store) = test_support::store();
        store.close();
        let c = test_support::raw(&dir);
        for (table, plan) in plans(&c) {
            let range = if table == "probe_calls" {
                "SEARCH probe_calls USING PRIMARY KEY (timestamp_ms>? AND timestamp_ms<?)"
            } else {
                "SEARCH probe_calls_hourly USING PRIMARY KEY (hour>? AND hour<?)"
            };
            assert!(
                plan.contains(range),
                "the trend query must read one range of {table}:\n{plan}"
            );
            assert!(!plan.contains("audit_entries"), "{plan}");
        }
    }

    #[test]
    fn buckets_are_increasing() {
        assert!(BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_window_is_cut_into_whole_hours_and_its_edges() {
        const H: i64 = HOUR_MS;
        let p = |hours: Option<(i64, i64)>, raw: &[(i64, i64)]| Parts {
            hours,
            raw: raw.to_vec(),
        };
        assert_eq!(parts(5, 5), p(None, &[]));
        assert_eq!(parts(10 * H, 12 * H), p(Some((10, 12)), &[]));
        assert_eq!(
            parts(10 * H - 1, 12 * H + 1),
            p(
                Some((10, 12)),
                &[(10 * H - 1, 10 * H), (12 * H, 12 * H + 1)]
            )
        );
        // Shorter than an hour, or no whole hour inside: the raw rows alone.
        assert_eq!(parts(10 * H + 1, 11 * H), p(None, &[(10 * H + 1, 11 * H)]));
        assert_eq!(
            parts(10 * H + 1, 11 * H + 5),
            p(None, &[(10 * H + 1, 11 * H + 5)])
        );
        // Before the epoch nothing is rolled up.
        assert_eq!(parts(-2 * H, 2 * H), p(Some((0, 2)), &[(-2 * H, 0)]));
        assert_eq!(parts(-3 * H, -H), p(None, &[(-3 * H, -H)]));
    }
}

/// Today's computation straight over the raw rows (the aggregation as it
/// ran before the roll-up, one range of `probe_calls` grouped by latency
/// bucket), the reference the roll-up must equal.
#[cfg(test)]
pub(crate) mod reference {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CALLS: &str = "SELECT agent, probe, timestamp_ms, outcome, duration_ms AS d \
         FROM probe_calls \
         WHERE timestamp_ms >= ?1 AND timestamp_ms < ?3 \
         AND (?4 IS NULL OR agent = ?4) AND (?5 IS NULL OR probe GLOB ?5)";

    pub fn call_stats(c: &Connection, q: &CallStatsQuery) -> CallStats {
        let buckets_sql = format!(
            "SELECT agent, probe, timestamp_ms >= ?2 AS cur, outcome, {} AS bucket, count(*), max(d), total(d) \
             FROM ({CALLS}) GROUP BY agent, probe, cur, outcome, bucket",
            bucket_case()
        );
        let hours_sql = format!(
            "SELECT agent, probe, timestamp_ms / 3600000 AS hour, count(*), total(outcome <> 'ok'), total(d), count(d) \
             FROM ({CALLS}) WHERE timestamp_ms >= ?2 GROUP BY agent, probe, hour"
        );
        let p = params![q.from_ms, q.split_ms, q.to_ms, q.agent, q.probe_glob];
        let mut groups: BTreeMap<GroupKey, CallGroup> = BTreeMap::new();
        let mut stmt = c.prepare(&buckets_sql).unwrap();
        let mut rows = stmt.query(p).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let (Some(agent), Some(probe)) = (
                r.get::<_, Option<String>>(0).unwrap(),
                r.get::<_, Option<String>>(1).unwrap(),
            ) else {
                continue;
            };
            let (current, outcome): (bool, String) = (r.get(2).unwrap(), r.get(3).unwrap());
            let g = groups
                .entry((agent.clone(), probe.clone(), current, outcome.clone()))
                .or_insert_with(|| CallGroup::empty(agent, probe, current, outcome));
            let bucket: i64 = r.get(4).unwrap();
            let calls = r.get::<_, i64>(5).unwrap() as u64;
            g.calls += calls;
            if bucket >= 0 {
                g.hist[(bucket as usize).min(BUCKETS_MS.len())] += calls;
                g.timed += calls;
                g.sum_ms += r.get::<_, f64>(7).unwrap();
                g.max_ms = max_of(g.max_ms, r.get(6).unwrap());
            }
        }
        let mut hours = Vec::new();
        let mut stmt = c.prepare(&hours_sql).unwrap();
        let mut rows = stmt.query(p).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let (Some(agent), Some(probe)) = (
                r.get::<_, Option<String>>(0).unwrap(),
                r.get::<_, Option<String>>(1).unwrap(),
            ) else {
                continue;
            };
            hours.push(CallHour {
                agent,
                probe,
                hour: r.get(2).unwrap(),
                calls: r.get::<_, i64>(3).unwrap() as u64,
                failures: r.get::<_, f64>(4).unwrap() as u64,
                sum_ms: r.get(5).unwrap(),
                timed: r.get::<_, i64>(6).unwrap() as u64,
            });
        }
        hours.sort_by(|a, b| (&a.agent, &a.probe, a.hour).cmp(&(&b.agent, &b.probe, b.hour)));
        CallStats {
            groups: groups.into_values().collect(),
            hours,
        }
    }
}

#[cfg(test)]
mod rollup {
    #![allow(clippy::unwrap_used)]
    use super::super::{HubStore, MIGRATIONS, test_support};
    use super::*;
    use proptest::prelude::*;
    use sonde_protocol::audit::NewEntry;
    use std::path::Path;

    const H: i64 = HOUR_MS;
    /// Some hour of 2027.
    const BASE: i64 = 500_000 * H;
    const OUTCOMES: [&str; 5] = ["ok", "error", "timeout", "denied", "refused"];

    /// One probe call of a generated audit.
    #[derive(Debug, Clone)]
    struct Call {
        at: i64,
        agent: Option<u8>,
        probe: Option<u8>,
        outcome: usize,
        duration_ms: Option<i64>,
    }

    impl Call {
        fn entry(&self) -> NewEntry {
            let mut e = NewEntry::new(
                "api-key:sk_1",
                sonde_protocol::audit::AuditAction::Probe,
                OUTCOMES[self.outcome],
            );
            if let Some(a) = self.agent {
                e = e.agent(format!("agt-{a}"));
            }
            if let Some(p) = self.probe {
                e = e.probe(format!("{}.p{p}", ["zfs", "system"][p as usize % 2]));
            }
            if let Some(d) = self.duration_ms {
                e = e.detail("duration_ms", d);
            }
            e
        }
    }

    /// A hub database at schema `version`, as `migrate` would have left it.
    fn database_at(path: &Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for (i, (_, sql)) in MIGRATIONS[..version].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            if i == 0 {
                conn.execute_batch(sonde_auditlog::SCHEMA).unwrap();
            }
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        conn
    }

    fn append(conn: &Connection, calls: &[Call]) {
        conn.execute_batch("BEGIN").unwrap();
        for (i, call) in calls.iter().enumerate() {
            sonde_auditlog::append(conn, call.entry(), call.at).unwrap();
            if i % 7 == 0 {
                // Other events never count.
                sonde_auditlog::append(
                    conn,
                    NewEntry::new(
                        "operator:a",
                        sonde_protocol::audit::AuditAction::KeyCreated,
                        "ok",
                    ),
                    call.at,
                )
                .unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    /// An audit whose first `before` calls were appended by a hub at
    /// schema 7 (back-filled by migration 0008) and the rest after it (by
    /// the trigger). Returns a connection to the migrated file.
    fn audit(dir: &tempfile::TempDir, calls: &[Call], before: usize) -> Connection {
        let path = dir.path().join("hub.db");
        let pre = MIGRATIONS
            .iter()
            .position(|(name, _)| name.starts_with("0008"))
            .unwrap();
        let conn = database_at(&path, pre);
        append(&conn, &calls[..before]);
        drop(conn);
        HubStore::open(&path, test_support::key(), 1000)
            .unwrap()
            .close();
        let conn = Connection::open(&path).unwrap();
        append(&conn, &calls[before..]);
        conn
    }

    fn rust_bucket(d: i64) -> usize {
        BUCKETS_MS
            .iter()
            .position(|&b| d <= b)
            .unwrap_or(BUCKETS_MS.len())
    }

    /// Every bucket bound, just above it, and a few odd values.
    fn awkward_durations() -> Vec<i64> {
        let mut v: Vec<i64> = BUCKETS_MS.iter().flat_map(|&b| [b, b + 1]).collect();
        v.extend([0, -3, 10_000_000_000]);
        v
    }

    fn arb_call() -> impl Strategy<Value = Call> {
        let at = prop_oneof![
            (-6i64..6).prop_map(|h| h * H),
            (-6i64..6).prop_map(|h| h * H - 1),
            -6 * H..6 * H,
        ];
        let duration = prop_oneof![
            Just(None),
            prop::sample::select(awkward_durations()).prop_map(Some),
            (0i64..400_000).prop_map(Some),
            (0i64..40).prop_map(Some),
        ];
        (
            at,
            prop::option::weighted(0.9, 0u8..3),
            prop::option::weighted(0.9, 0u8..4),
            0usize..OUTCOMES.len(),
            duration,
        )
            .prop_map(|(at, agent, probe, outcome, duration_ms)| Call {
                at,
                agent,
                probe,
                outcome,
                duration_ms,
            })
    }

    /// (split, length before, length after), relative to the audit's base.
    fn arb_window() -> impl Strategy<Value = (i64, i64, i64)> {
        let point = prop_oneof![
            (-6i64..7).prop_map(|h| h * H),
            (-6i64..7).prop_map(|h| h * H + 1),
            -7 * H..7 * H,
        ];
        let length = || {
            prop_oneof![
                Just(0),
                Just(60_000),
                Just(H - 1),
                Just(H),
                Just(H + 1),
                (1i64..6).prop_map(|h| h * H),
                0..5 * H,
            ]
        };
        (point, length(), length())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn the_roll_up_answers_exactly_as_the_raw_rows(
            base in prop_oneof![Just(BASE), Just(0i64), Just(3 * H / 2)],
            calls in prop::collection::vec(arb_call(), 0..80),
            before in any::<prop::sample::Index>(),
            windows in prop::collection::vec(arb_window(), 1..8),
            agent in prop::option::weighted(0.3, 0u8..3),
            probe_glob in prop::option::weighted(0.3, prop::sample::select(vec!["zfs.*", "*.p1", "*", "x*"])),
        ) {
            let calls: Vec<Call> = calls
                .into_iter()
                .map(|c| Call { at: base + c.at, ..c })
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let conn = audit(&dir, &calls, before.index(calls.len() + 1));
            for (split, prev, cur) in windows {
                let split = base + split;
                let q = CallStatsQuery {
                    from_ms: split - prev,
                    split_ms: split,
                    to_ms: split + cur,
                    agent: agent.map(|a| format!("agt-{a}")),
                    probe_glob: probe_glob.map(str::to_owned),
                };
                let tx = conn.unchecked_transaction().unwrap();
                let got = call_stats_on(&tx, &q).unwrap();
                let want = reference::call_stats(&tx, &q);
                drop(tx);
                prop_assert_eq!(got, want, "window {:?}", q);
            }
        }
    }

    /// The roll-up's rows, keyed by (hour, agent, probe, outcome): calls,
    /// timed, sum, max and the histogram.
    type Row = (i64, i64, i64, Option<i64>, Vec<i64>);

    fn rows(conn: &Connection) -> BTreeMap<(i64, String, String, String), Row> {
        let cols: Vec<String> = (0..HIST_LEN).map(|i| format!("b{i:02}")).collect();
        let sql = format!(
            "SELECT hour, agent, probe, outcome, calls, timed, sum_ms, max_ms, {} FROM probe_calls_hourly",
            cols.join(", ")
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        stmt.query_map([], |r| {
            let hist = (0..HIST_LEN)
                .map(|i| r.get(8 + i))
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, hist),
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    /// What the roll-up must hold for `calls`, computed in Rust.
    fn expected_rows(calls: &[Call]) -> BTreeMap<(i64, String, String, String), Row> {
        let mut out: BTreeMap<_, Row> = BTreeMap::new();
        for c in calls {
            let e = c.entry();
            let (Some(agent), Some(probe)) = (e.agent.clone(), e.probe.clone()) else {
                continue;
            };
            if c.at < 0 {
                continue;
            }
            let row = out
                .entry((c.at / H, agent, probe, e.outcome.clone()))
                .or_insert_with(|| (0, 0, 0, None, vec![0; HIST_LEN]));
            row.0 += 1;
            if let Some(d) = c.duration_ms {
                row.1 += 1;
                row.2 += d;
                row.3 = Some(row.3.map_or(d, |m| m.max(d)));
                row.4[rust_bucket(d)] += 1;
            }
        }
        out
    }

    /// Calls one hour apart with every awkward duration, plus calls
    /// without a duration, agent or probe.
    fn bucket_calls() -> Vec<Call> {
        let mut calls: Vec<Call> = awkward_durations()
            .into_iter()
            .enumerate()
            .map(|(i, d)| Call {
                at: BASE + i as i64 * H + 17,
                agent: Some(1),
                probe: Some(2),
                outcome: i % OUTCOMES.len(),
                duration_ms: Some(d),
            })
            .collect();
        for (i, (agent, probe, d)) in [
            (Some(1), Some(2), None),
            (None, Some(2), Some(5)),
            (Some(1), None, Some(5)),
            (Some(0), Some(0), Some(9)),
            (Some(0), Some(0), Some(3)),
            (Some(0), Some(0), None),
        ]
        .into_iter()
        .enumerate()
        {
            calls.push(Call {
                at: BASE + (i as i64 % 3) * H + 5,
                agent,
                probe,
                outcome: 0,
                duration_ms: d,
            });
        }
        calls
    }

    #[test]
    fn the_migration_uses_the_bucket_bounds() {
        let calls = bucket_calls();
        let want = expected_rows(&calls);
        assert!(want.len() > 2 * BUCKETS_MS.len());
        // Back-filled by the migration, kept by the trigger, and both.
        for before in [calls.len(), 0, calls.len() / 2] {
            let dir = tempfile::tempdir().unwrap();
            let conn = audit(&dir, &calls, before);
            assert_eq!(rows(&conn), want, "{before} calls before the migration");
        }
    }

    #[tokio::test]
    async fn a_database_from_before_0008_is_migrated_and_back_filled() {
        let calls = bucket_calls();
        let dir = tempfile::tempdir().unwrap();
        let conn = audit(&dir, &calls, calls.len());
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(rows(&conn), expected_rows(&calls));
        // The store answers from the back-filled roll-up as from the raw rows.
        let q = CallStatsQuery {
            from_ms: BASE - 30 * 60_000,
            split_ms: BASE + 20 * H + 1,
            to_ms: BASE + 80 * H - 7,
            agent: None,
            probe_glob: None,
        };
        let want = reference::call_stats(&conn, &q);
        assert!(want.groups.len() > 10);
        let store = HubStore::open(&dir.path().join("hub.db"), test_support::key(), 1000).unwrap();
        assert_eq!(store.call_stats(q).await.unwrap(), want);
        // Opening again changes nothing (the back-fill runs once).
        store.close();
        drop(store);
        assert_eq!(rows(&conn), expected_rows(&calls));
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
                NewEntry::new("a", sonde_protocol::audit::AuditAction::Probe, "ok")
                    .agent("x")
                    .probe("p.q")
                    .detail("duration_ms", 7),
            )
            .await
            .unwrap();
        store
            .record(
                NewEntry::new("a", sonde_protocol::audit::AuditAction::Probe, "denied")
                    .agent("x")
                    .probe("p.r"),
            )
            .await
            .unwrap();
        store
            .record(NewEntry::new(
                "a",
                sonde_protocol::audit::AuditAction::KeyCreated,
                "ok",
            ))
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
