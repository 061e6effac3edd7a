//! MCP API keys: stored as a public prefix and a SHA-256 of the whole key.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_admin::api::KeyInfo;
use sonde_protocol::{Capability, Digest};

use super::{Result, StoreError, from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub info: KeyInfo,
    pub secret_sha256: String,
}

const COLUMNS: &str = "id, name, prefix, secret_sha256, agents, probes, tools, max_capability, created_at_ms, expires_at_ms, last_used_at_ms, revoked_at_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<(KeyRow, [String; 4])> {
    Ok((
        KeyRow {
            info: KeyInfo {
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
            secret_sha256: r.get(3)?,
        },
        [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
    ))
}

fn finish((mut k, [agents, probes, tools, cap]): (KeyRow, [String; 4])) -> Result<KeyRow> {
    k.info.agents = from_json("api_keys.agents", &agents)?;
    k.info.probes = from_json("api_keys.probes", &probes)?;
    k.info.tools = from_json("api_keys.tools", &tools)?;
    k.info.max_capability = cap
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("api_keys.max_capability: {e}")))?;
    Ok(k)
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

pub fn insert(conn: &Connection, info: &KeyInfo, key: &str) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            info.id,
            info.name,
            info.prefix,
            hash(key),
            to_json(&info.agents)?,
            to_json(&info.probes)?,
            to_json(&info.tools)?,
            info.max_capability.as_str(),
            info.created_at_ms,
            info.expires_at_ms,
            info.last_used_at_ms,
            info.revoked_at_ms
        ],
    )?;
    Ok(())
}

pub fn list(conn: &Connection) -> Result<Vec<KeyInfo>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at_ms DESC"
    ))?;
    let raw = stmt
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(|r| finish(r).map(|k| k.info)).collect()
}

pub fn by_prefix(conn: &Connection, prefix: &str) -> Result<Option<KeyRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE prefix = ?1"),
        [prefix],
        row,
    )
    .optional()?
    .map(finish)
    .transpose()
}

/// The key with this id, name or prefix.
pub fn find(conn: &Connection, id: &str) -> Result<KeyInfo> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE id = ?1 OR prefix = ?1 OR name = ?1"
    ))?;
    let mut raw = stmt
        .query_map([id], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    match raw.len() {
        0 => Err(StoreError::NotFound(format!(
            "no API key {id:?}; see `sonde-hub keys list`"
        ))),
        1 => finish(raw.remove(0)).map(|k| k.info),
        n => Err(StoreError::Conflict(format!(
            "{n} API keys match {id:?}; use the key id"
        ))),
    }
}

pub fn revoke(conn: &Connection, id: &str, now_ms: i64) -> Result<KeyInfo> {
    let info = find(conn, id)?;
    conn.execute(
        "UPDATE api_keys SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
        params![info.id, now_ms],
    )?;
    find(conn, &info.id)
}

pub fn touch(conn: &Connection, id: &str, now_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE api_keys SET last_used_at_ms = ?2 WHERE id = ?1",
        params![id, now_ms],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        let (key, prefix) = new_key();
        assert_eq!(prefix_of(&key), Some(prefix.as_str()));
        assert_eq!(prefix_of("sonde_sk_1234_short"), None);
        assert_eq!(prefix_of("Bearer x"), None);
    }
}
