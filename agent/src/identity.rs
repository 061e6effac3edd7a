//! The agent's data dir: its keys, certificate, the hub it belongs to.
//!
//! ```text
//! DATA/                  0700, owned by the agent's user
//!   signing.key          Ed25519 key that signs envelopes and the local chain (0600)
//!   tls.key              TLS client key (0600); never leaves the machine
//!   agent.crt            client certificate issued by the hub CA
//!   identity.pem         renewed certificate + key (replaces the two above)
//!   ca.crt               the hub CA (pinned by fingerprint at enrollment)
//!   hub.json             hub address, hub id and signing key, agent id
//!   enrollment.json      while an enrollment is pending
//!   grants.json          the hub's signed pack decisions
//!   audit.db             the local audit chain
//! ```

use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sonde_protocol::keys;

/// What enrollment leaves behind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubInfo {
    /// `HOST:PORT`
    pub address: String,
    pub hub_id: String,
    /// `ed25519:…`
    pub hub_signing_key: String,
    pub agent_id: String,
    pub name: String,
    pub ca_sha256: String,
    pub enrolled_at_ms: i64,
}

/// A pending enrollment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PendingEnrollment {
    pub enrollment_id: String,
    pub address: String,
    pub ca_sha256: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("signing.key")
    }
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("agent.crt")
    }
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    /// Certificate and key together, written atomically by a renewal.
    pub fn identity(&self) -> PathBuf {
        self.root.join("identity.pem")
    }
    pub fn hub_info(&self) -> PathBuf {
        self.root.join("hub.json")
    }
    pub fn pending(&self) -> PathBuf {
        self.root.join("enrollment.json")
    }
    pub fn grants(&self) -> PathBuf {
        self.root.join("grants.json")
    }
    pub fn audit_db(&self) -> PathBuf {
        self.root.join("audit.db")
    }

    /// Creates the directory (0700) if needed.
    pub fn ensure(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| {
            anyhow::anyhow!("cannot create the data dir {}: {e}", self.root.display())
        })?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(|e| {
            anyhow::anyhow!("cannot restrict {} to its owner: {e}", self.root.display())
        })?;
        Ok(())
    }

    /// The signing key, created on first use.
    pub fn signing_key_or_create(&self) -> anyhow::Result<SigningKey> {
        match fs::read_to_string(self.signing_key()) {
            Ok(text) => Ok(keys::decode_secret_key(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.signing_key().display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.ensure()?;
                let key = keys::generate_signing_key()?;
                write_private(
                    &self.signing_key(),
                    keys::encode_secret_key(&key).as_bytes(),
                )?;
                Ok(key)
            }
            Err(e) => anyhow::bail!("cannot read {}: {e}", self.signing_key().display()),
        }
    }

    pub fn hub(&self) -> anyhow::Result<Option<HubInfo>> {
        read_json(&self.hub_info())
    }

    pub fn hub_key(&self) -> anyhow::Result<Option<VerifyingKey>> {
        Ok(match self.hub()? {
            Some(h) => Some(
                keys::decode_public_key(&h.hub_signing_key)
                    .map_err(|e| anyhow::anyhow!("hub.json: {e}"))?,
            ),
            None => None,
        })
    }

    pub fn pending_enrollment(&self) -> anyhow::Result<Option<PendingEnrollment>> {
        read_json(&self.pending())
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{} is damaged: {e}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
}

/// Writes a new 0600 file; fails if it exists.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Replaces a file atomically (0600).
pub fn replace_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_private(&tmp, contents)?;
    fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", path.display()))?;
    Ok(())
}
