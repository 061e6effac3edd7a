//! What agent connections report to the fleet: the verified hello, pack
//! changes, attestation drift, certificate renewals. Each is committed with
//! its audit entry, then applied in memory.

use sonde_protocol::attestation::Attestation;
use sonde_protocol::audit::{AuditAction, ChainHead, NewEntry};
use sonde_protocol::messages::{AgentHello, PackGrant, PackReport};
use sonde_protocol::time::now_ms;
use std::net::SocketAddr;

use super::Fleet;
use crate::store::{Hello, IssuedCert, Liveness, StoreError};

fn actor(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

impl Fleet {
    /// A verified hello on a new connection: records what the agent
    /// reported (its catalog interned: decoded packs are shared between
    /// agents that report the same) and audits `connection.accepted`.
    /// `session` is the connection's binding (hex), so the entry ties the
    /// session to its frames. Returns the agent's grants for the ack.
    pub async fn connected(
        &self,
        agent_id: &str,
        hello: &AgentHello,
        remote: SocketAddr,
        session: &str,
        quarantined: bool,
    ) -> Result<Vec<PackGrant>, StoreError> {
        let now = now_ms();
        let record = Hello {
            hostname: hello.hostname.clone(),
            agent_version: hello.agent_version.clone(),
            current: hello.attestation.clone(),
            max_capability: hello.max_capability,
            catalog: self.store().catalog(hello.packs.clone()),
            liveness: Liveness {
                last_seen_ms: Some(now),
                remote_addr: Some(remote.to_string()),
                audit_head: Some(hello.audit_head),
            },
        };
        let entry = NewEntry::new(actor(agent_id), AuditAction::ConnectionAccepted, "ok")
            .agent(agent_id)
            .detail("remote_addr", remote.to_string())
            .detail("session", session)
            .detail("sandbox", hello.attestation.sandbox.clone())
            .detail("agent_version", hello.agent_version.clone())
            .detail("quarantined", quarantined)
            .detail(
                "agent_audit_head",
                serde_json::to_value(hello.audit_head).unwrap_or_default(),
            );
        let id = agent_id.to_owned();
        let (_, grants) = self
            .update(agent_id, |store| async move {
                store.agent_connected(&id, record, entry).await
            })
            .await?;
        self.connected_from(agent_id, &remote.to_string(), hello.audit_head);
        Ok(grants)
    }

    /// An `agent.status`: when the pack list changed, the new catalog is
    /// stored and audited (`agent.packs`); either way the agent is alive.
    pub async fn packs_reported(
        &self,
        agent_id: &str,
        packs: Vec<PackReport>,
        head: ChainHead,
    ) -> Result<(), StoreError> {
        let Some(live) = self.get(agent_id) else {
            return Err(StoreError::NotFound(format!("no agent {agent_id:?}")));
        };
        let catalog = self.store().catalog(packs);
        self.observe_head(agent_id, head);
        if catalog.digest() == live.agent().catalog.digest() {
            return Ok(());
        }
        let liveness = live.liveness();
        let id = agent_id.to_owned();
        self.update(agent_id, |store| async move {
            Ok((store.packs_reported(&id, catalog, liveness).await?, ()))
        })
        .await?;
        Ok(())
    }

    /// Attestation drift seen in a hello: recorded (one open event per
    /// distinct attestation), audited, and the agent quarantined when
    /// `quarantine_reason` is given. Returns the drift event id.
    pub async fn drift(
        &self,
        agent_id: &str,
        current: Attestation,
        changes: serde_json::Value,
        quarantine_reason: Option<String>,
    ) -> Result<i64, StoreError> {
        let id = agent_id.to_owned();
        let (_, drift_id) = self
            .update(agent_id, |store| async move {
                let (drift_id, agent) = store
                    .record_drift(&id, current, changes, quarantine_reason)
                    .await?;
                Ok((agent, drift_id))
            })
            .await?;
        Ok(drift_id)
    }

    /// A certificate renewed over the link (audited `certificate.renewed`).
    pub async fn certificate_renewed(
        &self,
        agent_id: &str,
        cert: IssuedCert,
    ) -> Result<(), StoreError> {
        let id = agent_id.to_owned();
        self.update(agent_id, |store| async move {
            Ok((store.renew_certificate(&id, cert).await?, ()))
        })
        .await?;
        Ok(())
    }
}
