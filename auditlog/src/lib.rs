//! SQLite storage for an audit chain (see `sonde_protocol::audit`), shared
//! by the hub (its chain lives in `hub.db`) and the agent (`audit.db`).
//!
//! Two tables, [`SCHEMA`]: `audit_entries` (one row per entry; rows are never
//! updated or deleted) and `audit_checkpoints` (signed heads). Appends read
//! the head inside the caller's write transaction, so the chain stays linear
//! even if two processes ever wrote to the same file. Verification streams
//! rows, so it runs in constant memory on millions of entries.
//!
//! Writers should go through [`GroupCommit`] ([`writer`]): one thread owns
//! the write connection and commits concurrent appends together, one fsync
//! per batch, answering each caller once its entry is committed.

pub mod writer;

pub use writer::{ChainWriter, GroupCommit, Tx, WriterStats};

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};
use serde_json::{Map, Value};
use sonde_protocol::Digest;
use sonde_protocol::audit::{
    AuditEntry, ChainBreak, ChainHead, ChainReport, Checkpoint, NewEntry, verify_chain,
};

/// The tables and indexes of an audit chain.
pub const SCHEMA: &str = include_str!("schema.sql");

/// Why an audit store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The write was not committed (the whole batch failed).
    #[error("the write was not committed: {0}")]
    Commit(String),
    /// The writer is shut down (the daemon is stopping).
    #[error("{0}")]
    Closed(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Filters for [`page`]: newest first, below `before_seq`. A value ending in
/// `*` matches as a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub before_seq: Option<u64>,
    pub limit: Option<u32>,
    pub agent: Option<String>,
    pub actor: Option<String>,
    pub probe: Option<String>,
    pub outcome: Option<String>,
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

const COLUMNS: &str = "seq, timestamp_ms, actor, agent, action, probe, params_digest, outcome, result_digest, detail, prev_hash, hash";

fn digest(column: &str, text: Option<String>) -> std::result::Result<Option<Digest>, String> {
    text.map(|t| Digest::from_hex(&t).map_err(|e| format!("{column}: {e}")))
        .transpose()
}

/// Decodes one row; a row that cannot be decoded is reported with its seq.
fn decode(r: &Row<'_>) -> rusqlite::Result<std::result::Result<AuditEntry, (u64, String)>> {
    let seq: i64 = r.get(0)?;
    let seq = seq.max(0) as u64;
    let detail: String = r.get(9)?;
    let build = || -> std::result::Result<AuditEntry, String> {
        let detail: Map<String, Value> =
            serde_json::from_str(&detail).map_err(|e| format!("detail: {e}"))?;
        Ok(AuditEntry {
            seq,
            timestamp_ms: r.get(1).map_err(|e| e.to_string())?,
            actor: r.get(2).map_err(|e| e.to_string())?,
            agent: r.get(3).map_err(|e| e.to_string())?,
            action: r.get(4).map_err(|e| e.to_string())?,
            probe: r.get(5).map_err(|e| e.to_string())?,
            params_digest: digest("params_digest", r.get(6).map_err(|e| e.to_string())?)?,
            outcome: r.get(7).map_err(|e| e.to_string())?,
            result_digest: digest("result_digest", r.get(8).map_err(|e| e.to_string())?)?,
            detail,
            prev_hash: digest("prev_hash", r.get(10).map_err(|e| e.to_string())?)?
                .unwrap_or(Digest([0; 32])),
            hash: digest("hash", r.get(11).map_err(|e| e.to_string())?)?.unwrap_or(Digest([0; 32])),
        })
    };
    Ok(build().map_err(|m| (seq, m)))
}

fn strict(r: &Row<'_>) -> rusqlite::Result<std::result::Result<AuditEntry, StoreError>> {
    Ok(decode(r)?.map_err(|(seq, m)| StoreError::Corrupt(format!("audit entry {seq}: {m}"))))
}

/// The current head (genesis for an empty chain).
pub fn head(conn: &Connection) -> Result<ChainHead> {
    let row: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Ok(ChainHead::genesis()),
        Some((seq, hash)) => Ok(ChainHead {
            seq: seq.max(0) as u64,
            hash: Digest::from_hex(&hash)
                .map_err(|e| StoreError::Corrupt(format!("audit head hash: {e}")))?,
        }),
    }
}

/// Appends an entry after the stored head. Call inside a write transaction.
/// (One-off writes; daemons use [`GroupCommit`].)
pub fn append(conn: &Connection, entry: NewEntry, now_ms: i64) -> Result<AuditEntry> {
    let mut head = head(conn)?;
    let e = head.append(entry, now_ms);
    insert_entry(conn, &e)?;
    Ok(e)
}

const INSERT_ENTRY: &str = "INSERT INTO audit_entries (seq, timestamp_ms, actor, agent, action, probe, params_digest, outcome, result_digest, detail, prev_hash, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Stores an entry already linked to the head (cached statement).
pub(crate) fn insert_entry(conn: &Connection, e: &AuditEntry) -> Result<()> {
    conn.prepare_cached(INSERT_ENTRY)?.execute(params![
        e.seq as i64,
        e.timestamp_ms,
        e.actor,
        e.agent,
        e.action,
        e.probe,
        e.params_digest.map(|d| d.to_hex()),
        e.outcome,
        e.result_digest.map(|d| d.to_hex()),
        String::from_utf8(sonde_protocol::canonical::to_vec(&Value::Object(
            e.detail.clone()
        )))
        .map_err(|_| StoreError::Corrupt("detail is not UTF-8".into()))?,
        e.prev_hash.to_hex(),
        e.hash.to_hex(),
    ])?;
    Ok(())
}

pub fn insert_checkpoint(conn: &Connection, cp: &Checkpoint) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, timestamp_ms, signature) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![cp.seq as i64, cp.hash.to_hex(), cp.timestamp_ms, cp.signature])?;
    Ok(())
}

fn checkpoint_row(r: &Row<'_>) -> rusqlite::Result<(i64, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_checkpoint((seq, hash, ts, sig): (i64, String, i64, String)) -> Result<Checkpoint> {
    Ok(Checkpoint {
        seq: seq.max(0) as u64,
        hash: Digest::from_hex(&hash)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint {seq}: {e}")))?,
        timestamp_ms: ts,
        signature: sig,
    })
}

pub fn checkpoints(conn: &Connection) -> Result<Vec<Checkpoint>> {
    let mut stmt = conn
        .prepare("SELECT seq, hash, timestamp_ms, signature FROM audit_checkpoints ORDER BY seq")?;
    let raw = stmt
        .query_map([], checkpoint_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(to_checkpoint).collect()
}

pub fn last_checkpoint(conn: &Connection) -> Result<Option<Checkpoint>> {
    conn.prepare_cached("SELECT seq, hash, timestamp_ms, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")?
        .query_row([], checkpoint_row)
        .optional()?
        .map(to_checkpoint)
        .transpose()
}

/// The first checkpoint at or after `seq`.
pub fn checkpoint_covering(conn: &Connection, seq: u64) -> Result<Option<Checkpoint>> {
    conn.prepare_cached(
        "SELECT seq, hash, timestamp_ms, signature FROM audit_checkpoints WHERE seq >= ?1 ORDER BY seq LIMIT 1",
    )?
    .query_row([seq as i64], checkpoint_row)
    .optional()?
    .map(to_checkpoint)
    .transpose()
}

pub fn get(conn: &Connection, seq: u64) -> Result<Option<AuditEntry>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_entries WHERE seq = ?1"
    ))?
    .query_row([seq as i64], strict)
    .optional()?
    .transpose()
}

/// One page, newest first, filtered.
pub fn page(conn: &Connection, q: &PageQuery) -> Result<Vec<AuditEntry>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    let mut add = |clause: &str, value: Box<dyn ToSql>| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(before) = q.before_seq {
        add("seq < ?", Box::new(before.min(i64::MAX as u64) as i64));
    }
    for (column, value) in [
        ("agent", &q.agent),
        ("actor", &q.actor),
        ("probe", &q.probe),
        ("outcome", &q.outcome),
        ("action", &q.action),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            match v.strip_suffix('*') {
                Some(prefix) => add(
                    &format!("{column} LIKE ? ESCAPE '\\'"),
                    Box::new(format!("{}%", escape_like(prefix))),
                ),
                None => add(&format!("{column} = ?"), Box::new(v.to_owned())),
            }
        }
    }
    if let Some(since) = q.since_ms {
        add("timestamp_ms >= ?", Box::new(since));
    }
    if let Some(until) = q.until_ms {
        add("timestamp_ms < ?", Box::new(until));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let sql =
        format!("SELECT {COLUMNS} FROM audit_entries {filter} ORDER BY seq DESC LIMIT {limit}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let params: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
    let rows = stmt
        .query_map(params.as_slice(), strict)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().collect()
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Entries with seq in `(after, ..]`, oldest first (for exports and tests).
pub fn range(conn: &Connection, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_entries WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![after as i64, limit], strict)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().collect()
}

/// Verifies the whole chain and its checkpoints, streaming (constant memory).
/// A row that cannot even be decoded is reported as modified.
pub fn verify(
    conn: &Connection,
    writer: &VerifyingKey,
) -> Result<std::result::Result<ChainReport, ChainBreak>> {
    let checkpoints = checkpoints(conn)?;
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_entries ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut unreadable: Option<u64> = None;
    let mut db_error: Option<rusqlite::Error> = None;
    let entries = std::iter::from_fn(|| match rows.next() {
        Ok(Some(row)) => match decode(row) {
            Ok(Ok(entry)) => Some(entry),
            Ok(Err((seq, message))) => {
                tracing::warn!(seq, %message, "audit entry cannot be decoded");
                unreadable = Some(seq);
                None
            }
            Err(e) => {
                db_error = Some(e);
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            db_error = Some(e);
            None
        }
    });
    let result = verify_chain(entries, &checkpoints, writer);
    if let Some(e) = db_error {
        return Err(e.into());
    }
    Ok(match (result, unreadable) {
        (Err(b), Some(seq)) if b.seq() < seq => Err(b),
        (_, Some(seq)) => Err(ChainBreak::Modified { seq }),
        (r, None) => r,
    })
}

pub fn count(conn: &Connection) -> Result<u64> {
    Ok(conn
        .query_row("SELECT COUNT(*) FROM audit_entries", [], |r| {
            r.get::<_, i64>(0)
        })?
        .max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    struct TestStore(
        #[allow(dead_code)] tempfile::TempDir,
        std::sync::Mutex<Connection>,
    );

    impl TestStore {
        fn write_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
            f(&mut self.1.lock().unwrap())
        }
    }

    fn store() -> ((), TestStore) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("a.db")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        ((), TestStore(dir, std::sync::Mutex::new(conn)))
    }

    fn fill(conn: &mut Connection, n: u64) {
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            append(
                &tx,
                NewEntry::new("hub", sonde_protocol::audit::AuditAction::HubStarted, "ok")
                    .agent(format!("a{}", i % 3))
                    .detail("i", i),
                i as i64,
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn append_page_and_verify() {
        let (_d, store) = store();
        let key = SigningKey::from_bytes(&[1; 32]);
        store
            .write_blocking(|c| {
                fill(c, 25);
                insert_checkpoint(c, &Checkpoint::sign(head(c)?, 1, &key))?;
                let report = verify(c, &key.verifying_key())?.unwrap();
                assert_eq!(report.entries, 25);
                assert_eq!(report.checkpoints_verified, 1);
                let p = page(
                    c,
                    &PageQuery {
                        limit: Some(10),
                        agent: Some("a1".into()),
                        ..Default::default()
                    },
                )?;
                assert_eq!(p.len(), 8);
                assert!(p.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
                let next = page(
                    c,
                    &PageQuery {
                        before_seq: Some(p[7].seq),
                        agent: Some("a1".into()),
                        ..Default::default()
                    },
                )?;
                assert!(next.is_empty());
                let like = page(
                    c,
                    &PageQuery {
                        agent: Some("a*".into()),
                        ..Default::default()
                    },
                )?;
                assert_eq!(like.len(), 25);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn edited_rows_are_located() {
        let (_d, store) = store();
        let key = SigningKey::from_bytes(&[1; 32]);
        store
            .write_blocking(|c| {
                fill(c, 10);
                c.execute(
                    "UPDATE audit_entries SET outcome = 'denied' WHERE seq = 4",
                    [],
                )?;
                assert_eq!(
                    verify(c, &key.verifying_key())?,
                    Err(ChainBreak::Modified { seq: 4 })
                );
                c.execute(
                    "UPDATE audit_entries SET detail = 'not json' WHERE seq = 2",
                    [],
                )?;
                assert_eq!(
                    verify(c, &key.verifying_key())?,
                    Err(ChainBreak::Modified { seq: 2 })
                );
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn deleted_tail_is_caught_by_checkpoint() {
        let (_d, store) = store();
        let key = SigningKey::from_bytes(&[1; 32]);
        store
            .write_blocking(|c| {
                fill(c, 10);
                insert_checkpoint(c, &Checkpoint::sign(head(c)?, 1, &key))?;
                c.execute("DELETE FROM audit_entries WHERE seq > 7", [])?;
                assert_eq!(
                    verify(c, &key.verifying_key())?,
                    Err(ChainBreak::Truncated {
                        last_seq: 7,
                        checkpoint_seq: 10
                    })
                );
                Ok(())
            })
            .unwrap();
    }
}
