//! The hub's domain records, as [`super::HubStore`] returns them. They say
//! what the hub knows, not how a table or the admin API spells it (the
//! admin API's types are built from these in `fleet/`).

use sonde_protocol::attestation::Attestation;
use sonde_protocol::audit::ChainHead;
use sonde_protocol::messages::{EnrollmentStatus, PackGrant, PackReport, ProbeSummary};
use sonde_protocol::{Capability, Digest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub hostname: String,
    /// The agent's Ed25519 key (base64), pinned at enrollment.
    pub signing_key: String,
    pub cert_pem: String,
    pub cert_sha256: String,
    pub cert_expires_ms: i64,
    pub enrolled_at_ms: i64,
    pub enrollment_id: String,
    pub baseline: Attestation,
    /// The attestation of the latest hello, if any since enrollment.
    pub current: Option<Attestation>,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
    pub revoked_at_ms: Option<i64>,
    pub agent_version: String,
    pub os: String,
    pub max_capability: Capability,
    /// Its packs and probes, as last reported (shared between agents that
    /// report the same).
    pub catalog: Arc<Catalog>,
    pub tags: Vec<String>,
    /// As last persisted (the live values are in the fleet).
    pub liveness: Liveness,
}

impl Agent {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }

    pub fn packs(&self) -> &[PackReport] {
        self.catalog.packs()
    }
}

/// What changes with every heartbeat: kept in memory and persisted in
/// periodic batches, not one write per beat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Liveness {
    pub last_seen_ms: Option<i64>,
    pub remote_addr: Option<String>,
    /// The agent's own audit head, as last reported.
    pub audit_head: Option<ChainHead>,
}

/// An agent's packs and probes, decoded once and indexed by probe name.
#[derive(Debug)]
pub struct Catalog {
    digest: Digest,
    /// Canonical JSON of the pack list (what the database stores).
    json: String,
    packs: Vec<PackReport>,
    /// Registered probes: name → (pack index, probe index).
    registered: HashMap<String, (usize, usize)>,
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Catalog {
    fn build(packs: Vec<PackReport>) -> Catalog {
        let value = serde_json::to_value(&packs).unwrap_or_default();
        let json = String::from_utf8(sonde_protocol::canonical::to_vec(&value)).unwrap_or_default();
        let digest = Digest::of(json.as_bytes());
        let mut registered = HashMap::new();
        for (i, p) in packs.iter().enumerate() {
            for (j, s) in p.probes.iter().enumerate() {
                if s.registered {
                    registered.entry(s.name.clone()).or_insert((i, j));
                }
            }
        }
        Catalog {
            digest,
            json,
            packs,
            registered,
        }
    }

    /// The catalog of an agent that reported no packs (yet).
    pub fn empty() -> Arc<Catalog> {
        static EMPTY: std::sync::OnceLock<Arc<Catalog>> = std::sync::OnceLock::new();
        Arc::clone(EMPTY.get_or_init(|| Arc::new(Catalog::build(Vec::new()))))
    }

    /// The SHA-256 of the canonical pack list: equal lists, equal digests.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub(super) fn json(&self) -> &str {
        &self.json
    }

    pub fn packs(&self) -> &[PackReport] {
        &self.packs
    }

    /// The probe `name` if the agent registered it (active pack, within its
    /// ceiling): one hash lookup.
    pub fn probe(&self, name: &str) -> Option<&ProbeSummary> {
        let &(i, j) = self.registered.get(name)?;
        self.packs.get(i)?.probes.get(j)
    }

    /// Registered probes, in report order.
    pub fn registered(&self) -> impl Iterator<Item = &ProbeSummary> {
        self.packs
            .iter()
            .flat_map(|p| p.probes.iter())
            .filter(|s| s.registered)
    }
}

/// Interned catalogs: one decoded copy per distinct pack list, however many
/// agents report it.
#[derive(Debug, Default)]
pub struct CatalogCache {
    by_digest: Mutex<HashMap<Digest, Weak<Catalog>>>,
}

impl CatalogCache {
    /// The shared catalog for `packs`.
    pub fn intern(&self, packs: Vec<PackReport>) -> Arc<Catalog> {
        let built = Catalog::build(packs);
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = map.get(&built.digest).and_then(Weak::upgrade) {
            return found;
        }
        if map.len() >= 64 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let catalog = Arc::new(built);
        map.insert(catalog.digest, Arc::downgrade(&catalog));
        catalog
    }

    /// Interned catalogs alive now (for tests and the scale tool).
    pub fn len(&self) -> usize {
        self.by_digest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a hello tells the hub about the agent.
#[derive(Debug, Clone)]
pub struct Hello {
    pub hostname: String,
    pub agent_version: String,
    pub current: Attestation,
    pub max_capability: Capability,
    pub catalog: Arc<Catalog>,
    pub liveness: Liveness,
}

/// A request to join the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub remote_addr: String,
    pub token_id: String,
    /// The token's label (empty if it had none).
    pub token_label: String,
    pub csr_pem: String,
    pub tls_key_sha256: String,
    pub signing_key: String,
    pub attestation: Attestation,
    pub auto_approved: bool,
    pub requested_at_ms: i64,
    pub status: EnrollmentStatus,
    pub decided_at_ms: Option<i64>,
    pub decided_by: Option<String>,
    pub agent_id: Option<String>,
}

/// A certificate the CA issued: PEM, its SHA-256, expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedCert {
    pub pem: String,
    pub sha256: Digest,
    pub expires_ms: i64,
}

/// How an enrollment request ended in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrollOutcome {
    /// Recorded, waiting for the operator.
    Pending(Enrollment),
    /// Recorded and approved at once (the token was `--auto-approve`).
    Approved(Enrollment, Box<Agent>),
    /// The token was refused (the refusal is audited).
    Refused(TokenRefusal),
}

/// An enrollment token (the secret is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentToken {
    pub id: String,
    pub label: String,
    pub auto_approve: bool,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Used,
    Expired,
    Revoked,
}

impl EnrollmentToken {
    pub fn state(&self, now_ms: i64) -> TokenState {
        if self.revoked_at_ms.is_some() {
            TokenState::Revoked
        } else if self.used_at_ms.is_some() {
            TokenState::Used
        } else if now_ms >= self.expires_at_ms {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired { token_id: String, ago_ms: i64 },
    Reused { token_id: String },
    Revoked { token_id: String },
}

impl TokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "token_unknown",
            TokenRefusal::Expired { .. } => "token_expired",
            TokenRefusal::Reused { .. } => "token_reused",
            TokenRefusal::Revoked { .. } => "token_revoked",
        }
    }

    pub fn token_id(&self) -> Option<&str> {
        match self {
            TokenRefusal::Unknown => None,
            TokenRefusal::Expired { token_id, .. }
            | TokenRefusal::Reused { token_id }
            | TokenRefusal::Revoked { token_id } => Some(token_id),
        }
    }

    /// What the agent is told (and the operator reads in the audit).
    pub fn message(&self) -> String {
        match self {
            TokenRefusal::Unknown => "enrollment token not recognised; create one with `sonde-hub token create`".into(),
            TokenRefusal::Expired { ago_ms, .. } => format!(
                "enrollment token expired {} ago; create a new one with `sonde-hub token create`",
                crate::durations::human_duration_ms(*ago_ms)
            ),
            TokenRefusal::Reused { .. } => {
                "enrollment token was already used (tokens are single-use); create a new one with `sonde-hub token create`".into()
            }
            TokenRefusal::Revoked { .. } => "enrollment token was revoked; create a new one with `sonde-hub token create`".into(),
        }
    }
}

/// An MCP API key (the secret is stored only as a SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The public prefix, e.g. `sk_3f9a1c2e`.
    pub prefix: String,
    /// Agent name patterns (`*` globs); empty means any.
    pub agents: Vec<String>,
    /// Probe name patterns; empty means any.
    pub probes: Vec<String>,
    /// MCP tools; empty means any.
    pub tools: Vec<String>,
    pub max_capability: Capability,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// An operator's pack decision, as the hub signed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub grant: PackGrant,
    pub action: sonde_admin::api::PackAction,
    pub decided_by: String,
}

/// Where a drift event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftStatus {
    Open,
    Accepted,
    Revoked,
    /// The operator looked and kept the agent quarantined.
    Kept,
}

impl DriftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Open => "open",
            DriftStatus::Accepted => "accepted",
            DriftStatus::Revoked => "revoked",
            DriftStatus::Kept => "kept",
        }
    }
}

/// An attestation change seen on connect.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRecord {
    pub id: i64,
    pub agent_id: String,
    pub detected_at_ms: i64,
    pub baseline: Attestation,
    pub current: Attestation,
    pub status: DriftStatus,
    pub resolved_at_ms: Option<i64>,
    pub resolved_by: Option<String>,
}

/// Counts for the hub's status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending_enrollments: u64,
    pub open_drift: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_protocol::messages::PackState;

    fn pack(name: &str, registered: bool) -> PackReport {
        PackReport {
            name: name.into(),
            version: "1".into(),
            description: String::new(),
            manifest_sha256: Digest::of(name.as_bytes()),
            state: PackState::Active,
            missing: vec![],
            requires: vec![],
            detected: false,
            capability: Capability::Observe,
            probes: vec![ProbeSummary {
                name: format!("{name}.one"),
                description: String::new(),
                capability: Capability::Observe,
                timeout_ms: 1000,
                params: vec![],
                output: String::new(),
                examples: vec![],
                registered,
            }],
            runbooks: vec![],
            sample_data: None,
        }
    }

    #[test]
    fn equal_pack_lists_share_one_catalog_and_lookups_see_only_registered_probes() {
        let cache = CatalogCache::default();
        let a = cache.intern(vec![pack("sys", true), pack("zfs", false)]);
        let b = cache.intern(vec![pack("sys", true), pack("zfs", false)]);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        assert!(a.probe("sys.one").is_some());
        assert!(a.probe("zfs.one").is_none(), "not registered");
        assert!(a.probe("nope.one").is_none());
        let c = cache.intern(vec![pack("sys", true)]);
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        assert_eq!(cache.len(), 1, "dropped catalogs are not kept alive");
    }
}
