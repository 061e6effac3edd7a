//! Hub-side integrations: packs the hub runs against remote read-only HTTP
//! APIs (Prometheus, Alertmanager, Proxmox VE, UniFi Network, and
//! signed third-party manifests) instead of an agent running them on a
//! machine.
//!
//! - [`manifest`]: probes as fixed `GET` request templates
//!   ([`template`]), JSON projections ([`projection`]), bounds, runbooks.
//! - [`http`]: the GET-only client (hyper + tokio-rustls) with system
//!   roots or a pinned CA / certificate; never "skip verification".
//! - [`vault`]: credentials sealed with a key kept outside the database.
//! - [`runner`]: one probe, through the same checks, scrubber and audit
//!   entry shape as an agent probe; [`mcp`]: what the MCP tools call.
//! - [`builtin`] and one file per built-in kind.
//!
//! An integration's name is its target: MCP clients pass it where they
//! pass an agent name, and a key's agent patterns scope it the same way.
//! Agents and integrations share one namespace (an integration cannot be
//! added under an agent's name; an agent found under a name wins).

pub mod admin;
pub mod alertmanager;
pub mod builtin;
pub mod commands;
pub mod http;
pub mod manifest;
pub mod mcp;
pub mod projection;
pub mod prometheus;
pub mod proxmox;
pub mod runner;
pub mod template;
pub mod unifi;
pub mod vault;

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use url::Url;

use self::http::Trust;
use self::manifest::Manifest;
use self::vault::{Sealed, Vault};
use crate::store::HubStore;
use crate::store::integrations::{CredentialRecord, IntegrationRecord};

/// One configured integration, ready to run.
#[derive(Debug)]
pub struct Instance {
    pub record: IntegrationRecord,
    /// The manifest with the parameters adjusted to the settings.
    pub manifest: Manifest,
    pub base: Url,
    pub trust: Trust,
    pub settings: Map<String, Value>,
    pub credential: Option<CredentialRecord>,
}

impl Instance {
    pub fn name(&self) -> &str {
        &self.record.name
    }

    pub fn kind(&self) -> &str {
        &self.record.kind
    }

    fn build(
        record: IntegrationRecord,
        credential: Option<CredentialRecord>,
    ) -> Result<Instance, String> {
        let mut manifest = Manifest::parse(&record.manifest).map_err(|e| e.to_string())?;
        if manifest.sha256.to_hex() != record.manifest_sha256 {
            return Err("the stored manifest does not match its recorded hash".into());
        }
        let settings: Map<String, Value> =
            serde_json::from_str(&record.settings).map_err(|e| format!("settings: {e}"))?;
        for p in &mut manifest.probes {
            builtin::adjust(&record.kind, p, &settings);
        }
        let trust: Trust =
            serde_json::from_str(&record.trust).map_err(|e| format!("trust: {e}"))?;
        let base = template::parse_base(&record.base_url).map_err(|e| e.to_string())?;
        Ok(Instance {
            record,
            manifest,
            base,
            trust,
            settings,
            credential,
        })
    }
}

/// Every integration, in memory (reloaded after each change).
#[derive(Debug)]
pub struct Integrations {
    vault: Mutex<Vault>,
    /// Serialises credential changes with key rotations.
    pub(crate) ops: tokio::sync::Mutex<()>,
    all: RwLock<BTreeMap<String, Arc<Instance>>>,
}

impl Integrations {
    /// Opens the vault in `dir` and loads every integration.
    pub async fn load(dir: &Path, store: &HubStore) -> anyhow::Result<Integrations> {
        let vault = Vault::open(dir)?;
        let me = Integrations {
            vault: Mutex::new(vault),
            ops: tokio::sync::Mutex::new(()),
            all: RwLock::default(),
        };
        me.reload(store).await?;
        Ok(me)
    }

    pub async fn reload(&self, store: &HubStore) -> Result<(), crate::store::StoreError> {
        let records = store.integrations().await?;
        let mut creds: BTreeMap<String, CredentialRecord> = store
            .integration_credentials()
            .await?
            .into_iter()
            .map(|c| (c.integration.clone(), c))
            .collect();
        let mut all = BTreeMap::new();
        for r in records {
            let name = r.name.clone();
            match Instance::build(r, creds.remove(&name)) {
                Ok(i) => {
                    all.insert(name, Arc::new(i));
                }
                Err(e) => {
                    tracing::error!(integration = %name, error = %e, "integration not loaded")
                }
            }
        }
        if let Ok(mut w) = self.all.write() {
            *w = all;
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Instance>> {
        self.all.read().ok()?.get(name).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Instance>> {
        self.all
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Approved integrations only (what MCP clients may see).
    pub fn approved(&self) -> Vec<Arc<Instance>> {
        self.list()
            .into_iter()
            .filter(|i| i.record.approved)
            .collect()
    }

    pub(crate) fn with_vault<T>(&self, f: impl FnOnce(&mut Vault) -> T) -> Result<T, String> {
        let mut v = self.vault.lock().map_err(|_| {
            "the credential vault is unavailable (a panic held its lock)".to_owned()
        })?;
        Ok(f(&mut v))
    }

    /// The plaintext credential of an instance, for one request.
    pub(crate) fn secret(
        &self,
        inst: &Instance,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, vault::VaultError> {
        let Some(c) = &inst.credential else {
            return Ok(None);
        };
        let sealed = Sealed {
            key_id: c.key_id.clone(),
            nonce: c.nonce.clone(),
            ciphertext: c.ciphertext.clone(),
        };
        match self.vault.lock() {
            Ok(v) => v.open_secret(inst.name(), &sealed).map(Some),
            Err(_) => Err(vault::VaultError::Tampered(inst.name().to_owned())),
        }
    }
}
