//! MCP API keys: stored as a public prefix and a SHA-256 of the whole key.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::time::now_ms;
use sonde_protocol::{Capability, Digest};

use super::{ApiKey, Audited, HubStore, Result, StoreError, from_json, to_json};

const COLUMNS: &str = "id, name, prefix, secret_sha256, agents, probes, tools, max_capability, created_at_ms, expires_at_ms, last_used_at_ms, revoked_at_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<(ApiKey, String, [String; 4])> {
    Ok((
        ApiKey {
            id: r.get(0)?,
            name: r.get(1)?,
            prefix: r.get(2)?,
            agents: Vec::new(),
            probes: Vec::new(),
            tools: Vec::new(),
            max_capability: Capability::Observe,
            created_at_ms: r.get(8)?,
            expires_at_ms: r.get(9)?,
            last_used_at_ms: r.get(10)?,
            revoked_at_ms: r.get(11)?,
        },
        r.get(3)?,
        [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
    ))
}

fn finish(
    (mut k, secret, [agents, probes, tools, cap]): (ApiKey, String, [String; 4]),
) -> Result<(ApiKey, String)> {
    k.agents = from_json("api_keys.agents", &agents)?;
    k.probes = from_json("api_keys.probes", &probes)?;
    k.tools = from_json("api_keys.tools", &tools)?;
    k.max_capability = cap
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("api_keys.max_capability: {e}")))?;
    Ok((k, secret))
}

/// A new key: `sonde_sk_<8 hex prefix>_<40 hex secret>` (192 random bits in all).
pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 24];
    sonde_protocol::keys::random_bytes(&mut bytes).expect("the OS random source failed");
    let hex = hex::encode(bytes);
    let prefix = format!("sk_{}", &hex[..8]);
    (format!("sonde_{prefix}_{}", &hex[8..]), prefix)
}

/// The prefix part of a presented key, if it has the right shape.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("sonde_")?;
    let (prefix, secret) = rest.rsplit_once('_')?;
    (prefix.len() == 11 && prefix.starts_with("sk_") && secret.len() == 40).then_some(prefix)
}

pub fn hash(key: &str) -> String {
    Digest::of(key.as_bytes()).to_hex()
}

/// The key with this id, name or prefix.
fn find(conn: &Connection, id: &str) -> Result<ApiKey> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE id = ?1 OR prefix = ?1 OR name = ?1"
    ))?;
    let mut raw = stmt
        .query_map([id], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    match raw.len() {
        0 => Err(StoreError::NotFound(format!(
            "no API key {id:?}; see `sonde-hub keys list`"
        ))),
        1 => finish(raw.remove(0)).map(|(k, _)| k),
        n => Err(StoreError::Conflict(format!(
            "{n} API keys match {id:?}; use the key id"
        ))),
    }
}

impl HubStore {
    /// Stores a new key (only the hash of `secret`), audited as
    /// `key.created` with its policy.
    pub async fn create_key(&self, key: ApiKey, secret: String, by: &str) -> Result<ApiKey> {
        let by = by.to_owned();
        let (key, _) = self
            .commit(move |c| {
                c.prepare_cached(&format!(
                    "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))?
                .execute(params![
                    key.id,
                    key.name,
                    key.prefix,
                    hash(&secret),
                    to_json(&key.agents)?,
                    to_json(&key.probes)?,
                    to_json(&key.tools)?,
                    key.max_capability.as_str(),
                    key.created_at_ms,
                    key.expires_at_ms,
                    key.last_used_at_ms,
                    key.revoked_at_ms
                ])?;
                let entry = NewEntry::new(by, AuditAction::KeyCreated, "ok")
                    .detail("key_id", key.id.clone())
                    .detail("name", key.name.clone())
                    .detail("prefix", key.prefix.clone())
                    .detail(
                        "policy",
                        serde_json::json!({"agents": key.agents, "probes": key.probes, "tools": key.tools, "max_capability": key.max_capability}),
                    );
                Ok(Audited::new(key, entry))
            })
            .await?;
        Ok(key)
    }

    /// Every key, newest first.
    pub async fn keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys ORDER BY created_at_ms DESC"
            ))?;
            let raw = stmt
                .query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raw.into_iter().map(|r| finish(r).map(|(k, _)| k)).collect()
        })
        .await
    }

    /// The key with this public prefix and the SHA-256 of its secret (the
    /// caller compares in constant time). The hot path of every MCP request:
    /// a pooled reader and a cached statement.
    pub async fn key_by_prefix(&self, prefix: &str) -> Result<Option<(ApiKey, String)>> {
        let prefix = prefix.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE prefix = ?1"))?
                .query_row([prefix], row)
                .optional()?
                .map(finish)
                .transpose()
        })
        .await
    }

    /// Revokes a key (idempotent), audited as `key.revoked`.
    pub async fn revoke_key(&self, id: &str, by: &str) -> Result<ApiKey> {
        let (id, by) = (id.to_owned(), by.to_owned());
        let (key, _) = self
            .commit(move |c| {
                let key = find(c, &id)?;
                c.prepare_cached(
                    "UPDATE api_keys SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                )?
                .execute(params![key.id, now_ms()])?;
                let key = find(c, &key.id)?;
                let entry = NewEntry::new(by, AuditAction::KeyRevoked, "ok")
                    .detail("key_id", key.id.clone())
                    .detail("prefix", key.prefix.clone());
                Ok(Audited::new(key, entry))
            })
            .await?;
        Ok(key)
    }

    /// Records a key's last use (telemetry: not audited; callers rate it
    /// to once a minute per key).
    pub async fn touch_key(&self, id: &str, now_ms: i64) -> Result<()> {
        let id = id.to_owned();
        self.telemetry(move |c| {
            c.prepare_cached("UPDATE api_keys SET last_used_at_ms = ?2 WHERE id = ?1")?
                .execute(params![id, now_ms])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::store;

    #[test]
    fn key_shape() {
        let (key, prefix) = new_key();
        assert_eq!(prefix_of(&key), Some(prefix.as_str()));
        assert_eq!(prefix_of("sonde_sk_1234_short"), None);
        assert_eq!(prefix_of("Bearer x"), None);
    }

    #[tokio::test]
    async fn keys_are_found_by_prefix_with_their_hash_and_revoked_once() {
        let (_dir, store) = store();
        let (secret, prefix) = new_key();
        let key = ApiKey {
            id: "key-1".into(),
            name: "claude".into(),
            prefix: prefix.clone(),
            agents: vec!["nas*".into()],
            probes: vec![],
            tools: vec![],
            max_capability: Capability::Observe,
            created_at_ms: 1,
            expires_at_ms: None,
            last_used_at_ms: None,
            revoked_at_ms: None,
        };
        store
            .create_key(key.clone(), secret.clone(), "op")
            .await
            .unwrap();
        let (found, hashed) = store.key_by_prefix(&prefix).await.unwrap().unwrap();
        assert_eq!(found, key);
        assert_eq!(hashed, hash(&secret));
        assert_ne!(hashed, secret);
        store.touch_key("key-1", 77).await.unwrap();
        let revoked = store.revoke_key("claude", "op").await.unwrap();
        assert!(revoked.revoked_at_ms.is_some());
        assert_eq!(revoked.last_used_at_ms, Some(77));
        assert_eq!(store.keys().await.unwrap().len(), 1);
        assert!(store.revoke_key("nope", "op").await.is_err());
    }
}
