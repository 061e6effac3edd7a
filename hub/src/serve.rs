//! `sonde-hub serve`: bind everything, run until SIGTERM/SIGINT, shut down
//! in order.
//!
//! Shutdown: (1) stop accepting (agent port, MCP, admin socket) and let
//! in-flight requests finish — probes still reach their agents because the
//! agent sessions stay up; (2) close the agent sessions (each gets
//! `hub.closing`) and wait for every agent-port task (tracked) to end, so
//! their `connection.closed` entries are written; (3) persist liveness,
//! record `hub.stopped`, write the final signed audit checkpoint — the last
//! thing in the chain — then stop the writer and truncate the SQLite WAL.

use serde::Serialize;
use sonde_protocol::audit::{AuditAction, NewEntry};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::config::HubConfig;
use crate::datadir::{DataDir, write_public};
use crate::hub::{Hub, SharedHub};

/// Command-line overrides of `hub.toml`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub agent_listen: Option<SocketAddr>,
    pub mcp_listen: Option<SocketAddr>,
}

/// `run.json`: where a running hub can be reached (ports may be ephemeral).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub pid: u32,
    pub agent_listen: SocketAddr,
    pub agent_address: String,
    pub mcp_url: Option<String>,
    pub admin_socket: String,
    pub ca_sha256: String,
}

/// How long in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(30);
/// How long agent sessions get to close (and audit it) at shutdown.
const CLOSE_SESSIONS: Duration = Duration::from_secs(10);
/// How often liveness (heartbeats) is written: one batch for every agent.
pub const LIVENESS_FLUSH: Duration = Duration::from_secs(5);
/// How often a checkpoint is signed while entries come in.
const CHECKPOINT_PERIOD: Duration = Duration::from_secs(60);

pub async fn serve(data: DataDir, overrides: Overrides) -> anyhow::Result<()> {
    let mut config = HubConfig::load(&data.config())?;
    if let Some(a) = overrides.agent_listen {
        config.agent_listen = a;
    }
    if let Some(m) = overrides.mcp_listen {
        config.mcp_listen = m;
    }
    if config.mcp.plain_http && !config.mcp_listen.ip().is_loopback() {
        anyhow::bail!(
            "mcp.plain_http is only allowed on a loopback --mcp-listen address (got {})",
            config.mcp_listen
        );
    }
    let hub: SharedHub = Arc::new(Hub::open(data, config).await?);
    let agent_listener = TcpListener::bind(hub.config.agent_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen for agents on {}: {e}",
                hub.config.agent_listen
            )
        })?;
    let agent_addr = agent_listener.local_addr()?;
    let mcp = crate::mcp::bind(&hub).await?;
    if let Ok(mut e) = hub.endpoints.write() {
        e.agent = Some(agent_addr);
        e.mcp_url = mcp.as_ref().map(|m| m.url.clone());
    }
    let draining = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (hub, draining) = (Arc::clone(&hub), draining.clone());
        tasks.spawn(
            async move { crate::link::listener::serve(hub, agent_listener, draining).await },
        );
    }
    {
        let (hub, draining) = (Arc::clone(&hub), draining.clone());
        tasks.spawn(async move { crate::admin::serve(hub, draining).await });
    }
    if let Some(mcp) = mcp {
        let (hub, draining) = (Arc::clone(&hub), draining.clone());
        tasks.spawn(async move { crate::mcp::serve(hub, mcp, draining).await });
    }
    let housekeeping = {
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            let mut checkpoints = tokio::time::interval(CHECKPOINT_PERIOD);
            let mut liveness = tokio::time::interval(LIVENESS_FLUSH);
            checkpoints.tick().await;
            liveness.tick().await;
            loop {
                tokio::select! {
                    _ = hub.shutdown.cancelled() => break,
                    // Failures are logged and counted by the audit log.
                    _ = checkpoints.tick() => {
                        if let Err(e) = hub.audit.checkpoint().await {
                            tracing::error!(error = %e, "could not write the periodic audit checkpoint; the next one retries");
                        }
                    }
                    // Failures are logged, counted and retried by the fleet.
                    _ = liveness.tick() => { hub.fleet.flush_liveness().await; }
                }
            }
        })
    };
    let info = RunInfo {
        pid: std::process::id(),
        agent_listen: agent_addr,
        agent_address: hub.agent_address(),
        mcp_url: hub.endpoints().mcp_url,
        admin_socket: hub.data.admin_socket().display().to_string(),
        ca_sha256: hub.ca.fingerprint().to_hex(),
    };
    write_public(
        &hub.data.run_info(),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    hub.audit(
        NewEntry::new("hub", AuditAction::HubStarted, "ok")
            .detail("agent_listen", agent_addr.to_string())
            .detail("mcp_url", info.mcp_url.clone().unwrap_or_default())
            .detail("version", env!("CARGO_PKG_VERSION")),
    )
    .await;
    tracing::info!(agents = %agent_addr, mcp = ?info.mcp_url, "sonde-hub is running");

    let stop_reason = tokio::select! {
        r = wait_for_signal() => r,
        Some(r) = tasks.join_next() => {
            match r {
                Ok(Ok(())) => "a listener stopped".to_owned(),
                Ok(Err(e)) => { tracing::error!(error = %e, "a hub task failed"); format!("error: {e}") }
                Err(e) => format!("task panicked: {e}"),
            }
        }
    };
    tracing::info!(reason = %stop_reason, "shutting down: no new connections; finishing in-flight requests");
    draining.cancel();
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "in-flight requests did not finish within {}s; closing anyway",
            DRAIN.as_secs()
        );
        tasks.abort_all();
    }
    hub.shutdown.cancel();
    hub.registry.close_all();
    let _ = housekeeping.await;
    // Every agent-port task (connections, sessions) ends before the final
    // entries: their `connection.closed` entries come before the checkpoint.
    hub.tasks.close();
    if tokio::time::timeout(CLOSE_SESSIONS, hub.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = hub.tasks.len(),
            "agent connections did not close within {}s; stopping anyway",
            CLOSE_SESSIONS.as_secs()
        );
    }
    hub.fleet.flush_liveness().await;
    hub.audit(NewEntry::new("hub", AuditAction::HubStopped, "ok").detail("reason", stop_reason))
        .await;
    match hub.audit.checkpoint().await {
        Ok(cp) => tracing::info!(seq = cp.map(|c| c.seq), "final audit checkpoint written"),
        Err(e) => tracing::error!(error = %e, "could not write the final audit checkpoint"),
    }
    // Nothing is written after the checkpoint: the writer stops here.
    hub.store.close();
    let _ = std::fs::remove_file(hub.data.run_info());
    tracing::info!("sonde-hub stopped");
    Ok(())
}

async fn wait_for_signal() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGTERM handler");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM".into(),
        _ = tokio::signal::ctrl_c() => "SIGINT".into(),
    }
}

/// Reads `run.json` of a running hub.
pub fn read_run_info(data: &DataDir) -> Option<RunInfo> {
    serde_json::from_str(&std::fs::read_to_string(data.run_info()).ok()?).ok()
}
