//! Every action an audit entry can record, as one typed list shared by the
//! hub, the agent, the CLI and the console.
//!
//! Entries are written only through [`AuditAction`] (the type of
//! [`crate::audit::NewEntry::action`]), so a misspelt name does not
//! compile, and a filter on a name that does not exist is refused where it
//! is typed (console `action:` filter, `sonde-hub audit list --action`).
//! Stored entries keep the name as text ([`crate::audit::AuditEntry::action`]):
//! a chain written by another version still reads and verifies, whatever
//! names it holds.
//!
//! Names are `family.event` (`key.created`), or a bare family for the one
//! entry per probe call the hub writes (`probe`).

use std::fmt;
use std::str::FromStr;

macro_rules! audit_actions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// One kind of audit entry (see the module documentation).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action, in declaration order.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),*];

            /// The name written in the chain.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }
        }
    };
}

audit_actions! {
    // Agents and their packs.
    /// An agent's installed packs changed (reported in its hello).
    AgentPacks = "agent.packs",
    AgentRevoked = "agent.revoked",
    AgentTags = "agent.tags",
    AttestationAccepted = "attestation.accepted",
    AttestationDrift = "attestation.drift",
    AttestationKeptQuarantined = "attestation.kept_quarantined",
    /// An agent found its chain damaged and started a new segment.
    AuditRecovered = "audit.recovered",
    CertificateIssued = "certificate.issued",
    CertificateRenewalRefused = "certificate.renewal_refused",
    CertificateRenewed = "certificate.renewed",
    ConnectionAccepted = "connection.accepted",
    ConnectionClosed = "connection.closed",
    ConnectionRefused = "connection.refused",
    ConnectionReplaced = "connection.replaced",
    EnrollmentApproved = "enrollment.approved",
    EnrollmentDenied = "enrollment.denied",
    EnrollmentRefused = "enrollment.refused",
    EnrollmentRequested = "enrollment.requested",
    EnvelopeRejected = "envelope.rejected",
    EnvelopeRejectedByAgent = "envelope.rejected_by_agent",
    GrantsRejected = "grants.rejected",
    PackApproved = "pack.approved",
    PackDenied = "pack.denied",
    PackRevoked = "pack.revoked",
    /// The agent refused to load a pack (bad signature, above its ceiling).
    PackRefused = "pack.refused",
    // The hub itself.
    HubInitialised = "hub.initialised",
    HubServerCertReissued = "hub.server_cert_reissued",
    HubStarted = "hub.started",
    HubStopped = "hub.stopped",
    // Integrations.
    IntegrationAdded = "integration.added",
    IntegrationApproved = "integration.approved",
    IntegrationCredentialCleared = "integration.credential_cleared",
    IntegrationCredentialSet = "integration.credential_set",
    IntegrationKeyRotated = "integration.key_rotated",
    IntegrationRemoved = "integration.removed",
    // API keys, enrollment tokens, MCP.
    KeyCreated = "key.created",
    KeyRevoked = "key.revoked",
    TokenCreated = "token.created",
    TokenRevoked = "token.revoked",
    TokenUsed = "token.used",
    McpAuthFailed = "mcp.auth_failed",
    McpRequestRefused = "mcp.request_refused",
    ToolDenied = "tool.denied",
    // OAuth.
    OauthApproved = "oauth.approved",
    OauthClientRegistered = "oauth.client_registered",
    OauthClientRevoked = "oauth.client_revoked",
    OauthCodeIssued = "oauth.code_issued",
    OauthCodeReused = "oauth.code_reused",
    OauthDecisionRefused = "oauth.decision_refused",
    OauthDenied = "oauth.denied",
    OauthExpired = "oauth.expired",
    OauthRefreshReused = "oauth.refresh_reused",
    OauthRequested = "oauth.requested",
    OauthRevoked = "oauth.revoked",
    OauthTokenIssued = "oauth.token_issued",
    OauthTokenRefused = "oauth.token_refused",
    // Critical paths.
    PathDefined = "path.defined",
    PathRan = "path.ran",
    PathRemoved = "path.removed",
    // Probe calls.
    /// The hub's one entry per probe call (allowed or not).
    Probe = "probe",
    /// The hub asked the agent to stop a probe (the caller cancelled).
    ProbeCancel = "probe.cancel",
    /// The agent's one entry per probe call it ran.
    ProbeRan = "probe.ran",
    ProbeDone = "probe.done",
    /// The agent refused a probe call before running it.
    ProbeRefused = "probe.refused",
    /// The agent ran a probe and it failed.
    ProbeFailed = "probe.failed",
    ProbeStopped = "probe.stopped",
}

impl AuditAction {
    /// The action with this name, if there is one.
    pub fn from_name(name: &str) -> Option<AuditAction> {
        AuditAction::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == name)
    }

    /// The part before the dot (`key` for `key.created`; `probe` for `probe`).
    pub fn family(self) -> &'static str {
        let name = self.as_str();
        name.split_once('.').map_or(name, |(family, _)| family)
    }
}

/// Checks an action filter as the audit queries take it: a name, or a
/// prefix ending in `*` (`oauth.*`). A filter that no action can match is
/// a typo, and refused with the names it was probably meant to be.
pub fn check_filter(filter: &str) -> Result<(), UnknownAction> {
    let known = match filter.strip_suffix('*') {
        Some(prefix) => AuditAction::ALL
            .iter()
            .any(|a| a.as_str().starts_with(prefix)),
        None => AuditAction::from_name(filter).is_some(),
    };
    if known {
        Ok(())
    } else {
        Err(UnknownAction {
            name: filter.to_owned(),
        })
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no audit action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action {name:?}{}", suggestion(.name))]
pub struct UnknownAction {
    pub name: String,
}

fn suggestion(name: &str) -> String {
    let family = name.split_once('.').map_or(name, |(f, _)| f);
    let same: Vec<&str> = AuditAction::ALL
        .iter()
        .filter(|a| a.family() == family)
        .map(|a| a.as_str())
        .collect();
    if same.is_empty() {
        let mut families: Vec<&str> = AuditAction::ALL.iter().map(|a| a.family()).collect();
        families.sort_unstable();
        families.dedup();
        format!(" (families: {})", families.join(", "))
    } else {
        format!(" (did you mean one of: {})", same.join(", "))
    }
}

impl FromStr for AuditAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::from_name(s).ok_or_else(|| UnknownAction { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_well_formed_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for a in AuditAction::ALL {
            let name = a.as_str();
            assert!(seen.insert(name), "{name} twice");
            let ok = name.split('.').count() <= 2
                && name.split('.').all(|part| {
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
            assert!(ok, "{name:?} is not family.event");
            assert_eq!(name.parse::<AuditAction>(), Ok(*a));
            assert_eq!(a.to_string(), name);
        }
    }

    #[test]
    fn filters_are_names_or_prefixes_of_names() {
        assert!(check_filter("key.created").is_ok());
        assert!(check_filter("oauth.*").is_ok());
        assert!(check_filter("*").is_ok());
        assert!(check_filter("probe").is_ok());
        assert!(check_filter("oath.*").is_err());
        assert!(check_filter("key.create").is_err());
    }

    #[test]
    fn a_misspelt_name_is_refused_with_the_names_of_its_family() {
        let e = "key.create".parse::<AuditAction>().unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("key.created") && text.contains("key.revoked"),
            "{text}"
        );
        let e = "kee.created".parse::<AuditAction>().unwrap_err();
        assert!(e.to_string().contains("families: agent"), "{e}");
    }
}
