//! One integration probe: the hub's counterpart of an agent running a
//! probe. Same checks (target known and approved, probe exists,
//! parameters valid against its schema), same scrubber
//! (`sonde_packs::scrub`, the default rules plus the integration's own
//! credential as a literal), same audit entry shape (`probe` with the
//! target in `agent`, parameter and result digests, outcome, duration,
//! truncation, redactions) as [`crate::probe::run`].

use hyper::header::{AUTHORIZATION, HeaderName};
use serde_json::{Value, json};
use sonde_admin::api::ProbeRunResult;
use sonde_packs::scrub::Scrubber;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::schema::validate;
use sonde_protocol::{Digest, ProbeDescriptor};
use std::time::{Duration, Instant};

use super::Instance;
use super::http::{self, HttpError};
use super::manifest::AuthKind;
use crate::error::HubError;
use crate::hub::Hub;

/// One call.
#[derive(Debug, Clone)]
pub struct IntegrationCall {
    pub integration: String,
    pub descriptor: ProbeDescriptor,
    pub actor: String,
    pub timeout: Option<Duration>,
    pub via: &'static str,
    /// The operator's `integrations test` runs before approval too.
    pub allow_pending: bool,
}

fn entry(call: &IntegrationCall, outcome: &str) -> NewEntry {
    NewEntry::new(call.actor.clone(), AuditAction::Probe, outcome)
        .agent(call.integration.clone())
        .probe(call.descriptor.probe.as_str())
        .params_digest(Digest::of_json(&Value::Object(
            call.descriptor.params.clone(),
        )))
        .detail("target", "integration")
        .detail("via", call.via)
}

/// Audits a refusal and returns the error.
pub async fn refuse(hub: &Hub, call: &IntegrationCall, outcome: &str, err: HubError) -> HubError {
    hub.audit(entry(call, outcome).detail("reason", err.to_string()))
        .await;
    err
}

/// Runs the call. `Err`: refused before any request was made; a failed
/// request is `Ok` with `ok: false`, like an agent's failure.
pub async fn run(hub: &Hub, call: IntegrationCall) -> Result<ProbeRunResult, HubError> {
    let Some(inst) = hub.integrations.get(&call.integration) else {
        return Err(refuse(
            hub,
            &call,
            "refused",
            HubError::NotFound(format!("no integration {:?}", call.integration)),
        )
        .await);
    };
    if !inst.record.approved && !call.allow_pending {
        return Err(refuse(
            hub,
            &call,
            "refused",
            HubError::Forbidden(format!(
                "integration {} is pending the operator's approval (`sonde-hub integrations approve {}`)",
                inst.name(),
                inst.name()
            )),
        )
        .await);
    }
    let probe_name = call.descriptor.probe.as_str().to_owned();
    let Some(def) = inst.manifest.probe(&probe_name) else {
        let known: Vec<&str> = inst
            .manifest
            .probes
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        return Err(refuse(
            hub,
            &call,
            "error",
            HubError::NotFound(format!(
                "integration {} has no probe {probe_name:?} (it has: {})",
                inst.name(),
                known.join(", ")
            )),
        )
        .await);
    };
    let params = match validate(&def.params, &call.descriptor.params) {
        Ok(p) => p.into_map(),
        Err(e) => {
            return Err(refuse(hub, &call, "error", HubError::BadRequest(e.to_string())).await);
        }
    };
    let short = probe_name
        .split_once('.')
        .map_or(probe_name.as_str(), |(_, s)| s)
        .to_owned();
    let url = match super::builtin::prepare(inst.kind(), &short, &params, &inst.settings).and_then(
        |values| {
            def.template
                .build(&inst.base, &values)
                .map_err(|e| e.to_string())
        },
    ) {
        Ok(u) => u,
        Err(e) => return Err(refuse(hub, &call, "error", HubError::BadRequest(e)).await),
    };
    let probe_timeout = Duration::from_millis(def.timeout_ms);
    let timeout = call.timeout.map_or(probe_timeout, |t| t.min(probe_timeout));
    let started = Instant::now();
    let secret = match hub.integrations.secret(&inst) {
        Ok(s) => s,
        Err(e) => {
            return Err(refuse(hub, &call, "error", HubError::Unavailable(e.to_string())).await);
        }
    };
    let outcome = fetch(
        &inst,
        def,
        &short,
        &params,
        &url,
        secret.as_deref().map(Vec::as_slice),
        timeout,
    )
    .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut result = ProbeRunResult {
        agent: inst.name().to_owned(),
        probe: probe_name.clone(),
        ok: false,
        data: None,
        error_code: None,
        error: None,
        duration_ms,
        truncated: false,
        redactions: Default::default(),
        audit_seq: 0,
        agent_audit_head: None,
    };
    let mut e = entry(&call, "ok")
        .detail("integration", inst.kind().to_owned())
        .detail("duration_ms", duration_ms);
    // The scrubber: the default rules, plus the integration's own secret
    // as a literal (an API that echoes it back never shows it).
    let literals: Vec<Vec<u8>> = secret.iter().map(|s| s.to_vec()).collect();
    let scrubber = Scrubber::shared_defaults()
        .as_ref()
        .clone()
        .with_own_secrets(&literals)
        .map_err(|e| HubError::Internal(e.to_string()))?;
    drop(secret);
    match outcome {
        Ok((mut data, truncated, status)) => {
            let redactions = scrubber.scrub_value(&mut data);
            let digest = Digest::of_json(&data);
            result.ok = true;
            result.truncated = truncated;
            result.redactions = redactions.clone();
            result.data = Some(data);
            e = e
                .result_digest(digest)
                .detail("http_status", status)
                .detail("truncated", truncated)
                .detail(
                    "redactions",
                    serde_json::to_value(&redactions).unwrap_or_default(),
                );
        }
        Err((code, message)) => {
            // Error texts can hold what the server said: scrubbed too.
            let mut counts = Default::default();
            let message = scrubber.scrub_str(&message, &mut counts).unwrap_or(message);
            e.outcome = if code == "timeout" {
                "timeout"
            } else {
                "error"
            }
            .into();
            e = e
                .detail("error_code", code)
                .detail("error", message.clone());
            result.error_code = Some(code.into());
            result.error = Some(message);
        }
    }
    match hub.audit.record(e).await {
        Ok(entry) => result.audit_seq = entry.seq,
        Err(err) => {
            return Err(HubError::Internal(format!(
                "the probe ran but its audit entry could not be written: {err}"
            )));
        }
    }
    Ok(result)
}

type Fetched = Result<(Value, bool, u16), (&'static str, String)>;

async fn fetch(
    inst: &Instance,
    def: &super::manifest::ProbeDef,
    short: &str,
    params: &serde_json::Map<String, Value>,
    url: &url::Url,
    secret: Option<&[u8]>,
    timeout: Duration,
) -> Fetched {
    let auth = match (inst.manifest.header.auth, secret) {
        (AuthKind::None, _) | (_, None) => None,
        (AuthKind::Bearer, Some(s)) => {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(s);
            Some((AUTHORIZATION, v))
        }
        (AuthKind::PveToken, Some(s)) => {
            let mut v = b"PVEAPIToken=".to_vec();
            v.extend_from_slice(s);
            Some((AUTHORIZATION, v))
        }
        (AuthKind::Header, Some(s)) => {
            let name = inst.manifest.header.auth_header.as_deref().unwrap_or("");
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => Some((n, s.to_vec())),
                Err(_) => return Err(("bad_manifest", format!("auth_header {name:?}"))),
            }
        }
    };
    let auth = match auth {
        Some((n, v)) => {
            let v = zeroize::Zeroizing::new(v);
            match http::secret_header(&v) {
                Ok(h) => Some((n, h)),
                Err(e) => return Err(("bad_credential", e.to_string())),
            }
        }
        None => None,
    };
    let answer = match http::get(url, auth, &inst.trust, timeout, def.max_bytes).await {
        Ok(a) => a,
        Err(e) => {
            let code = match &e {
                HttpError::Timeout(..) => "timeout",
                HttpError::Tls(..) => "tls",
                HttpError::Connect(..) => "unreachable",
                HttpError::TooLarge(..) => "too_large",
                HttpError::CleartextCredential(_) => "refused",
                _ => "http",
            };
            return Err((code, e.to_string()));
        }
    };
    if !(200..300).contains(&answer.status) {
        let hint = match answer.status {
            401 | 403 => {
                " (check the credential and its permissions: `sonde-hub integrations set-credential`, and the README of this integration)"
            }
            404 => " (is the base URL right, and this API version supported?)",
            _ => "",
        };
        let snippet: String = String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Err((
            "http_status",
            format!(
                "{} answered HTTP {}{hint}: {snippet}",
                inst.name(),
                answer.status
            ),
        ));
    }
    let body: Value = match serde_json::from_slice(&answer.body) {
        Ok(v) => v,
        Err(e) => return Err(("bad_answer", format!("the answer is not JSON: {e}"))),
    };
    let projected = match def.projection.apply(body, def.max_items) {
        Ok(p) => p,
        Err(e) => return Err(("bad_answer", e.to_string())),
    };
    let mut data = super::builtin::finish(inst.kind(), short, params, projected.value);
    if let Some(total) = projected.total_items
        && let Value::Object(m) = &mut data
    {
        m.insert("total_items".into(), json!(total));
    }
    Ok((data, projected.truncated, answer.status))
}
