//! Live agent sessions and probe dispatch.

use sonde_protocol::envelope::PeerVerifier;
use sonde_protocol::messages::{
    GrantsUpdate, ProbeCancel, ProbeFailure, ProbeRequest, ProbeResponse,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How a probe request ended.
#[derive(Debug, Clone)]
pub enum ProbeReply {
    Response(ProbeResponse),
    Failure(ProbeFailure),
    /// The agent refused the request frame itself (verification failed).
    Rejected {
        code: String,
        message: String,
    },
    /// The connection went away before a reply.
    Disconnected(String),
}

/// A message for a session to send.
#[derive(Debug)]
pub enum Outbound {
    Probe {
        request: ProbeRequest,
        reply: oneshot::Sender<ProbeReply>,
    },
    Grants(GrantsUpdate),
    /// Tell the agent to stop a running request.
    Cancel(ProbeCancel),
}

/// A live session as others see it.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    pub conn_id: u64,
    pub remote_addr: SocketAddr,
    pub tx: mpsc::Sender<Outbound>,
    pub cancel: CancellationToken,
}

/// All live sessions, plus per-agent verifiers that outlive connections
/// (their replay caches must survive a reconnect).
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, SessionHandle>>,
    verifiers: Mutex<HashMap<String, Arc<Mutex<PeerVerifier>>>>,
    next_conn: AtomicU64,
}

/// Why a probe could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("agent {0} is not connected")]
    NotConnected(String),
    #[error("agent {0} is busy (its request queue is full); try again shortly")]
    QueueFull(String),
    #[error("agent {agent} did not answer within {after:?}")]
    Timeout { agent: String, after: Duration },
}

impl Registry {
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The verifier for an agent, created with `make` the first time.
    pub fn verifier(
        &self,
        agent_id: &str,
        make: impl FnOnce() -> PeerVerifier,
    ) -> Arc<Mutex<PeerVerifier>> {
        let mut map = self.verifiers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(agent_id.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(make()))),
        )
    }

    /// Forgets an agent's verifier (after revocation).
    pub fn forget(&self, agent_id: &str) {
        self.verifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
    }

    /// Registers a session; returns the one it replaced, if any.
    pub fn insert(&self, agent_id: &str, handle: SessionHandle) -> Option<SessionHandle> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent_id.to_owned(), handle)
    }

    /// Removes the session if it is still `conn_id` (a replacement stays).
    pub fn remove(&self, agent_id: &str, conn_id: u64) {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(agent_id).is_some_and(|h| h.conn_id == conn_id) {
            map.remove(agent_id);
        }
    }

    pub fn get(&self, agent_id: &str) -> Option<SessionHandle> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent_id)
            .cloned()
    }

    pub fn connected_ids(&self) -> HashSet<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Drops an agent's live connection at once.
    pub fn disconnect(&self, agent_id: &str) -> bool {
        let handle = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
        match handle {
            Some(h) => {
                h.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Cancels every session (shutdown).
    pub fn close_all(&self) {
        for (_, h) in self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            h.cancel.cancel();
        }
    }

    /// Sends a probe request to a connected agent and waits for its reply.
    pub async fn dispatch(
        &self,
        agent_id: &str,
        request: ProbeRequest,
        wait: Duration,
    ) -> Result<ProbeReply, DispatchError> {
        let handle = self
            .get(agent_id)
            .ok_or_else(|| DispatchError::NotConnected(agent_id.to_owned()))?;
        let (reply_tx, reply_rx) = oneshot::channel();
        handle
            .tx
            .try_send(Outbound::Probe {
                request,
                reply: reply_tx,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => DispatchError::QueueFull(agent_id.to_owned()),
                mpsc::error::TrySendError::Closed(_) => {
                    DispatchError::NotConnected(agent_id.to_owned())
                }
            })?;
        match tokio::time::timeout(wait, reply_rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Ok(ProbeReply::Disconnected(
                "the connection closed before the agent answered".into(),
            )),
            Err(_) => Err(DispatchError::Timeout {
                agent: agent_id.to_owned(),
                after: wait,
            }),
        }
    }

    /// Asks a connected agent to stop request `request_id` (`probe.cancel`).
    /// `false` if the agent is not connected or its queue is full.
    pub fn cancel(&self, agent_id: &str, request_id: &str, reason: &str) -> bool {
        self.get(agent_id).is_some_and(|h| {
            h.tx.try_send(Outbound::Cancel(ProbeCancel {
                request_id: request_id.to_owned(),
                reason: reason.to_owned(),
            }))
            .is_ok()
        })
    }

    /// Pushes the current grants to a connected agent (no-op if offline: it
    /// gets them in its next `hub.ack`).
    pub fn push_grants(&self, agent_id: &str, update: GrantsUpdate) {
        if let Some(h) = self.get(agent_id) {
            let _ = h.tx.try_send(Outbound::Grants(update));
        }
    }
}
