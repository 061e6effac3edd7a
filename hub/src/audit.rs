//! The hub's audit log: every security event and every probe call goes
//! through here into the hash chain, with signed checkpoints.
//!
//! Checkpoint policy: one after every [`CHECKPOINT_EVERY`] entries, one a
//! minute while entries keep coming (the periodic task in `serve.rs`), and
//! one at shutdown, so a cut-off tail is detectable up to the last minute.

use ed25519_dalek::SigningKey;
use rusqlite::TransactionBehavior;
use sonde_protocol::audit::{AuditEntry, Checkpoint, NewEntry};
use sonde_protocol::time::now_ms;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{self, Store, StoreError};

/// Entries between checkpoints.
pub const CHECKPOINT_EVERY: u64 = 1000;

#[derive(Clone, Debug)]
pub struct AuditLog {
    store: Store,
    key: Arc<SigningKey>,
    since_checkpoint: Arc<AtomicU64>,
}

impl AuditLog {
    pub fn new(store: Store, key: Arc<SigningKey>) -> Self {
        AuditLog {
            store,
            key,
            since_checkpoint: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Appends one entry in its own transaction.
    pub async fn record(&self, entry: NewEntry) -> Result<AuditEntry, StoreError> {
        let appended = self
            .store
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let e = store::audit::append(&tx, entry, now_ms())?;
                tx.commit()?;
                Ok(e)
            })
            .await;
        match &appended {
            Ok(_) => self.appended(1).await,
            Err(e) => tracing::error!(error = %e, "could not write an audit entry"),
        }
        appended
    }

    /// Records an entry and logs (rather than returns) a failure: for events
    /// whose handling must go on even if the disk is full.
    pub async fn record_or_log(&self, entry: NewEntry) -> Option<AuditEntry> {
        self.record(entry).await.ok()
    }

    /// Call after committing `n` entries appended inside another transaction.
    pub async fn appended(&self, n: u64) {
        let total = self.since_checkpoint.fetch_add(n, Ordering::SeqCst) + n;
        if total >= CHECKPOINT_EVERY
            && let Err(e) = self.checkpoint().await
        {
            tracing::error!(error = %e, "could not write an audit checkpoint");
        }
    }

    /// Signs and stores a checkpoint of the current head, if anything was
    /// appended since the last one.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let key = Arc::clone(&self.key);
        let cp = self
            .store
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let head = store::audit::head(&tx)?;
                let last = store::audit::last_checkpoint(&tx)?;
                if head.seq == 0 || last.is_some_and(|l| l.seq >= head.seq) {
                    return Ok(None);
                }
                let cp = Checkpoint::sign(head, now_ms(), &key);
                store::audit::insert_checkpoint(&tx, &cp)?;
                tx.commit()?;
                Ok(Some(cp))
            })
            .await?;
        self.since_checkpoint.store(0, Ordering::SeqCst);
        if let Some(cp) = &cp {
            tracing::info!(seq = cp.seq, hash = %cp.hash, "audit checkpoint");
        }
        Ok(cp)
    }

    /// Same, blocking: for shutdown.
    pub fn checkpoint_blocking(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.store.write_blocking(|c| {
            let head = store::audit::head(c)?;
            let last = store::audit::last_checkpoint(c)?;
            if head.seq == 0 || last.is_some_and(|l| l.seq >= head.seq) {
                return Ok(None);
            }
            let cp = Checkpoint::sign(head, now_ms(), &self.key);
            store::audit::insert_checkpoint(c, &cp)?;
            Ok(Some(cp))
        })
    }
}

/// The admin API's answer to "verify the chain", from the store's verdict.
pub fn verify_report(
    result: Result<sonde_protocol::audit::ChainReport, sonde_protocol::audit::ChainBreak>,
    duration_ms: u64,
) -> sonde_admin::api::AuditVerifyReport {
    use sonde_admin::api::{AuditVerifyReport, ChainBreakInfo};
    match result {
        Ok(r) => AuditVerifyReport {
            ok: true,
            entries: r.entries,
            head: Some(r.head),
            checkpoints_verified: r.checkpoints_verified,
            last_checkpoint: r.last_checkpoint,
            broken: None,
            duration_ms,
        },
        Err(b) => AuditVerifyReport {
            ok: false,
            entries: 0,
            head: None,
            checkpoints_verified: 0,
            last_checkpoint: None,
            broken: Some(ChainBreakInfo {
                seq: b.seq(),
                kind: b.kind().into(),
                message: b.to_string(),
            }),
            duration_ms,
        },
    }
}
