//! Admin API types. Paths (all under `/v1`, JSON bodies):
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/status` | → [`HubStatus`] |
//! | GET | `/agents` | → `Vec<`[`AgentSummary`]`>` |
//! | GET | `/agents/{name}` | → [`AgentDetail`] |
//! | POST | `/agents/{name}/revoke` | → [`AgentSummary`] |
//! | POST | `/agents/{name}/accept-baseline` | → [`AgentSummary`] (ends quarantine after drift) |
//! | POST | `/agents/{name}/tags` | [`TagsUpdate`] → [`AgentSummary`] |
//! | POST | `/agents/{name}/packs/{pack}/{approve,deny,revoke}` | → [`PermissionRequest`] |
//! | GET | `/enrollments?all=false` | → `Vec<`[`EnrollmentInfo`]`>` |
//! | POST | `/enrollments/{name}/{approve,deny}` | → [`EnrollmentInfo`] |
//! | GET | `/permissions?all=false` | → `Vec<`[`PermissionRequest`]`>` |
//! | GET | `/drift?all=false` | → `Vec<`[`DriftEvent`]`>` |
//! | GET | `/quarantined` | → `Vec<`[`QuarantinedAgent`]`>` (kept ones too, each with its latest drift event) |
//! | GET | `/metrics?minutes=60` ([`MetricsQuery`]) | → [`FleetMetrics`] (probe calls, refusals and latency per minute) |
//! | GET | `/audit?…` ([`AuditQuery`]) | → [`AuditPage`] |
//! | GET | `/audit/{seq}` | → [`AuditEntryDetail`] |
//! | POST | `/audit/verify` | → [`AuditVerifyReport`] |
//! | GET/POST | `/keys` | [`KeyCreate`] → [`KeyCreated`]; GET → `Vec<`[`KeyInfo`]`>` |
//! | POST | `/keys/{id}/revoke` | → [`KeyInfo`] |
//! | GET/POST | `/tokens` | [`TokenCreate`] → [`TokenCreated`]; GET → `Vec<`[`TokenInfo`]`>` |
//! | POST | `/tokens/{id}/revoke` | → [`TokenInfo`] |
//! | GET | `/oauth/requests?all=false` | → `Vec<`[`OAuthRequestInfo`]`>` (pending MCP client authorizations; all with `all`) |
//! | POST | `/oauth/requests/{id}/approve` | [`OAuthApprove`] → [`OAuthRequestInfo`] (the policy the client gets) |
//! | POST | `/oauth/requests/{id}/deny` | → [`OAuthRequestInfo`] |
//! | GET | `/oauth/clients` | → `Vec<`[`OAuthClientInfo`]`>` |
//! | POST | `/oauth/clients/{id}/revoke` | → [`OAuthClientInfo`] (its grants and tokens end) |
//! | POST | `/probe` | [`ProbeRun`] → [`ProbeRunResult`] ("try it", audited with the operator as actor) |
//! | GET/POST | `/integrations` | [`IntegrationAdd`] → [`IntegrationInfo`] (pending); GET → `Vec<`[`IntegrationInfo`]`>` |
//! | POST | `/integrations/{name}/{approve,remove}` ([`IntegrationAction`]) | → [`IntegrationInfo`] |
//! | POST | `/integrations/{name}/credential` | [`CredentialSet`] → [`IntegrationInfo`] (the secret is never returned) |
//! | POST | `/integrations/{name}/clear-credential` ([`IntegrationAction`]) | → [`IntegrationInfo`] (the credential is deleted; refused when none is set) |
//! | POST | `/integrations/{name}/test` | → [`ProbeRunResult`] (its `test_probe`, audited) |
//! | POST | `/integrations/rotate-key` | → [`KeyRotated`] (every credential re-sealed under a new key) |
//! | GET/POST | `/paths` | [`PathDefinition`] → [`PathDefined`] (create or replace); GET → `Vec<`[`PathInfo`]`>` |
//! | GET | `/paths/{name}` | → [`PathInfo`] |
//! | POST | `/paths/{name}/remove` | → [`PathInfo`] |
//! | POST | `/paths/{name}/run` | → the run report (JSON, as the MCP tool `check_critical_path` returns it) |
//! | GET | `/trending?…` ([`TrendingQuery`]) | → the summary (JSON, as the MCP tool `trending` returns it) |
//!
//! Errors come back with a 4xx/5xx status and an [`ErrorBody`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sonde_protocol::Capability;
use sonde_protocol::attestation::{Attestation, AttestationChange};
use sonde_protocol::audit::{AuditEntry, ChainHead, Checkpoint};
use sonde_protocol::messages::{GrantDecision, PackReport, PackState};
use std::collections::BTreeMap;

pub use sonde_protocol::messages::ErrorBody;

/// An enum of operator actions that travel as one word (the last segment
/// of an admin route, a column of the grants table): its variants, `ALL`,
/// `as_str`, `Display`, `FromStr` and an error that names the known words.
macro_rules! action_words {
    (
        $(#[$meta:meta])* $name:ident, $unknown:ident, $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[doc = concat!("A word that is no ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $unknown(pub String);

        impl std::fmt::Display for $unknown {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let known: Vec<&str> = $name::ALL.iter().map(|a| a.as_str()).collect();
                write!(f, "unknown {} {:?} ({})", $what, self.0, known.join(", "))
            }
        }

        impl std::error::Error for $unknown {}

        impl std::str::FromStr for $name {
            type Err = $unknown;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|a| a.as_str() == s)
                    .ok_or_else(|| $unknown(s.to_owned()))
            }
        }
    };
}

action_words! {
    /// What an operator decides about a pack on an agent (the last segment
    /// of `POST /v1/agents/{name}/packs/{pack}/{action}`): one typed list
    /// for the hub, the CLI and the console.
    PackAction, UnknownPackAction, "pack action" {
        /// Let the agent run the pack (a signed grant).
        Approve = "approve",
        /// Refuse a pending pack.
        Deny = "deny",
        /// Withdraw an approval.
        Revoke = "revoke",
    }
}

action_words! {
    /// What an operator does to an integration that answers with the
    /// integration (the last segment of
    /// `POST /v1/integrations/{name}/{action}`). Its test has a route of
    /// its own (`/test`, answered with a probe result), and so has setting
    /// a credential (`/credential`, with a body).
    IntegrationAction, UnknownIntegrationAction, "integration action" {
        Approve = "approve",
        Remove = "remove",
        /// Delete the credential (refused when none is set).
        ClearCredential = "clear-credential",
    }
}

/// `GET /v1/status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubStatus {
    pub version: String,
    pub started_at_ms: i64,
    pub agents_total: u64,
    pub agents_online: u64,
    pub pending_enrollments: u64,
    pub pending_permissions: u64,
    /// MCP clients' OAuth authorization requests waiting for the operator.
    #[serde(default)]
    pub pending_oauth: u64,
    pub quarantined: u64,
    pub open_drift: u64,
    pub audit_head: ChainHead,
    /// e.g. `wss://nas.lan:7443` — what agents connect to.
    pub agent_endpoint: String,
    /// e.g. `https://127.0.0.1:7444/mcp`, when the MCP endpoint is on.
    pub mcp_url: Option<String>,
    /// SHA-256 of the hub CA certificate (DER), hex.
    pub ca_sha256: String,
    /// Where the hub CA certificate is on the hub's machine (MCP clients
    /// must trust it when the endpoint is HTTPS with the hub's own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_path: Option<String>,
}

/// How an agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Online,
    Offline,
    Quarantined,
    Revoked,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Online => "online",
            AgentState::Offline => "offline",
            AgentState::Quarantined => "quarantined",
            AgentState::Revoked => "revoked",
        }
    }
}

/// One row of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub id: String,
    pub name: String,
    pub state: AgentState,
    /// Connected right now (a quarantined agent can be connected).
    pub connected: bool,
    pub last_seen_ms: Option<i64>,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub packs_active: u32,
    pub packs_pending: u32,
    pub packs_unavailable: u32,
    pub tags: Vec<String>,
    pub quarantine_reason: Option<String>,
    pub max_capability: Capability,
    pub enrolled_at_ms: i64,
    pub cert_expires_ms: i64,
    pub remote_addr: Option<String>,
    /// How the agent's kernel confines its probes, as last attested:
    /// `landlock-v7`, `landlock-v3-partial`, `none` (empty: an older agent).
    #[serde(default)]
    pub sandbox: String,
}

/// `GET /v1/agents/{name}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDetail {
    pub summary: AgentSummary,
    pub baseline: Attestation,
    pub baseline_fingerprint: String,
    /// The attestation from the latest hello, if any since enrollment.
    pub current: Option<Attestation>,
    pub packs: Vec<PackReport>,
    pub grants: BTreeMap<String, GrantDecision>,
    /// The agent's own audit head, as last reported.
    pub agent_audit_head: Option<ChainHead>,
    pub cert_sha256: String,
    pub signing_key_fingerprint: String,
}

/// `POST /v1/agents/{name}/tags`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagsUpdate {
    pub tags: Vec<String>,
}

/// Where an enrollment stands.
pub use sonde_protocol::messages::EnrollmentStatus;

/// A request to join the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentInfo {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub remote_addr: String,
    /// SHA-256 of the agent's Ed25519 signing key.
    pub key_fingerprint: String,
    /// SHA-256 of the TLS public key in the CSR.
    pub tls_key_fingerprint: String,
    /// One line: OS, kernel, arch, packs.
    pub attestation_summary: String,
    pub attestation: Attestation,
    pub attestation_fingerprint: String,
    pub token_id: String,
    pub token_label: String,
    pub auto_approved: bool,
    pub requested_at_ms: i64,
    pub status: EnrollmentStatus,
    pub decided_at_ms: Option<i64>,
    pub decided_by: Option<String>,
}

/// A pack on an agent and the operator's decision about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionRequest {
    pub agent_id: String,
    pub agent_name: String,
    pub pack: String,
    pub version: String,
    pub description: String,
    pub manifest_sha256: String,
    pub state: PackState,
    pub decision: Option<GrantDecision>,
    pub capability: Capability,
    /// What approving grants, in OS terms.
    pub requires: Vec<String>,
    /// What is missing on the machine, each with the command that fixes it.
    pub missing: Vec<String>,
    pub detected: bool,
}

/// An attestation change seen on connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftEvent {
    pub id: i64,
    pub agent_id: String,
    pub agent_name: String,
    pub detected_at_ms: i64,
    pub baseline_fingerprint: String,
    pub current_fingerprint: String,
    pub baseline: Attestation,
    pub current: Attestation,
    pub changes: Vec<AttestationChange>,
    pub status: DriftStatus,
    pub resolved_at_ms: Option<i64>,
    pub resolved_by: Option<String>,
    /// The agent version reported at the connection before the drift and
    /// at the drift (from the audit chain's `connection.accepted` entries;
    /// the attestation itself carries only the binary's digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<VersionChange>,
}

/// A version before and after a change (`None`: not known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VersionChange {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// `GET /v1/quarantined`: one quarantined agent, until it is resolved
/// (baseline accepted or agent revoked), whether its drift is still open
/// or was closed as "kept".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantinedAgent {
    pub agent: AgentSummary,
    /// The agent's latest drift event, open or closed (`None` when the
    /// quarantine has no drift record).
    pub drift: Option<DriftEvent>,
}

/// `GET /v1/metrics` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MetricsQuery {
    /// How many one-minute buckets, ending with the current minute:
    /// 1..=1440, default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
}

/// Probe traffic per minute, from the audit chain (oldest minute first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FleetMetrics {
    /// Start of the first bucket (ms since the epoch, a whole minute).
    pub start_ms: i64,
    /// Probe calls per minute (every `probe` entry, whatever its outcome).
    pub calls: Vec<u64>,
    /// Refusals per minute (`probe` entries refused or denied, and tools
    /// denied by a key's policy).
    pub refusals: Vec<u64>,
    /// Agents that had calls in the window.
    pub agents: Vec<AgentMetrics>,
}

/// One agent's probe traffic per minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentMetrics {
    pub agent_id: String,
    /// Empty when the id names no agent.
    pub name: String,
    pub calls: Vec<u64>,
    /// Mean duration of the probes the agent answered (outcome `ok`) that
    /// minute, in ms.
    pub latency_ms: Vec<Option<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftStatus {
    Open,
    Accepted,
    Revoked,
    /// The operator looked and kept the agent quarantined.
    Kept,
}

/// `GET /v1/audit` query: newest first, paged by `before_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditQuery {
    /// Only entries with seq below this (the next page of an earlier answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_seq: Option<u64>,
    /// 1..=1000, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// An agent id or name (a name matches every agent that had it: a
    /// revoked one and its re-enrolled successor); `prefix*` matches ids
    /// and names by prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

/// One page of the audit chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before_seq` for the next (older) page; `None` at the start.
    pub next_before_seq: Option<u64>,
    pub head: ChainHead,
    /// The name of every agent id on this page (entries carry ids).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agent_names: BTreeMap<String, String>,
}

/// `GET /v1/audit/{seq}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntryDetail {
    pub entry: AuditEntry,
    /// The first checkpoint at or after this entry, if any.
    pub checkpoint: Option<Checkpoint>,
}

/// `POST /v1/audit/verify`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditVerifyReport {
    pub ok: bool,
    pub entries: u64,
    pub head: Option<ChainHead>,
    pub checkpoints_verified: usize,
    pub last_checkpoint: Option<Checkpoint>,
    pub broken: Option<ChainBreakInfo>,
    pub duration_ms: u64,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainBreakInfo {
    pub seq: u64,
    pub kind: String,
    pub message: String,
}

/// `POST /v1/keys`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCreate {
    pub name: String,
    /// Agent name patterns (`*` wildcard); empty = all agents.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Probe name patterns (`zfs.*`); empty = all probes.
    #[serde(default)]
    pub probes: Vec<String>,
    /// MCP tool names; empty = all tools.
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub max_capability: Capability,
    /// Seconds until expiry; `None` = never.
    #[serde(default)]
    pub expires_in_s: Option<u64>,
}

/// An API key as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// The public prefix of the key, e.g. `sk_3f9a1c2e`.
    pub prefix: String,
    pub agents: Vec<String>,
    pub probes: Vec<String>,
    pub tools: Vec<String>,
    pub max_capability: Capability,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// The answer to creating a key: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub key: String,
    pub info: KeyInfo,
    pub mcp_url: Option<String>,
    /// Ready to paste: `claude mcp add sonde --transport http … --header "Authorization: Bearer …"`.
    pub claude_command: Option<String>,
}

/// `POST /v1/tokens`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreate {
    /// Seconds the token stays valid (default 900).
    #[serde(default)]
    pub ttl_s: Option<u64>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub auto_approve: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    Active,
    Used,
    Expired,
    Revoked,
}

/// An enrollment token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub state: TokenState,
    pub auto_approve: bool,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// The answer to creating a token: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token: String,
    pub info: TokenInfo,
    pub ca_sha256: String,
    /// Ready to run on the target: `sonde-agent enroll --hub … --token … --ca-sha256 …`.
    pub enroll_command: String,
}

/// `POST /v1/probe`: run one probe by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    pub agent: String,
    pub probe: String,
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// The outcome of a probe run through the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRunResult {
    pub agent: String,
    pub probe: String,
    pub ok: bool,
    pub data: Option<Value>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub truncated: bool,
    pub redactions: BTreeMap<String, u64>,
    /// The hub audit entry recording this run.
    pub audit_seq: u64,
    /// The agent's audit head after the run (when it answered).
    pub agent_audit_head: Option<ChainHead>,
}

/// Where an OAuth authorization request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthRequestStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    Revoked,
}

/// An MCP client's authorization request (OAuth), waiting for the operator
/// or decided. Names and URIs come from the client: escape before showing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthRequestInfo {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    /// The full redirect URI the browser will be sent to.
    pub redirect_uri: String,
    /// Its host (and port), the part to check.
    pub redirect_host: String,
    /// The code the browser page shows: it must match.
    pub user_code: String,
    pub status: OAuthRequestStatus,
    pub resource: String,
    pub remote_addr: String,
    pub requested_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    pub decided_by: Option<String>,
    /// The policy granted (when approved): as an API key's.
    pub agents: Vec<String>,
    pub probes: Vec<String>,
    pub tools: Vec<String>,
    pub max_capability: Capability,
    pub expires_at_ms: Option<i64>,
}

/// `POST /v1/oauth/requests/{id}/approve`: the policy the client gets, with
/// the same scopes as [`KeyCreate`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OAuthApprove {
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub probes: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub max_capability: Capability,
    /// Seconds until the grant ends; `None` = never (tokens still expire
    /// hourly and are refreshed).
    #[serde(default)]
    pub expires_in_s: Option<u64>,
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClientInfo {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub registered_at_ms: i64,
    pub remote_addr: String,
    pub revoked_at_ms: Option<i64>,
    /// Grants that issued tokens and are not revoked or expired.
    pub active_grants: u64,
}

/// A hub-side integration as listed (never its credential).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationInfo {
    pub name: String,
    /// `prometheus`, `alertmanager`, `proxmox`, `unifi`, or a third-party manifest's name.
    pub kind: String,
    pub base_url: String,
    /// `system roots`, `pinned CA (sha256 …)` or `pinned certificate …`.
    pub trust: String,
    pub settings: Map<String, Value>,
    pub manifest_sha256: String,
    /// A third-party manifest with a verified publisher signature.
    pub signed: bool,
    pub builtin: bool,
    /// `pending` or `approved`.
    pub state: String,
    pub created_at_ms: i64,
    pub created_by: String,
    pub approved_at_ms: Option<i64>,
    pub approved_by: Option<String>,
    /// Whether a credential is set, and how to recognise it.
    pub credential: Option<CredentialInfo>,
    pub probes: Vec<String>,
    pub diagnose_categories: Vec<String>,
}

/// A credential as listed: a keyed fingerprint and when it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    pub fingerprint: String,
    pub set_at_ms: i64,
    pub set_by: String,
}

/// Adding an integration (pending until approved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IntegrationAdd {
    pub name: String,
    /// A built-in kind; or empty with `manifest` for a third-party one.
    #[serde(default)]
    pub kind: String,
    pub base_url: String,
    /// Pin a CA (PEM text) …
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// … or the server certificate's SHA-256.
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub settings: Map<String, Value>,
    /// A third-party manifest (`integration.toml` text) …
    #[serde(default)]
    pub manifest: Option<String>,
    /// … and its publisher signature (`integration.sig` text).
    #[serde(default)]
    pub signature: Option<String>,
}

/// Setting or replacing a credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSet {
    pub secret: String,
}

impl std::fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialSet { secret: <redacted> }")
    }
}

/// The answer to a key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotated {
    pub credentials: u64,
    pub key_id: String,
}

/// A critical path as an operator defines it (TOML file, admin API,
/// console): ordered steps, each a set of checks run in parallel. The hub
/// validates it (`sonde_hub::critical_path`) before storing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// After the first broken step: `stop` (default; later steps are
    /// reported as skipped) or `continue`.
    #[serde(default)]
    pub on_failure: OnFailure,
    pub steps: Vec<PathStep>,
}

/// What a run does after the first broken step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Stop,
    Continue,
}

/// One step of a path: its checks run in parallel; the step passes when
/// every check passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathStep {
    pub name: String,
    pub checks: Vec<PathCheck>,
}

/// One probe on one target with expectations over its JSON result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathCheck {
    /// Agent name (hub-side integrations by name as well, once registered).
    pub target: String,
    pub probe: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// Each `"<JSON pointer> <op> [<JSON value>]"`, e.g. `"/active == true"`,
    /// or a table `{at, op, value}`. Empty: the probe answering is enough.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<ExpectationDef>,
    /// Give up after this many seconds (never longer than the probe's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// An expectation as written: text or its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExpectationDef {
    Text(String),
    Parts {
        at: String,
        op: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
}

/// A stored path with its last run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathInfo {
    pub definition: PathDefinition,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub defined_by: String,
    pub last_run: Option<PathRunSummary>,
}

/// What the last run of a path found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathRunSummary {
    pub at_ms: i64,
    pub by: String,
    pub ok: bool,
    /// 1-based index of the first broken step.
    pub breaks_at: Option<u32>,
    pub breaks_at_step: Option<String>,
    pub summary: String,
    pub duration_ms: u64,
}

/// `POST /v1/paths` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathDefined {
    pub info: PathInfo,
    /// An existing path of that name was replaced.
    pub replaced: bool,
    /// Things that will fail when the path runs (unknown agent, probe not
    /// registered there, parameters its schema refuses): stored anyway,
    /// since agents come and go.
    pub warnings: Vec<String>,
}

/// `GET /v1/trending` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendingQuery {
    /// Window length (`24h`, `7d`); default 24h.
    pub window: Option<String>,
    /// Only this target (agent name).
    pub target: Option<String>,
    /// Only probes matching this pattern (`zfs.*`).
    pub probe: Option<String>,
    /// At most this many groups per list (default 20).
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pack_actions_round_trip_and_a_misspelt_one_is_refused_with_the_three() {
        for &a in PackAction::ALL {
            assert_eq!(a.as_str().parse::<PackAction>(), Ok(a));
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, a.as_str());
            assert_eq!(serde_json::from_value::<PackAction>(json).unwrap(), a);
        }
        let e = "aprove".parse::<PackAction>().unwrap_err().to_string();
        assert!(
            e.contains("aprove") && e.contains("approve, deny, revoke"),
            "{e}"
        );
    }

    #[test]
    fn integration_actions_round_trip_and_test_is_not_one() {
        for &a in IntegrationAction::ALL {
            assert_eq!(a.as_str().parse::<IntegrationAction>(), Ok(a));
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, a.as_str());
            assert_eq!(
                serde_json::from_value::<IntegrationAction>(json).unwrap(),
                a
            );
        }
        assert_eq!(
            IntegrationAction::ClearCredential.to_string(),
            "clear-credential"
        );
        let e = "test".parse::<IntegrationAction>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown integration action \"test\" (approve, remove, clear-credential)"
        );
    }
}
