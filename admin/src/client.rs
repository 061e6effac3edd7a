//! Async client for the admin API over the hub's Unix socket.
//!
//! One HTTP/1.1 connection per request: the socket is local and cheap, and a
//! request that fails can never poison the next one.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

use crate::api::*;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "cannot reach the hub at {socket}: {reason} (is `sonde-hub serve` running with this data dir?)"
    )]
    Unreachable { socket: PathBuf, reason: String },
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the hub's answer could not be read: {0}")]
    Protocol(String),
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
}

impl AdminError {
    /// The hub was not reachable at all (as opposed to refusing the request).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            AdminError::Unreachable { .. } | AdminError::Timeout(_)
        )
    }
}

/// Talks to one hub's admin socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
    timeout: Duration,
}

fn path_segment(s: &str) -> String {
    // Names and ids are restricted to URL-safe characters by the hub, but
    // escape anyway so a bad name can never change the path.
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl AdminClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        AdminClient {
            socket: socket.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The client for the hub whose data dir is `dir`.
    pub fn for_data_dir(dir: &Path) -> Self {
        AdminClient::new(dir.join("admin.sock"))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, AdminError> {
        tokio::time::timeout(self.timeout, self.call_inner(method, path, body))
            .await
            .map_err(|_| AdminError::Timeout(self.timeout))?
    }

    async fn call_inner<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, AdminError> {
        let unreachable = |reason: String| AdminError::Unreachable {
            socket: self.socket.clone(),
            reason,
        };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| AdminError::Protocol(e.to_string()))?,
            None => Vec::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("http://hub{path}"))
            .header("host", "hub")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| AdminError::Protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| AdminError::Protocol(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            let err: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
                error: "http".into(),
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
            });
            return Err(AdminError::Api {
                status: status.as_u16(),
                code: err.error,
                message: err.message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| AdminError::Protocol(format!("{path}: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AdminError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, AdminError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn status(&self) -> Result<HubStatus, AdminError> {
        self.get("/v1/status").await
    }

    pub async fn agents(&self) -> Result<Vec<AgentSummary>, AdminError> {
        self.get("/v1/agents").await
    }

    pub async fn agent(&self, name: &str) -> Result<AgentDetail, AdminError> {
        self.get(&format!("/v1/agents/{}", path_segment(name)))
            .await
    }

    pub async fn revoke_agent(&self, name: &str) -> Result<AgentSummary, AdminError> {
        self.post(&format!("/v1/agents/{}/revoke", path_segment(name)), &())
            .await
    }

    pub async fn accept_baseline(&self, name: &str) -> Result<AgentSummary, AdminError> {
        self.post(
            &format!("/v1/agents/{}/accept-baseline", path_segment(name)),
            &(),
        )
        .await
    }

    /// Closes an agent's open drift events as "kept": the operator looked
    /// and the agent stays quarantined.
    pub async fn keep_quarantined(&self, name: &str) -> Result<AgentSummary, AdminError> {
        self.post(
            &format!("/v1/agents/{}/keep-quarantined", path_segment(name)),
            &(),
        )
        .await
    }

    pub async fn set_tags(
        &self,
        name: &str,
        tags: Vec<String>,
    ) -> Result<AgentSummary, AdminError> {
        self.post(
            &format!("/v1/agents/{}/tags", path_segment(name)),
            &TagsUpdate { tags },
        )
        .await
    }

    pub async fn decide_pack(
        &self,
        agent: &str,
        pack: &str,
        action: PackAction,
    ) -> Result<PermissionRequest, AdminError> {
        let path = format!(
            "/v1/agents/{}/packs/{}/{}",
            path_segment(agent),
            path_segment(pack),
            action.as_str()
        );
        self.post(&path, &()).await
    }

    pub async fn enrollments(&self, all: bool) -> Result<Vec<EnrollmentInfo>, AdminError> {
        self.get(&format!("/v1/enrollments?all={all}")).await
    }

    pub async fn approve_enrollment(&self, name: &str) -> Result<EnrollmentInfo, AdminError> {
        self.post(
            &format!("/v1/enrollments/{}/approve", path_segment(name)),
            &(),
        )
        .await
    }

    pub async fn deny_enrollment(&self, name: &str) -> Result<EnrollmentInfo, AdminError> {
        self.post(&format!("/v1/enrollments/{}/deny", path_segment(name)), &())
            .await
    }

    pub async fn permissions(&self, all: bool) -> Result<Vec<PermissionRequest>, AdminError> {
        self.get(&format!("/v1/permissions?all={all}")).await
    }

    pub async fn drift(&self, all: bool) -> Result<Vec<DriftEvent>, AdminError> {
        self.get(&format!("/v1/drift?all={all}")).await
    }

    /// Every quarantined agent (kept ones too) with its latest drift event.
    pub async fn quarantined(&self) -> Result<Vec<QuarantinedAgent>, AdminError> {
        self.get("/v1/quarantined").await
    }

    /// Probe calls, refusals and latency per minute over the last minutes.
    pub async fn metrics(&self, query: MetricsQuery) -> Result<FleetMetrics, AdminError> {
        match query.minutes {
            Some(m) => self.get(&format!("/v1/metrics?minutes={m}")).await,
            None => self.get("/v1/metrics").await,
        }
    }

    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, AdminError> {
        let mut params = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                params.push(format!("{k}={}", path_segment(&v)));
            }
        };
        push("before_seq", query.before_seq.map(|v| v.to_string()));
        push("limit", query.limit.map(|v| v.to_string()));
        push("agent", query.agent.clone());
        push("actor", query.actor.clone());
        push("probe", query.probe.clone());
        push("outcome", query.outcome.clone());
        push("action", query.action.clone());
        push("since_ms", query.since_ms.map(|v| v.to_string()));
        push("until_ms", query.until_ms.map(|v| v.to_string()));
        let qs = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        self.get(&format!("/v1/audit{qs}")).await
    }

    pub async fn audit_entry(&self, seq: u64) -> Result<AuditEntryDetail, AdminError> {
        self.get(&format!("/v1/audit/{seq}")).await
    }

    pub async fn audit_verify(&self) -> Result<AuditVerifyReport, AdminError> {
        self.post("/v1/audit/verify", &()).await
    }

    pub async fn keys(&self) -> Result<Vec<KeyInfo>, AdminError> {
        self.get("/v1/keys").await
    }

    pub async fn create_key(&self, request: &KeyCreate) -> Result<KeyCreated, AdminError> {
        self.post("/v1/keys", request).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<KeyInfo, AdminError> {
        self.post(&format!("/v1/keys/{}/revoke", path_segment(id)), &())
            .await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, AdminError> {
        self.get("/v1/tokens").await
    }

    pub async fn create_token(&self, request: &TokenCreate) -> Result<TokenCreated, AdminError> {
        self.post("/v1/tokens", request).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<TokenInfo, AdminError> {
        self.post(&format!("/v1/tokens/{}/revoke", path_segment(id)), &())
            .await
    }

    pub async fn oauth_requests(&self, all: bool) -> Result<Vec<OAuthRequestInfo>, AdminError> {
        self.get(&format!("/v1/oauth/requests?all={all}")).await
    }

    pub async fn approve_oauth(
        &self,
        id: &str,
        policy: &OAuthApprove,
    ) -> Result<OAuthRequestInfo, AdminError> {
        self.post(
            &format!("/v1/oauth/requests/{}/approve", path_segment(id)),
            policy,
        )
        .await
    }

    pub async fn deny_oauth(&self, id: &str) -> Result<OAuthRequestInfo, AdminError> {
        self.post(
            &format!("/v1/oauth/requests/{}/deny", path_segment(id)),
            &(),
        )
        .await
    }

    pub async fn integrations(&self) -> Result<Vec<IntegrationInfo>, AdminError> {
        self.get("/v1/integrations").await
    }

    pub async fn add_integration(
        &self,
        req: &IntegrationAdd,
    ) -> Result<IntegrationInfo, AdminError> {
        self.post("/v1/integrations", req).await
    }

    pub async fn integration_action(
        &self,
        name: &str,
        action: IntegrationAction,
    ) -> Result<IntegrationInfo, AdminError> {
        self.post(
            &format!("/v1/integrations/{}/{action}", path_segment(name)),
            &(),
        )
        .await
    }

    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClientInfo>, AdminError> {
        self.get("/v1/oauth/clients").await
    }

    pub async fn revoke_oauth_client(&self, id: &str) -> Result<OAuthClientInfo, AdminError> {
        self.post(
            &format!("/v1/oauth/clients/{}/revoke", path_segment(id)),
            &(),
        )
        .await
    }

    pub async fn set_integration_credential(
        &self,
        name: &str,
        req: &CredentialSet,
    ) -> Result<IntegrationInfo, AdminError> {
        self.post(
            &format!("/v1/integrations/{}/credential", path_segment(name)),
            req,
        )
        .await
    }

    pub async fn test_integration(&self, name: &str) -> Result<ProbeRunResult, AdminError> {
        self.post(
            &format!("/v1/integrations/{}/test", path_segment(name)),
            &(),
        )
        .await
    }

    pub async fn rotate_integration_key(&self) -> Result<KeyRotated, AdminError> {
        self.post("/v1/integrations/rotate-key", &()).await
    }

    pub async fn probe(&self, run: &ProbeRun) -> Result<ProbeRunResult, AdminError> {
        self.post("/v1/probe", run).await
    }
}

impl AdminClient {
    pub async fn paths(&self) -> Result<Vec<PathInfo>, AdminError> {
        self.get("/v1/paths").await
    }

    pub async fn path(&self, name: &str) -> Result<PathInfo, AdminError> {
        self.get(&format!("/v1/paths/{}", path_segment(name))).await
    }

    pub async fn define_path(&self, def: &PathDefinition) -> Result<PathDefined, AdminError> {
        self.post("/v1/paths", def).await
    }

    pub async fn remove_path(&self, name: &str) -> Result<PathInfo, AdminError> {
        self.post(&format!("/v1/paths/{}/remove", path_segment(name)), &())
            .await
    }

    /// Runs a path as the operator; the report as JSON.
    pub async fn run_path(&self, name: &str) -> Result<serde_json::Value, AdminError> {
        self.post(&format!("/v1/paths/{}/run", path_segment(name)), &())
            .await
    }

    pub async fn trending(&self, q: &TrendingQuery) -> Result<serde_json::Value, AdminError> {
        let mut query = Vec::new();
        for (k, v) in [
            ("window", &q.window),
            ("target", &q.target),
            ("probe", &q.probe),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", path_segment(v)));
            }
        }
        if let Some(l) = q.limit {
            query.push(format!("limit={l}"));
        }
        self.get(&format!("/v1/trending?{}", query.join("&"))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("nas-01.lan"), "nas-01.lan");
        assert_eq!(path_segment("a/../b c"), "a%2F..%2Fb%20c");
    }

    #[tokio::test]
    async fn unreachable_hub_is_named() {
        let err = AdminClient::new("/nonexistent/admin.sock")
            .status()
            .await
            .unwrap_err();
        assert!(err.is_unreachable());
        assert!(err.to_string().contains("/nonexistent/admin.sock"), "{err}");
    }
}
