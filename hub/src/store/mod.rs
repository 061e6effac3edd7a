//! The hub's state in one SQLite file (WAL), behind one interface:
//! [`HubStore`]. Every operation is one method, which owns its transaction
//! and its audit entry and returns domain types ([`model`]); nothing outside
//! this module writes SQL or sees a rusqlite type, so another backend
//! (PostgreSQL) is a new implementation of these methods, not a rewrite of
//! their callers (ARCHITECTURE.md says what it would take).
//!
//! - **One writer.** A thread owns the write connection
//!   ([`sonde_auditlog::GroupCommit`], `synchronous=FULL`). Every change goes
//!   through [`HubStore::commit`]: the change and the audit entries that
//!   record it run in one transaction, concurrent changes share one commit
//!   (one fsync), and each caller is answered once its change is on disk.
//!   The only writes without an audit entry are telemetry: liveness (last
//!   seen, agent chain head) and API-key last use ([`HubStore::persist_liveness`],
//!   [`HubStore::touch_key`]).
//! - **A pool of readers** ([`pool`]): reads never wait for the writer (WAL)
//!   nor for each other; a long read (`audit verify`) holds one connection
//!   and at most one runs at a time, so an API-key check always finds one.
//! - **Cached statements** everywhere (`prepare_cached`).
//!
//! Migrations are the numbered files in `hub/migrations/`, applied in order
//! inside one transaction at start-up; `PRAGMA user_version` records the last
//! one applied. A database newer than this binary is refused.

pub mod agents;
mod audit;
pub mod console;
pub mod drift;
pub mod enrollments;
pub mod grants;
pub mod integrations;
pub mod keys;
mod meta;
pub mod model;
pub mod oauth;
pub mod paths;
mod pool;
pub mod tokens;
pub mod trending;

pub use model::*;
pub use sonde_auditlog::PageQuery;

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OpenFlags};
use sonde_auditlog::GroupCommit;
use sonde_protocol::audit::{AuditEntry, NewEntry};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pool::ReadPool;

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
    (
        "0004_pack_catalogs",
        include_str!("../../migrations/0004_pack_catalogs.sql"),
    ),
    (
        "0005_oauth",
        include_str!("../../migrations/0005_oauth.sql"),
    ),
    (
        "0006_integrations",
        include_str!("../../migrations/0006_integrations.sql"),
    ),
    (
        "0007_critical_paths",
        include_str!("../../migrations/0007_critical_paths.sql"),
    ),
    (
        "0008_trending_hourly",
        include_str!("../../migrations/0008_trending_hourly.sql"),
    ),
];

/// Read connections in the pool.
const READERS: usize = 4;

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
    /// The database cannot take the operation now (writer stopped, batch
    /// not committed, read-only).
    #[error("{0}")]
    Unavailable(String),
    #[error("the database task failed: {0}")]
    Task(String),
}

impl From<sonde_auditlog::StoreError> for StoreError {
    fn from(e: sonde_auditlog::StoreError) -> Self {
        match e {
            sonde_auditlog::StoreError::Sqlite(e) => StoreError::Sqlite(e),
            sonde_auditlog::StoreError::Corrupt(m) => StoreError::Corrupt(m),
            e @ (sonde_auditlog::StoreError::Commit(_) | sonde_auditlog::StoreError::Closed(_)) => {
                StoreError::Unavailable(e.to_string())
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A change and the audit entries that record it. A change cannot be
/// committed without one: [`HubStore::commit`] takes only this.
#[must_use]
pub(crate) struct Audited<T> {
    value: T,
    entries: Vec<NewEntry>,
}

impl<T> Audited<T> {
    pub(crate) fn new(value: T, entry: NewEntry) -> Self {
        Audited {
            value,
            entries: vec![entry],
        }
    }

    /// One more entry for the same change.
    pub(crate) fn and(mut self, entry: NewEntry) -> Self {
        self.entries.push(entry);
        self
    }
}

/// The hub database.
#[derive(Clone, Debug)]
pub struct HubStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Option<GroupCommit>,
    readers: ReadPool,
    catalogs: Arc<CatalogCache>,
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&c)?;
    // Bounded page cache per reader (KiB): memory stays flat with the pool.
    c.pragma_update(None, "cache_size", -1024)?;
    Ok(c)
}

impl HubStore {
    /// Opens (creating if needed) the database, applies migrations and
    /// starts the writer. `key` signs the audit checkpoints, written at
    /// every multiple of `checkpoint_every`.
    pub fn open(path: &Path, key: SigningKey, checkpoint_every: u64) -> Result<HubStore> {
        let writer = Connection::open(path)?;
        configure(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit reaches the disk before it is acknowledged: the audit
        // chain must survive a power cut.
        writer.pragma_update(None, "synchronous", "FULL")?;
        migrate(&writer, path)?;
        let writer = GroupCommit::start(writer, key, checkpoint_every, "hub-db-writer")?;
        Ok(HubStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Some(writer),
                readers: ReadPool::new(path, READERS, open_reader)?,
                catalogs: Arc::default(),
            }),
        })
    }

    /// Opens an existing database read-only (for `list`/`verify` while the
    /// hub is down). Writes fail.
    pub fn open_read_only(path: &Path) -> Result<HubStore> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "no hub database at {}; create one with `sonde-hub init`",
                path.display()
            )));
        }
        let probe = open_reader(path)?;
        let version: i64 = probe.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        drop(probe);
        Ok(HubStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: None,
                readers: ReadPool::new(path, 1, open_reader)?,
                catalogs: Arc::default(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.writer.is_none()
    }

    fn writer(&self) -> Result<&GroupCommit> {
        self.inner.writer.as_ref().ok_or_else(|| {
            StoreError::Unavailable(
                "the database is open read-only (the hub is not running)".into(),
            )
        })
    }

    /// The one way a change reaches the database: `op` runs inside the
    /// writer's transaction and returns its value with the audit entries
    /// that record it; the entries are appended to the chain in the same
    /// transaction; the call returns once that transaction is committed
    /// (shared with concurrent changes). If `op` fails, nothing of it is
    /// kept.
    pub(crate) async fn commit<T, F>(&self, op: F) -> Result<(T, Vec<AuditEntry>)>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Audited<T>> + Send + 'static,
    {
        self.writer()?
            .run(move |tx| -> Result<(T, Vec<AuditEntry>)> {
                let audited = op(tx.conn())?;
                let mut appended = Vec::with_capacity(audited.entries.len());
                for entry in audited.entries {
                    appended.push(tx.append(entry)?);
                }
                Ok((audited.value, appended))
            })
            .await
    }

    /// [`HubStore::commit`] for one-off commands (`init`, `cert reissue`):
    /// blocks the calling thread until the change is committed.
    pub(crate) fn commit_blocking<T, F>(&self, op: F) -> Result<(T, Vec<AuditEntry>)>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Audited<T>> + Send + 'static,
    {
        self.writer()?
            .run_blocking(move |tx| -> Result<(T, Vec<AuditEntry>)> {
                let audited = op(tx.conn())?;
                let mut appended = Vec::with_capacity(audited.entries.len());
                for entry in audited.entries {
                    appended.push(tx.append(entry)?);
                }
                Ok((audited.value, appended))
            })
    }

    /// A write that is telemetry, not a state change: no audit entry.
    /// Only [`HubStore::persist_liveness`] and [`HubStore::touch_key`] use it.
    async fn telemetry<F>(&self, op: F) -> Result<()>
    where
        F: FnOnce(&Connection) -> Result<()> + Send + 'static,
    {
        self.writer()?
            .run(move |tx| -> Result<()> { op(tx.conn()) })
            .await
    }

    /// Runs `f` on a pooled read connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.readers.read(f).await
    }

    /// Same, for a read that may take long (whole-chain verification): at
    /// most one runs at a time, so the others always find a connection.
    async fn read_long<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.readers.read_long(f).await
    }

    /// The interned catalog for a pack list (agents reporting the same
    /// packs share one decoded copy).
    pub fn catalog(&self, packs: Vec<sonde_protocol::messages::PackReport>) -> Arc<Catalog> {
        self.inner.catalogs.intern(packs)
    }

    /// Stops the writer after the queued changes and truncates the WAL.
    /// Later writes fail with [`StoreError::Unavailable`].
    pub fn close(&self) {
        if let Some(conn) = self.inner.writer.as_ref().and_then(GroupCommit::close)
            && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        {
            tracing::warn!(error = %e, "could not truncate the write-ahead log");
        }
    }

    /// Writer statistics: (batches, changes) committed so far.
    pub fn writer_stats(&self) -> (u64, u64) {
        self.inner
            .writer
            .as_ref()
            .map(|w| (w.stats().batches(), w.stats().jobs()))
            .unwrap_or_default()
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

    pub const CHECKPOINT_EVERY: u64 = 1000;

    pub fn key() -> SigningKey {
        SigningKey::from_bytes(&[3; 32])
    }

    /// A fresh store in a temp dir (kept alive by the returned guard).
    pub fn store() -> (tempfile::TempDir, HubStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(&dir.path().join("hub.db"), key(), CHECKPOINT_EVERY).unwrap();
        (dir, store)
    }

    /// Direct SQL on the file, for tests that look under the store.
    pub fn raw(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join("hub.db")).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_protocol::audit::{AuditAction, NewEntry};

    #[test]
    fn migrations_apply_once_and_newer_databases_are_refused() {
        let (dir, store) = test_support::store();
        store.close();
        drop(store);
        let path = dir.path().join("hub.db");
        HubStore::open(&path, test_support::key(), 1000)
            .unwrap()
            .close();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = HubStore::open(&path, test_support::key(), 1000).unwrap_err();
        assert!(err.to_string().contains("upgrade sonde-hub"), "{err}");
        assert!(HubStore::open_read_only(&path).is_err());
    }

    #[tokio::test]
    async fn an_old_database_is_upgraded_without_losing_rows() {
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
                "INSERT INTO agents (id, name, hostname, signing_key, cert_pem, cert_sha256, cert_expires_ms, enrolled_at_ms, enrollment_id, baseline, baseline_sha256) VALUES ('a1', 'nas', 'nas', 'k', 'c', 's', 1, 1, 'e1', ?1, 'b')",
                [serde_json::to_string(&enrollments::placeholder_attestation()).unwrap()],
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
        let store = HubStore::open(&path, test_support::key(), 1000).unwrap();
        // The version-1 agent row loads (its packs from the old column).
        let agents = store.agents().await.unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].name, "nas");
        assert!(agents[0].catalog.packs().is_empty());
        store.close();
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let (id, agent, status): (i64, String, String) = c
            .query_row("SELECT id, agent_id, status FROM drift_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((id, agent.as_str(), status.as_str()), (1, "a1", "open"));
        c.execute("UPDATE drift_events SET status = 'kept'", [])
            .unwrap();
        assert!(
            c.execute("UPDATE drift_events SET status = 'maybe'", [])
                .is_err()
        );
    }

    #[tokio::test]
    async fn meta_round_trip_with_its_audit_entry() {
        let (_dir, store) = test_support::store();
        store
            .initialise("hub-1", &["nas.lan".to_owned()], 5)
            .unwrap();
        let (id, names) = store.hub_identity().await.unwrap();
        assert_eq!(id, "hub-1");
        assert_eq!(names, ["nas.lan"]);
        let (page, head) = store.audit_page(PageQuery::default()).await.unwrap();
        assert_eq!(head.seq, 1);
        assert_eq!(page[0].action, "hub.initialised");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_checkpoint_per_thousand_under_eight_concurrent_callers() {
        let (_dir, store) = test_support::store();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..400 {
                        store
                            .record(
                                NewEntry::new("test", AuditAction::Probe, "ok")
                                    .detail("i", t * 1000 + i),
                            )
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let report = store
            .verify_audit(test_support::key().verifying_key())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report.entries, 3200);
        assert_eq!(
            report.checkpoints_verified, 3,
            "exactly one checkpoint at each of 1000, 2000 and 3000"
        );
        let (batches, changes) = store.writer_stats();
        assert_eq!(changes, 3200);
        assert!(batches <= changes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_verify_never_blocks_an_api_key_check() {
        let (_dir, store) = test_support::store();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // A long read (as `audit verify` on a big chain) holds its slot.
        let long = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .read_long(move |_c| {
                        held_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        Ok(())
                    })
                    .await
            })
        };
        held_rx.recv().unwrap();
        // A second verify waits for the first; key checks do not.
        let second = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .verify_audit(test_support::key().verifying_key())
                    .await
            })
        };
        let checks = async {
            for _ in 0..(READERS * 4) {
                assert!(store.key_by_prefix("sk_00000000").await.unwrap().is_none());
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), checks)
            .await
            .expect("API-key checks waited for the long read");
        assert!(!second.is_finished(), "one long read at a time");
        release_tx.send(()).unwrap();
        long.await.unwrap().unwrap();
        assert!(second.await.unwrap().unwrap().is_ok());
    }
}
