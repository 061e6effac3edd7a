//! Integrations (hub-side remote APIs) and their sealed credentials.
//! The store never sees a plaintext secret: the vault
//! (`integrations::vault`) seals before and opens after.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::time::now_ms;

use super::{Audited, HubStore, Result, StoreError};

/// One configured integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRecord {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// JSON of `integrations::http::Trust`.
    pub trust: String,
    /// JSON object.
    pub settings: String,
    pub manifest: String,
    pub manifest_sha256: String,
    pub signature: Option<String>,
    pub approved: bool,
    pub created_at_ms: i64,
    pub created_by: String,
    pub approved_at_ms: Option<i64>,
    pub approved_by: Option<String>,
}

/// A sealed credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub integration: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub fingerprint: String,
    pub set_at_ms: i64,
    pub set_by: String,
}

const COLUMNS: &str = "name, kind, base_url, trust, settings, manifest, manifest_sha256, signature, state, created_at_ms, created_by, approved_at_ms, approved_by";
const CRED_COLUMNS: &str = "integration, key_id, nonce, ciphertext, fingerprint, set_at_ms, set_by";

fn row(r: &Row<'_>) -> rusqlite::Result<IntegrationRecord> {
    let state: String = r.get(8)?;
    Ok(IntegrationRecord {
        name: r.get(0)?,
        kind: r.get(1)?,
        base_url: r.get(2)?,
        trust: r.get(3)?,
        settings: r.get(4)?,
        manifest: r.get(5)?,
        manifest_sha256: r.get(6)?,
        signature: r.get(7)?,
        approved: state == "approved",
        created_at_ms: r.get(9)?,
        created_by: r.get(10)?,
        approved_at_ms: r.get(11)?,
        approved_by: r.get(12)?,
    })
}

fn cred_row(r: &Row<'_>) -> rusqlite::Result<CredentialRecord> {
    Ok(CredentialRecord {
        integration: r.get(0)?,
        key_id: r.get(1)?,
        nonce: r.get(2)?,
        ciphertext: r.get(3)?,
        fingerprint: r.get(4)?,
        set_at_ms: r.get(5)?,
        set_by: r.get(6)?,
    })
}

fn find(c: &Connection, name: &str) -> Result<IntegrationRecord> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM integrations WHERE name = ?1"
    ))?
    .query_row([name], row)
    .optional()?
    .ok_or_else(|| {
        StoreError::NotFound(format!(
            "no integration {name:?}; see `sonde-hub integrations list`"
        ))
    })
}

impl HubStore {
    /// Adds an integration, pending the operator's approval
    /// (`integration.added`).
    pub async fn add_integration(
        &self,
        rec: IntegrationRecord,
        by: &str,
    ) -> Result<IntegrationRecord> {
        let by = by.to_owned();
        let (rec, _) = self
            .commit(move |c| {
                if find(c, &rec.name).is_ok() {
                    return Err(StoreError::Conflict(format!(
                        "integration {:?} exists; remove it first or pick another name",
                        rec.name
                    )));
                }
                c.prepare_cached(&format!(
                    "INSERT INTO integrations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, NULL, NULL)"
                ))?
                .execute(params![
                    rec.name,
                    rec.kind,
                    rec.base_url,
                    rec.trust,
                    rec.settings,
                    rec.manifest,
                    rec.manifest_sha256,
                    rec.signature,
                    rec.created_at_ms,
                    by
                ])?;
                let rec = find(c, &rec.name)?;
                let entry = NewEntry::new(by, AuditAction::IntegrationAdded, "ok")
                    .detail("integration", rec.name.clone())
                    .detail("kind", rec.kind.clone())
                    .detail("base_url", rec.base_url.clone())
                    .detail("manifest_sha256", rec.manifest_sha256.clone())
                    .detail("signed", rec.signature.is_some());
                Ok(Audited::new(rec, entry))
            })
            .await?;
        Ok(rec)
    }

    /// Approves an integration exactly as it was added
    /// (`integration.approved`): `sha256` must match its manifest.
    pub async fn approve_integration(&self, name: &str, by: &str) -> Result<IntegrationRecord> {
        let (name, by) = (name.to_owned(), by.to_owned());
        let (rec, _) = self
            .commit(move |c| {
                let rec = find(c, &name)?;
                c.prepare_cached(
                    "UPDATE integrations SET state = 'approved', approved_at_ms = ?2, approved_by = ?3 WHERE name = ?1",
                )?
                .execute(params![name, now_ms(), by])?;
                let entry = NewEntry::new(by, AuditAction::IntegrationApproved, "ok")
                    .detail("integration", rec.name.clone())
                    .detail("kind", rec.kind.clone())
                    .detail("base_url", rec.base_url.clone())
                    .detail("manifest_sha256", rec.manifest_sha256.clone());
                Ok(Audited::new(find(c, &name)?, entry))
            })
            .await?;
        Ok(rec)
    }

    /// Removes an integration and its credential (`integration.removed`).
    pub async fn remove_integration(&self, name: &str, by: &str) -> Result<IntegrationRecord> {
        let (name, by) = (name.to_owned(), by.to_owned());
        let (rec, _) = self
            .commit(move |c| {
                let rec = find(c, &name)?;
                c.prepare_cached("DELETE FROM integrations WHERE name = ?1")?
                    .execute([&name])?;
                let entry = NewEntry::new(by, AuditAction::IntegrationRemoved, "ok")
                    .detail("integration", rec.name.clone())
                    .detail("kind", rec.kind.clone());
                Ok(Audited::new(rec, entry))
            })
            .await?;
        Ok(rec)
    }

    pub async fn integrations(&self) -> Result<Vec<IntegrationRecord>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM integrations ORDER BY name"))?;
            let v = stmt
                .query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
        .await
    }

    /// Sets or replaces a credential (`integration.credential_set`, with
    /// its keyed fingerprint only).
    pub async fn set_integration_credential(&self, cred: CredentialRecord) -> Result<()> {
        self.commit(move |c| {
            find(c, &cred.integration)?;
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO integration_credentials ({CRED_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                cred.integration,
                cred.key_id,
                cred.nonce,
                cred.ciphertext,
                cred.fingerprint,
                cred.set_at_ms,
                cred.set_by
            ])?;
            let entry = NewEntry::new(cred.set_by.clone(), AuditAction::IntegrationCredentialSet, "ok")
                .detail("integration", cred.integration.clone())
                .detail("fingerprint", cred.fingerprint.clone());
            Ok(Audited::new((), entry))
        })
        .await?;
        Ok(())
    }

    /// Clears an integration's credential (`integration.credential_cleared`,
    /// with the fingerprint of what was removed). Refused when none is set,
    /// so the audit never records a clear that removed nothing.
    pub async fn clear_integration_credential(&self, name: &str, by: &str) -> Result<String> {
        let (name, by) = (name.to_owned(), by.to_owned());
        let (fingerprint, _) = self
            .commit(move |c| {
                find(c, &name)?;
                let fingerprint: Option<String> = c
                    .prepare_cached(
                        "SELECT fingerprint FROM integration_credentials WHERE integration = ?1",
                    )?
                    .query_row([&name], |r| r.get(0))
                    .optional()?;
                let Some(fingerprint) = fingerprint else {
                    return Err(StoreError::NotFound(format!(
                        "integration {name:?} has no credential to clear"
                    )));
                };
                c.prepare_cached("DELETE FROM integration_credentials WHERE integration = ?1")?
                    .execute([&name])?;
                let entry = NewEntry::new(by, AuditAction::IntegrationCredentialCleared, "ok")
                    .detail("integration", name.clone())
                    .detail("fingerprint", fingerprint.clone());
                Ok(Audited::new(fingerprint, entry))
            })
            .await?;
        Ok(fingerprint)
    }

    pub async fn integration_credentials(&self) -> Result<Vec<CredentialRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CRED_COLUMNS} FROM integration_credentials ORDER BY integration"
            ))?;
            let v = stmt
                .query_map([], cred_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
        .await
    }

    /// Replaces every sealed credential after a key rotation, in one
    /// transaction (`integration.key_rotated`).
    pub async fn reseal_integration_credentials(
        &self,
        rows: Vec<(String, String, Vec<u8>, Vec<u8>)>,
        new_key_id: String,
        by: &str,
    ) -> Result<()> {
        let by = by.to_owned();
        self.commit(move |c| {
            let n = rows.len();
            for (name, key_id, nonce, ciphertext) in rows {
                c.prepare_cached(
                    "UPDATE integration_credentials SET key_id = ?2, nonce = ?3, ciphertext = ?4 WHERE integration = ?1",
                )?
                .execute(params![name, key_id, nonce, ciphertext])?;
            }
            let entry = NewEntry::new(by, AuditAction::IntegrationKeyRotated, "ok")
                .detail("credentials", n as u64)
                .detail("key_id", new_key_id);
            Ok(Audited::new((), entry))
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::test_support::store;

    #[tokio::test]
    async fn integrations_are_added_pending_approved_and_removed_with_their_credential() {
        let (_dir, store) = store();
        let rec = IntegrationRecord {
            name: "prom".into(),
            kind: "prometheus".into(),
            base_url: "http://127.0.0.1:9090/".into(),
            trust: "{\"kind\":\"system\"}".into(),
            settings: "{}".into(),
            manifest: "m".into(),
            manifest_sha256: "00".into(),
            signature: None,
            approved: false,
            created_at_ms: 1,
            created_by: String::new(),
            approved_at_ms: None,
            approved_by: None,
        };
        let added = store
            .add_integration(rec.clone(), "operator:a")
            .await
            .unwrap();
        assert!(!added.approved);
        assert!(store.add_integration(rec, "operator:a").await.is_err());
        let ok = store
            .approve_integration("prom", "operator:a")
            .await
            .unwrap();
        assert!(ok.approved && ok.approved_by.as_deref() == Some("operator:a"));
        store
            .set_integration_credential(CredentialRecord {
                integration: "prom".into(),
                key_id: "k".into(),
                nonce: vec![0; 12],
                ciphertext: vec![1, 2, 3],
                fingerprint: "fp:1".into(),
                set_at_ms: 2,
                set_by: "operator:a".into(),
            })
            .await
            .unwrap();
        assert_eq!(store.integration_credentials().await.unwrap().len(), 1);
        assert_eq!(
            store
                .clear_integration_credential("prom", "operator:a")
                .await
                .unwrap(),
            "fp:1"
        );
        assert!(store.integration_credentials().await.unwrap().is_empty());
        let again = store
            .clear_integration_credential("prom", "operator:a")
            .await
            .unwrap_err();
        assert!(again.to_string().contains("no credential"), "{again}");
        store
            .remove_integration("prom", "operator:a")
            .await
            .unwrap();
        assert!(store.integrations().await.unwrap().is_empty());
        assert!(store.integration_credentials().await.unwrap().is_empty());
    }
}
