//! The agent's link to its hub: outbound only, mutual TLS, WebSocket.
//!
//! Connects, waits for the hub's `hub.challenge`, answers with a hello
//! (identity + attestation + packs + audit head) that carries the challenge
//! and the agent's own fresh nonce, and waits for `hub.ack`. From the hello
//! on, every frame both ways is signed for this connection's session
//! binding (derived from both nonces), so nothing from an earlier
//! connection is ever valid on this one. Then it serves probe requests, heartbeats, grant
//! updates, until the link drops; then it reconnects with exponential
//! backoff and jitter (1 s doubling to a 60 s cap; a link that stayed up a
//! minute resets it), so a restarted hub is found again and a dead one is
//! never flooded. Every frame from the hub is verified before it is looked
//! at (hub key pinned at enrollment, time window, sequence, replay); a
//! rejected frame is recorded in the local audit chain and reported back.

use futures_util::{SinkExt, StreamExt};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::envelope::{
    self, EnvelopeSigner, Kind, Nonce, PeerVerifier, SessionBinding, VerifyPolicy,
};
use sonde_protocol::messages::*;
use sonde_protocol::time::now_ms;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::runtime::{Execution, Runtime};

/// Largest frame on the link.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Allowed clock difference with the hub.
pub const MAX_SKEW_MS: i64 = 60_000;
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Exponential backoff with jitter.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// The next delay: a random point in [d/2, d], then d doubles (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        let mut b = [0u8; 2];
        let _ = sonde_protocol::keys::random_bytes(&mut b);
        let frac = u16::from_le_bytes(b) as f64 / u16::MAX as f64;
        d.mul_f64(0.5 + 0.5 * frac)
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// How a session ended.
#[derive(Debug)]
enum End {
    Shutdown,
    HubClosing,
    Lost(String),
}

/// Runs the link until `shutdown`.
pub async fn run(runtime: Arc<Runtime>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let hub = runtime.hub.clone().ok_or_else(|| {
        anyhow::anyhow!("this agent is not enrolled; run `sonde-agent enroll` first")
    })?;
    let hub_key = runtime
        .hub_key
        .ok_or_else(|| anyhow::anyhow!("hub.json has no hub key"))?;
    let address = runtime
        .config
        .hub
        .clone()
        .unwrap_or_else(|| hub.address.clone());
    let mut verifier = PeerVerifier::new(
        &hub.hub_id,
        hub_key,
        VerifyPolicy {
            max_frame_bytes: MAX_FRAME_BYTES,
            max_skew_ms: MAX_SKEW_MS,
        },
    );
    let mut backoff = Backoff::default();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let started = Instant::now();
        verifier.new_connection();
        // Rebuilt each time: a renewal may have replaced the certificate.
        let end = match crate::tls::link_config(&runtime.data) {
            Ok(tls) => session(&runtime, Arc::new(tls), &address, &mut verifier, &shutdown).await,
            Err(e) => Err(e),
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        match end {
            Ok(End::Shutdown) => break,
            Ok(End::HubClosing) => {
                tracing::info!("the hub is shutting down; will reconnect");
                backoff.reset();
            }
            Ok(End::Lost(reason)) => tracing::warn!(%reason, "lost the hub"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), hub = %address, "cannot reach the hub")
            }
        }
        let delay = backoff.next_delay();
        tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    if let Err(e) = runtime.audit.checkpoint() {
        tracing::error!(error = %e, "could not write the final audit checkpoint");
    }
    Ok(())
}

async fn session(
    runtime: &Arc<Runtime>,
    tls: Arc<rustls::ClientConfig>,
    address: &str,
    verifier: &mut PeerVerifier,
    shutdown: &CancellationToken,
) -> anyhow::Result<End> {
    let stream = crate::tls::connect(tls, address).await?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (mut ws, _) = match tokio_tungstenite::client_async_with_config(
        format!("wss://{address}/v1/agent"),
        stream,
        Some(ws_config),
    )
    .await
    {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let message = serde_json::from_str::<ErrorBody>(&body)
                .map(|e| e.message)
                .unwrap_or(body);
            anyhow::bail!(
                "the hub refused this agent (HTTP {}): {message}",
                response.status()
            );
        }
        Err(e) => anyhow::bail!("WebSocket handshake failed: {e}"),
    };
    let agent_id = runtime.agent_id();
    let mut signer = EnvelopeSigner::new(&agent_id, runtime.signing_key.clone())?;

    // The challenge: the hub's only unbound frame.
    let frame = read_first(&mut ws, "the hub's challenge").await?;
    let env = match verifier.verify(&frame, now_ms()) {
        Ok(env) => env,
        Err(e) => {
            audit_rejection(runtime, &frame, &e);
            anyhow::bail!("the hub's challenge failed verification: {e}");
        }
    };
    let challenge = match env.kind {
        Kind::HubChallenge => {
            let c: HubChallenge = env.payload_as()?;
            Nonce::from_hex(&c.nonce)
                .ok_or_else(|| anyhow::anyhow!("the hub's challenge is not 32 bytes of hex"))?
        }
        other => anyhow::bail!(
            "expected hub.challenge, got {other} (is the hub older than this agent? upgrade it)"
        ),
    };
    let nonce = Nonce::random();
    let session = SessionBinding::new(&challenge, &nonce);
    signer.bind(session);
    let hello = runtime.hello(&challenge, &nonce)?;
    let (_, frame) = signer.seal(Kind::AgentHello, &hello)?;
    ws.send(Message::Binary(frame.into())).await?;

    // The ack.
    let frame = read_first(&mut ws, "the hub's answer to hello").await?;
    let env = match verifier.verify_in(&frame, now_ms(), Some(&session)) {
        Ok(env) => env,
        Err(e) => {
            audit_rejection(runtime, &frame, &e);
            anyhow::bail!("the hub's answer failed verification: {e}");
        }
    };
    let heartbeat = match env.kind {
        Kind::HubAck => {
            let ack: HubAck = env.payload_as()?;
            runtime.set_quarantined(ack.quarantined);
            if ack.quarantined {
                tracing::warn!(reason = ?ack.quarantine_reason, "the hub has quarantined this agent: no probes will run until an operator decides");
            }
            apply_grants(runtime, ack.grants);
            Duration::from_millis(ack.heartbeat_interval_ms.clamp(1000, 300_000))
        }
        Kind::HubReject => {
            let r: HubReject = env.payload_as()?;
            anyhow::bail!("the hub rejected the hello ({}): {}", r.code, r.message);
        }
        other => anyhow::bail!("expected hub.ack, got {other}"),
    };
    tracing::info!(hub = %address, "connected to the hub");
    let reports = runtime.pack_reports();
    if reports != hello.packs {
        let (_, frame) = signer.seal(
            Kind::AgentStatus,
            &AgentStatus {
                packs: reports,
                audit_head: runtime.audit.head()?,
            },
        )?;
        ws.send(Message::Binary(frame.into())).await?;
    }

    // Renew the certificate over this link when it is close to expiry.
    let mut renewal: Option<rcgen::KeyPair> = None;
    let (_, expires_ms) = crate::tls::current_cert(&runtime.data)?;
    let renew_before = i64::from(runtime.config.renew_cert_days_before_expiry) * 86_400_000;
    if expires_ms - now_ms() < renew_before {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, agent_id.clone());
        let csr_pem = params.serialize_request(&key)?.pem()?;
        let (_, frame) = signer.seal(Kind::CertRenew, &CertRenew { csr_pem })?;
        ws.send(Message::Binary(frame.into())).await?;
        tracing::info!(
            expires_ms,
            "asked the hub to renew this agent's certificate"
        );
        renewal = Some(key);
    }

    let (out_tx, mut out_rx) = mpsc::channel::<(Kind, serde_json::Value)>(256);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    let mut last_inbound = Instant::now();
    let silent_after = heartbeat * 3;
    let mut rejections = 0u32;
    let end = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break End::Shutdown,
            _ = ticker.tick() => {
                if last_inbound.elapsed() > silent_after {
                    break End::Lost(format!("no message from the hub for {}s", silent_after.as_secs()));
                }
                let head = runtime.audit.head().ok();
                let (_, frame) = signer.seal(Kind::Heartbeat, &Heartbeat { audit_head: head })?;
                ws.send(Message::Binary(frame.into())).await?;
            }
            Some((kind, payload)) = out_rx.recv() => {
                let (_, frame) = signer.seal(kind, &payload)?;
                ws.send(Message::Binary(frame.into())).await?;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            msg = ws.next() => {
                let frame = match msg {
                    None => break End::Lost("the hub closed the connection".into()),
                    Some(Err(e)) => break End::Lost(format!("connection error: {e}")),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) => break End::Lost("the hub closed the connection".into()),
                    Some(Ok(Message::Text(_))) => {
                        // Not ours: counts as a bad frame like any other.
                        rejections += 1;
                        if rejections >= 100 {
                            break End::Lost("too many invalid frames from the hub".into());
                        }
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                last_inbound = Instant::now();
                let env = match verifier.verify_in(&frame, now_ms(), Some(&session)) {
                    Ok(env) => env,
                    Err(e) => {
                        rejections += 1;
                        audit_rejection(runtime, &frame, &e);
                        let report = EnvelopeRejected {
                            code: e.code().into(),
                            message: e.to_string(),
                            message_id: envelope::decode(&frame, usize::MAX).ok().map(|d| d.envelope.id.to_hex()),
                        };
                        let (_, frame) = signer.seal(Kind::EnvelopeRejected, &report)?;
                        ws.send(Message::Binary(frame.into())).await?;
                        if rejections >= 100 {
                            break End::Lost("too many invalid frames from the hub".into());
                        }
                        continue;
                    }
                };
                match env.kind {
                    Kind::ProbeRequest => {
                        let request: ProbeRequest = match env.payload_as() {
                            Ok(r) => r,
                            Err(e) => { tracing::warn!(error = %e, "unreadable probe.request"); continue; }
                        };
                        let (runtime, out) = (Arc::clone(runtime), out_tx.clone());
                        tasks.spawn(async move { serve_probe(runtime, request, out).await });
                    }
                    Kind::ProbeCancel => {
                        match env.payload_as::<ProbeCancel>() {
                            Ok(c) => {
                                let runtime = Arc::clone(runtime);
                                tasks.spawn(async move {
                                    runtime.cancel("hub", &c.request_id, &c.reason).await;
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "unreadable probe.cancel"),
                        }
                    }
                    Kind::GrantsUpdate => {
                        if let Ok(update) = env.payload_as::<GrantsUpdate>() {
                            apply_grants(runtime, update.grants);
                            let status = AgentStatus { packs: runtime.pack_reports(), audit_head: runtime.audit.head()? };
                            let (_, frame) = signer.seal(Kind::AgentStatus, &status)?;
                            ws.send(Message::Binary(frame.into())).await?;
                        }
                    }
                    Kind::CertIssued => {
                        match (env.payload_as::<CertIssued>(), renewal.take()) {
                            (Ok(issued), Some(key)) => store_renewed(runtime, &issued, &key),
                            _ => tracing::warn!("unexpected cert.issued from the hub"),
                        }
                    }
                    Kind::HubClosing => break End::HubClosing,
                    Kind::HubReject => {
                        let r: HubReject = env.payload_as()?;
                        break End::Lost(format!("the hub rejected this agent ({}): {}", r.code, r.message));
                    }
                    Kind::EnvelopeRejected => {
                        if let Ok(r) = env.payload_as::<EnvelopeRejected>() {
                            tracing::warn!(code = %r.code, message = %r.message, "the hub rejected a frame from this agent");
                        }
                    }
                    Kind::Heartbeat => {}
                    other => tracing::warn!(kind = %other, "unexpected message kind from the hub"),
                }
            }
        }
    };
    // Let in-flight probes finish and send their replies (briefly).
    if !tasks.is_empty() {
        let drain = async {
            loop {
                tokio::select! {
                    Some((kind, payload)) = out_rx.recv() => {
                        if let Ok((_, frame)) = signer.seal(kind, &payload) {
                            let _ = ws.send(Message::Binary(frame.into())).await;
                        }
                    }
                    r = tasks.join_next() => if r.is_none() { break },
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
    }
    let _ = ws.close(None).await;
    Ok(end)
}

/// The next binary frame, within 15 s (`what` names it in errors).
async fn read_first<S>(ws: &mut S, what: &str) -> anyhow::Result<bytes::Bytes>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let first = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .map_err(|_| anyhow::anyhow!("no {what} within 15 s"))?;
    match first {
        Some(Ok(Message::Binary(b))) => Ok(b),
        Some(Ok(other)) => anyhow::bail!("unexpected message instead of {what}: {other:?}"),
        Some(Err(e)) => anyhow::bail!("reading {what}: {e}"),
        None => anyhow::bail!("the hub closed the connection before {what}"),
    }
}

/// Stores a renewed certificate with its key (one atomic file); the next
/// connection uses it.
fn store_renewed(runtime: &Runtime, issued: &CertIssued, key: &rcgen::KeyPair) {
    if !crate::tls::cert_matches_key(&issued.cert_pem, key) {
        tracing::error!(
            "the renewed certificate does not match the key it was requested for; ignoring it"
        );
        return;
    }
    let pem = format!("{}{}", issued.cert_pem, key.serialize_pem());
    match crate::identity::replace_private(&runtime.data.identity(), pem.as_bytes()) {
        Ok(()) => {
            let _ = std::fs::remove_file(runtime.data.cert());
            let _ = std::fs::remove_file(runtime.data.tls_key());
            runtime.record_event(
                NewEntry::new("hub", AuditAction::CertificateRenewed, "ok")
                    .agent(runtime.agent_id())
                    .detail("expires_at_ms", issued.expires_at_ms),
            );
            tracing::info!(
                expires_ms = issued.expires_at_ms,
                "stored the renewed certificate"
            );
        }
        Err(e) => tracing::error!(error = %e, "could not store the renewed certificate"),
    }
}

fn apply_grants(runtime: &Runtime, grants: Vec<PackGrant>) {
    if let Err(e) = runtime.apply_grants(grants) {
        tracing::error!(error = %e, "refused a grants update from the hub");
        runtime.record_event(
            NewEntry::new("hub", AuditAction::GrantsRejected, "refused")
                .agent(runtime.agent_id())
                .detail("reason", e),
        );
    }
}

fn audit_rejection(runtime: &Runtime, frame: &[u8], e: &sonde_protocol::VerifyError) {
    tracing::warn!(error = %e, "rejected a frame from the hub");
    let kind = envelope::decode(frame, usize::MAX)
        .ok()
        .map(|d| d.envelope.kind.to_string())
        .unwrap_or_default();
    runtime.record_event(
        NewEntry::new("hub", AuditAction::EnvelopeRejected, "refused")
            .agent(runtime.agent_id())
            .detail("code", e.code())
            .detail("reason", e.to_string())
            .detail("kind", kind),
    );
}

async fn serve_probe(
    runtime: Arc<Runtime>,
    request: ProbeRequest,
    out: mpsc::Sender<(Kind, serde_json::Value)>,
) {
    let probe = request.descriptor.probe.as_str().to_owned();
    let timeout = Duration::from_millis(request.timeout_ms);
    let reply = match runtime
        .execute(
            &request.actor,
            &request.request_id,
            &request.descriptor,
            timeout,
        )
        .await
    {
        Execution::Ran {
            data,
            truncated,
            redactions,
            digest,
            duration_ms,
            head,
        } => (
            Kind::ProbeResponse,
            serde_json::to_value(ProbeResponse {
                request_id: request.request_id,
                probe,
                data,
                truncated,
                redactions,
                duration_ms,
                result_digest: digest,
                audit_head: head,
            }),
        ),
        Execution::Failed {
            code,
            message,
            duration_ms,
            head,
        } => (
            Kind::ProbeError,
            serde_json::to_value(ProbeFailure {
                request_id: request.request_id,
                probe,
                code,
                message,
                duration_ms,
                audit_head: head,
            }),
        ),
    };
    match reply {
        (kind, Ok(value)) => {
            let _ = out.send((kind, value)).await;
        }
        (_, Err(e)) => tracing::error!(error = %e, "could not encode a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_to_the_cap() {
        let mut b = Backoff::default();
        let mut last_max = Duration::ZERO;
        for i in 0..10 {
            let d = b.next_delay();
            let nominal = (BACKOFF_START * 2u32.pow(i)).min(BACKOFF_CAP);
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            last_max = last_max.max(d);
        }
        assert!(last_max <= BACKOFF_CAP);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_START);
    }
}
