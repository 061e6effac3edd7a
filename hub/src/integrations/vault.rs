//! Integration credentials, encrypted at rest.
//!
//! Each secret (API token, password) is sealed with ChaCha20-Poly1305
//! under a 256-bit key kept in `<data dir>/integrations.key` (mode 0600),
//! a file separate from `hub.db`. The additional data binds a ciphertext
//! to its integration's name, so rows cannot be swapped between
//! integrations. Every row names the key that sealed it (`key_id`, a hash
//! of the key), so a rotation interrupted between the database commit and
//! the key file's rename is recovered at the next start from
//! `integrations.key.new`.
//!
//! **What an attacker with only the database file gets**: integration
//! names, base URLs, pins, settings, when each credential was set and a
//! keyed fingerprint of it — never a secret, and not enough to test
//! guesses offline (the fingerprint is keyed with the vault key too).
//! With the key file as well, they get the secrets: keep the data dir's
//! backups as carefully as the hub itself.
//!
//! Secrets are never returned by any API, never written to an audit
//! entry or log; the plaintext lives only for the duration of one request
//! (and is zeroized after).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Why the vault failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("integration key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "the credential of integration {0} was sealed with a key this hub does not have (was integrations.key replaced?); set it again with `sonde-hub integrations set-credential`"
    )]
    UnknownKey(String),
    #[error(
        "the credential of integration {0} does not decrypt (tampered with, or moved from another integration)"
    )]
    Tampered(String),
    #[error("the OS random source failed: {0}")]
    Random(String),
}

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// One 256-bit key.
struct VaultKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultKey({})", self.id)
    }
}

impl VaultKey {
    fn new(bytes: [u8; 32]) -> VaultKey {
        let mut h = Sha256::new();
        h.update(b"sonde/integration-key-id/v1\0");
        h.update(bytes);
        let id = hex::encode(&h.finalize()[..8]);
        VaultKey {
            bytes: Zeroizing::new(bytes),
            id,
        }
    }

    fn random() -> Result<VaultKey, VaultError> {
        let mut b = [0u8; 32];
        sonde_protocol::keys::random_bytes(&mut b)
            .map_err(|e| VaultError::Random(e.to_string()))?;
        let k = VaultKey::new(b);
        b.zeroize();
        Ok(k)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.bytes.as_ref()))
    }
}

fn aad(integration: &str) -> Vec<u8> {
    let mut a = b"sonde/integration-credential/v1\0".to_vec();
    a.extend_from_slice(integration.as_bytes());
    a
}

/// The hub's credential vault.
#[derive(Debug)]
pub struct Vault {
    path: PathBuf,
    current: VaultKey,
    /// A key from an interrupted rotation (`integrations.key.new`).
    other: Option<VaultKey>,
}

fn read_key(path: &Path) -> Result<Option<VaultKey>, VaultError> {
    let err = |reason: String| VaultError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "mode {:o} lets others read it; `chmod 600 {}`",
            meta.permissions().mode() & 0o777,
            path.display()
        )));
    }
    let bytes =
        Zeroizing::new(hex::decode(text.trim()).map_err(|_| err("is not 64 hex digits".into()))?);
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| err("is not 64 hex digits".into()))?;
    Ok(Some(VaultKey::new(arr)))
}

fn write_key(path: &Path, key: &VaultKey) -> Result<(), VaultError> {
    let err = |e: std::io::Error| VaultError::KeyFile {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(key.bytes.as_ref())));
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

impl Vault {
    /// The key file in `dir` (created 0600 on first use).
    pub fn open(dir: &Path) -> Result<Vault, VaultError> {
        let path = dir.join("integrations.key");
        let pending = path.with_extension("key.new");
        let other = read_key(&pending)?;
        let current = match read_key(&path)? {
            Some(k) => k,
            None => match &other {
                // Rotation got as far as removing the old key: finish it.
                Some(_) => {
                    std::fs::rename(&pending, &path).map_err(|e| VaultError::KeyFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    return Vault::open(dir);
                }
                None => {
                    let k = VaultKey::random()?;
                    write_key(&path, &k)?;
                    k
                }
            },
        };
        Ok(Vault {
            path,
            current,
            other,
        })
    }

    pub fn key_path(&self) -> &Path {
        &self.path
    }

    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    fn key_for(&self, id: &str) -> Option<&VaultKey> {
        std::iter::once(&self.current)
            .chain(self.other.as_ref())
            .find(|k| k.id == id)
    }

    fn seal_with(key: &VaultKey, integration: &str, secret: &[u8]) -> Result<Sealed, VaultError> {
        let mut nonce = [0u8; 12];
        sonde_protocol::keys::random_bytes(&mut nonce)
            .map_err(|e| VaultError::Random(e.to_string()))?;
        let ciphertext = key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad(integration),
                },
            )
            .map_err(|_| VaultError::Tampered(integration.to_owned()))?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn seal(&self, integration: &str, secret: &[u8]) -> Result<Sealed, VaultError> {
        Self::seal_with(&self.current, integration, secret)
    }

    pub fn open_secret(
        &self,
        integration: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self
            .key_for(&sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(integration.to_owned()))?;
        if sealed.nonce.len() != 12 {
            return Err(VaultError::Tampered(integration.to_owned()));
        }
        key.cipher()
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad(integration),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered(integration.to_owned()))
    }

    /// A fingerprint to recognise a secret by (keyed: useless for
    /// guessing without the key file).
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(b"sonde/integration-credential-fp/v1\0");
        h.update(self.current.bytes.as_ref());
        h.update(secret);
        format!("fp:{}", hex::encode(&h.finalize()[..6]))
    }

    /// Step 1 of a rotation: a new key, written to `integrations.key.new`,
    /// and every secret re-sealed under it (the caller commits them).
    pub fn begin_rotation(
        &mut self,
        rows: &[(String, Sealed)],
    ) -> Result<Vec<(String, Sealed)>, VaultError> {
        let new = VaultKey::random()?;
        let pending = self.path.with_extension("key.new");
        write_key(&pending, &new)?;
        let mut out = Vec::new();
        for (name, sealed) in rows {
            let secret = self.open_secret(name, sealed)?;
            out.push((name.clone(), Self::seal_with(&new, name, &secret)?));
        }
        self.other = Some(new);
        Ok(out)
    }

    /// Step 2, after the database committed: the new key becomes the key.
    pub fn finish_rotation(&mut self) -> Result<(), VaultError> {
        let pending = self.path.with_extension("key.new");
        std::fs::rename(&pending, &self.path).map_err(|e| VaultError::KeyFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(new) = self.other.take() {
            self.other = Some(std::mem::replace(&mut self.current, new));
        }
        Ok(())
    }

    /// A rotation whose database commit failed: the new key is dropped.
    pub fn abort_rotation(&mut self) {
        let _ = std::fs::remove_file(self.path.with_extension("key.new"));
        self.other = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn integration_credentials_are_encrypted_at_rest_with_a_key_outside_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(dir.path()).unwrap();
        let key_file = dir.path().join("integrations.key");
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let secret = b"PVEAPIToken-secret-0123456789";
        let sealed = v.seal("pve", secret).unwrap();
        assert!(
            !sealed.ciphertext.windows(secret.len()).any(|w| w == secret),
            "the ciphertext does not hold the secret"
        );
        assert_eq!(v.open_secret("pve", &sealed).unwrap().as_slice(), secret);
        // Bound to its integration.
        assert!(matches!(
            v.open_secret("other", &sealed),
            Err(VaultError::Tampered(_))
        ));
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(v.open_secret("pve", &flipped).is_err());
        // Same key on reopen; another data dir's key cannot open it.
        let again = Vault::open(dir.path()).unwrap();
        assert_eq!(
            again.open_secret("pve", &sealed).unwrap().as_slice(),
            secret
        );
        let other_dir = tempfile::tempdir().unwrap();
        let stranger = Vault::open(other_dir.path()).unwrap();
        assert!(stranger.open_secret("pve", &sealed).is_err());
        // The fingerprint is keyed: another key gives another one.
        assert_ne!(v.fingerprint(secret), stranger.fingerprint(secret));
        // A key file others can read is refused.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Vault::open(dir.path()).is_err());
    }

    #[test]
    fn rotation_reseals_and_survives_an_interruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Vault::open(dir.path()).unwrap();
        let old_id = v.key_id().to_owned();
        let sealed = v.seal("prom", b"bearer-token-abcdef").unwrap();
        let resealed = v
            .begin_rotation(&[("prom".into(), sealed.clone())])
            .unwrap();
        assert_ne!(resealed[0].1.key_id, old_id);
        // Interrupted here (database committed, key not renamed): a restart
        // still opens both forms.
        let mid = Vault::open(dir.path()).unwrap();
        assert_eq!(
            mid.open_secret("prom", &resealed[0].1).unwrap().as_slice(),
            b"bearer-token-abcdef"
        );
        assert!(mid.open_secret("prom", &sealed).is_ok());
        v.finish_rotation().unwrap();
        let after = Vault::open(dir.path()).unwrap();
        assert_ne!(after.key_id(), old_id);
        assert!(after.open_secret("prom", &resealed[0].1).is_ok());
        assert!(
            matches!(
                after.open_secret("prom", &sealed),
                Err(VaultError::UnknownKey(_))
            ),
            "the old key is gone after the rotation"
        );
    }
}
