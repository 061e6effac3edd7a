//! One connected agent.
//!
//! 1. The hub sends `hub.challenge` (a fresh nonce); the first frame back
//!    must be a verified `agent.hello` from the agent named in the client
//!    certificate, within 10 s, answering that challenge and carrying the
//!    agent's own nonce. Both nonces make the session binding every later
//!    frame is signed for, both ways: a hello or any frame captured on
//!    another connection — before a restart too — never verifies here.
//! 2. Its attestation is compared with the enrollment baseline: a change is
//!    recorded as drift and, by default, quarantines the agent.
//! 3. The hub answers `hub.ack` (grants, quarantine state) and registers the
//!    session, replacing (and closing) an older one for the same agent.
//! 4. Then: heartbeats both ways, probe requests out, replies in. Every
//!    inbound frame is verified (signature, sender, time window, sequence,
//!    replay) before it is looked at; rejected frames are audited, reported
//!    to the agent, and dropped. Too many rejections close the connection.

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::envelope::{
    self, EnvelopeSigner, Kind, MessageId, Nonce, PeerVerifier, SessionBinding, VerifyPolicy,
};
use sonde_protocol::messages::*;
use sonde_protocol::time::now_ms;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use super::registry::{Outbound, ProbeReply, SessionHandle};
use crate::hub::SharedHub;
use crate::store::{Agent, IssuedCert};

/// Rejected frames audited per connection (the rest are counted).
const MAX_AUDITED_REJECTIONS: u32 = 20;
/// Rejected frames after which the connection is closed.
const MAX_REJECTIONS: u32 = 100;

fn actor(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

/// Runs a session until the agent leaves, is revoked, or the hub stops.
pub async fn run(hub: SharedHub, socket: WebSocket, agent: Arc<Agent>, remote: SocketAddr) {
    let conn_id = hub.registry.next_conn_id();
    let reason = match serve(&hub, socket, &agent, remote, conn_id).await {
        Ok(reason) => reason,
        Err(reason) => reason,
    };
    hub.registry.remove(&agent.id, conn_id);
    tracing::info!(agent = %agent.name, %remote, %reason, "agent disconnected");
    hub.audit(
        NewEntry::new(actor(&agent.id), AuditAction::ConnectionClosed, "ok")
            .agent(agent.id.clone())
            .detail("remote_addr", remote.to_string())
            .detail("reason", reason),
    )
    .await;
}

struct Link {
    socket: WebSocket,
    signer: EnvelopeSigner,
}

impl Link {
    async fn send<P: serde::Serialize>(
        &mut self,
        kind: Kind,
        payload: &P,
    ) -> Result<MessageId, String> {
        let (id, frame) = self
            .signer
            .seal(kind, payload)
            .map_err(|e| format!("encoding {kind}: {e}"))?;
        self.socket
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|e| format!("sending {kind}: {e}"))?;
        Ok(id)
    }
}

/// What the handshake leaves to the session loop.
struct Established {
    session: SessionBinding,
    rx: mpsc::Receiver<Outbound>,
    cancel: tokio_util::sync::CancellationToken,
    heartbeat: Duration,
}

/// Steps 1–3: challenge and hello, attestation, then record, ack and
/// register. A function of its own so that the hello (its frame, the
/// decoded envelope and the typed hello with the agent's whole catalog,
/// ~0.25 MiB together) is dropped before the loop instead of living as
/// long as the session (measured with heaptrack: it was most of a
/// connected agent's cost to the hub).
async fn handshake(
    hub: &SharedHub,
    agent: &Agent,
    remote: SocketAddr,
    conn_id: u64,
    link: &mut Link,
    verifier: &std::sync::Mutex<PeerVerifier>,
) -> Result<Established, String> {
    // 1. Challenge, then hello.
    let challenge = Nonce::random();
    link.send(
        Kind::HubChallenge,
        &HubChallenge {
            nonce: challenge.to_hex(),
        },
    )
    .await?;
    let first = tokio::time::timeout(Duration::from_secs(10), link.socket.next())
        .await
        .map_err(|_| "no hello within 10 s".to_owned())?;
    let frame = match first {
        Some(Ok(Message::Binary(b))) => b,
        Some(Ok(other)) => return Err(format!("expected a binary hello frame, got {other:?}")),
        Some(Err(e)) => return Err(format!("reading hello: {e}")),
        None => return Err("closed before hello".into()),
    };
    // The binding needs the agent's nonce, which the hello carries: read it
    // from the (not yet trusted) frame, then verify the frame against it.
    let session = hello_session(&frame, &challenge, hub.config.agents.max_frame_bytes);
    let verified = match &session {
        Ok(session) => verifier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .verify_in(&frame, now_ms(), Some(session)),
        Err(e) => Err(e.clone()),
    };
    let env = match verified {
        Ok(env) => env,
        Err(e) => {
            audit_rejection(hub, agent, remote, &frame, &e).await;
            let _ = link
                .send(
                    Kind::HubReject,
                    &HubReject {
                        code: e.code().into(),
                        message: e.to_string(),
                    },
                )
                .await;
            return Err(format!("hello rejected: {e}"));
        }
    };
    let session = session.map_err(|e| e.to_string())?;
    link.signer.bind(session);
    if env.kind != Kind::AgentHello {
        return Err(format!(
            "first message was {} instead of agent.hello",
            env.kind
        ));
    }
    let hello: AgentHello = env.payload_as().map_err(|e| e.to_string())?;
    if hello.agent_id != agent.id {
        let msg = format!(
            "hello names agent {:?} but the certificate names {:?}",
            hello.agent_id, agent.id
        );
        let _ = link
            .send(
                Kind::HubReject,
                &HubReject {
                    code: "identity_mismatch".into(),
                    message: msg.clone(),
                },
            )
            .await;
        return Err(msg);
    }

    // 2. Attestation.
    let (quarantined, quarantine_reason) = check_attestation(hub, agent, &hello).await;

    // 3. Record (with the `connection.accepted` entry), ack, register.
    let grants = hub
        .fleet
        .connected(&agent.id, &hello, remote, &session.to_hex(), quarantined)
        .await
        .map_err(|e| e.to_string())?;
    let heartbeat = Duration::from_secs(hub.config.agents.heartbeat_interval_s);
    link.send(
        Kind::HubAck,
        &HubAck {
            quarantined,
            quarantine_reason: quarantine_reason.clone(),
            grants,
            heartbeat_interval_ms: heartbeat.as_millis() as u64,
        },
    )
    .await?;
    let (tx, rx) = mpsc::channel::<Outbound>(256);
    let cancel = hub.shutdown.child_token();
    if let Some(old) = hub.registry.insert(
        &agent.id,
        SessionHandle {
            conn_id,
            remote_addr: remote,
            tx,
            cancel: cancel.clone(),
        },
    ) {
        old.cancel.cancel();
        hub.audit(
            NewEntry::new(actor(&agent.id), AuditAction::ConnectionReplaced, "ok")
                .agent(agent.id.clone())
                .detail("old_remote_addr", old.remote_addr.to_string())
                .detail("new_remote_addr", remote.to_string()),
        )
        .await;
    }
    tracing::info!(agent = %agent.name, %remote, quarantined, "agent connected");

    Ok(Established {
        session,
        rx,
        cancel,
        heartbeat,
    })
}

async fn serve(
    hub: &SharedHub,
    socket: WebSocket,
    agent: &Agent,
    remote: SocketAddr,
    conn_id: u64,
) -> Result<String, String> {
    let key = sonde_protocol::keys::decode_public_key(&agent.signing_key)
        .map_err(|e| format!("stored agent key: {e}"))?;
    let policy = VerifyPolicy {
        max_frame_bytes: hub.config.agents.max_frame_bytes,
        max_skew_ms: hub.config.agents.max_clock_skew_s.saturating_mul(1000),
    };
    let verifier = hub
        .registry
        .verifier(&agent.id, || PeerVerifier::new(&agent.id, key, policy));
    verifier
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .new_connection();
    let signer =
        EnvelopeSigner::new(&hub.hub_id, (*hub.signing_key).clone()).map_err(|e| e.to_string())?;
    let mut link = Link { socket, signer };

    let Established {
        session,
        mut rx,
        cancel,
        heartbeat,
    } = handshake(hub, agent, remote, conn_id, &mut link, &verifier).await?;

    // 4. The loop.
    let mut pending: HashMap<String, (oneshot::Sender<ProbeReply>, MessageId)> = HashMap::new();
    let mut rejections = 0u32;
    let mut last_inbound = Instant::now();
    let offline_after = Duration::from_secs(hub.config.agents.offline_after_s);
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    let reason = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                if hub.shutdown.is_cancelled() {
                    let _ = link.send(Kind::HubClosing, &HubClosing { reason: "the hub is shutting down".into() }).await;
                }
                let _ = link.socket.send(Message::Close(None)).await;
                break if hub.shutdown.is_cancelled() { "hub shutting down" } else { "closed by the hub (revoked or replaced)" }.to_owned();
            }
            _ = ticker.tick() => {
                if last_inbound.elapsed() > offline_after {
                    break format!("no message for {}s (missed heartbeats)", offline_after.as_secs());
                }
                if let Err(e) = link.send(Kind::Heartbeat, &Heartbeat { audit_head: None }).await {
                    break e;
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { break "session channel closed".into() };
                match out {
                    Outbound::Probe { request, reply } => {
                        let request_id = request.request_id.clone();
                        match link.send(Kind::ProbeRequest, &request).await {
                            Ok(msg_id) => { pending.insert(request_id, (reply, msg_id)); }
                            Err(e) => {
                                let _ = reply.send(ProbeReply::Disconnected(e.clone()));
                                break e;
                            }
                        }
                    }
                    Outbound::Grants(update) => {
                        if let Err(e) = link.send(Kind::GrantsUpdate, &update).await {
                            break e;
                        }
                    }
                    Outbound::Cancel(cancel) => {
                        // The reply, if one still comes, finds its pending
                        // entry and goes to a caller that no longer waits.
                        if let Err(e) = link.send(Kind::ProbeCancel, &cancel).await {
                            break e;
                        }
                    }
                }
            }
            msg = link.socket.next() => {
                let frame = match msg {
                    None => break "agent closed the connection".into(),
                    Some(Err(e)) => break format!("connection error: {e}"),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) => break "agent closed the connection".into(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(_))) => {
                        // A bad frame like any other: counted, audited within
                        // the limit, and the link closes at the limit.
                        rejections += 1;
                        let e = sonde_protocol::VerifyError::Malformed("text frame on a binary link".into());
                        if rejections <= MAX_AUDITED_REJECTIONS { audit_rejection(hub, agent, remote, &[], &e).await; }
                        if rejections >= MAX_REJECTIONS {
                            break format!("{rejections} invalid frames");
                        }
                        continue;
                    }
                };
                last_inbound = Instant::now();
                let verified = verifier.lock().unwrap_or_else(|p| p.into_inner()).verify_in(&frame, now_ms(), Some(&session));
                let env = match verified {
                    Ok(env) => env,
                    Err(e) => {
                        rejections += 1;
                        if rejections <= MAX_AUDITED_REJECTIONS {
                            audit_rejection(hub, agent, remote, &frame, &e).await;
                            let report = EnvelopeRejected {
                                code: e.code().into(),
                                message: e.to_string(),
                                message_id: envelope::decode(&frame, usize::MAX).ok().map(|d| d.envelope.id.to_hex()),
                            };
                            let _ = link.send(Kind::EnvelopeRejected, &report).await;
                        }
                        if rejections >= MAX_REJECTIONS {
                            break format!("{rejections} invalid frames");
                        }
                        continue;
                    }
                };
                if let Some((kind, payload)) = handle_inbound(hub, agent, env, &mut pending).await
                    && let Err(e) = link.send(kind, &payload).await
                {
                    break e;
                }
            }
        }
    };
    for (_, (reply, _)) in pending.drain() {
        let _ = reply.send(ProbeReply::Disconnected(reason.clone()));
    }
    if rejections > MAX_AUDITED_REJECTIONS {
        hub.audit(
            NewEntry::new(actor(&agent.id), AuditAction::EnvelopeRejected, "refused")
                .agent(agent.id.clone())
                .detail("count_not_audited", rejections - MAX_AUDITED_REJECTIONS),
        )
        .await;
    }
    Ok(reason)
}

/// The session binding a hello frame claims: it must answer `challenge`
/// and carry a nonce of its own. Nothing here is trusted until the frame's
/// signature verifies against the binding.
fn hello_session(
    frame: &[u8],
    challenge: &Nonce,
    max_frame_bytes: usize,
) -> Result<SessionBinding, sonde_protocol::VerifyError> {
    use sonde_protocol::VerifyError::Malformed;
    let decoded = envelope::decode(frame, max_frame_bytes)?;
    let payload = &decoded.envelope.payload;
    let field = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
    if decoded.envelope.kind != Kind::AgentHello {
        return Err(Malformed(format!(
            "the first message was {} instead of agent.hello",
            decoded.envelope.kind
        )));
    }
    let answered = field("challenge")
        .and_then(Nonce::from_hex)
        .ok_or_else(|| {
            Malformed(
                "the hello answers no challenge (an agent older than this hub? upgrade it)".into(),
            )
        })?;
    if answered != *challenge {
        return Err(Malformed(
            "the hello answers another connection's challenge (replayed or stale)".into(),
        ));
    }
    let nonce = field("nonce")
        .and_then(Nonce::from_hex)
        .ok_or_else(|| Malformed("the hello carries no nonce of its own".into()))?;
    Ok(SessionBinding::new(challenge, &nonce))
}

async fn handle_inbound(
    hub: &SharedHub,
    agent: &Agent,
    env: sonde_protocol::Envelope,
    pending: &mut HashMap<String, (oneshot::Sender<ProbeReply>, MessageId)>,
) -> Option<(Kind, serde_json::Value)> {
    let agent_id = agent.id.clone();
    match env.kind {
        Kind::Heartbeat => {
            // In memory; persisted with the next liveness batch.
            let head = env
                .payload_as::<Heartbeat>()
                .ok()
                .and_then(|h| h.audit_head);
            hub.fleet.heartbeat(&agent_id, head);
        }
        Kind::ProbeResponse => match env.payload_as::<ProbeResponse>() {
            Ok(r) => match pending.remove(&r.request_id) {
                Some((reply, _)) => {
                    let _ = reply.send(ProbeReply::Response(r));
                }
                None => {
                    tracing::warn!(agent = %agent.name, request = %r.request_id, "reply to an unknown request")
                }
            },
            Err(e) => tracing::warn!(agent = %agent.name, error = %e, "unreadable probe.response"),
        },
        Kind::ProbeError => match env.payload_as::<ProbeFailure>() {
            Ok(f) => match pending.remove(&f.request_id) {
                Some((reply, _)) => {
                    if let Err(ProbeReply::Failure(f)) = reply.send(ProbeReply::Failure(f))
                        && f.code == ProbeErrorCode::Cancelled
                    {
                        // The caller's call is already audited (`cancelled`);
                        // this records that the agent did stop it.
                        hub.audit(
                            NewEntry::new(
                                format!("agent:{}", agent.name),
                                AuditAction::ProbeStopped,
                                "ok",
                            )
                            .agent(agent_id.clone())
                            .probe(f.probe.clone())
                            .detail("request_id", f.request_id.clone())
                            .detail("message", f.message.clone())
                            .detail(
                                "agent_audit_head",
                                serde_json::to_value(f.audit_head).unwrap_or_default(),
                            ),
                        )
                        .await;
                    }
                }
                None => {
                    tracing::warn!(agent = %agent.name, request = %f.request_id, "error for an unknown request")
                }
            },
            Err(e) => tracing::warn!(agent = %agent.name, error = %e, "unreadable probe.error"),
        },
        Kind::AgentStatus => {
            if let Ok(status) = env.payload_as::<AgentStatus>()
                && let Err(e) = hub
                    .fleet
                    .packs_reported(&agent_id, status.packs, status.audit_head)
                    .await
            {
                tracing::error!(agent = %agent.name, error = %e, "could not record the agent's packs");
            }
        }
        Kind::CertRenew => {
            let request = env.payload_as::<CertRenew>().ok()?;
            return renew_certificate(hub, agent, &request.csr_pem).await;
        }
        Kind::EnvelopeRejected => {
            let Ok(report) = env.payload_as::<EnvelopeRejected>() else {
                return None;
            };
            hub.audit(
                NewEntry::new(
                    actor(&agent.id),
                    AuditAction::EnvelopeRejectedByAgent,
                    "refused",
                )
                .agent(agent.id.clone())
                .detail("code", report.code.clone())
                .detail("message", report.message.clone())
                .detail("message_id", report.message_id.clone().unwrap_or_default()),
            )
            .await;
            if let Some(msg_id) = &report.message_id {
                let request = pending
                    .iter()
                    .find(|(_, (_, id))| &id.to_hex() == msg_id)
                    .map(|(r, _)| r.clone());
                if let Some((reply, _)) = request.and_then(|r| pending.remove(&r)) {
                    let _ = reply.send(ProbeReply::Rejected {
                        code: report.code,
                        message: report.message,
                    });
                }
            }
        }
        other => {
            tracing::warn!(agent = %agent.name, kind = %other, "unexpected message kind from agent")
        }
    };
    None
}

/// Issues a fresh client certificate for the agent's new key.
async fn renew_certificate(
    hub: &SharedHub,
    agent: &Agent,
    csr_pem: &str,
) -> Option<(Kind, serde_json::Value)> {
    let current = hub.fleet.get(&agent.id)?.agent();
    let issued_at = current.cert_expires_ms - crate::ca::AGENT_CERT_DAYS * 86_400_000;
    let min_interval_ms = i64::try_from(hub.config.agents.min_cert_renewal_interval_s)
        .unwrap_or(i64::MAX / 1000)
        * 1000;
    if now_ms() - issued_at < min_interval_ms {
        hub.audit(
            NewEntry::new(
                actor(&agent.id),
                AuditAction::CertificateRenewalRefused,
                "refused",
            )
            .agent(agent.id.clone())
            .detail("reason", "renewed less than an hour ago"),
        )
        .await;
        return None;
    }
    let (cert_pem, digest, expires) = match hub.ca.issue_agent(csr_pem, &agent.id) {
        Ok(c) => c,
        Err(e) => {
            hub.audit(
                NewEntry::new(
                    actor(&agent.id),
                    AuditAction::CertificateRenewalRefused,
                    "refused",
                )
                .agent(agent.id.clone())
                .detail("reason", e.to_string()),
            )
            .await;
            return None;
        }
    };
    let cert = IssuedCert {
        pem: cert_pem.clone(),
        sha256: digest,
        expires_ms: expires,
    };
    if let Err(e) = hub.fleet.certificate_renewed(&agent.id, cert).await {
        tracing::error!(error = %e, "could not store a renewed certificate");
        return None;
    }
    tracing::info!(agent = %agent.name, "renewed the agent's certificate");
    serde_json::to_value(CertIssued {
        cert_pem,
        expires_at_ms: expires,
    })
    .ok()
    .map(|v| (Kind::CertIssued, v))
}

async fn audit_rejection(
    hub: &SharedHub,
    agent: &Agent,
    remote: SocketAddr,
    frame: &[u8],
    e: &sonde_protocol::VerifyError,
) {
    tracing::warn!(agent = %agent.name, %remote, error = %e, "rejected a frame from an agent");
    let kind = envelope::decode(frame, usize::MAX)
        .ok()
        .map(|d| d.envelope.kind.to_string())
        .unwrap_or_default();
    hub.audit(
        NewEntry::new(actor(&agent.id), AuditAction::EnvelopeRejected, "refused")
            .agent(agent.id.clone())
            .detail("code", e.code())
            .detail("reason", e.to_string())
            .detail("kind", kind)
            .detail("remote_addr", remote.to_string()),
    )
    .await;
}

/// Compares the hello's attestation with the baseline; records drift and
/// quarantines when they differ. Returns the quarantine state.
async fn check_attestation(
    hub: &SharedHub,
    agent: &Agent,
    hello: &AgentHello,
) -> (bool, Option<String>) {
    let current = hello.attestation.clone();
    if current.fingerprint() == agent.baseline.fingerprint() {
        return (agent.quarantined, agent.quarantine_reason.clone());
    }
    let changes = current.changes_from(&agent.baseline);
    let fields: Vec<String> = changes.iter().map(|c| c.field.clone()).collect();
    let reason = format!(
        "attestation drift ({}); accept the new baseline (`sonde-hub agents accept {}` or the console) or revoke the agent",
        fields.join(", "),
        agent.name
    );
    let quarantine = hub.config.agents.quarantine_on_drift;
    let drift = hub
        .fleet
        .drift(
            &agent.id,
            current,
            serde_json::to_value(&changes).unwrap_or_default(),
            quarantine.then(|| reason.clone()),
        )
        .await;
    match drift {
        Ok(_) => tracing::warn!(agent = %agent.name, changes = ?fields, "attestation drift"),
        Err(e) => tracing::error!(error = %e, "could not record attestation drift"),
    }
    if quarantine {
        (true, Some(reason))
    } else {
        (agent.quarantined, agent.quarantine_reason.clone())
    }
}
