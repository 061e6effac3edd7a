//! The fleet's live state, in memory: every agent's record (with its
//! catalog, decoded once per registration and shared between agents that
//! report the same packs), its liveness and its audit head.
//!
//! The store stays the truth: every change is first committed there (with
//! its audit entry), then the record the store hands back replaces the one
//! in memory, under the agent's own change lock so two changes to one agent
//! apply in the order they committed. Liveness (last seen, remote address,
//! the agent's chain head) changes with every heartbeat and probe reply; it
//! is kept here and written in periodic batches ([`Fleet::flush_liveness`]),
//! not once per beat.
//!
//! Lookups are hash lookups by id or name: no call path scans the fleet or
//! decodes a catalog.

use sonde_protocol::audit::ChainHead;
use sonde_protocol::time::now_ms;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::store::{Agent, HubStore, Liveness, StoreError};

/// One agent as the fleet holds it.
#[derive(Debug)]
pub struct LiveAgent {
    record: RwLock<Arc<Agent>>,
    liveness: Mutex<Liveness>,
    /// Liveness changed since it was last persisted.
    dirty: AtomicBool,
    /// Serialises changes to this agent (store commit, then memory).
    change: tokio::sync::Mutex<()>,
}

impl LiveAgent {
    fn new(agent: Agent) -> Self {
        let liveness = agent.liveness.clone();
        LiveAgent {
            record: RwLock::new(Arc::new(agent)),
            liveness: Mutex::new(liveness),
            dirty: AtomicBool::new(false),
            change: tokio::sync::Mutex::new(()),
        }
    }

    /// The agent's record (cheap: a shared pointer).
    pub fn agent(&self) -> Arc<Agent> {
        Arc::clone(&self.record.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Its live liveness.
    pub fn liveness(&self) -> Liveness {
        self.liveness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn view(&self) -> AgentView {
        AgentView {
            agent: self.agent(),
            liveness: self.liveness(),
        }
    }

    fn set(&self, agent: Agent) -> Arc<Agent> {
        let agent = Arc::new(agent);
        *self.record.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&agent);
        agent
    }

    fn touch(&self, now: i64, head: Option<ChainHead>, remote: Option<&str>) {
        let mut l = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
        l.last_seen_ms = Some(now);
        if let Some(h) = head
            && l.audit_head.is_none_or(|old| h.seq > old.seq)
        {
            l.audit_head = Some(h);
        }
        if let Some(r) = remote
            && l.remote_addr.as_deref() != Some(r)
        {
            l.remote_addr = Some(r.to_owned());
        }
        self.dirty.store(true, Ordering::Release);
    }
}

/// An agent's record with its live liveness.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub agent: Arc<Agent>,
    pub liveness: Liveness,
}

impl std::ops::Deref for AgentView {
    type Target = Agent;

    fn deref(&self) -> &Agent {
        &self.agent
    }
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<LiveAgent>>,
    /// Name → ids that carried it (a name is reused after a revocation).
    by_name: HashMap<String, Vec<String>>,
}

impl Index {
    fn insert(&mut self, agent: Agent) -> Arc<LiveAgent> {
        let (id, name) = (agent.id.clone(), agent.name.clone());
        let live = Arc::new(LiveAgent::new(agent));
        self.by_id.insert(id.clone(), Arc::clone(&live));
        let ids = self.by_name.entry(name).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
        live
    }
}

/// Every agent, live.
#[derive(Debug)]
pub struct Fleet {
    store: HubStore,
    index: RwLock<Index>,
    liveness_errors: AtomicU64,
}

impl Fleet {
    /// Loads every agent from the store (each distinct catalog decoded once).
    pub async fn load(store: HubStore) -> Result<Fleet, StoreError> {
        let mut index = Index::default();
        for agent in store.agents().await? {
            index.insert(agent);
        }
        Ok(Fleet {
            store,
            index: RwLock::new(index),
            liveness_errors: AtomicU64::new(0),
        })
    }

    pub(super) fn store(&self) -> &HubStore {
        &self.store
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveAgent>> {
        self.index().by_id.get(id).cloned()
    }

    /// The agent called `name_or_id`: an id, or the name of a live agent,
    /// or the most recently enrolled revoked agent with that name.
    pub fn find(&self, name_or_id: &str) -> Option<Arc<LiveAgent>> {
        let index = self.index();
        if let Some(a) = index.by_id.get(name_or_id) {
            return Some(Arc::clone(a));
        }
        let candidates: Vec<Arc<LiveAgent>> = index
            .by_name
            .get(name_or_id)?
            .iter()
            .filter_map(|id| index.by_id.get(id).cloned())
            .collect();
        drop(index);
        let mut best: Option<(bool, i64, Arc<LiveAgent>)> = None;
        for live in candidates {
            let a = live.agent();
            let key = (!a.is_revoked(), a.enrolled_at_ms);
            if best.as_ref().is_none_or(|(l, t, _)| key > (*l, *t)) {
                best = Some((key.0, key.1, live));
            }
        }
        best.map(|(_, _, live)| live)
    }

    /// Agents that are not revoked, by name.
    pub fn live(&self) -> Vec<AgentView> {
        let mut out: Vec<AgentView> = self
            .index()
            .by_id
            .values()
            .map(|l| l.view())
            .filter(|v| !v.is_revoked())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every agent, revoked ones last, by name.
    pub fn all(&self) -> Vec<AgentView> {
        let mut out: Vec<AgentView> = self.index().by_id.values().map(|l| l.view()).collect();
        out.sort_by(|a, b| (a.is_revoked(), &a.name).cmp(&(b.is_revoked(), &b.name)));
        out
    }

    /// Adds a newly enrolled agent.
    pub fn enrolled(&self, agent: Agent) {
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent);
    }

    /// Applies a change to one agent: `change` commits it in the store and
    /// returns the agent as it now is (plus anything else), which replaces
    /// the record in memory. Changes to one agent are applied one at a time.
    pub async fn update<T, F, Fut>(
        &self,
        id: &str,
        change: F,
    ) -> Result<(Arc<Agent>, T), StoreError>
    where
        F: FnOnce(HubStore) -> Fut,
        Fut: std::future::Future<Output = Result<(Agent, T), StoreError>>,
    {
        let live = self
            .get(id)
            .ok_or_else(|| StoreError::NotFound(format!("no agent {id:?}")))?;
        let _order = live.change.lock().await;
        let (agent, extra) = change(self.store.clone()).await?;
        Ok((live.set(agent), extra))
    }

    /// A heartbeat: the agent is alive, with this chain head.
    pub fn heartbeat(&self, id: &str, head: Option<ChainHead>) {
        if let Some(live) = self.get(id) {
            live.touch(now_ms(), head, None);
        }
    }

    /// A probe reply carried the agent's chain head (kept if newer).
    pub fn observe_head(&self, id: &str, head: ChainHead) {
        if let Some(live) = self.get(id) {
            live.touch(now_ms(), Some(head), None);
        }
    }

    /// A new connection from `remote` (liveness as the hello persisted it).
    pub fn connected_from(&self, id: &str, remote: &str, head: ChainHead) {
        if let Some(live) = self.get(id) {
            live.touch(now_ms(), Some(head), Some(remote));
        }
    }

    /// Writes every changed liveness in one transaction. Returns how many
    /// agents were written; a failure is logged, counted, and retried at the
    /// next flush.
    pub async fn flush_liveness(&self) -> usize {
        let changed: Vec<Arc<LiveAgent>> = self
            .index()
            .by_id
            .values()
            .filter(|l| l.dirty.swap(false, Ordering::AcqRel))
            .cloned()
            .collect();
        if changed.is_empty() {
            return 0;
        }
        let batch: Vec<(String, Liveness)> = changed
            .iter()
            .map(|l| (l.agent().id.clone(), l.liveness()))
            .collect();
        let n = batch.len();
        match self.store.persist_liveness(batch).await {
            Ok(()) => n,
            Err(e) => {
                for l in &changed {
                    l.dirty.store(true, Ordering::Release);
                }
                let count = self.liveness_errors.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(error = %e, agents = n, failures = count, "could not persist agent liveness (heartbeats); will retry");
                0
            }
        }
    }

    /// Failed liveness writes since start.
    pub fn liveness_errors(&self) -> u64 {
        self.liveness_errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::enrollments::tests::enrolled_agent;
    use crate::store::test_support::store;
    use sonde_protocol::Digest;

    #[tokio::test]
    async fn heartbeats_stay_in_memory_and_are_written_in_one_batch() {
        let (_dir, store) = store();
        for name in ["a", "b", "c"] {
            enrolled_agent(&store, name).await;
        }
        let fleet = Fleet::load(store.clone()).await.unwrap();
        let ids: Vec<String> = fleet.all().iter().map(|v| v.id.clone()).collect();
        assert_eq!(ids.len(), 3);
        let (batches, _) = store.writer_stats();
        for seq in 1..=100u64 {
            for id in &ids {
                let hash = Digest::of(&seq.to_le_bytes());
                fleet.heartbeat(id, Some(ChainHead { seq, hash }));
            }
        }
        // An older head never replaces a newer one.
        fleet.observe_head(&ids[0], ChainHead::genesis());
        assert_eq!(store.writer_stats().0, batches, "no write per heartbeat");
        let stored = store.agent(&ids[0]).await.unwrap().unwrap();
        assert_eq!(stored.liveness.last_seen_ms, None);
        let live = fleet.get(&ids[0]).unwrap().liveness();
        assert_eq!(live.audit_head.map(|h| h.seq), Some(100));
        assert_eq!(fleet.flush_liveness().await, 3);
        assert_eq!(store.writer_stats().0, batches + 1, "one write for all");
        let stored = store.agent(&ids[0]).await.unwrap().unwrap();
        assert_eq!(stored.liveness.last_seen_ms, live.last_seen_ms);
        assert_eq!(stored.liveness.audit_head.map(|h| h.seq), Some(100));
        assert_eq!(fleet.flush_liveness().await, 0, "nothing changed since");
    }

    #[tokio::test]
    async fn a_name_finds_the_live_agent_before_revoked_ones() {
        let (_dir, store) = store();
        let old = enrolled_agent(&store, "nas").await;
        store.revoke_agent(&old.id, "op").await.unwrap();
        let fleet = Fleet::load(store.clone()).await.unwrap();
        assert_eq!(
            fleet.find("nas").unwrap().agent().id,
            old.id,
            "only the revoked one"
        );
        let new = enrolled_agent(&store, "nas").await;
        fleet.enrolled(new.clone());
        assert_eq!(fleet.find("nas").unwrap().agent().id, new.id);
        assert_eq!(fleet.find(&old.id).unwrap().agent().id, old.id);
        assert!(fleet.find("nope").is_none());
        assert_eq!(fleet.live().len(), 1);
        assert_eq!(fleet.all().len(), 2);
    }
}
