//! Read-only queries behind the console's views: agents by name or id for
//! audit filters, agent names for audit pages, the agent versions around a
//! drift, and probe traffic per minute for the fleet's sparklines.
//!
//! Self-contained on purpose (plain functions over a `Connection`, no state),
//! so they move as they are into a store interface.

use rusqlite::{Connection, OptionalExtension, params};
use sonde_admin::api::{AuditQuery, VersionChange};
use sonde_protocol::audit::{AuditEntry, ChainHead};
use std::collections::BTreeMap;

use super::Result;

/// Most agents one audit filter may stand for (a name reused many times, or
/// a short prefix).
pub const MAX_FILTER_AGENTS: usize = 50;

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The ids of the agents an audit filter names: an id or a name (every
/// agent that had the name, revoked ones too), or `prefix*` for ids and
/// names starting with `prefix`. Oldest first, at most
/// [`MAX_FILTER_AGENTS`].
pub fn agent_ids_matching(conn: &Connection, filter: &str) -> Result<Vec<String>> {
    let (sql, value) = match filter.strip_suffix('*') {
        Some(prefix) => (
            "SELECT id FROM agents WHERE id LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\' \
             ORDER BY enrolled_at_ms, id LIMIT ?2",
            format!("{}%", escape_like(prefix)),
        ),
        None => (
            "SELECT id FROM agents WHERE id = ?1 OR name = ?1 ORDER BY enrolled_at_ms, id LIMIT ?2",
            filter.to_owned(),
        ),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let ids = stmt
        .query_map(params![value, MAX_FILTER_AGENTS as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

/// One audit page where the agent filter may be a name or a prefix: the
/// agents it names are looked up first (a filter naming no agent is taken
/// as an id, so entries of unknown ids are still found).
pub fn audit_page(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let Some(filter) = q.agent.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(sonde_auditlog::page(conn, &crate::audit::page_query(q))?);
    };
    let ids = agent_ids_matching(conn, filter)?;
    if ids.is_empty() {
        return Ok(sonde_auditlog::page(conn, &crate::audit::page_query(q))?);
    }
    // Each agent's newest `limit` entries below the cursor, merged newest
    // first and cut to `limit`: the page one query over all of them gives.
    let limit = q.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let mut all = Vec::new();
    for id in ids {
        let mut one = q.clone();
        one.agent = Some(id);
        all.extend(sonde_auditlog::page(conn, &crate::audit::page_query(&one))?);
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.seq));
    all.dedup_by_key(|e| e.seq);
    all.truncate(limit);
    Ok(all)
}

/// `id → name` for the given agent ids (unknown ids are left out).
pub fn agent_names<'a>(
    conn: &Connection,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM agents WHERE id = ?1")?;
    let mut out = BTreeMap::new();
    for id in ids {
        if out.contains_key(id) {
            continue;
        }
        if let Some(name) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? {
            out.insert(id.to_owned(), name);
        }
    }
    Ok(out)
}

/// The `agent_version` of the agent's `connection.accepted` entry just
/// before (`before`) and just after (`after`) the `attestation.drift`
/// entry that first recorded drift event `drift_id`. `None` when the chain
/// has no such entry.
///
/// The lookups walk the `(action, seq)` index; `+agent` keeps SQLite from
/// walking the agent's own entries instead (a busy agent has millions of
/// probe entries between two connections).
pub fn agent_versions_around_drift(
    conn: &Connection,
    agent_id: &str,
    drift_id: i64,
) -> Result<Option<VersionChange>> {
    let seq: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM audit_entries WHERE action = 'attestation.drift' AND +agent = ?1 \
             AND json_extract(detail, '$.drift_id') = ?2 ORDER BY seq LIMIT 1",
        )?
        .query_row(params![agent_id, drift_id], |r| r.get(0))
        .optional()?;
    let Some(seq) = seq else {
        return Ok(None);
    };
    let version = |sql: &str| -> Result<Option<String>> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row(params![agent_id, seq], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    };
    let before = version(
        "SELECT json_extract(detail, '$.agent_version') FROM audit_entries \
         WHERE action = 'connection.accepted' AND +agent = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1",
    )?;
    let after = version(
        "SELECT json_extract(detail, '$.agent_version') FROM audit_entries \
         WHERE action = 'connection.accepted' AND +agent = ?1 AND seq > ?2 ORDER BY seq LIMIT 1",
    )?;
    Ok(Some(VersionChange { before, after }))
}

/// One agent's traffic in [`Traffic`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentTraffic {
    pub calls: Vec<u64>,
    pub latency_ms: Vec<Option<u64>>,
}

/// Probe traffic per minute bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traffic {
    pub calls: Vec<u64>,
    pub refusals: Vec<u64>,
    /// By agent id.
    pub agents: BTreeMap<String, AgentTraffic>,
}

/// Probe calls, refusals and per-agent mean latency in `minutes` one-minute
/// buckets starting at `start_ms`, from the audit chain (a walk of the time
/// index over the window only).
pub fn traffic(conn: &Connection, start_ms: i64, minutes: u32) -> Result<Traffic> {
    let n = minutes as usize;
    let end_ms = start_ms.saturating_add(i64::from(minutes) * 60_000);
    let mut out = Traffic {
        calls: vec![0; n],
        refusals: vec![0; n],
        agents: BTreeMap::new(),
    };
    // The duration is read once per row (only answered probes carry one).
    // `+action` keeps SQLite on the time index: the action index would walk
    // every probe entry ever recorded to find the window's.
    let mut stmt = conn.prepare_cached(
        "SELECT bucket, agent, action, refused, COUNT(*), SUM(d), COUNT(d) FROM ( \
             SELECT (timestamp_ms - ?1) / 60000 AS bucket, agent, action, \
                    outcome IN ('refused', 'denied') AS refused, \
                    CASE WHEN action = 'probe' AND outcome = 'ok' THEN json_extract(detail, '$.duration_ms') END AS d \
             FROM audit_entries \
             WHERE timestamp_ms >= ?1 AND timestamp_ms < ?2 AND +action IN ('probe', 'tool.denied')) \
         GROUP BY 1, 2, 3, 4",
    )?;
    let rows = stmt.query_map(params![start_ms, end_ms], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<f64>>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    // Per agent and bucket: (sum of durations, answered count).
    let mut latency: BTreeMap<(String, usize), (f64, i64)> = BTreeMap::new();
    for row in rows {
        let (bucket, agent, action, refused, count, duration_sum, timed) = row?;
        let Some(i) = usize::try_from(bucket).ok().filter(|i| *i < n) else {
            continue;
        };
        let count = count.max(0) as u64;
        if action == "probe" {
            out.calls[i] += count;
        }
        if refused {
            out.refusals[i] += count;
        }
        if action != "probe" {
            continue;
        }
        if let Some(agent) = agent {
            let t = out
                .agents
                .entry(agent.clone())
                .or_insert_with(|| AgentTraffic {
                    calls: vec![0; n],
                    latency_ms: vec![None; n],
                });
            t.calls[i] += count;
            if timed > 0 {
                let l = latency.entry((agent, i)).or_insert((0.0, 0));
                l.0 += duration_sum.unwrap_or(0.0);
                l.1 += timed;
            }
        }
    }
    for ((agent, i), (sum, count)) in latency {
        if let Some(t) = out.agents.get_mut(&agent)
            && count > 0
        {
            t.latency_ms[i] = Some((sum / count as f64).round().max(0.0) as u64);
        }
    }
    Ok(out)
}

impl super::HubStore {
    /// An audit page for the admin API (with the console's agent filter: a
    /// name, an id or a prefix), the chain head, and the names of the
    /// agents the page mentions.
    pub async fn console_audit_page(
        &self,
        q: AuditQuery,
    ) -> Result<(Vec<AuditEntry>, ChainHead, BTreeMap<String, String>)> {
        self.read(move |c| {
            let entries = audit_page(c, &q)?;
            let names = agent_names(c, entries.iter().filter_map(|e| e.agent.as_deref()))?;
            Ok((entries, sonde_auditlog::head(c)?, names))
        })
        .await
    }

    /// The agent versions before and after each drift event, given as
    /// `(agent id, drift id)`.
    pub async fn agent_versions_around_drifts(
        &self,
        keys: Vec<(String, i64)>,
    ) -> Result<Vec<Option<VersionChange>>> {
        self.read(move |c| {
            keys.iter()
                .map(|(agent, id)| agent_versions_around_drift(c, agent, *id))
                .collect()
        })
        .await
    }

    /// Probe traffic per minute from `start_ms`, with the agents' names.
    pub async fn traffic_with_names(
        &self,
        start_ms: i64,
        minutes: u32,
    ) -> Result<(Traffic, BTreeMap<String, String>)> {
        self.read(move |c| {
            let t = traffic(c, start_ms, minutes)?;
            let names = agent_names(c, t.agents.keys().map(String::as_str))?;
            Ok((t, names))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::test_support;
    use sonde_protocol::audit::AuditAction;
    use sonde_protocol::audit::NewEntry;

    /// Runs `f` on a connection of its own to the store's file.
    fn run_raw<T>(dir: &tempfile::TempDir, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&test_support::raw(dir))
    }

    fn agent(c: &Connection, id: &str, name: &str, enrolled: i64) {
        c.execute(
            "INSERT INTO agents (id, name, hostname, signing_key, cert_pem, cert_sha256, cert_expires_ms, enrolled_at_ms, enrollment_id, baseline, baseline_sha256, revoked_at_ms) \
             VALUES (?1, ?2, 'h', 'k', 'c', 's', 1, ?3, 'e', '{}', 'b', ?4)",
            params![id, name, enrolled, (id == "agt-old").then_some(5i64)],
        )
        .unwrap();
    }

    fn append(c: &Connection, e: NewEntry, at: i64) {
        sonde_auditlog::append(c, e, at).unwrap();
    }

    #[test]
    fn filters_name_agents_by_id_name_or_prefix_and_pages_get_names() {
        let (_dir, _store) = test_support::store();
        run_raw(&_dir, |c| {
            c.pragma_update(None, "foreign_keys", false)?;
            agent(c, "agt-old", "nas", 1);
            agent(c, "agt-new", "nas", 2);
            agent(c, "agt-web", "web_2", 3);
            assert_eq!(agent_ids_matching(c, "nas")?, ["agt-old", "agt-new"]);
            assert_eq!(agent_ids_matching(c, "agt-web")?, ["agt-web"]);
            assert_eq!(agent_ids_matching(c, "agt-*")?.len(), 3);
            assert_eq!(agent_ids_matching(c, "we*")?, ["agt-web"]);
            // `_` is a name character, not a LIKE wildcard.
            assert!(agent_ids_matching(c, "web?2*")?.is_empty());
            assert_eq!(agent_ids_matching(c, "web_*")?, ["agt-web"]);
            assert!(agent_ids_matching(c, "nobody")?.is_empty());
            let names = agent_names(c, ["agt-new", "agt-web", "agt-gone", "agt-new"])?;
            assert_eq!(names.len(), 2);
            assert_eq!(names["agt-web"], "web_2");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn audit_pages_by_name_cover_every_agent_that_had_it() {
        let (_dir, _store) = test_support::store();
        run_raw(&_dir, |c| {
            c.pragma_update(None, "foreign_keys", false)?;
            agent(c, "agt-old", "nas", 1);
            agent(c, "agt-new", "nas", 2);
            agent(c, "agt-web", "web", 3);
            for i in 0..30 {
                let id = ["agt-old", "agt-new", "agt-web"][i % 3];
                append(
                    c,
                    NewEntry::new("x", AuditAction::Probe, "ok").agent(id),
                    i as i64,
                );
            }
            let q = |agent: &str, before: Option<u64>| AuditQuery {
                agent: Some(agent.into()),
                limit: Some(7),
                before_seq: before,
                ..Default::default()
            };
            // Page by page, the same entries a single query would give.
            let mut seen = Vec::new();
            let mut before = None;
            loop {
                let page = audit_page(c, &q("nas", before))?;
                assert!(page.len() <= 7);
                assert!(page.windows(2).all(|w| w[0].seq > w[1].seq));
                seen.extend(page.iter().map(|e| e.seq));
                if page.len() < 7 {
                    break;
                }
                before = page.last().map(|e| e.seq);
            }
            // Entry i has seq i + 1; every third (from i = 2) is web's.
            let expected: Vec<u64> = (0..30u64)
                .rev()
                .filter(|i| i % 3 != 2)
                .map(|i| i + 1)
                .collect();
            assert_eq!(seen, expected);
            // An id, and an unknown filter taken as an id.
            assert!(
                audit_page(c, &q("agt-web", None))?
                    .iter()
                    .all(|e| e.agent.as_deref() == Some("agt-web"))
            );
            assert!(audit_page(c, &q("nobody", None))?.is_empty());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn agent_versions_come_from_the_connections_around_the_drift() {
        let (_dir, _store) = test_support::store();
        run_raw(&_dir, |c| {
            let connect = |version: &str, at: i64| {
                NewEntry::new("agent:a1", AuditAction::ConnectionAccepted, "ok")
                    .agent("a1")
                    .detail("agent_version", version.to_owned())
                    .detail("at", at)
            };
            append(c, connect("0.1.0", 1), 1);
            // Another agent's connection in between is not taken.
            append(
                c,
                NewEntry::new("agent:a2", AuditAction::ConnectionAccepted, "ok")
                    .agent("a2")
                    .detail("agent_version", "9.9.9"),
                2,
            );
            append(
                c,
                NewEntry::new("agent:a1", AuditAction::AttestationDrift, "quarantined")
                    .agent("a1")
                    .detail("drift_id", 7),
                3,
            );
            append(c, connect("0.2.0", 4), 4);
            // A reconnect with the same drift records it again: the
            // first record counts.
            append(
                c,
                NewEntry::new("agent:a1", AuditAction::AttestationDrift, "quarantined")
                    .agent("a1")
                    .detail("drift_id", 7),
                5,
            );
            append(c, connect("0.3.0", 6), 6);
            let v = agent_versions_around_drift(c, "a1", 7)?.unwrap();
            assert_eq!(v.before.as_deref(), Some("0.1.0"));
            assert_eq!(v.after.as_deref(), Some("0.2.0"));
            assert_eq!(agent_versions_around_drift(c, "a1", 8)?, None);
            assert_eq!(agent_versions_around_drift(c, "a2", 7)?, None);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn traffic_counts_calls_refusals_and_latency_per_minute() {
        let (_dir, _store) = test_support::store();
        let start = 1_714_566_840_000; // a whole minute
        run_raw(&_dir, |c| {
            let probe = |agent: &str, outcome: &str, duration: Option<u64>| {
                let mut e = NewEntry::new("key:k", AuditAction::Probe, outcome)
                    .agent(agent.to_owned())
                    .probe("system.uptime");
                if let Some(d) = duration {
                    e = e.detail("duration_ms", d);
                }
                e
            };
            // Before the window: not counted.
            append(c, probe("a1", "ok", Some(1)), start - 1);
            append(c, probe("a1", "ok", Some(10)), start);
            append(c, probe("a1", "ok", Some(30)), start + 59_999);
            append(c, probe("a1", "refused", None), start + 60_000);
            append(c, probe("a2", "ok", Some(5)), start + 120_000);
            append(
                c,
                NewEntry::new("key:k", AuditAction::ToolDenied, "denied").detail("tool", "probe"),
                start + 120_001,
            );
            // Not traffic.
            append(
                c,
                NewEntry::new("operator:x", AuditAction::PackApproved, "ok"),
                start + 1,
            );
            // After the window: not counted.
            append(c, probe("a1", "ok", Some(1)), start + 180_000);
            let t = traffic(c, start, 3)?;
            assert_eq!(t.calls, [2, 1, 1]);
            assert_eq!(t.refusals, [0, 1, 1]);
            assert_eq!(t.agents["a1"].calls, [2, 1, 0]);
            assert_eq!(t.agents["a1"].latency_ms, [Some(20), None, None]);
            assert_eq!(t.agents["a2"].latency_ms, [None, None, Some(5)]);
            assert_eq!(traffic(c, start, 0)?, Traffic::default());
            Ok(())
        })
        .unwrap();
    }
}

/// How long the console's queries take on a busy hour (a measurement, not
/// a test: it asserts nothing about time). Run with
/// `cargo test -p sonde-hub traffic_query_cost -- --ignored --nocapture`;
/// figures in docs/performance.md.
#[cfg(test)]
mod measure {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::test_support;
    use sonde_protocol::audit::{AuditAction, NewEntry};

    /// Runs `f` on a connection of its own to the store's file.
    fn run_raw<T>(dir: &tempfile::TempDir, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&test_support::raw(dir))
    }

    #[test]
    #[ignore]
    fn traffic_query_cost() {
        let (_dir, _store) = test_support::store();
        let start = 1_714_566_840_000i64;
        for (n, label) in [(36_000usize, "10/s"), (324_000, "100/s")] {
            run_raw(&_dir, |c| {
                c.execute_batch("BEGIN")?;
                let have: i64 =
                    c.query_row("SELECT COUNT(*) FROM audit_entries", [], |r| r.get(0))?;
                for i in have as usize..n {
                    let at = start + (i as i64 * 3_600_000 / n as i64);
                    let e = NewEntry::new(
                        "key:k",
                        AuditAction::Probe,
                        if i % 100 == 0 { "denied" } else { "ok" },
                    )
                    .agent(format!("agt-{}", i % 20))
                    .probe("system.uptime")
                    .detail("duration_ms", (i % 50) as u64)
                    .detail("via", "mcp");
                    sonde_auditlog::append(c, e, at)?;
                }
                c.execute_batch("COMMIT")?;
                Ok(())
            })
            .unwrap();
            run_raw(&_dir, |c| {
                for _ in 0..3 {
                    let t0 = std::time::Instant::now();
                    let t = traffic(c, start, 60)?;
                    eprintln!(
                        "{label}: {n} entries in the hour: traffic() {:?} ({} calls)",
                        t0.elapsed(),
                        t.calls.iter().sum::<u64>()
                    );
                }
                let t0 = std::time::Instant::now();
                let t = traffic(c, start + 58 * 60_000, 2)?;
                eprintln!(
                    "{label}: the last 2 minutes: traffic() {:?} ({} calls)",
                    t0.elapsed(),
                    t.calls.iter().sum::<u64>()
                );
                let t0 = std::time::Instant::now();
                let q = AuditQuery {
                    agent: Some("agt-3".into()),
                    limit: Some(200),
                    ..Default::default()
                };
                let p = audit_page(c, &q)?;
                eprintln!("{label}: page by agent {:?} ({})", t0.elapsed(), p.len());
                Ok(())
            })
            .unwrap();
        }
    }
}
