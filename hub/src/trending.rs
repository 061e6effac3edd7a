//! Trends over the hub's audit chain (MCP tool `trending`, CLI `sonde-hub
//! trending`): probe calls, failures and latency by target, probe and hour
//! over a window, compared with the window of equal length before it,
//! biggest changes first.
//!
//! - **What counts.** Every probe call is one `probe` audit entry —
//!   allowed or denied, answered or not — so calls come from the chain and
//!   nothing else. A *failure* is any outcome but `ok` (`denied`,
//!   `refused`, `error`, `timeout`; each counted in `by_outcome`).
//!   Entries refused because the agent named was unknown carry no agent
//!   and belong to no target; they are left out.
//! - **Latency** is the `duration_ms` a probe entry records: the agent's
//!   own measure of the run for answered calls (ok or failed), the hub's
//!   wait for timeouts; calls refused before they ran have none and do not
//!   count in latency. Percentiles come from a histogram of buckets about
//!   ×1.5 apart ([`crate::store::trending::BUCKETS_MS`]): `p50_ms` and
//!   `p95_ms` are the upper bound of the bucket holding that rank (never
//!   above the slowest call), `avg_ms` and `max_ms` are exact.
//! - **Ranking.** Groups are ordered by how many failures they had beyond
//!   what the previous window's failure rate predicts for this window's
//!   calls (`extra_failures`, either sign: the biggest rise or fall first),
//!   then by the change of their p95 latency (log ratio), then by the
//!   change in calls. A group without calls before has a rate of 0 before.
//! - **Scope.** A key sees only agents and probes its policy allows (and
//!   only agents that are not revoked); the policy filter runs on the
//!   grouped rows.
//! - **Where the numbers come from** (`crate::store::trending`): the whole
//!   hours of both windows from the hourly roll-up `probe_calls_hourly`
//!   (calls, timed calls, total and largest duration and the same latency
//!   histogram per hour, agent, probe and outcome), the part-hours at the
//!   windows' edges from `probe_calls` (one row per call); both kept by
//!   triggers in the transaction that appends the entry, both derived from
//!   the chain. The answer is exactly the one the raw rows give (a property
//!   test compares them), and a long window costs its hours, not its calls.

use serde_json::{Value, json};
use sonde_protocol::time::{format_utc_ms, now_ms};
use std::collections::{BTreeMap, HashMap};

use crate::critical_path::Caller;
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::trending::{BUCKETS_MS, CallGroup, CallStatsQuery, HIST_LEN, max_of};
use crate::store::{HubStore, StoreError};

const HOUR_MS: i64 = 3_600_000;
/// Longest window.
pub const MAX_WINDOW_MS: i64 = 90 * 24 * HOUR_MS;
/// Shortest window.
pub const MIN_WINDOW_MS: i64 = 60_000;
/// Most groups per list.
pub const MAX_LIMIT: usize = 200;

/// What to summarise.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendParams {
    pub window_ms: i64,
    /// The window as the caller wrote it.
    pub window_text: String,
    /// Only this target (agent name).
    pub target: Option<String>,
    /// Only probes matching this pattern (`*` wildcard).
    pub probe: Option<String>,
    pub limit: usize,
}

impl TrendParams {
    pub fn parse(
        window: Option<&str>,
        target: Option<String>,
        probe: Option<String>,
        limit: Option<u64>,
    ) -> Result<TrendParams, HubError> {
        let window_text = window.unwrap_or("24h").trim().to_owned();
        let window_ms = sonde_protocol::duration::parse_ms(&window_text)
            .map_err(|e| HubError::BadRequest(format!("window: {e}")))?;
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&window_ms) {
            return Err(HubError::BadRequest(format!(
                "window {window_text:?} must be from 1m to 90d"
            )));
        }
        let limit = limit.unwrap_or(20);
        if !(1..=MAX_LIMIT as u64).contains(&limit) {
            return Err(HubError::BadRequest(format!(
                "limit must be from 1 to {MAX_LIMIT}"
            )));
        }
        if let Some(p) = &probe
            && (p.is_empty() || p.len() > 256 || p.chars().any(char::is_control))
        {
            return Err(HubError::BadRequest(
                "probe: a pattern of 1 to 256 characters (`*` is the wildcard)".into(),
            ));
        }
        Ok(TrendParams {
            window_ms,
            window_text,
            target,
            probe,
            limit: limit as usize,
        })
    }
}

/// A key-policy pattern (`*` only) as an SQLite GLOB with every other
/// GLOB metacharacter taken literally.
pub fn sqlite_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// Calls of one group (or of all) in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub calls: u64,
    pub failures: u64,
    pub by_outcome: BTreeMap<String, u64>,
    /// Calls per latency bucket ([`HIST_LEN`] slots; empty: none timed).
    hist: Vec<u64>,
    pub timed: u64,
    pub sum_ms: f64,
    pub max_ms: Option<f64>,
}

impl Stats {
    fn add(&mut self, g: &CallGroup) {
        self.calls += g.calls;
        if g.outcome != "ok" {
            self.failures += g.calls;
        }
        *self.by_outcome.entry(g.outcome.clone()).or_default() += g.calls;
        if g.timed > 0 {
            self.add_latencies(&g.hist, g.timed, g.sum_ms, g.max_ms);
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.calls += o.calls;
        self.failures += o.failures;
        for (k, v) in &o.by_outcome {
            *self.by_outcome.entry(k.clone()).or_default() += v;
        }
        self.add_latencies(&o.hist, o.timed, o.sum_ms, o.max_ms);
    }

    /// Adds timed calls: their histogram (none: nothing to add), count,
    /// total and longest duration.
    fn add_latencies(&mut self, hist: &[u64], timed: u64, sum_ms: f64, max_ms: Option<f64>) {
        if !hist.is_empty() {
            if self.hist.is_empty() {
                self.hist = vec![0; HIST_LEN];
            }
            for (a, b) in self.hist.iter_mut().zip(hist) {
                *a += b;
            }
        }
        self.timed += timed;
        self.sum_ms += sum_ms;
        self.max_ms = max_of(self.max_ms, max_ms);
    }

    pub fn failure_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.failures as f64 / self.calls as f64
        }
    }

    /// The `p`-quantile (0–1) of latency: the upper bound of its bucket,
    /// never above the slowest call.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.timed == 0 {
            return None;
        }
        let rank = ((p * self.timed as f64).ceil() as u64).max(1);
        let max = self.max_ms.unwrap_or(0.0);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(match BUCKETS_MS.get(i) {
                    Some(&bound) => (bound as f64).min(max),
                    None => max,
                });
            }
        }
        Some(max)
    }

    fn json(&self) -> Value {
        let avg = (self.timed > 0).then(|| (self.sum_ms / self.timed as f64 * 10.0).round() / 10.0);
        json!({
            "calls": self.calls,
            "failures": self.failures,
            "failure_rate": round3(self.failure_rate()),
            "by_outcome": self.by_outcome,
            "p50_ms": self.percentile(0.5),
            "p95_ms": self.percentile(0.95),
            "avg_ms": avg,
            "max_ms": self.max_ms,
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// How a group changed from the previous window to the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Failures beyond what the previous rate predicts for this window's calls.
    pub extra_failures: f64,
    pub failure_rate_delta: f64,
    pub calls_delta: i64,
    pub calls_ratio: Option<f64>,
    pub p95_ratio: Option<f64>,
    pub direction: &'static str,
}

impl Change {
    pub fn between(cur: &Stats, prev: &Stats) -> Change {
        let extra = cur.failures as f64 - prev.failure_rate() * cur.calls as f64;
        let p95_ratio = match (cur.percentile(0.95), prev.percentile(0.95)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let direction = if prev.calls == 0 {
            "new"
        } else if cur.calls == 0 {
            "gone"
        } else if extra >= 0.5 || p95_ratio.is_some_and(|r| r >= 2.0) {
            "worse"
        } else if extra <= -0.5 || p95_ratio.is_some_and(|r| r <= 0.5) {
            "better"
        } else {
            "steady"
        };
        Change {
            extra_failures: extra,
            failure_rate_delta: cur.failure_rate() - prev.failure_rate(),
            calls_delta: cur.calls as i64 - prev.calls as i64,
            calls_ratio: (prev.calls > 0).then(|| cur.calls as f64 / prev.calls as f64),
            p95_ratio,
            direction,
        }
    }

    /// Ranking key, biggest change first (see the module docs).
    fn rank(&self) -> (i64, i64, i64) {
        (
            -(self.extra_failures.abs() * 10.0).round() as i64,
            -(self.p95_ratio.map_or(0.0, |r| r.log2().abs()) * 10.0).round() as i64,
            -self.calls_delta.abs(),
        )
    }

    fn json(&self, cur: &Stats, prev: &Stats) -> Value {
        let pct = |r: f64| format!("{}%", round1(r * 100.0));
        let mut note = format!(
            "failures {} → {} ({} of {} calls; {:+} beyond the previous rate)",
            pct(prev.failure_rate()),
            pct(cur.failure_rate()),
            cur.failures,
            cur.calls,
            round1(self.extra_failures)
        );
        note.push_str(&format!("; calls {} → {}", prev.calls, cur.calls));
        if let (Some(a), Some(b)) = (prev.percentile(0.95), cur.percentile(0.95)) {
            note.push_str(&format!("; p95 {a} → {b} ms"));
        }
        json!({
            "direction": self.direction,
            "extra_failures": round1(self.extra_failures),
            "failure_rate_delta": round3(self.failure_rate_delta),
            "calls_delta": self.calls_delta,
            "calls_ratio": self.calls_ratio.map(round3),
            "p95_ratio": self.p95_ratio.map(round3),
            "note": note,
        })
    }
}

/// Ranks groups and renders the top `limit`.
fn ranked<K: Ord + Clone>(
    groups: &BTreeMap<K, (Stats, Stats)>,
    limit: usize,
    label: impl Fn(&K) -> Value,
) -> Vec<Value> {
    let mut list: Vec<(&K, Change)> = groups
        .iter()
        .map(|(k, (c, p))| (k, Change::between(c, p)))
        .collect();
    list.sort_by(|(ka, a), (kb, b)| a.rank().cmp(&b.rank()).then_with(|| ka.cmp(kb)));
    list.into_iter()
        .take(limit)
        .map(|(k, change)| {
            let (c, p) = &groups[k];
            let mut v = label(k);
            v["current"] = c.json();
            v["previous"] = p.json();
            v["change"] = change.json(c, p);
            v
        })
        .collect()
}

/// Summarises the window ending at `now_ms`. `name_of` maps an agent id to
/// its name when the caller may see it (else the group is left out);
/// `allow_probe` filters probes the same way; `agent` and `probe_glob`
/// narrow the SQL range walk.
pub async fn summarise_with(
    store: &HubStore,
    name_of: impl Fn(&str) -> Option<String>,
    allow_probe: impl Fn(&str) -> bool,
    agent: Option<String>,
    params: &TrendParams,
    now_ms: i64,
) -> Result<Value, StoreError> {
    let w = params.window_ms;
    let q = CallStatsQuery {
        from_ms: now_ms - 2 * w,
        split_ms: now_ms - w,
        to_ms: now_ms,
        agent,
        probe_glob: params.probe.as_deref().map(sqlite_glob),
    };
    let stats = store.call_stats(q.clone()).await?;
    let mut names: HashMap<String, Option<String>> = HashMap::new();
    let mut visible = |agent: &str, probe: &str| -> Option<(String, String)> {
        let name = names
            .entry(agent.to_owned())
            .or_insert_with(|| name_of(agent))
            .clone()?;
        allow_probe(probe).then(|| (name, probe.to_owned()))
    };
    let mut groups: BTreeMap<(String, String), (Stats, Stats)> = BTreeMap::new();
    for b in &stats.groups {
        let Some(key) = visible(&b.agent, &b.probe) else {
            continue;
        };
        let g = groups.entry(key).or_default();
        let window = if b.current { &mut g.0 } else { &mut g.1 };
        window.add(b);
    }
    let mut hours: BTreeMap<i64, (u64, u64, f64, u64)> = BTreeMap::new();
    for h in &stats.hours {
        if visible(&h.agent, &h.probe).is_none() {
            continue;
        }
        let e = hours.entry(h.hour).or_default();
        e.0 += h.calls;
        e.1 += h.failures;
        e.2 += h.sum_ms;
        e.3 += h.timed;
    }
    let mut by_probe: BTreeMap<String, (Stats, Stats)> = BTreeMap::new();
    let mut by_target: BTreeMap<String, (Stats, Stats)> = BTreeMap::new();
    let (mut total_cur, mut total_prev) = (Stats::default(), Stats::default());
    for ((target, probe), (c, p)) in &groups {
        for g in [
            by_probe.entry(probe.clone()).or_default(),
            by_target.entry(target.clone()).or_default(),
        ] {
            g.0.merge(c);
            g.1.merge(p);
        }
        total_cur.merge(c);
        total_prev.merge(p);
    }
    let changes = ranked(
        &groups,
        params.limit,
        |(t, p)| json!({"target": t, "probe": p}),
    );
    let summary = {
        let mut s = format!(
            "{} calls, {} failed ({}%) in the last {}; {} calls, {} failed ({}%) in the {} before",
            total_cur.calls,
            total_cur.failures,
            round1(total_cur.failure_rate() * 100.0),
            params.window_text,
            total_prev.calls,
            total_prev.failures,
            round1(total_prev.failure_rate() * 100.0),
            params.window_text,
        );
        if let Some(top) = changes.first() {
            s.push_str(&format!(
                ". Biggest change: {} {} — {}",
                top["target"].as_str().unwrap_or("?"),
                top["probe"].as_str().unwrap_or("?"),
                top["change"]["note"].as_str().unwrap_or("")
            ));
        }
        s
    };
    Ok(json!({
        "window": {
            "length": params.window_text,
            "from_ms": q.split_ms,
            "to_ms": q.to_ms,
            "previous_from_ms": q.from_ms,
            "from": format_utc_ms(q.split_ms),
            "to": format_utc_ms(q.to_ms),
        },
        "filters": {"target": params.target, "probe": params.probe},
        "summary": summary,
        "totals": {"current": total_cur.json(), "previous": total_prev.json()},
        "groups": groups.len(),
        "changes": changes,
        "by_probe": ranked(&by_probe, params.limit, |p| json!({"probe": p})),
        "by_target": ranked(&by_target, params.limit, |t| json!({"target": t})),
        "by_hour": hours.iter().map(|(h, (calls, failures, sum, timed))| json!({
            "hour": format_utc_ms(h * HOUR_MS),
            "hour_ms": h * HOUR_MS,
            "calls": calls,
            "failures": failures,
            "avg_ms": (*timed > 0).then(|| round1(sum / *timed as f64)),
        })).collect::<Vec<_>>(),
    }))
}

/// [`summarise_with`] for a caller: a key sees the agents (not revoked)
/// and probes its policy allows; an operator sees every agent that is not
/// revoked.
pub async fn summarise(
    hub: &Hub,
    caller: &Caller,
    params: &TrendParams,
) -> Result<Value, HubError> {
    let policy = match caller {
        Caller::Key(p) => Some(p),
        Caller::Operator(_) => None,
    };
    let agent = match &params.target {
        None => None,
        Some(name) => {
            let found = hub
                .fleet
                .find(name)
                .map(|l| l.agent())
                .filter(|a| !a.is_revoked() && policy.is_none_or(|p| p.allows_agent(&a.name)));
            match found {
                Some(a) => Some(a.id.clone()),
                None => {
                    return Err(HubError::NotFound(match policy {
                        Some(p) => {
                            format!("no agent {name:?} in this key's scope ({})", p.summary())
                        }
                        None => format!("no agent named {name:?}; see `sonde-hub agents list`"),
                    }));
                }
            }
        }
    };
    let name_of = |id: &str| -> Option<String> {
        let a = hub.fleet.get(id)?.agent();
        (!a.is_revoked() && policy.is_none_or(|p| p.allows_agent(&a.name))).then(|| a.name.clone())
    };
    let allow_probe = |probe: &str| policy.is_none_or(|p| p.allows_probe(probe));
    let mut v = summarise_with(&hub.store, name_of, allow_probe, agent, params, now_ms()).await?;
    if let Some(p) = policy {
        v["key_policy"] = json!(p.summary());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::test_support;
    use sonde_protocol::audit::NewEntry;

    const NOW: i64 = 1_000 * HOUR_MS;

    /// A handmade audit: (hours before NOW, agent, probe, outcome, duration).
    fn audit(entries: &[(f64, &str, &str, &str, Option<u64>)]) -> (tempfile::TempDir, HubStore) {
        let (dir, store) = test_support::store();
        store.close();
        drop(store);
        let conn = test_support::raw(&dir);
        conn.execute_batch("BEGIN").unwrap();
        for (ago, agent, probe, outcome, dur) in entries {
            let mut e = NewEntry::new(
                "api-key:sk_1",
                sonde_protocol::audit::AuditAction::Probe,
                *outcome,
            )
            .agent(*agent)
            .probe(*probe);
            if let Some(d) = dur {
                e = e.detail("duration_ms", *d);
            }
            sonde_auditlog::append(&conn, e, NOW - (ago * HOUR_MS as f64) as i64).unwrap();
        }
        // Not probe calls: never counted.
        sonde_auditlog::append(
            &conn,
            NewEntry::new(
                "operator:a",
                sonde_protocol::audit::AuditAction::KeyCreated,
                "ok",
            ),
            NOW - 1,
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        let store = HubStore::open(&dir.path().join("hub.db"), test_support::key(), 1000).unwrap();
        (dir, store)
    }

    fn params(window: &str) -> TrendParams {
        TrendParams::parse(Some(window), None, None, None).unwrap()
    }

    async fn summary(store: &HubStore, p: &TrendParams) -> Value {
        summarise_with(store, |id| Some(id.to_owned()), |_| true, None, p, NOW)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn counts_failures_latency_and_ranking_on_a_handmade_audit() {
        let mut e = Vec::new();
        // nas zfs.list: 10 calls before, all ok; 10 now, 4 failing (+4).
        for i in 0..10 {
            e.push((30.0 + i as f64, "nas", "zfs.list", "ok", Some(10)));
            let outcome = if i < 3 {
                "error"
            } else if i == 3 {
                "timeout"
            } else {
                "ok"
            };
            e.push((
                1.0 + i as f64,
                "nas",
                "zfs.list",
                outcome,
                Some(10 + i as u64 * 100),
            ));
        }
        // web system.uptime: 20 ok before, 20 ok now, same latency (steady).
        for i in 0..20 {
            e.push((
                25.0 + i as f64 / 10.0,
                "web",
                "system.uptime",
                "ok",
                Some(2),
            ));
            e.push((0.5 + i as f64 / 10.0, "web", "system.uptime", "ok", Some(2)));
        }
        // web docker.ps: 4 before with 2 failing, now 4 all ok (−2).
        for i in 0..4 {
            e.push((
                40.0,
                "web",
                "docker.ps",
                if i < 2 { "error" } else { "ok" },
                Some(5),
            ));
            e.push((2.0, "web", "docker.ps", "ok", Some(5)));
        }
        // A denied call (no duration) now, and one outside both windows.
        e.push((3.0, "web", "system.uptime", "denied", None));
        e.push((60.0, "nas", "zfs.list", "error", Some(1)));
        let (_dir, store) = audit(&e);
        let v = summary(&store, &params("24h")).await;
        assert_eq!(v["totals"]["current"]["calls"], 10 + 21 + 4);
        assert_eq!(v["totals"]["current"]["failures"], 4 + 1);
        assert_eq!(v["totals"]["previous"]["calls"], 10 + 20 + 4);
        assert_eq!(v["totals"]["previous"]["failures"], 2);
        let changes = v["changes"].as_array().unwrap();
        let order: Vec<String> = changes
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["target"].as_str().unwrap(),
                    c["probe"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            order,
            ["nas zfs.list", "web docker.ps", "web system.uptime"]
        );
        let nas = &changes[0];
        assert_eq!(nas["current"]["failures"], 4);
        assert_eq!(nas["current"]["by_outcome"]["error"], 3);
        assert_eq!(nas["current"]["by_outcome"]["timeout"], 1);
        assert_eq!(nas["change"]["extra_failures"], 4.0);
        assert_eq!(nas["change"]["direction"], "worse");
        // Durations now 10, 110, …, 910: p50 is the 5th (410) → bucket ≤ 500;
        // p95 the 10th (910) → bucket ≤ 1000, cut to the slowest call.
        assert_eq!(nas["current"]["p50_ms"], 500.0);
        assert_eq!(nas["current"]["p95_ms"], 910.0);
        assert_eq!(nas["current"]["max_ms"], 910.0);
        assert_eq!(nas["current"]["avg_ms"], 460.0);
        assert_eq!(nas["previous"]["p95_ms"], 10.0);
        assert_eq!(changes[1]["change"]["extra_failures"], -2.0);
        assert_eq!(changes[1]["change"]["direction"], "better");
        let uptime = &changes[2];
        assert_eq!(uptime["current"]["calls"], 21);
        assert_eq!(uptime["current"]["by_outcome"]["denied"], 1);
        // The denied call has no duration: latency over the 20 answered.
        assert_eq!(uptime["current"]["p95_ms"], 2.0);
        // by_probe and by_target roll the groups up.
        let targets: Vec<&str> = v["by_target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["nas", "web"]);
        // by_hour: the current window only, hour by hour.
        let hours = v["by_hour"].as_array().unwrap();
        let calls: u64 = hours.iter().map(|h| h["calls"].as_u64().unwrap()).sum();
        assert_eq!(calls, 35);
        let failures: u64 = hours.iter().map(|h| h["failures"].as_u64().unwrap()).sum();
        assert_eq!(failures, 5);
        assert!(
            hours
                .windows(2)
                .all(|w| w[0]["hour_ms"].as_i64() < w[1]["hour_ms"].as_i64())
        );
        assert!(
            v["summary"]
                .as_str()
                .unwrap()
                .contains("Biggest change: nas zfs.list")
        );
    }

    #[tokio::test]
    async fn scope_filters_and_limits_apply() {
        let e = [
            (1.0, "nas", "zfs.list", "error", Some(3)),
            (1.0, "nas", "system.uptime", "ok", Some(3)),
            (1.0, "web", "zfs.list", "error", Some(3)),
            (1.0, "hidden", "zfs.list", "error", Some(3)),
        ];
        let (_dir, store) = audit(&e);
        let p = params("24h");
        // Only agents the caller may see, only probes it may run.
        let v = summarise_with(
            &store,
            |id| (id != "hidden").then(|| id.to_owned()),
            |probe| probe.starts_with("zfs."),
            None,
            &p,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(v["totals"]["current"]["calls"], 2);
        assert!(!v.to_string().contains("hidden"));
        assert!(!v.to_string().contains("system.uptime"));
        // The SQL filters: one agent, a probe pattern.
        let mut p2 =
            TrendParams::parse(Some("24h"), None, Some("system.*".into()), Some(1)).unwrap();
        let v = summarise_with(
            &store,
            |id| Some(id.to_owned()),
            |_| true,
            Some("nas".into()),
            &p2,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(v["totals"]["current"]["calls"], 1);
        p2.probe = Some("*".into());
        let v = summarise_with(&store, |id| Some(id.to_owned()), |_| true, None, &p2, NOW)
            .await
            .unwrap();
        assert_eq!(v["changes"].as_array().unwrap().len(), 1, "limit 1");
        assert_eq!(v["groups"], 4);
    }

    #[test]
    fn bad_parameters_are_refused_precisely() {
        for (w, want) in [
            ("0s", "from 1m to 90d"),
            ("91d", "from 1m to 90d"),
            ("soon", "not a duration"),
        ] {
            let e = TrendParams::parse(Some(w), None, None, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{w}: {e}");
        }
        assert!(TrendParams::parse(None, None, None, Some(0)).is_err());
        assert!(TrendParams::parse(None, None, None, Some(201)).is_err());
        assert!(TrendParams::parse(None, None, Some(String::new()), None).is_err());
        assert_eq!(
            TrendParams::parse(None, None, None, None)
                .unwrap()
                .window_ms,
            24 * HOUR_MS
        );
    }

    #[test]
    fn policy_patterns_become_literal_globs() {
        assert_eq!(sqlite_glob("zfs.*"), "zfs.*");
        assert_eq!(sqlite_glob("a?b[c]"), "a[?]b[[]c]");
    }

    #[test]
    fn percentiles_come_from_the_histogram_and_never_exceed_the_max() {
        let mut s = Stats::default();
        for (bucket, calls, max) in [(0usize, 90u64, 1.0), (17, 10, 800.0)] {
            let mut hist = vec![0; HIST_LEN];
            hist[bucket] = calls;
            s.add(&CallGroup {
                agent: "a".into(),
                probe: "p".into(),
                current: true,
                outcome: "ok".into(),
                calls: calls + 5,
                timed: calls,
                max_ms: Some(max),
                sum_ms: max * calls as f64,
                hist,
            });
        }
        assert_eq!(s.percentile(0.5), Some(1.0));
        assert_eq!(s.percentile(0.95), Some(800.0));
        assert_eq!(s.percentile(0.9), Some(1.0));
        assert_eq!((s.calls, s.timed), (110, 100));
        assert_eq!(Stats::default().percentile(0.5), None);
    }
}
