//! The running hub's shared state, handed to every task.

use ed25519_dalek::SigningKey;
use sonde_admin::api::HubStatus;
use sonde_protocol::audit::NewEntry;
use sonde_protocol::time::now_ms;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::ca::CertificateAuthority;
use crate::config::HubConfig;
use crate::datadir::DataDir;
use crate::error::HubError;
use crate::link::registry::Registry;
use crate::store::{self, Store};

/// Where the hub is reachable, once its listeners are bound.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub agent: Option<SocketAddr>,
    pub mcp_url: Option<String>,
}

/// Everything the hub's tasks share.
#[derive(Debug)]
pub struct Hub {
    pub data: DataDir,
    pub config: HubConfig,
    pub store: Store,
    pub audit: AuditLog,
    pub ca: CertificateAuthority,
    pub signing_key: Arc<SigningKey>,
    /// Sender id of the hub in envelopes.
    pub hub_id: String,
    /// Names from `init --hostname`.
    pub hostnames: Vec<String>,
    pub registry: Registry,
    pub shutdown: CancellationToken,
    pub started_at_ms: i64,
    pub endpoints: RwLock<Endpoints>,
}

pub type SharedHub = Arc<Hub>;

impl Hub {
    /// Loads an initialised data dir.
    pub fn open(data: DataDir, config: HubConfig) -> anyhow::Result<Hub> {
        if !data.is_initialised() {
            anyhow::bail!(
                "{} is not a hub data dir; create it with `sonde-hub init --data {}`",
                data.root().display(),
                data.root().display()
            );
        }
        let store = Store::open(&data.db())?;
        let ca =
            CertificateAuthority::load(&data.read(&data.ca_cert())?, &data.read(&data.ca_key())?)?;
        let signing_key = Arc::new(sonde_protocol::keys::decode_secret_key(
            &data.read(&data.signing_key())?,
        )?);
        let (hub_id, hostnames) = store.read_blocking(|c| {
            let id = store::meta_get(c, "hub_id")?.unwrap_or_else(|| "hub".into());
            let names: Vec<String> = store::meta_get(c, "hostnames")?
                .map(|h| serde_json::from_str(&h).unwrap_or_default())
                .unwrap_or_default();
            Ok((id, names))
        })?;
        let audit = AuditLog::new(store.clone(), Arc::clone(&signing_key));
        Ok(Hub {
            data,
            config,
            store,
            audit,
            ca,
            signing_key,
            hub_id,
            hostnames,
            registry: Registry::default(),
            shutdown: CancellationToken::new(),
            started_at_ms: now_ms(),
            endpoints: RwLock::new(Endpoints::default()),
        })
    }

    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.read().map(|e| e.clone()).unwrap_or_default()
    }

    /// `HOST:PORT` agents should use.
    pub fn agent_address(&self) -> String {
        let port = self
            .endpoints()
            .agent
            .map(|a| a.port())
            .unwrap_or(self.config.agent_listen.port());
        let host = self
            .config
            .public_host
            .clone()
            .or_else(|| self.hostnames.first().cloned())
            .unwrap_or_else(|| {
                let ip = self
                    .endpoints()
                    .agent
                    .map(|a| a.ip())
                    .unwrap_or(self.config.agent_listen.ip());
                if ip.is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    ip.to_string()
                }
            });
        format!("{host}:{port}")
    }

    /// Records an audit entry; failures are logged (the caller goes on).
    pub async fn audit(&self, entry: NewEntry) -> Option<sonde_protocol::audit::AuditEntry> {
        self.audit.record_or_log(entry).await
    }

    pub async fn status(&self) -> Result<HubStatus, HubError> {
        let online = self.registry.connected_ids();
        let (agents, pending_enrollments, quarantined, open_drift, head) = self
            .store
            .read(|c| {
                let agents = store::agents::list(c)?;
                let pending = store::enrollments::list(c, false)?.len() as u64;
                let quarantined = agents
                    .iter()
                    .filter(|a| a.revoked_at_ms.is_none() && a.quarantined)
                    .count() as u64;
                Ok((
                    agents,
                    pending,
                    quarantined,
                    store::drift::count_open(c)?,
                    store::audit::head(c)?,
                ))
            })
            .await?;
        let live: Vec<_> = agents
            .iter()
            .filter(|a| a.revoked_at_ms.is_none())
            .collect();
        let pending_permissions = live
            .iter()
            .flat_map(|a| a.packs.iter())
            .filter(|p| p.state == sonde_protocol::messages::PackState::Pending)
            .count() as u64;
        Ok(HubStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            agents_total: live.len() as u64,
            agents_online: live.iter().filter(|a| online.contains(&a.id)).count() as u64,
            pending_enrollments,
            pending_permissions,
            quarantined,
            open_drift,
            audit_head: head,
            agent_endpoint: format!("wss://{}", self.agent_address()),
            mcp_url: self.endpoints().mcp_url,
            ca_sha256: self.ca.fingerprint().to_hex(),
            ca_cert_path: Some(self.data.ca_cert().display().to_string()),
        })
    }
}
