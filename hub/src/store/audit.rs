//! The hub's audit chain: events without another change, checkpoints,
//! pages, single entries and whole-chain verification.

use ed25519_dalek::VerifyingKey;
use sonde_auditlog as log;
use sonde_protocol::audit::{AuditEntry, ChainBreak, ChainHead, ChainReport, Checkpoint, NewEntry};

use super::{Audited, HubStore, PageQuery, Result};

impl HubStore {
    /// Records an event that changes nothing else (a probe call, a refused
    /// connection, …); returns once it is committed.
    pub async fn record(&self, entry: NewEntry) -> Result<AuditEntry> {
        let ((), mut entries) = self.commit(move |_| Ok(Audited::new((), entry))).await?;
        entries
            .pop()
            .ok_or_else(|| super::StoreError::Corrupt("an audited change returned no entry".into()))
    }

    /// Signs and stores a checkpoint of the head, unless the last one
    /// already covers it.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.writer()?
            .run(|tx| -> Result<Option<Checkpoint>> { Ok(tx.checkpoint()?) })
            .await
    }

    pub async fn audit_head(&self) -> Result<ChainHead> {
        self.read(|c| Ok(log::head(c)?)).await
    }

    /// One page, newest first, and the head.
    pub async fn audit_page(&self, q: PageQuery) -> Result<(Vec<AuditEntry>, ChainHead)> {
        self.read(move |c| Ok((log::page(c, &q)?, log::head(c)?)))
            .await
    }

    /// One entry and the first checkpoint that covers it.
    pub async fn audit_entry(&self, seq: u64) -> Result<(Option<AuditEntry>, Option<Checkpoint>)> {
        self.read(move |c| Ok((log::get(c, seq)?, log::checkpoint_covering(c, seq)?)))
            .await
    }

    /// Verifies the whole chain and its checkpoints (streaming; one such
    /// read at a time, on its own pooled connection).
    pub async fn verify_audit(
        &self,
        key: VerifyingKey,
    ) -> Result<std::result::Result<ChainReport, ChainBreak>> {
        self.read_long(move |c| Ok(log::verify(c, &key)?)).await
    }
}
