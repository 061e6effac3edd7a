//! The running hub's shared state, handed to every task.

use ed25519_dalek::SigningKey;
use sonde_admin::api::HubStatus;
use sonde_protocol::audit::NewEntry;
use sonde_protocol::time::Clock;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::ca::CertificateAuthority;
use crate::config::HubConfig;
use crate::datadir::DataDir;
use crate::error::HubError;
use crate::fleet::Fleet;
use crate::link::registry::Registry;
use crate::store::HubStore;

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
    pub store: HubStore,
    /// Every agent's live state (records, catalogs, liveness), in memory.
    pub fleet: Fleet,
    pub audit: AuditLog,
    /// Hub-side integrations and their credential vault.
    pub integrations: crate::integrations::Integrations,
    pub ca: CertificateAuthority,
    pub signing_key: Arc<SigningKey>,
    /// Sender id of the hub in envelopes.
    pub hub_id: String,
    /// Names from `init --hostname`.
    pub hostnames: Vec<String>,
    pub registry: Registry,
    pub shutdown: CancellationToken,
    /// Agent-port connections and sessions: shutdown waits for them before
    /// the final checkpoint.
    pub tasks: TaskTracker,
    pub started_at_ms: i64,
    pub endpoints: RwLock<Endpoints>,
    /// What every expiry is decided by (API keys, enrollment tokens, OAuth
    /// codes, tokens and pending approvals): the wall clock, or a test's
    /// [`sonde_protocol::time::ManualClock`].
    pub clock: Clock,
}

pub type SharedHub = Arc<Hub>;

impl Hub {
    /// Loads an initialised data dir: opens the store (starting its
    /// writer) and loads the fleet into memory.
    pub async fn open(data: DataDir, config: HubConfig) -> anyhow::Result<Hub> {
        Hub::open_with_clock(data, config, Clock::system()).await
    }

    /// [`Hub::open`] with the clock expiry is decided by (tests move time
    /// with a [`sonde_protocol::time::ManualClock`] instead of sleeping).
    pub async fn open_with_clock(
        data: DataDir,
        config: HubConfig,
        clock: Clock,
    ) -> anyhow::Result<Hub> {
        if !data.is_initialised() {
            anyhow::bail!(
                "{} is not a hub data dir; create it with `sonde-hub init --data {}`",
                data.root().display(),
                data.root().display()
            );
        }
        let ca =
            CertificateAuthority::load(&data.read(&data.ca_cert())?, &data.read(&data.ca_key())?)?;
        let signing_key = Arc::new(sonde_protocol::keys::decode_secret_key(
            &data.read(&data.signing_key())?,
        )?);
        let store = HubStore::open(
            &data.db(),
            (*signing_key).clone(),
            crate::audit::CHECKPOINT_EVERY,
        )?;
        let (hub_id, hostnames) = store.hub_identity().await?;
        let fleet = Fleet::load(store.clone()).await?;
        let audit = AuditLog::new(store.clone());
        let integrations = crate::integrations::Integrations::load(data.root(), &store).await?;
        Ok(Hub {
            data,
            config,
            store,
            fleet,
            audit,
            integrations,
            ca,
            signing_key,
            hub_id,
            hostnames,
            registry: Registry::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started_at_ms: clock.now_ms(),
            endpoints: RwLock::new(Endpoints::default()),
            clock,
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
        let counts = self.store.counts().await?;
        let head = self.store.audit_head().await?;
        let live = self.fleet.live();
        let pending_permissions = live
            .iter()
            .flat_map(|a| a.packs().iter())
            .filter(|p| p.state == sonde_protocol::messages::PackState::Pending)
            .count() as u64;
        Ok(HubStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            agents_total: live.len() as u64,
            agents_online: live
                .iter()
                .filter(|a| self.registry.get(&a.id).is_some())
                .count() as u64,
            pending_enrollments: counts.pending_enrollments,
            pending_permissions,
            pending_oauth: crate::oauth::pending::requests(
                &self.store,
                false,
                crate::oauth::request_ttl_ms(&self.config),
                self.clock.now_ms(),
            )
            .await?
            .len() as u64,
            quarantined: live.iter().filter(|a| a.quarantined).count() as u64,
            open_drift: counts.open_drift,
            audit_head: head,
            agent_endpoint: format!("wss://{}", self.agent_address()),
            mcp_url: self.endpoints().mcp_url,
            ca_sha256: self.ca.fingerprint().to_hex(),
            ca_cert_path: Some(self.data.ca_cert().display().to_string()),
        })
    }
}

/// A real hub for the crate's tests: a fresh data dir (`init`) in a temp
/// dir, the default configuration, a real SQLite store and audit chain,
/// and the clock the test gives it.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use sonde_auditlog::PageQuery;
    use sonde_protocol::audit::AuditEntry;
    use sonde_protocol::audit_action::AuditAction;
    use sonde_protocol::time::Clock;

    use super::{Hub, SharedHub};
    use crate::config::HubConfig;
    use crate::datadir::DataDir;

    pub async fn hub(clock: Clock) -> (tempfile::TempDir, SharedHub) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("hub");
        crate::init::init(&root, &["localhost".into()], &[]).expect("init");
        let hub = Hub::open_with_clock(DataDir::new(&root), HubConfig::default(), clock)
            .await
            .expect("open the hub");
        (dir, Arc::new(hub))
    }

    /// The hub's audit entries with `action`, newest first.
    pub async fn audited(hub: &Hub, action: AuditAction) -> Vec<AuditEntry> {
        hub.store
            .audit_page(PageQuery {
                action: Some(action.as_str().into()),
                limit: Some(100),
                ..PageQuery::default()
            })
            .await
            .expect("read the audit")
            .0
    }
}
