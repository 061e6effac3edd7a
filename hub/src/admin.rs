//! The admin API on the Unix socket `<data dir>/admin.sock` (mode 0600).
//!
//! Routes and types are documented in `sonde_admin::api`. Whoever can open
//! the socket is an operator; the operator is named in audit entries after
//! the socket peer's Unix user (`operator:alice`).

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde::Deserialize;
use sonde_admin::api::*;
use sonde_protocol::{ProbeDescriptor, ProbeName};
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;
use tokio::net::UnixListener;

use crate::error::HubError;
use crate::hub::SharedHub;
use crate::{enroll, fleet, probe, store};

/// The socket peer, from `SO_PEERCRED`.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

impl Connected<IncomingStream<'_, UnixListener>> for Operator {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let name = stream
            .io()
            .peer_cred()
            .ok()
            .map(|c| crate::users::user_name(c.uid()).unwrap_or_else(|| format!("uid{}", c.uid())))
            .unwrap_or_else(|| "unknown".into());
        Operator(format!("operator:{name}"))
    }
}

/// An error as the admin API answers it.
#[derive(Debug)]
pub struct ApiError(HubError);

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        ApiError(e)
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError(HubError::Store(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "admin request failed");
        }
        (
            status,
            Json(ErrorBody {
                error: self.0.code().into(),
                message: self.0.to_string(),
            }),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Deserialize)]
struct AllQuery {
    #[serde(default)]
    all: bool,
}

pub fn router(hub: SharedHub) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/agents", get(agents))
        .route("/v1/agents/{name}", get(agent))
        .route("/v1/agents/{name}/revoke", post(revoke_agent))
        .route("/v1/agents/{name}/accept-baseline", post(accept_baseline))
        .route("/v1/agents/{name}/keep-quarantined", post(keep_quarantined))
        .route("/v1/agents/{name}/tags", post(set_tags))
        .route("/v1/agents/{name}/packs/{pack}/{action}", post(decide_pack))
        .route("/v1/enrollments", get(enrollments))
        .route("/v1/enrollments/{name}/approve", post(approve))
        .route("/v1/enrollments/{name}/deny", post(deny))
        .route("/v1/permissions", get(permissions))
        .route("/v1/drift", get(drift))
        .route("/v1/quarantined", get(quarantined))
        .route("/v1/metrics", get(metrics))
        .route("/v1/audit", get(audit_page))
        .route("/v1/audit/verify", post(audit_verify))
        .route("/v1/audit/{seq}", get(audit_entry))
        .route("/v1/keys", get(keys).post(create_key))
        .route("/v1/keys/{id}/revoke", post(revoke_key))
        .route("/v1/tokens", get(tokens).post(create_token))
        .route("/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/v1/probe", post(run_probe))
        .route("/v1/oauth/requests", get(oauth_requests))
        .route("/v1/oauth/requests/{id}/approve", post(oauth_approve))
        .route("/v1/oauth/requests/{id}/deny", post(oauth_deny))
        .route("/v1/oauth/clients", get(oauth_clients))
        .route("/v1/oauth/clients/{id}/revoke", post(oauth_revoke_client))
        .route("/v1/integrations", get(integrations).post(add_integration))
        .route("/v1/integrations/rotate-key", post(rotate_integration_key))
        .route(
            "/v1/integrations/{name}/credential",
            post(set_integration_credential),
        )
        .route("/v1/integrations/{name}/test", post(test_integration))
        .route("/v1/integrations/{name}/{action}", post(integration_action))
        .route("/v1/paths", get(paths).post(define_path))
        .route("/v1/paths/{name}", get(path))
        .route("/v1/paths/{name}/remove", post(remove_path))
        .route("/v1/paths/{name}/run", post(run_path))
        .route("/v1/trending", get(trending))
        .fallback(|| async {
            ApiError(HubError::NotFound(
                "no such admin API route; see the sonde_admin::api docs".into(),
            ))
        })
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(hub)
}

/// Binds the socket (0600, replacing a stale one) and serves until shutdown.
pub async fn serve(
    hub: SharedHub,
    draining: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let path = hub.data.admin_socket();
    if path.exists() {
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            anyhow::bail!(
                "another hub is already serving {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)
        .map_err(|e| anyhow::anyhow!("cannot bind the admin socket {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %path.display(), "admin API listening");
    let app = router(hub).into_make_service_with_connect_info::<Operator>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { draining.cancelled().await })
        .await?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn status(State(hub): State<SharedHub>) -> ApiResult<HubStatus> {
    Ok(Json(hub.status().await?))
}

async fn agents(State(hub): State<SharedHub>) -> ApiResult<Vec<AgentSummary>> {
    Ok(Json(fleet::agents(&hub).await?))
}

async fn agent(State(hub): State<SharedHub>, Path(name): Path<String>) -> ApiResult<AgentDetail> {
    Ok(Json(fleet::agent_detail(&hub, &name).await?))
}

async fn revoke_agent(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<AgentSummary> {
    Ok(Json(fleet::revoke_agent(&hub, &name, &op.0).await?))
}

async fn accept_baseline(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<AgentSummary> {
    Ok(Json(fleet::accept_baseline(&hub, &name, &op.0).await?))
}

async fn keep_quarantined(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<AgentSummary> {
    Ok(Json(fleet::keep_quarantined(&hub, &name, &op.0).await?))
}

async fn set_tags(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
    Json(body): Json<TagsUpdate>,
) -> ApiResult<AgentSummary> {
    Ok(Json(fleet::set_tags(&hub, &name, body.tags, &op.0).await?))
}

async fn decide_pack(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path((name, pack, action)): Path<(String, String, String)>,
) -> ApiResult<PermissionRequest> {
    Ok(Json(
        fleet::decide_pack(
            &hub,
            &name,
            &pack,
            action
                .parse()
                .map_err(|e: sonde_admin::api::UnknownPackAction| {
                    HubError::BadRequest(e.to_string())
                })?,
            &op.0,
        )
        .await?,
    ))
}

async fn enrollments(
    State(hub): State<SharedHub>,
    Query(q): Query<AllQuery>,
) -> ApiResult<Vec<EnrollmentInfo>> {
    let rows = hub.store.enrollments(q.all).await?;
    Ok(Json(rows.iter().map(enroll::enrollment_info).collect()))
}

async fn approve(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<EnrollmentInfo> {
    Ok(Json(enroll::approve(&hub, &name, &op.0).await?))
}

async fn deny(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<EnrollmentInfo> {
    Ok(Json(enroll::deny(&hub, &name, &op.0).await?))
}

async fn permissions(
    State(hub): State<SharedHub>,
    Query(q): Query<AllQuery>,
) -> ApiResult<Vec<PermissionRequest>> {
    Ok(Json(fleet::permissions(&hub, q.all).await?))
}

async fn drift(
    State(hub): State<SharedHub>,
    Query(q): Query<AllQuery>,
) -> ApiResult<Vec<DriftEvent>> {
    let events = fleet::drift(&hub, q.all).await?;
    Ok(Json(with_agent_versions(&hub, events).await?))
}

/// Adds the agent versions around each drift (from the audit chain).
async fn with_agent_versions(
    hub: &crate::hub::Hub,
    mut events: Vec<DriftEvent>,
) -> Result<Vec<DriftEvent>, ApiError> {
    let keys: Vec<(String, i64)> = events.iter().map(|e| (e.agent_id.clone(), e.id)).collect();
    let versions = hub.store.agent_versions_around_drifts(keys).await?;
    for (e, v) in events.iter_mut().zip(versions) {
        e.agent_version = v;
    }
    Ok(events)
}

/// Every quarantined agent, whether its drift is open or was kept, with its
/// latest drift event: nothing quarantined is out of the operator's reach.
async fn quarantined(State(hub): State<SharedHub>) -> ApiResult<Vec<QuarantinedAgent>> {
    let agents = fleet::agents(&hub).await?;
    let quarantined: Vec<AgentSummary> = agents
        .into_iter()
        .filter(|a| a.state == AgentState::Quarantined)
        .collect();
    if quarantined.is_empty() {
        return Ok(Json(Vec::new()));
    }
    // Newest first: the first event of an agent is its latest.
    let events = fleet::drift(&hub, true).await?;
    let latest: Vec<DriftEvent> = quarantined
        .iter()
        .filter_map(|a| events.iter().find(|e| e.agent_id == a.id).cloned())
        .collect();
    let latest = with_agent_versions(&hub, latest).await?;
    Ok(Json(
        quarantined
            .into_iter()
            .map(|agent| QuarantinedAgent {
                drift: latest.iter().find(|e| e.agent_id == agent.id).cloned(),
                agent,
            })
            .collect(),
    ))
}

/// Probe traffic per minute for the console's sparklines.
async fn metrics(
    State(hub): State<SharedHub>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<FleetMetrics> {
    let minutes = q.minutes.unwrap_or(60).clamp(1, 1440);
    let now = sonde_protocol::time::now_ms();
    // Buckets end with the current (partial) minute.
    let start_ms = (now - now.rem_euclid(60_000)) - (i64::from(minutes) - 1) * 60_000;
    let (traffic, names) = hub.store.traffic_with_names(start_ms, minutes).await?;
    Ok(Json(FleetMetrics {
        start_ms,
        calls: traffic.calls,
        refusals: traffic.refusals,
        agents: traffic
            .agents
            .into_iter()
            .map(|(agent_id, t)| AgentMetrics {
                name: names.get(&agent_id).cloned().unwrap_or_default(),
                agent_id,
                calls: t.calls,
                latency_ms: t.latency_ms,
            })
            .collect(),
    }))
}

async fn audit_page(
    State(hub): State<SharedHub>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AuditPage> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let (entries, head, agent_names) = hub.store.console_audit_page(q).await?;
    let next_before_seq = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_before_seq,
        head,
        agent_names,
    }))
}

async fn audit_entry(
    State(hub): State<SharedHub>,
    Path(seq): Path<u64>,
) -> ApiResult<AuditEntryDetail> {
    let found = hub.store.audit_entry(seq).await?;
    match found {
        (Some(entry), checkpoint) => Ok(Json(AuditEntryDetail { entry, checkpoint })),
        (None, _) => Err(ApiError(HubError::NotFound(format!(
            "no audit entry {seq}"
        )))),
    }
}

/// Verifies the whole chain (streaming; safe on millions of entries).
pub async fn verify_report(hub: &crate::hub::Hub) -> Result<AuditVerifyReport, HubError> {
    let key = hub.signing_key.verifying_key();
    let started = Instant::now();
    let result = hub.store.verify_audit(key).await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    Ok(crate::audit::verify_report(result, duration_ms))
}

async fn audit_verify(State(hub): State<SharedHub>) -> ApiResult<AuditVerifyReport> {
    Ok(Json(verify_report(&hub).await?))
}

async fn keys(State(hub): State<SharedHub>) -> ApiResult<Vec<KeyInfo>> {
    Ok(Json(fleet::keys(&hub).await?))
}

async fn create_key(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Json(req): Json<KeyCreate>,
) -> ApiResult<KeyCreated> {
    Ok(Json(fleet::create_key(&hub, req, &op.0).await?))
}

async fn revoke_key(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(id): Path<String>,
) -> ApiResult<KeyInfo> {
    Ok(Json(fleet::revoke_key(&hub, &id, &op.0).await?))
}

async fn tokens(State(hub): State<SharedHub>) -> ApiResult<Vec<TokenInfo>> {
    Ok(Json(fleet::tokens(&hub).await?))
}

async fn create_token(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Json(req): Json<TokenCreate>,
) -> ApiResult<TokenCreated> {
    Ok(Json(fleet::create_token(&hub, req, &op.0).await?))
}

async fn revoke_token(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(id): Path<String>,
) -> ApiResult<TokenInfo> {
    Ok(Json(fleet::revoke_token(&hub, &id, &op.0).await?))
}

async fn run_probe(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Json(req): Json<ProbeRun>,
) -> ApiResult<ProbeRunResult> {
    let probe = ProbeName::parse(&req.probe).map_err(|e| HubError::BadRequest(e.to_string()))?;
    let call = probe::ProbeCall {
        agent: req.agent,
        descriptor: ProbeDescriptor {
            probe,
            params: req.params,
        },
        actor: op.0,
        timeout: None,
        via: "admin",
        cancel: None,
    };
    Ok(Json(probe::run(&hub, call).await?))
}

async fn oauth_requests(
    State(hub): State<SharedHub>,
    Query(q): Query<AllQuery>,
) -> ApiResult<Vec<OAuthRequestInfo>> {
    Ok(Json(
        crate::oauth::pending::requests(
            &hub.store,
            q.all,
            crate::oauth::request_ttl_ms(&hub.config),
            hub.clock.now_ms(),
        )
        .await?,
    ))
}

async fn oauth_approve(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(id): Path<String>,
    Json(req): Json<OAuthApprove>,
) -> ApiResult<OAuthRequestInfo> {
    Ok(Json(
        crate::oauth::pending::approve(&hub, &id, req, &op.0).await?,
    ))
}

async fn oauth_deny(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(id): Path<String>,
) -> ApiResult<OAuthRequestInfo> {
    Ok(Json(crate::oauth::pending::deny(&hub, &id, &op.0).await?))
}

async fn oauth_clients(State(hub): State<SharedHub>) -> ApiResult<Vec<OAuthClientInfo>> {
    Ok(Json(
        crate::oauth::pending::clients(&hub.store, hub.clock.now_ms()).await?,
    ))
}

async fn oauth_revoke_client(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(id): Path<String>,
) -> ApiResult<OAuthClientInfo> {
    Ok(Json(
        crate::oauth::pending::revoke_client(&hub, &id, &op.0).await?,
    ))
}

async fn integrations(State(hub): State<SharedHub>) -> ApiResult<Vec<IntegrationInfo>> {
    Ok(Json(crate::integrations::admin::list(&hub)))
}

async fn add_integration(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Json(req): Json<IntegrationAdd>,
) -> ApiResult<IntegrationInfo> {
    Ok(Json(
        crate::integrations::admin::add(&hub, req, &op.0).await?,
    ))
}

async fn set_integration_credential(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
    Json(req): Json<CredentialSet>,
) -> ApiResult<IntegrationInfo> {
    Ok(Json(
        crate::integrations::admin::set_credential(&hub, &name, &req.secret, &op.0).await?,
    ))
}

async fn integration_action(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<IntegrationInfo> {
    use crate::integrations::admin as ia;
    let action: IntegrationAction =
        action
            .parse()
            .map_err(|e: sonde_admin::api::UnknownIntegrationAction| {
                // Not a route: the other actions are `test` and `credential`.
                HubError::NotFound(format!("{e}; also test, credential"))
            })?;
    Ok(Json(match action {
        IntegrationAction::Approve => ia::approve(&hub, &name, &op.0).await?,
        IntegrationAction::Remove => ia::remove(&hub, &name, &op.0).await?,
        IntegrationAction::ClearCredential => ia::clear_credential(&hub, &name, &op.0).await?,
    }))
}

async fn test_integration(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<ProbeRunResult> {
    Ok(Json(
        crate::integrations::admin::test(&hub, &name, &op.0).await?,
    ))
}

async fn rotate_integration_key(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
) -> ApiResult<KeyRotated> {
    Ok(Json(
        crate::integrations::admin::rotate_key(&hub, &op.0).await?,
    ))
}

async fn paths(State(hub): State<SharedHub>) -> ApiResult<Vec<PathInfo>> {
    Ok(Json(crate::critical_path::infos(&hub).await?))
}

async fn path(State(hub): State<SharedHub>, Path(name): Path<String>) -> ApiResult<PathInfo> {
    Ok(Json(crate::critical_path::get(&hub, &name).await?))
}

async fn define_path(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Json(def): Json<PathDefinition>,
) -> ApiResult<PathDefined> {
    Ok(Json(crate::critical_path::define(&hub, &def, &op.0).await?))
}

async fn remove_path(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<PathInfo> {
    Ok(Json(
        crate::critical_path::remove(&hub, &name, &op.0).await?,
    ))
}

async fn run_path(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Path(name): Path<String>,
) -> ApiResult<serde_json::Value> {
    let caller = crate::critical_path::Caller::Operator(op.0);
    Ok(Json(crate::critical_path::run(&hub, &caller, &name).await?))
}

async fn trending(
    State(hub): State<SharedHub>,
    ConnectInfo(op): ConnectInfo<Operator>,
    Query(q): Query<TrendingQuery>,
) -> ApiResult<serde_json::Value> {
    let params = crate::trending::TrendParams::parse(
        q.window.as_deref(),
        q.target,
        q.probe,
        q.limit.map(u64::from),
    )?;
    let caller = crate::critical_path::Caller::Operator(op.0);
    Ok(Json(
        crate::trending::summarise(&hub, &caller, &params).await?,
    ))
}
