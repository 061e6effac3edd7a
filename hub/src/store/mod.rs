//! The hub's state in one SQLite file (WAL), and every SQL statement the hub
//! runs. Nothing outside this module writes SQL, so another backend stays
//! possible.
//!
//! Migrations are the numbered files in `hub/migrations/`, applied in order
//! inside one transaction at start-up; `PRAGMA user_version` records the last
//! one applied. A database newer than this binary is refused.

pub mod agents;
pub mod console;
pub mod drift;
pub mod enrollments;
pub mod grants;
pub mod keys;
pub mod tokens;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Numbered migrations, in order.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../../migrations/0001_init.sql")),
    (
        "0002_drift_kept",
        include_str!("../../migrations/0002_drift_kept.sql"),
    ),
    (
        "0003_audit_indexes",
        include_str!("../../migrations/0003_audit_indexes.sql"),
    ),
];

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the database at {path} has schema version {found}, newer than this sonde-hub understands ({known}); upgrade sonde-hub"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the database task failed: {0}")]
    Task(String),
}

/// The audit chain tables (shared with the agent's local chain).
pub mod audit {
    pub use sonde_auditlog::*;
}

impl From<sonde_auditlog::StoreError> for StoreError {
    fn from(e: sonde_auditlog::StoreError) -> Self {
        match e {
            sonde_auditlog::StoreError::Sqlite(e) => StoreError::Sqlite(e),
            sonde_auditlog::StoreError::Corrupt(m) => StoreError::Corrupt(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A handle to the hub database: one writer connection and one reader, both
/// used from blocking threads.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    read_only: bool,
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database and applies migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let writer = Connection::open(path)?;
        configure(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit reaches the disk before it is acknowledged: the audit
        // chain must survive a power cut.
        writer.pragma_update(None, "synchronous", "FULL")?;
        migrate(&writer, path)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&reader)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                read_only: false,
            }),
        })
    }

    /// Opens an existing database read-only (for `list`/`verify` while the
    /// hub is down). Writes fail.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "no hub database at {}; create one with `sonde-hub init`",
                path.display()
            )));
        }
        let open = || -> Result<Connection> {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&c)?;
            Ok(c)
        };
        let reader = open()?;
        let version: i64 = reader.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(open()?),
                reader: Mutex::new(reader),
                read_only: true,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Runs `f` with the writer connection on a blocking thread.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Task("writer lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` with the reader connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .reader
                .lock()
                .map_err(|_| StoreError::Task("reader lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Synchronous access to the writer, for start-up and shutdown paths.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self
            .inner
            .writer
            .lock()
            .map_err(|_| StoreError::Task("writer lock poisoned".into()))?;
        f(&mut conn)
    }

    /// Synchronous access to the reader.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self
            .inner
            .reader
            .lock()
            .map_err(|_| StoreError::Task("reader lock poisoned".into()))?;
        f(&conn)
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            known,
        });
    }
    if version == known {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let apply = || -> Result<()> {
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tracing::info!(migration = name, "applying database migration");
            conn.execute_batch(sql)?;
            if i == 0 {
                conn.execute_batch(sonde_auditlog::SCHEMA)?;
            }
            conn.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        Ok(())
    };
    match apply() {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Into::into),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

pub(crate) use enrollments::placeholder_attestation as enrollments_placeholder;

/// The admin API's audit query as a store query.
pub fn page_query(q: &sonde_admin::api::AuditQuery) -> audit::PageQuery {
    audit::PageQuery {
        before_seq: q.before_seq,
        limit: q.limit,
        agent: q.agent.clone(),
        actor: q.actor.clone(),
        probe: q.probe.clone(),
        outcome: q.outcome.clone(),
        action: q.action.clone(),
        since_ms: q.since_ms,
        until_ms: q.until_ms,
    }
}

/// Reads a `meta` value.
pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Writes a `meta` value.
pub fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Decodes a JSON column, naming the column on failure.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// Encodes a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("encoding JSON: {e}")))
}

/// A random lowercase-hex id with a prefix, e.g. `agt-3f9a1c2e4b5d`.
pub fn new_id(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    sonde_protocol::keys::random_bytes(&mut buf).expect("the OS random source failed");
    format!("{prefix}{}", hex::encode(buf))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A fresh store in a temp dir (kept alive by the returned guard).
    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hub.db")).unwrap();
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_newer_databases_are_refused() {
        let (dir, store) = test_support::store();
        drop(store);
        let path = dir.path().join("hub.db");
        Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).unwrap_err();
        assert!(err.to_string().contains("upgrade sonde-hub"), "{err}");
        assert!(Store::open_read_only(&path).is_err());
    }

    #[test]
    fn an_old_database_is_upgraded_without_losing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            // A version-1 database, as the first release left it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0].1).unwrap();
            conn.execute_batch(sonde_auditlog::SCHEMA).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            // Only the rows this migration touches (and the agent its
            // drift row points at); the rest of the graph is not needed.
            conn.pragma_update(None, "foreign_keys", false).unwrap();
            conn.execute(
                "INSERT INTO agents (id, name, hostname, signing_key, cert_pem, cert_sha256, cert_expires_ms, enrolled_at_ms, enrollment_id, baseline, baseline_sha256) VALUES ('a1', 'nas', 'nas', 'k', 'c', 's', 1, 1, 'e1', '{}', 'b')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO drift_events (agent_id, detected_at_ms, baseline, current, baseline_sha256, current_sha256, status) VALUES ('a1', 5, '{}', '{}', 'b', 'c', 'open')",
                [],
            )
            .unwrap();
            let err = conn.execute("UPDATE drift_events SET status = 'kept'", []);
            assert!(err.is_err(), "version 1 does not know 'kept'");
        }
        let store = Store::open(&path).unwrap();
        store
            .write_blocking(|c| {
                let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                assert_eq!(v, MIGRATIONS.len() as i64);
                let (id, agent, status): (i64, String, String) =
                    c.query_row("SELECT id, agent_id, status FROM drift_events", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?;
                assert_eq!((id, agent.as_str(), status.as_str()), (1, "a1", "open"));
                c.execute("UPDATE drift_events SET status = 'kept'", [])?;
                assert!(
                    c.execute("UPDATE drift_events SET status = 'maybe'", [])
                        .is_err()
                );
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn meta_round_trip() {
        let (_dir, store) = test_support::store();
        store
            .write_blocking(|c| {
                meta_set(c, "hub_id", "hub-1")?;
                meta_set(c, "hub_id", "hub-2")?;
                assert_eq!(meta_get(c, "hub_id")?, Some("hub-2".into()));
                assert_eq!(meta_get(c, "missing")?, None);
                Ok(())
            })
            .unwrap();
    }
}
