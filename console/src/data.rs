//! What the hub last told the console, shared by every screen, with how
//! old it is: the hub's answers are taken in here, the screens only read.

use sonde_admin::api::*;
use std::collections::{BTreeMap, BTreeSet};

use crate::worker::Reply;

/// Minutes of probe traffic kept for the sparklines.
pub const METRICS_MINUTES: u32 = 60;

/// How long data may go without a successful refresh before the view is
/// marked stale (three missed refreshes).
pub const STALE_AFTER_MS: i64 = 3 * crate::app::REFRESH_MS;

/// The hub's state as last read.
#[derive(Debug, Clone, Default)]
pub struct HubData {
    /// Where the hub is expected (for the banner).
    pub socket: String,
    pub status: Option<HubStatus>,
    pub agents: Vec<AgentSummary>,
    /// Agent details by name (Fleet's detail pane, Try it's probes).
    pub details: BTreeMap<String, AgentDetail>,
    pub enrollments: Vec<EnrollmentInfo>,
    pub permissions: Vec<PermissionRequest>,
    /// Open drift events.
    pub drift: Vec<DriftEvent>,
    pub quarantined: Vec<QuarantinedAgent>,
    pub keys: Vec<KeyInfo>,
    pub tokens: Vec<TokenInfo>,
    /// Pending OAuth authorization requests of MCP clients.
    pub oauth_requests: Vec<OAuthRequestInfo>,
    pub oauth_clients: Vec<OAuthClientInfo>,
    pub integrations: Vec<IntegrationInfo>,
    pub metrics: Option<FleetMetrics>,
    /// Critical paths and their last runs.
    pub paths: Vec<PathInfo>,
    /// Which lists have been read at least once (labels of [`crate::worker::Request`]).
    pub loaded: BTreeSet<&'static str>,
    /// When the hub last answered.
    pub last_ok_ms: Option<i64>,
    /// Set while the hub is unreachable.
    pub hub_error: Option<String>,
}

impl HubData {
    pub fn new(socket: impl Into<String>) -> HubData {
        HubData {
            socket: socket.into(),
            ..HubData::default()
        }
    }

    pub fn is_loaded(&self, label: &str) -> bool {
        self.loaded.contains(label)
    }

    /// Takes a read's answer; `false` when the reply is not shared data.
    pub fn take(&mut self, label: &'static str, reply: &Reply) -> bool {
        match reply {
            Reply::Status(s) => self.status = Some(s.clone()),
            Reply::Agents(a) => {
                self.agents = a.clone();
                // Details of agents that are gone are dropped.
                self.details
                    .retain(|name, _| a.iter().any(|x| &x.name == name));
            }
            Reply::Agent(d) => {
                self.details.insert(d.summary.name.clone(), (**d).clone());
            }
            Reply::Enrollments(e) => self.enrollments = e.clone(),
            Reply::Permissions(p) => self.permissions = p.clone(),
            Reply::Drift(d) if label == "drift" => {
                // Only the open events are shared (history is Attestation's own).
                self.drift = d
                    .iter()
                    .filter(|e| e.status == DriftStatus::Open)
                    .cloned()
                    .collect();
            }
            Reply::Quarantined(q) => self.quarantined = q.clone(),
            Reply::Keys(k) => self.keys = k.clone(),
            Reply::Tokens(t) => self.tokens = t.clone(),
            Reply::OAuthRequests(r) => self.oauth_requests = r.clone(),
            Reply::OAuthClients(c) => self.oauth_clients = c.clone(),
            Reply::Integrations(i) => self.integrations = i.clone(),
            Reply::Paths(p) => self.paths = p.clone(),
            Reply::Metrics(m) => {
                self.metrics = Some(merge_metrics(
                    self.metrics.as_ref(),
                    m,
                    METRICS_MINUTES as usize,
                ))
            }
            _ => return false,
        }
        self.loaded.insert(label);
        true
    }

    /// How old the data is when it is stale (hub unreachable, or no answer
    /// for [`STALE_AFTER_MS`]); `None` when fresh or never loaded.
    pub fn stale_for(&self, now_ms: i64) -> Option<i64> {
        let last = self.last_ok_ms?;
        let age = now_ms.saturating_sub(last).max(0);
        (self.hub_error.is_some() || age >= STALE_AFTER_MS).then_some(age)
    }

    /// How many minutes of traffic to ask for: the whole window at first,
    /// then only the minutes since the last one held (the last one may have
    /// been partial), so a refresh reads seconds of the audit chain, not an
    /// hour of it.
    pub fn metrics_minutes(&self, now_ms: i64) -> u32 {
        let Some(m) = &self.metrics else {
            return METRICS_MINUTES;
        };
        let last = m.start_ms + (m.calls.len() as i64 - 1).max(0) * 60_000;
        let minute = now_ms - now_ms.rem_euclid(60_000);
        let behind = (minute - last) / 60_000;
        (behind.max(0) + 1).min(i64::from(METRICS_MINUTES)) as u32
    }
}

/// `new` laid over `old`, in one window of `keep` minutes ending with
/// `new`'s last minute: minutes `new` covers come from it, older ones from
/// `old`; agents are the union.
pub fn merge_metrics(old: Option<&FleetMetrics>, new: &FleetMetrics, keep: usize) -> FleetMetrics {
    const MIN: i64 = 60_000;
    let keep = keep.max(1);
    let end = new.start_ms + new.calls.len() as i64 * MIN;
    let start = end - keep as i64 * MIN;
    let slot = |bucket_start: i64| -> Option<usize> {
        (bucket_start >= start && bucket_start < end)
            .then(|| ((bucket_start - start) / MIN) as usize)
    };
    let mut out = FleetMetrics {
        start_ms: start,
        calls: vec![0; keep],
        refusals: vec![0; keep],
        agents: Vec::new(),
    };
    let mut agents: BTreeMap<String, AgentMetrics> = BTreeMap::new();
    // Old minutes before `new` begins, then all of `new`.
    let sources = old
        .map(|o| (o, new.start_ms))
        .into_iter()
        .chain(std::iter::once((new, i64::MAX)));
    for (src, before) in sources {
        for (i, (c, r)) in src.calls.iter().zip(&src.refusals).enumerate() {
            let b = src.start_ms + i as i64 * MIN;
            if b < before
                && let Some(s) = slot(b)
            {
                out.calls[s] = *c;
                out.refusals[s] = *r;
            }
        }
        for a in &src.agents {
            let entry = agents
                .entry(a.agent_id.clone())
                .or_insert_with(|| AgentMetrics {
                    agent_id: a.agent_id.clone(),
                    name: a.name.clone(),
                    calls: vec![0; keep],
                    latency_ms: vec![None; keep],
                });
            if !a.name.is_empty() {
                entry.name = a.name.clone();
            }
            for (i, (c, l)) in a.calls.iter().zip(&a.latency_ms).enumerate() {
                let b = src.start_ms + i as i64 * MIN;
                if b < before
                    && let Some(s) = slot(b)
                {
                    entry.calls[s] = *c;
                    entry.latency_ms[s] = *l;
                }
            }
        }
    }
    out.agents = agents
        .into_values()
        .filter(|a| a.calls.iter().any(|c| *c > 0))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(start_minute: i64, calls: &[u64], agent_calls: &[u64]) -> FleetMetrics {
        FleetMetrics {
            start_ms: start_minute * 60_000,
            calls: calls.to_vec(),
            refusals: vec![0; calls.len()],
            agents: vec![AgentMetrics {
                agent_id: "a1".into(),
                name: "nas".into(),
                calls: agent_calls.to_vec(),
                latency_ms: agent_calls
                    .iter()
                    .map(|c| (*c > 0).then_some(*c * 10))
                    .collect(),
            }],
        }
    }

    #[test]
    fn traffic_is_read_incrementally_and_merged_into_one_window() {
        let mut data = HubData::default();
        assert_eq!(data.metrics_minutes(1000 * 60_000), METRICS_MINUTES);
        // Minutes 100..=104, then minutes 104..=106 (104 was partial).
        let first = m(100, &[1, 2, 3, 4, 5], &[1, 0, 0, 0, 5]);
        data.take("metrics", &Reply::Metrics(first));
        assert_eq!(
            data.metrics_minutes(104 * 60_000 + 5_000),
            1,
            "the current minute only"
        );
        assert_eq!(data.metrics_minutes(106 * 60_000), 3);
        assert_eq!(
            data.metrics_minutes(10_000 * 60_000),
            METRICS_MINUTES,
            "long gone: all again"
        );
        let next = m(104, &[9, 7, 8], &[9, 0, 0]);
        let merged = merge_metrics(data.metrics.as_ref(), &next, 5);
        assert_eq!(merged.start_ms, 102 * 60_000);
        assert_eq!(
            merged.calls,
            [3, 4, 9, 7, 8],
            "old minutes kept, newer ones replaced"
        );
        assert_eq!(merged.agents[0].calls, [0, 0, 9, 0, 0]);
        assert_eq!(
            merged.agents[0].latency_ms,
            [None, None, Some(90), None, None]
        );
        // An agent with no calls left in the window is dropped.
        let quiet = merge_metrics(Some(&merged), &m(200, &[0], &[0]), 5);
        assert!(quiet.agents.is_empty());
        assert_eq!(quiet.calls, [0; 5]);
    }
}
