//! The hub's audit log: every security event and every probe call goes
//! through here (or through a store operation that records its own entry)
//! into the hash chain, with signed checkpoints.
//!
//! Appends are group-committed by the store's writer: entries of
//! concurrent calls share one transaction and one fsync, and each caller
//! gets its answer only once its entry is on disk (`synchronous=FULL`).
//!
//! Checkpoint policy: one exactly at every multiple of [`CHECKPOINT_EVERY`]
//! (signed in the transaction of the entry that reaches it, so concurrent
//! callers can never write two for one mark), one a minute while entries
//! keep coming (the periodic task in `serve.rs`), and one at shutdown, after
//! every other entry.

use sonde_protocol::audit::{AuditEntry, Checkpoint, NewEntry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{HubStore, PageQuery, StoreError};

/// Entries between checkpoints.
pub const CHECKPOINT_EVERY: u64 = 1000;

#[derive(Clone, Debug)]
pub struct AuditLog {
    store: HubStore,
    write_errors: Arc<AtomicU64>,
    checkpoint_errors: Arc<AtomicU64>,
}

impl AuditLog {
    pub fn new(store: HubStore) -> Self {
        AuditLog {
            store,
            write_errors: Arc::new(AtomicU64::new(0)),
            checkpoint_errors: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Appends one entry; returns once it is committed.
    pub async fn record(&self, entry: NewEntry) -> Result<AuditEntry, StoreError> {
        let appended = self.store.record(entry).await;
        if let Err(e) = &appended {
            let n = self.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(error = %e, failures = n, "could not write an audit entry");
        }
        appended
    }

    /// Records an entry and logs (rather than returns) a failure: for events
    /// whose handling must go on even if the disk is full.
    pub async fn record_or_log(&self, entry: NewEntry) -> Option<AuditEntry> {
        self.record(entry).await.ok()
    }

    /// Signs and stores a checkpoint of the current head, if anything was
    /// appended since the last one. A failure is logged and counted.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.store.checkpoint().await {
            Ok(cp) => {
                if let Some(cp) = &cp {
                    tracing::info!(seq = cp.seq, hash = %cp.hash, "audit checkpoint");
                }
                Ok(cp)
            }
            Err(e) => {
                let n = self.checkpoint_errors.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(error = %e, failures = n, "could not write an audit checkpoint");
                Err(e)
            }
        }
    }

    /// Audit entries that could not be written since start.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Checkpoints that could not be written since start.
    pub fn checkpoint_errors(&self) -> u64 {
        self.checkpoint_errors.load(Ordering::Relaxed)
    }
}

/// The admin API's audit query as a store query.
pub fn page_query(q: &sonde_admin::api::AuditQuery) -> PageQuery {
    PageQuery {
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
