//! Typed payloads carried in envelopes (one per [`Kind`](crate::Kind)), and
//! the enrollment exchange that happens before an agent has a certificate.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::attestation::Attestation;
use crate::audit::ChainHead;
use crate::{Capability, Digest, ProbeDescriptor, canonical};

/// Lifecycle of a pack on one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackState {
    /// Approved and requirements met: its probes are registered.
    Active,
    /// Requirements met, waiting for the operator's approval.
    Pending,
    /// A requirement is missing; `detail` says what to do.
    Unavailable,
    /// The operator revoked it.
    Revoked,
    /// Its publisher signature does not verify: it was modified after
    /// signing. Never loaded, whatever the grants say.
    Refused,
}

impl PackState {
    pub fn as_str(self) -> &'static str {
        match self {
            PackState::Active => "active",
            PackState::Pending => "pending",
            PackState::Unavailable => "unavailable",
            PackState::Revoked => "revoked",
            PackState::Refused => "refused",
        }
    }
}

/// A pack as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackReport {
    pub name: String,
    pub version: String,
    pub description: String,
    pub manifest_sha256: Digest,
    pub state: PackState,
    /// For `unavailable`: each missing requirement with the fix, e.g.
    /// "group docker: run `usermod -aG docker sonde`".
    #[serde(default)]
    pub missing: Vec<String>,
    /// What approving this pack grants, in OS terms (groups, files, commands).
    #[serde(default)]
    pub requires: Vec<String>,
    /// The agent detected software this pack is for.
    #[serde(default)]
    pub detected: bool,
    /// Highest capability among the pack's probes that are registered.
    pub capability: Capability,
    /// Every probe of the pack, with whether it is registered on this agent
    /// (active pack and within the capability ceiling).
    #[serde(default)]
    pub probes: Vec<ProbeSummary>,
    #[serde(default)]
    pub runbooks: Vec<RunbookSummary>,
    /// Set when the agent's config says this pack serves sample data, not
    /// the machine's (`sample_data` in agent.toml, e.g. the demo's
    /// generated ZFS pool): what the data is. Absent on the wire otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_data: Option<String>,
}

/// A probe as described to the hub (and from there to MCP clients).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSummary {
    /// Full name, `pack.probe`.
    pub name: String,
    pub description: String,
    pub capability: Capability,
    pub timeout_ms: u64,
    pub params: Vec<crate::schema::ParamSpec>,
    /// What the result holds.
    pub output: String,
    /// Example parameter sets.
    #[serde(default)]
    pub examples: Vec<Map<String, Value>>,
    /// In the agent's executor table right now.
    pub registered: bool,
}

impl PartialEq for ProbeSummary {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl Eq for ProbeSummary {}

/// A `diagnose` runbook: which probes to run for a category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookSummary {
    pub category: String,
    pub description: String,
    pub parallel: bool,
    /// Full probe names with their parameters.
    pub steps: Vec<ProbeDescriptor>,
}

impl Eq for RunbookSummary {}

/// `agent.hello`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHello {
    /// The hub's `hub.challenge` nonce this hello answers (64 hex digits).
    pub challenge: String,
    /// The agent's fresh nonce (64 hex digits); with the challenge it makes
    /// the connection's [`crate::envelope::SessionBinding`].
    pub nonce: String,
    pub agent_id: String,
    pub agent_version: String,
    pub hostname: String,
    pub attestation: Attestation,
    pub max_capability: Capability,
    pub packs: Vec<PackReport>,
    pub audit_head: ChainHead,
}

/// `hub.challenge`: the hub's first message on a connection, unbound; the
/// agent's hello must answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubChallenge {
    /// 32 fresh random bytes, hex.
    pub nonce: String,
}

/// `hub.ack`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubAck {
    pub quarantined: bool,
    /// Why the agent is quarantined, when it is.
    pub quarantine_reason: Option<String>,
    pub grants: Vec<PackGrant>,
    pub heartbeat_interval_ms: u64,
}

/// `hub.reject`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubReject {
    pub code: String,
    pub message: String,
}

/// `heartbeat`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Present when the agent sends it.
    pub audit_head: Option<ChainHead>,
}

/// `probe.request`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// Hub-chosen id that the reply echoes.
    pub request_id: String,
    pub descriptor: ProbeDescriptor,
    /// Who asked, e.g. `api-key:sk_ab12` or `operator:console`.
    pub actor: String,
    /// The agent kills the probe after this long.
    pub timeout_ms: u64,
}

/// `probe.cancel`: the hub's caller gave up on `request_id` (MCP
/// cancellation, a closed session). The agent cuts the running probe's
/// deadline short, so the runner kills its process group, and audits both
/// the request to cancel and the kill. The probe's reply, if any, says
/// `cancelled`; the hub no longer waits for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeCancel {
    pub request_id: String,
    /// Why, for the agent's audit (e.g. "the MCP client cancelled the call").
    pub reason: String,
}

/// `probe.response`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeResponse {
    pub request_id: String,
    pub probe: String,
    /// The structured, scrubbed result.
    pub data: Value,
    pub truncated: bool,
    /// Redactions per scrub rule name (never the secret itself).
    pub redactions: BTreeMap<String, u64>,
    pub duration_ms: u64,
    /// SHA-256 of the canonical form of `data`.
    pub result_digest: Digest,
    /// The agent's audit head after recording this request.
    pub audit_head: ChainHead,
}

/// Why a probe did not produce a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeErrorCode {
    /// Not registered: it does not exist, its pack is not active, or it is
    /// above the agent's capability ceiling (deliberately indistinguishable).
    UnknownProbe,
    InvalidParams,
    /// Refused for policy reasons (quarantine, verification failure, …).
    Refused,
    Timeout,
    Failed,
    /// The agent is at its concurrency limit.
    Busy,
    /// The result did not fit in a frame.
    TooLarge,
    /// The hub cancelled the request (`probe.cancel`) while it ran.
    Cancelled,
}

impl ProbeErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeErrorCode::UnknownProbe => "unknown_probe",
            ProbeErrorCode::InvalidParams => "invalid_params",
            ProbeErrorCode::Refused => "refused",
            ProbeErrorCode::Timeout => "timeout",
            ProbeErrorCode::Failed => "failed",
            ProbeErrorCode::Busy => "busy",
            ProbeErrorCode::TooLarge => "too_large",
            ProbeErrorCode::Cancelled => "cancelled",
        }
    }
}

/// `probe.error`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeFailure {
    pub request_id: String,
    pub probe: String,
    pub code: ProbeErrorCode,
    pub message: String,
    pub duration_ms: u64,
    pub audit_head: ChainHead,
}

/// `grants.update`: the full current set of decisions for this agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsUpdate {
    pub grants: Vec<PackGrant>,
}

/// `agent.status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    pub packs: Vec<PackReport>,
    pub audit_head: ChainHead,
}

/// `envelope.rejected`: "I dropped a frame you (or someone) sent me".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeRejected {
    /// [`VerifyError::code`](crate::VerifyError::code).
    pub code: String,
    pub message: String,
    /// The id in the rejected frame's header, when it could be read. It is
    /// unauthenticated: only good for failing a pending request early.
    pub message_id: Option<String>,
}

/// `hub.closing`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubClosing {
    pub reason: String,
}

/// `cert.renew`: the agent asks for a new client certificate for a key it
/// just generated (the old certificate stays valid until it expires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRenew {
    pub csr_pem: String,
}

/// `cert.issued`: the renewed certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertIssued {
    pub cert_pem: String,
    pub expires_at_ms: i64,
}

/// The operator's decision on one pack for one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantDecision {
    Approved,
    Revoked,
}

/// A pack decision signed by the hub. The agent accepts it only with the
/// hub key pinned at enrollment, for its own id and for the exact manifest
/// hash it has loaded: a changed manifest is a different pack and needs a
/// new approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackGrant {
    pub agent_id: String,
    pub pack: String,
    pub manifest_sha256: Digest,
    pub decision: GrantDecision,
    pub issued_at_ms: i64,
    /// Ed25519 signature by the hub, hex.
    pub signature: String,
}

impl PackGrant {
    fn signed_bytes(
        agent_id: &str,
        pack: &str,
        manifest: &Digest,
        decision: GrantDecision,
        issued_at_ms: i64,
    ) -> Vec<u8> {
        let mut fields = Map::new();
        fields.insert("agent_id".into(), agent_id.into());
        fields.insert("pack".into(), pack.into());
        fields.insert("manifest_sha256".into(), manifest.to_hex().into());
        fields.insert(
            "decision".into(),
            serde_json::to_value(decision).unwrap_or(Value::Null),
        );
        fields.insert("issued_at_ms".into(), issued_at_ms.into());
        let mut out = b"sonde/grant/v1\0".to_vec();
        canonical::write(&Value::Object(fields), &mut out);
        out
    }

    pub fn sign(
        agent_id: &str,
        pack: &str,
        manifest_sha256: Digest,
        decision: GrantDecision,
        issued_at_ms: i64,
        hub_key: &SigningKey,
    ) -> Self {
        let sig = hub_key.sign(&Self::signed_bytes(
            agent_id,
            pack,
            &manifest_sha256,
            decision,
            issued_at_ms,
        ));
        PackGrant {
            agent_id: agent_id.into(),
            pack: pack.into(),
            manifest_sha256,
            decision,
            issued_at_ms,
            signature: hex::encode(sig.to_bytes()),
        }
    }

    pub fn verify(&self, hub_key: &VerifyingKey) -> bool {
        verify_hex_signature(
            hub_key,
            &Self::signed_bytes(
                &self.agent_id,
                &self.pack,
                &self.manifest_sha256,
                self.decision,
                self.issued_at_ms,
            ),
            &self.signature,
        )
    }
}

fn verify_hex_signature(key: &VerifyingKey, message: &[u8], signature_hex: &str) -> bool {
    let Ok(bytes) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(array) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    key.verify(message, &Signature::from_bytes(&array)).is_ok()
}

/// Enrollment, step 1: `POST /v1/enroll` (TLS, hub CA pinned by fingerprint,
/// no client certificate yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    /// PKCS#10 CSR (PEM) for the TLS key the agent generated and keeps.
    pub csr_pem: String,
    /// The agent's Ed25519 envelope-signing public key (`ed25519:…`).
    pub signing_key: String,
    pub name: String,
    pub hostname: String,
    pub attestation: Attestation,
}

/// Enrollment, step 2: `POST /v1/enroll/status`, signed with the Ed25519 key
/// sent in step 1, so only the requester can collect the certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollStatusRequest {
    pub enrollment_id: String,
    pub timestamp_ms: i64,
    /// Ed25519 over `"sonde/enroll-status/v1\0" ‖ enrollment_id ‖ timestamp_ms (i64 BE)`, hex.
    pub signature: String,
}

impl EnrollStatusRequest {
    fn signed_bytes(enrollment_id: &str, timestamp_ms: i64) -> Vec<u8> {
        let mut b = b"sonde/enroll-status/v1\0".to_vec();
        b.extend_from_slice(enrollment_id.as_bytes());
        b.extend_from_slice(&timestamp_ms.to_be_bytes());
        b
    }

    pub fn sign(enrollment_id: &str, timestamp_ms: i64, key: &SigningKey) -> Self {
        let sig = key.sign(&Self::signed_bytes(enrollment_id, timestamp_ms));
        EnrollStatusRequest {
            enrollment_id: enrollment_id.into(),
            timestamp_ms,
            signature: hex::encode(sig.to_bytes()),
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        verify_hex_signature(
            key,
            &Self::signed_bytes(&self.enrollment_id, self.timestamp_ms),
            &self.signature,
        )
    }
}

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentStatus {
    Pending,
    Approved,
    Denied,
}

/// The hub's answer to both enrollment steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub enrollment_id: String,
    pub status: EnrollmentStatus,
    pub message: String,
    /// Set once approved.
    pub credentials: Option<AgentCredentials>,
}

/// What an approved agent receives and stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCredentials {
    pub agent_id: String,
    /// Client certificate (PEM) naming `agent_id`.
    pub cert_pem: String,
    /// The hub CA (PEM).
    pub ca_pem: String,
    /// The hub's envelope-signing key (`ed25519:…`).
    pub hub_signing_key: String,
    /// Sender id the hub uses in envelopes.
    pub hub_id: String,
}

/// Error body for enrollment and other plain HTTP endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_verify_only_unchanged_and_with_the_hub_key() {
        let hub = SigningKey::from_bytes(&[3; 32]);
        let g = PackGrant::sign(
            "agent-1",
            "zfs",
            Digest::of(b"m"),
            GrantDecision::Approved,
            10,
            &hub,
        );
        assert!(g.verify(&hub.verifying_key()));
        let mut other_agent = g.clone();
        other_agent.agent_id = "agent-2".into();
        assert!(!other_agent.verify(&hub.verifying_key()));
        let mut other_manifest = g.clone();
        other_manifest.manifest_sha256 = Digest::of(b"m2");
        assert!(!other_manifest.verify(&hub.verifying_key()));
        let mut flipped = g.clone();
        flipped.decision = GrantDecision::Revoked;
        assert!(!flipped.verify(&hub.verifying_key()));
        assert!(!g.verify(&SigningKey::from_bytes(&[4; 32]).verifying_key()));
    }

    #[test]
    fn enroll_status_is_bound_to_the_requester_key() {
        let agent = SigningKey::from_bytes(&[5; 32]);
        let req = EnrollStatusRequest::sign("enr-1", 99, &agent);
        assert!(req.verify(&agent.verifying_key()));
        let mut other = req.clone();
        other.enrollment_id = "enr-2".into();
        assert!(!other.verify(&agent.verifying_key()));
    }

    #[test]
    fn payloads_refuse_unknown_fields() {
        let bad = serde_json::json!({"audit_head": null, "extra": 1});
        assert!(serde_json::from_value::<Heartbeat>(bad).is_err());
    }
}
