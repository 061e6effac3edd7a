//! The agent's own audit chain (`<data dir>/audit.db`).
//!
//! Every request is recorded twice: `probe.received` before anything runs
//! (write-ahead), and the verdict after (`probe.ran` with result digest,
//! duration and redactions, or `probe.refused` with the reason). Each append
//! is one SQLite transaction in WAL mode with `synchronous=NORMAL`: a
//! committed entry survives the agent being killed (`kill -9`) at any point,
//! and a power cut can lose at most the last entries, never break the chain.
//! Signed checkpoints every [`CHECKPOINT_EVERY`] entries and at shutdown.

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, TransactionBehavior};
use sonde_auditlog as log;
use sonde_protocol::audit::{AuditEntry, ChainBreak, ChainHead, ChainReport, Checkpoint, NewEntry};
use sonde_protocol::time::now_ms;
use std::path::Path;
use std::sync::Mutex;

pub const CHECKPOINT_EVERY: u64 = 100;

#[derive(Debug)]
pub struct LocalAudit {
    conn: Mutex<Connection>,
    key: SigningKey,
    since_checkpoint: Mutex<u64>,
}

impl LocalAudit {
    pub fn open(path: &Path, key: SigningKey) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open the audit chain {}: {e}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(log::SCHEMA)?;
        Ok(LocalAudit {
            conn: Mutex::new(conn),
            key,
            since_checkpoint: Mutex::new(0),
        })
    }

    /// Opens read-only, for `audit verify` and `status`.
    pub fn open_read_only(path: &Path, key: SigningKey) -> anyhow::Result<Self> {
        if !path.exists() {
            anyhow::bail!("no audit chain at {} yet", path.display());
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(LocalAudit {
            conn: Mutex::new(conn),
            key,
            since_checkpoint: Mutex::new(0),
        })
    }

    pub fn append(&self, entry: NewEntry) -> anyhow::Result<AuditEntry> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let e = log::append(&tx, entry, now_ms())?;
        let mut since = self
            .since_checkpoint
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        *since += 1;
        if *since >= CHECKPOINT_EVERY {
            log::insert_checkpoint(&tx, &Checkpoint::sign(e.head(), now_ms(), &self.key))?;
            *since = 0;
        }
        tx.commit()?;
        Ok(e)
    }

    pub fn head(&self) -> anyhow::Result<ChainHead> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        Ok(log::head(&conn)?)
    }

    /// Signs a checkpoint of the head if it moved since the last one.
    pub fn checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        let head = log::head(&conn)?;
        let last = log::last_checkpoint(&conn)?;
        if head.seq == 0 || last.is_some_and(|l| l.seq >= head.seq) {
            return Ok(None);
        }
        let cp = Checkpoint::sign(head, now_ms(), &self.key);
        log::insert_checkpoint(&conn, &cp)?;
        Ok(Some(cp))
    }

    pub fn verify(&self) -> anyhow::Result<Result<ChainReport, ChainBreak>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        Ok(log::verify(&conn, &self.key.verifying_key())?)
    }

    pub fn recent(&self, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        Ok(log::page(
            &conn,
            &log::PageQuery {
                limit: Some(limit),
                ..Default::default()
            },
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_appends_checkpoints_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[4; 32]);
        let audit = LocalAudit::open(&dir.path().join("audit.db"), key.clone()).unwrap();
        for i in 0..(CHECKPOINT_EVERY + 5) {
            audit
                .append(NewEntry::new("local:test", "probe.received", "ok").detail("i", i))
                .unwrap();
        }
        let report = audit.verify().unwrap().unwrap();
        assert_eq!(report.entries, CHECKPOINT_EVERY + 5);
        assert_eq!(report.checkpoints_verified, 1);
        assert!(audit.checkpoint().unwrap().is_some());
        assert!(
            audit.checkpoint().unwrap().is_none(),
            "no new entries, no new checkpoint"
        );
        drop(audit);
        let ro = LocalAudit::open_read_only(&dir.path().join("audit.db"), key).unwrap();
        assert_eq!(ro.verify().unwrap().unwrap().checkpoints_verified, 2);
    }
}
