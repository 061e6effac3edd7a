//! The agent's own audit chain (`<data dir>/audit.db`).
//!
//! Every request is recorded once, with its verdict: `probe.ran` (result
//! digest, duration, redactions), `probe.refused` or `probe.failed` (the
//! reason), each with the time the request was received. The reply leaves
//! only after its entry is committed, and carries the chain head that
//! entry produced, so the hub's entry cross-references it.
//!
//! Appends go through one writer thread ([`sonde_auditlog::GroupCommit`]):
//! entries of concurrent probes share one SQLite transaction. WAL mode with
//! `synchronous=NORMAL`: a committed entry survives the agent being killed
//! (`kill -9`) at any point, and a power cut can lose at most the last
//! entries, never break the chain. Signed checkpoints at every multiple of
//! [`CHECKPOINT_EVERY`] (in the transaction of the entry that reaches it) and
//! at shutdown.

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use sonde_auditlog::{self as log, GroupCommit};
use sonde_protocol::audit::{AuditEntry, ChainBreak, ChainHead, ChainReport, Checkpoint, NewEntry};
use std::path::Path;
use std::sync::Mutex;

pub const CHECKPOINT_EVERY: u64 = 100;

#[derive(Debug)]
pub struct LocalAudit {
    /// The writer (absent when opened read-only).
    writer: Option<GroupCommit>,
    /// Reads (head, verify, recent) on their own connection.
    reader: Mutex<Connection>,
    key: SigningKey,
}

fn open_conn(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the audit chain {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl LocalAudit {
    pub fn open(path: &Path, key: SigningKey) -> anyhow::Result<Self> {
        let conn = open_conn(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(log::SCHEMA)?;
        let writer = GroupCommit::start(conn, key.clone(), CHECKPOINT_EVERY, "agent-audit")?;
        Ok(LocalAudit {
            writer: Some(writer),
            reader: Mutex::new(open_conn(path)?),
            key,
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
            writer: None,
            reader: Mutex::new(conn),
            key,
        })
    }

    fn writer(&self) -> anyhow::Result<&GroupCommit> {
        self.writer
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the audit chain is open read-only"))
    }

    /// Appends one entry; returns once it is committed (blocks the thread).
    pub fn append(&self, entry: NewEntry) -> anyhow::Result<AuditEntry> {
        Ok(self
            .writer()?
            .run_blocking(move |tx| -> log::Result<AuditEntry> { tx.append(entry) })?)
    }

    /// Appends one entry; resolves once it is committed, sharing the commit
    /// with the entries of concurrent calls.
    pub async fn append_async(&self, entry: NewEntry) -> anyhow::Result<AuditEntry> {
        Ok(self
            .writer()?
            .run(move |tx| -> log::Result<AuditEntry> { tx.append(entry) })
            .await?)
    }

    pub fn head(&self) -> anyhow::Result<ChainHead> {
        let conn = self
            .reader
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        Ok(log::head(&conn)?)
    }

    /// Signs a checkpoint of the head if it moved since the last one.
    pub fn checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        Ok(self
            .writer()?
            .run_blocking(|tx| -> log::Result<Option<Checkpoint>> { tx.checkpoint() })?)
    }

    pub fn verify(&self) -> anyhow::Result<Result<ChainReport, ChainBreak>> {
        let conn = self
            .reader
            .lock()
            .map_err(|_| anyhow::anyhow!("audit lock poisoned"))?;
        Ok(log::verify(&conn, &self.key.verifying_key())?)
    }

    pub fn recent(&self, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        let conn = self
            .reader
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
    use sonde_protocol::audit::AuditAction;

    #[test]
    fn chain_appends_checkpoints_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[4; 32]);
        let audit = LocalAudit::open(&dir.path().join("audit.db"), key.clone()).unwrap();
        for i in 0..(CHECKPOINT_EVERY + 5) {
            audit
                .append(NewEntry::new("local:test", AuditAction::ProbeRan, "ok").detail("i", i))
                .unwrap();
        }
        let report = audit.verify().unwrap().unwrap();
        assert_eq!(report.entries, CHECKPOINT_EVERY + 5);
        assert_eq!(report.checkpoints_verified, 1);
        assert_eq!(audit.head().unwrap().seq, CHECKPOINT_EVERY + 5);
        assert!(audit.checkpoint().unwrap().is_some());
        assert!(
            audit.checkpoint().unwrap().is_none(),
            "no new entries, no new checkpoint"
        );
        drop(audit);
        let ro = LocalAudit::open_read_only(&dir.path().join("audit.db"), key).unwrap();
        assert_eq!(ro.verify().unwrap().unwrap().checkpoints_verified, 2);
        assert!(
            ro.append(NewEntry::new("x", AuditAction::ProbeRan, "ok"))
                .is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_probes_share_commits_and_each_gets_its_own_head() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[4; 32]);
        let audit = std::sync::Arc::new(
            LocalAudit::open(&dir.path().join("audit.db"), key.clone()).unwrap(),
        );
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let audit = std::sync::Arc::clone(&audit);
                tokio::spawn(async move {
                    let mut heads = Vec::new();
                    for i in 0..25 {
                        let e = audit
                            .append_async(
                                NewEntry::new("hub", AuditAction::ProbeRan, "ok")
                                    .detail("i", t * 100 + i),
                            )
                            .await
                            .unwrap();
                        heads.push(e.head());
                    }
                    heads
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.extend(t.await.unwrap().into_iter().map(|h| h.seq));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=400).collect::<Vec<_>>(), "one distinct seq each");
        let report = audit.verify().unwrap().unwrap();
        assert_eq!(report.entries, 400);
        assert_eq!(
            report.checkpoints_verified, 4,
            "exactly at 100, 200, 300, 400"
        );
    }
}
