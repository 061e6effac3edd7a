//! The agent port: TLS (client certificate optional at the TLS layer,
//! required for the agent link), then HTTP/1.1 with three routes:
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /v1/enroll` | anyone with a token | enrollment request |
//! | `POST /v1/enroll/status` | the requester (signed) | poll for the certificate |
//! | `GET /v1/agent` (WebSocket) | an enrolled agent's certificate | the agent link |
//!
//! Client certificates are verified by rustls against the hub CA; the agent
//! id they name must belong to an enrolled, non-revoked agent whose current
//! certificate it is.

use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sonde_protocol::Digest;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::ErrorBody;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::hub::SharedHub;
use crate::rate_limit::AuditBudget;

/// Initial read/write buffer of an agent link (the defaults are 128 KiB
/// each, which a thousand idle agents would pay for nothing).
const LINK_BUFFER_BYTES: usize = 8 * 1024;

/// Longest life of a connection that showed no agent certificate (one
/// enrollment request or status poll).
const UNAUTHENTICATED_LIFETIME: Duration = Duration::from_secs(30);

/// What the TLS layer learned about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub client_cert: Option<CertificateDer<'static>>,
}

/// The rustls provider used everywhere in the hub.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The hub's TLS server certificate chain and its key, from the data dir.
pub fn server_identity(
    data: &crate::datadir::DataDir,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(data.server_cert())
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.server_cert().display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.server_cert().display()))?;
    let key = PrivateKeyDer::from_pem_file(data.server_key())
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.server_key().display()))?;
    Ok((chain, key))
}

/// TLS config of the agent port.
pub fn tls_config(hub: &SharedHub) -> anyhow::Result<rustls::ServerConfig> {
    let (chain, key) = server_identity(&hub.data)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(hub.ca.cert_der().clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS config of the MCP port (server certificate only).
pub fn server_only_tls_config(hub: &SharedHub) -> anyhow::Result<rustls::ServerConfig> {
    server_only_config(&hub.data)
}

/// A server-only TLS config from the data dir's certificate and key.
pub fn server_only_config(data: &crate::datadir::DataDir) -> anyhow::Result<rustls::ServerConfig> {
    let (chain, key) = server_identity(data)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The largest request body the agent port reads (enrollment JSON).
const MAX_BODY: usize = 64 * 1024;

fn router(hub: SharedHub) -> Router {
    Router::new()
        .route("/v1/enroll", post(crate::enroll::http_request))
        .route("/v1/enroll/status", post(crate::enroll::http_status))
        .route("/v1/agent", get(agent_link))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(refuse_announced_oversize))
        .with_state(hub)
}

/// A body announced (`Content-Length`) larger than [`MAX_BODY`] is refused
/// from the request head, before any of it is read; one that grows past it
/// without announcing is cut off by `DefaultBodyLimit`. Both answer 413.
async fn refuse_announced_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies on the agent port are at most {MAX_BODY} bytes"),
        );
    }
    next.run(request).await
}

/// Accepts agent connections until shutdown.
pub async fn serve(
    hub: SharedHub,
    listener: TcpListener,
    draining: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&hub)?));
    let app = router(Arc::clone(&hub));
    let slots = Arc::new(Semaphore::new(hub.config.agents.max_connections));
    let admission = super::admission::Admission::new(
        hub.config.agents.max_unauthenticated,
        hub.config.agents.max_unauthenticated_per_ip,
    );
    let handshake = Duration::from_secs(hub.config.agents.handshake_timeout_s.max(1));
    let budget = Arc::new(AuditBudget::per_minute(60));
    loop {
        let (tcp, remote) = tokio::select! {
            _ = draining.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on the agent port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Before anything else: a slot among connections not yet known to
        // be agents (per address and overall), or the connection is dropped.
        let pre_auth = match admission.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                let (hub, budget) = (Arc::clone(&hub), Arc::clone(&budget));
                tokio::spawn(async move {
                    refused(&hub, &budget, remote, refusal.to_string()).await;
                });
                continue;
            }
        };
        let (acceptor, app, hub, budget, slots) = (
            acceptor.clone(),
            app.clone(),
            Arc::clone(&hub),
            Arc::clone(&budget),
            Arc::clone(&slots),
        );
        // Tracked: shutdown waits for connections before the final checkpoint.
        hub.tasks.clone().spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    return refused(&hub, &budget, remote, format!("TLS handshake failed: {e}"))
                        .await;
                }
                Err(_) => {
                    return refused(&hub, &budget, remote, "TLS handshake timed out".into()).await;
                }
            };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            // A certificate from the hub's CA (rustls verified it): an
            // agent. It leaves the unauthenticated pool for a connection
            // slot; anything else keeps its pre-auth slot, serves one
            // request, and has a short life.
            let (_permit, pre_auth) = if client_cert.is_some() {
                let Ok(permit) = slots.try_acquire_owned() else {
                    return refused(
                        &hub,
                        &budget,
                        remote,
                        "the agent port is at its connection limit (agents.max_connections)".into(),
                    )
                    .await;
                };
                pre_auth.authenticated();
                (Some(permit), None)
            } else {
                (None, Some(pre_auth))
            };
            let authenticated = pre_auth.is_none();
            let info = ConnInfo {
                remote,
                client_cert,
            };
            let svc = app.layer(Extension(info));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(if authenticated { 20 } else { 10 }))
                .keep_alive(authenticated)
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                .with_upgrades();
            let result = if authenticated {
                conn.await
            } else {
                match tokio::time::timeout(UNAUTHENTICATED_LIFETIME, conn).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::debug!(%remote, "closed an unauthenticated connection at its deadline");
                        Ok(())
                    }
                }
            };
            drop(pre_auth);
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "agent port connection ended with an error");
            }
        });
    }
    Ok(())
}

async fn refused(hub: &SharedHub, budget: &AuditBudget, remote: SocketAddr, reason: String) {
    tracing::info!(%remote, %reason, "refused a connection on the agent port");
    let Some(suppressed) = budget.take() else {
        return;
    };
    let mut entry = NewEntry::new("hub", AuditAction::ConnectionRefused, "refused")
        .detail("remote_addr", remote.to_string())
        .detail("reason", reason);
    if suppressed > 0 {
        entry = entry.detail("refusals_not_audited_before_this", suppressed);
    }
    hub.audit(entry).await;
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: code.into(),
            message: message.into(),
        }),
    )
        .into_response()
}

async fn agent_link(
    State(hub): State<SharedHub>,
    Extension(info): Extension<ConnInfo>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(cert) = info.client_cert.clone() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "client_certificate_required",
            "the agent link needs the agent's client certificate; enroll first with `sonde-agent enroll`",
        );
    };
    let refuse = |hub: SharedHub, agent: Option<String>, reason: String| async move {
        tracing::warn!(remote = %info.remote, %reason, "refused an agent connection");
        let mut entry = NewEntry::new("hub", AuditAction::ConnectionRefused, "refused")
            .detail("remote_addr", info.remote.to_string())
            .detail("reason", reason.clone());
        if let Some(a) = agent {
            entry = entry.agent(a);
        }
        hub.audit(entry).await;
        error(StatusCode::FORBIDDEN, "refused", reason)
    };
    let Some(agent_id) = crate::ca::common_name(&cert) else {
        return refuse(hub, None, "client certificate has no agent id".into()).await;
    };
    let Some(agent) = hub.fleet.get(&agent_id).map(|live| live.agent()) else {
        return refuse(
            hub,
            None,
            format!("certificate names unknown agent {agent_id:?}"),
        )
        .await;
    };
    if agent.revoked_at_ms.is_some() {
        return refuse(
            hub,
            Some(agent.id.clone()),
            format!("agent {} is revoked", agent.name),
        )
        .await;
    }
    if Digest::of(&cert).to_hex() != agent.cert_sha256 {
        return refuse(
            hub,
            Some(agent.id.clone()),
            format!(
                "agent {} presented a certificate that is not its current one",
                agent.name
            ),
        )
        .await;
    }
    let max = hub.config.agents.max_frame_bytes;
    // The session is tracked too (shutdown waits for its close entry).
    let tracked = hub.tasks.token();
    // Small buffers: an idle agent link costs little memory, and a large
    // frame still fits (buffers grow as needed up to `max`).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(LINK_BUFFER_BYTES)
        .write_buffer_size(LINK_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            crate::link::session::run(hub, socket, agent, info.remote).await
        })
}
