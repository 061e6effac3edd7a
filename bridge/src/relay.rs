//! The relay: newline-delimited JSON-RPC on stdio ⇄ Streamable HTTP POSTs
//! to the hub (one connection per message, so a long call never holds up
//! another message).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::config::{Settings, Target};
use crate::sse::SseReader;

/// Largest message either way (a 16 MiB probe result, base64, with room).
pub const MAX_MESSAGE: usize = 64 << 20;
/// How long one call may take before the bridge gives up on it (the hub's
/// own probe timeouts are at most 10 minutes).
const CALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Why a message could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot connect to the hub at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS with the hub failed: {0}")]
    Tls(String),
    #[error("HTTP with the hub failed: {0}")]
    Http(String),
    #[error("the hub answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the hub's answer is not JSON-RPC: {0}")]
    Garbled(String),
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
}

/// The session with the hub, as the `initialize` exchange set it up.
#[derive(Debug, Default, Clone)]
struct Session {
    id: Option<String>,
    protocol_version: Option<String>,
    /// The client's `initialize` request, replayed if the hub forgot the
    /// session (a hub restart answers 404).
    initialize: Option<Value>,
}

/// A connection factory and the session's headers.
pub struct Hub {
    target: Target,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    key: String,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("target", &self.target)
            .field("tls", &self.tls.is_some())
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

type Out = mpsc::UnboundedSender<Value>;

impl Hub {
    pub fn new(settings: &Settings) -> Result<Self, RelayError> {
        let tls = match (settings.target.https, settings.pin) {
            (true, Some(pin)) => {
                let config =
                    crate::tls::client_config(pin).map_err(|e| RelayError::Tls(e.to_string()))?;
                let name = ServerName::try_from(settings.target.host.clone())
                    .map_err(|e| RelayError::Tls(format!("{:?}: {e}", settings.target.host)))?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
            (true, None) => return Err(RelayError::Tls("no CA pin".into())),
            (false, _) => None,
        };
        Ok(Hub {
            target: settings.target.clone(),
            tls,
            key: settings.key.clone(),
            session: Mutex::new(Session::default()),
        })
    }

    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One HTTP exchange on a fresh connection.
    async fn send(
        &self,
        method: Method,
        body: Option<Bytes>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, RelayError> {
        let addr = format!("{}:{}", self.target.host, self.target.port);
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((self.target.host.as_str(), self.target.port)),
        )
        .await
        .map_err(|_| RelayError::Connect {
            addr: addr.clone(),
            reason: "timed out".into(),
        })?
        .map_err(|e| RelayError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        let _ = tcp.set_nodelay(true);
        let session = self.session();
        let host = if self.target.host.contains(':') {
            format!("[{}]:{}", self.target.host, self.target.port)
        } else {
            addr.clone()
        };
        let mut request = Request::builder()
            .method(method)
            .uri(self.target.path.as_str())
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(
                header::USER_AGENT,
                concat!("sonde-mcp-bridge/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(id) = &session.id {
            request = request.header("mcp-session-id", id);
        }
        if let Some(v) = &session.protocol_version {
            request = request.header("mcp-protocol-version", v);
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| RelayError::Http(e.to_string()))?;
        macro_rules! exchange {
            ($io:expr) => {{
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new($io))
                    .await
                    .map_err(|e| RelayError::Http(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                tokio::time::timeout(CALL_TIMEOUT, sender.send_request(request))
                    .await
                    .map_err(|_| RelayError::Timeout(CALL_TIMEOUT))?
                    .map_err(|e| RelayError::Http(e.to_string()))
            }};
        }
        match &self.tls {
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    Duration::from_secs(15),
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| RelayError::Tls("the handshake timed out".into()))?
                .map_err(|e| RelayError::Tls(e.to_string()))?;
                exchange!(tls)
            }
            None => exchange!(tcp),
        }
    }

    /// POSTs one message and writes every message of the answer to `out`.
    /// Returns the answer's messages too (for `initialize`).
    async fn post(&self, message: &Value, out: &Out) -> Result<Vec<Value>, RelayError> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let mut response = self.send(Method::POST, Some(body.clone())).await?;
        if response.status() == StatusCode::NOT_FOUND && self.session().id.is_some() {
            // The hub no longer knows the session (it restarted): start a
            // new one with the client's own initialize, then retry once.
            tracing::warn!("the hub forgot the MCP session; starting a new one");
            self.reinitialize().await?;
            response = self.send(Method::POST, Some(body)).await?;
        }
        self.answer(response, out).await
    }

    /// POSTs without the session-recovery retry.
    async fn post_once(&self, message: &Value, out: &Out) -> Result<Vec<Value>, RelayError> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let response = self.send(Method::POST, Some(body)).await?;
        self.answer(response, out).await
    }

    /// Writes every message of an answer to `out`, and returns them.
    async fn answer(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
        out: &Out,
    ) -> Result<Vec<Value>, RelayError> {
        let status = response.status();
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session.lock().unwrap_or_else(|p| p.into_inner()).id = Some(id.to_owned());
        }
        if status == StatusCode::ACCEPTED {
            return Ok(Vec::new());
        }
        let mut messages = Vec::new();
        let mut body = response.into_body();
        if is_sse && status.is_success() {
            let mut reader = SseReader::new(MAX_MESSAGE);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| RelayError::Http(e.to_string()))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for event in reader
                    .feed(&data)
                    .map_err(|e| RelayError::Garbled(e.to_string()))?
                {
                    if event.is_empty() {
                        continue; // priming event
                    }
                    let v: Value = serde_json::from_slice(&event)
                        .map_err(|e| RelayError::Garbled(e.to_string()))?;
                    let _ = out.send(v.clone());
                    messages.push(v);
                }
            }
            return Ok(messages);
        }
        let bytes = http_body_util::Limited::new(body, MAX_MESSAGE)
            .collect()
            .await
            .map_err(|e| RelayError::Http(e.to_string()))?
            .to_bytes();
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        match parsed {
            // JSON-RPC (an answer, or the hub's JSON-RPC error for a bad message).
            Some(v) if v.get("jsonrpc").is_some() || v.is_array() => {
                for m in match v {
                    Value::Array(list) => list,
                    one => vec![one],
                } {
                    let _ = out.send(m.clone());
                    messages.push(m);
                }
                Ok(messages)
            }
            // The hub's own refusals: {"error": code, "message": …}.
            Some(v) if !status.is_success() => Err(RelayError::Status {
                status: status.as_u16(),
                message: format!(
                    "{} ({})",
                    v["message"].as_str().unwrap_or("no message"),
                    v["error"].as_str().unwrap_or("error")
                ),
            }),
            _ if !status.is_success() => Err(RelayError::Status {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
            }),
            _ => Err(RelayError::Garbled(format!(
                "{} bytes that are not JSON",
                bytes.len()
            ))),
        }
    }

    /// Replays the client's `initialize` (and `initialized`) for a new
    /// session; the answers are not shown to the client, which already has
    /// them.
    async fn reinitialize(&self) -> Result<(), RelayError> {
        let init = {
            let mut s = self.session.lock().unwrap_or_else(|p| p.into_inner());
            s.id = None;
            s.initialize.clone()
        };
        let Some(init) = init else {
            return Err(RelayError::Garbled("no initialize to replay".into()));
        };
        let (sink, _drop) = mpsc::unbounded_channel();
        self.post_once(&init, &sink).await?;
        self.post_once(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            &sink,
        )
        .await?;
        Ok(())
    }

    /// Ends the session (the hub cancels what is still running in it, and
    /// audits it so).
    pub async fn close(&self) {
        if self.session().id.is_some()
            && let Err(e) = self.send(Method::DELETE, None).await
        {
            tracing::debug!(error = %e, "could not end the MCP session");
        }
    }
}

/// A JSON-RPC error answer for request `id`.
fn error_answer(id: &Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Relays one client message; a request that cannot be relayed gets a
/// JSON-RPC error naming why (a notification's failure is logged).
async fn relay_one(hub: &Hub, message: Value, out: &Out) {
    let id = message
        .get("id")
        .cloned()
        .filter(|_| message.get("method").is_some());
    let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
    if is_initialize {
        hub.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .initialize = Some(message.clone());
    }
    match hub.post(&message, out).await {
        Ok(answers) => {
            if is_initialize
                && let Some(v) = answers
                    .iter()
                    .find_map(|a| a["result"]["protocolVersion"].as_str())
            {
                hub.session
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .protocol_version = Some(v.to_owned());
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "could not relay a message to the hub");
            if let Some(id) = id {
                let _ = out.send(error_answer(&id, -32603, format!("sonde-mcp-bridge: {e}")));
            }
        }
    }
}

/// Runs the relay over `input`/`output` until `input` ends.
pub async fn run<R, W>(hub: Arc<Hub>, mut input: R, mut output: W) -> anyhow::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, mut rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_MESSAGE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_MESSAGE {
            tracing::error!(
                "a message from the client is larger than {MAX_MESSAGE} bytes; dropped"
            );
            let _ = out.send(error_answer(
                &Value::Null,
                -32600,
                format!("message larger than {MAX_MESSAGE} bytes"),
            ));
            // Skip the rest of that line, a bounded piece at a time.
            let mut rest = Vec::new();
            let mut ended = line.ends_with(b"\n");
            while !ended {
                rest.clear();
                let n = (&mut input)
                    .take(1 << 20)
                    .read_until(b'\n', &mut rest)
                    .await?;
                ended = n == 0 || rest.ends_with(b"\n");
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(text.trim()) {
            Ok(v) => v,
            Err(e) => {
                let _ = out.send(error_answer(
                    &Value::Null,
                    -32700,
                    format!("Parse error: {e}"),
                ));
                continue;
            }
        };
        if message.get("method").and_then(Value::as_str) == Some("initialize") {
            // Everything else needs its session: wait for it.
            relay_one(&hub, message, &out).await;
        } else {
            let (hub, out) = (Arc::clone(&hub), out.clone());
            tasks.spawn(async move { relay_one(&hub, message, &out).await });
        }
        while tasks.try_join_next().is_some() {}
    }
    // The client is gone: end the session first, so the hub cancels (and
    // audits) what it still runs, then stop.
    hub.close().await;
    tasks.abort_all();
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(())
}

/// The bridge on this process's stdin and stdout.
pub async fn run_stdio(settings: Settings) -> anyhow::Result<()> {
    let hub = Arc::new(Hub::new(&settings)?);
    run(
        hub,
        tokio::io::BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
    )
    .await
}
