//! What the hub last told the console, shared by every screen, with how
//! old it is: the hub's answers are taken in here, the screens only read.

use sonde_admin::api::*;
use std::collections::{BTreeMap, BTreeSet};

use crate::worker::Reply;

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
    pub metrics: Option<FleetMetrics>,
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
            Reply::Metrics(m) => self.metrics = Some(m.clone()),
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

    pub fn agent(&self, name: &str) -> Option<&AgentSummary> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// Counts by state over the agents list (revoked ones left out).
    pub fn counts(&self) -> AgentCounts {
        let mut c = AgentCounts::default();
        for a in &self.agents {
            match a.state {
                AgentState::Online => c.online += 1,
                AgentState::Offline => c.offline += 1,
                AgentState::Quarantined => c.quarantined += 1,
                AgentState::Revoked => c.revoked += 1,
            }
        }
        c
    }
}

/// Agents by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub online: u64,
    pub offline: u64,
    pub quarantined: u64,
    pub revoked: u64,
}
