//! Operator actions on integrations (admin API and CLI): add (pending),
//! approve, remove, set a credential, test, rotate the vault key. Each is
//! audited; none returns a secret.

use serde_json::{Map, Value};
use sonde_admin::api::{
    CredentialInfo, IntegrationAdd, IntegrationInfo, KeyRotated, ProbeRunResult,
};
use sonde_packs::signing::PackSignature;
use sonde_protocol::time::now_ms;
use sonde_protocol::{ProbeDescriptor, ProbeName};

use super::Instance;
use super::builtin;
use super::http::Trust;
use super::manifest::{AuthKind, Manifest};
use super::runner::{self, IntegrationCall};
use super::template;
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::integrations::{CredentialRecord, IntegrationRecord};

/// Longest credential accepted.
const MAX_SECRET: usize = 4096;

/// An integration name: what MCP clients pass as the target.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub fn info(i: &Instance) -> IntegrationInfo {
    IntegrationInfo {
        name: i.name().to_owned(),
        kind: i.kind().to_owned(),
        base_url: i.record.base_url.clone(),
        trust: i.trust.describe(),
        settings: i.settings.clone(),
        manifest_sha256: i.record.manifest_sha256.clone(),
        signed: i.record.signature.is_some(),
        builtin: builtin::manifest(i.kind()).is_some() && i.record.signature.is_none(),
        state: if i.record.approved {
            "approved"
        } else {
            "pending"
        }
        .into(),
        created_at_ms: i.record.created_at_ms,
        created_by: i.record.created_by.clone(),
        approved_at_ms: i.record.approved_at_ms,
        approved_by: i.record.approved_by.clone(),
        credential: i.credential.as_ref().map(|c| CredentialInfo {
            fingerprint: c.fingerprint.clone(),
            set_at_ms: c.set_at_ms,
            set_by: c.set_by.clone(),
        }),
        probes: i.manifest.probes.iter().map(|p| p.name.clone()).collect(),
        diagnose_categories: i
            .manifest
            .runbooks
            .iter()
            .map(|r| r.category.clone())
            .collect(),
    }
}

fn by_name(hub: &Hub, name: &str) -> Result<std::sync::Arc<Instance>, HubError> {
    hub.integrations.get(name).ok_or_else(|| {
        HubError::NotFound(format!(
            "no integration {name:?}; see `sonde-hub integrations list`"
        ))
    })
}

pub fn list(hub: &Hub) -> Vec<IntegrationInfo> {
    hub.integrations.list().iter().map(|i| info(i)).collect()
}

/// Checks a third-party manifest's signature against the configured
/// publisher keys (the same signature format and check as packs).
fn verify_signature(hub: &Hub, manifest: &Manifest, signature: &str) -> Result<(), HubError> {
    let sig = PackSignature::parse(signature).map_err(|e| {
        let why = match e {
            sonde_packs::signing::SignatureError::Format(why) => why,
            other => other.to_string(),
        };
        HubError::BadRequest(format!(
            "integration.sig is not valid (expected `key = \"ed25519:…\"` and `signature = \"…hex…\"`, as `sonde-hub integrations sign` writes it): {why}"
        ))
    })?;
    let mut trusted = Vec::new();
    for k in &hub.config.integrations.publisher_keys {
        trusted.push(sonde_protocol::keys::decode_public_key(k).map_err(|e| {
            HubError::BadRequest(format!("[integrations] publisher_keys: {k:?}: {e}"))
        })?);
    }
    sig.verify(&manifest.sha256, &trusted).map_err(|e| {
        use sonde_packs::signing::SignatureError as S;
        // The pack wording names pack.sig and the agent's config; say what
        // an operator adding an integration must look at instead.
        let why = match e {
            S::Format(why) => format!("integration.sig is not valid: {why}"),
            S::UntrustedKey { key } if trusted.is_empty() => format!(
                "signed by {key}, but the hub trusts no publisher key ([integrations] publisher_keys in hub.toml is empty; add this key there and restart the hub if you trust its publisher)"
            ),
            S::UntrustedKey { key } => format!(
                "signed by {key}, which is not a trusted publisher key (add it to [integrations] publisher_keys in hub.toml and restart the hub if you trust its publisher)"
            ),
            S::BadSignature => format!(
                "the signature does not match the manifest: integration.toml was modified after it was signed (sha256 of what was given: {})",
                manifest.sha256.to_hex()
            ),
        };
        HubError::Forbidden(format!("third-party integration {:?} refused: {why}", manifest.kind()))
    })
}

pub async fn add(hub: &Hub, req: IntegrationAdd, by: &str) -> Result<IntegrationInfo, HubError> {
    if !valid_name(&req.name) {
        return Err(HubError::BadRequest(format!(
            "integration name {:?}: 1-64 of a-z 0-9 - _, starting with a letter or digit",
            req.name
        )));
    }
    if hub.fleet.find(&req.name).is_some() {
        return Err(HubError::Conflict(format!(
            "an agent is named {:?}; agents and integrations share names (MCP clients pass either as the target)",
            req.name
        )));
    }
    let (text, signature) = match (&req.manifest, builtin::manifest(&req.kind)) {
        (Some(text), _) => {
            let sig = req.signature.as_deref().ok_or_else(|| {
                HubError::Forbidden(
                    "a third-party integration manifest must be signed by a publisher key in [integrations] publisher_keys (integration.sig, made like pack.sig)".into(),
                )
            })?;
            (text.clone(), Some(sig.to_owned()))
        }
        (None, Some(text)) => (text.to_owned(), None),
        (None, None) => {
            return Err(HubError::BadRequest(format!(
                "unknown integration kind {:?} (built in: {}; or give a signed manifest)",
                req.kind,
                builtin::MANIFESTS
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let manifest = Manifest::parse(&text).map_err(|e| HubError::BadRequest(e.to_string()))?;
    if let Some(sig) = &signature {
        if builtin::manifest(manifest.kind()).is_some() {
            return Err(HubError::BadRequest(format!(
                "a third-party manifest cannot take the built-in name {:?}",
                manifest.kind()
            )));
        }
        verify_signature(hub, &manifest, sig)?;
        if !req.settings.is_empty() {
            return Err(HubError::BadRequest(
                "third-party integrations take no settings".into(),
            ));
        }
    } else {
        builtin::check_settings(manifest.kind(), &req.settings).map_err(HubError::BadRequest)?;
    }
    let base =
        template::parse_base(&req.base_url).map_err(|e| HubError::BadRequest(e.to_string()))?;
    let trust = match (&req.ca_pem, &req.fingerprint) {
        (Some(_), Some(_)) => {
            return Err(HubError::BadRequest(
                "pin a CA or a fingerprint, not both".into(),
            ));
        }
        (Some(pem), None) => Trust::Ca { pem: pem.clone() },
        (None, Some(fp)) => Trust::Fingerprint { sha256: fp.clone() },
        (None, None) => Trust::System,
    };
    trust.check().map_err(HubError::BadRequest)?;
    if trust != Trust::System && base.scheme() != "https" {
        return Err(HubError::BadRequest("a pin needs an https base URL".into()));
    }
    let rec = IntegrationRecord {
        name: req.name.clone(),
        kind: manifest.kind().to_owned(),
        base_url: base.as_str().to_owned(),
        trust: serde_json::to_string(&trust).map_err(|e| HubError::Internal(e.to_string()))?,
        settings: serde_json::to_string(&Value::Object(req.settings.clone()))
            .map_err(|e| HubError::Internal(e.to_string()))?,
        manifest: text,
        manifest_sha256: manifest.sha256.to_hex(),
        signature,
        approved: false,
        created_at_ms: now_ms(),
        created_by: by.to_owned(),
        approved_at_ms: None,
        approved_by: None,
    };
    hub.store.add_integration(rec, by).await?;
    hub.integrations.reload(&hub.store).await?;
    Ok(info(by_name(hub, &req.name)?.as_ref()))
}

pub async fn approve(hub: &Hub, name: &str, by: &str) -> Result<IntegrationInfo, HubError> {
    by_name(hub, name)?;
    hub.store.approve_integration(name, by).await?;
    hub.integrations.reload(&hub.store).await?;
    Ok(info(by_name(hub, name)?.as_ref()))
}

pub async fn remove(hub: &Hub, name: &str, by: &str) -> Result<IntegrationInfo, HubError> {
    let before = info(by_name(hub, name)?.as_ref());
    hub.store.remove_integration(name, by).await?;
    hub.integrations.reload(&hub.store).await?;
    Ok(before)
}

/// Checks a secret's form for its integration.
fn check_secret(kind: AuthKind, secret: &str) -> Result<(), HubError> {
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(HubError::BadRequest(format!(
            "a credential is 1 to {MAX_SECRET} bytes"
        )));
    }
    if secret.chars().any(|c| c.is_control()) || secret.trim() != secret {
        return Err(HubError::BadRequest(
            "a credential cannot hold control characters or surrounding spaces".into(),
        ));
    }
    match kind {
        AuthKind::None => Err(HubError::BadRequest(
            "this integration takes no credential".into(),
        )),
        AuthKind::PveToken => {
            let ok = secret
                .split_once('=')
                .is_some_and(|(id, s)| id.contains('@') && id.contains('!') && !s.is_empty());
            if ok {
                Ok(())
            } else {
                Err(HubError::BadRequest(
                    "a Proxmox VE token is USER@REALM!TOKENID=SECRET (as `pveum user token add` prints it)".into(),
                ))
            }
        }
        _ => Ok(()),
    }
}

pub async fn set_credential(
    hub: &Hub,
    name: &str,
    secret: &str,
    by: &str,
) -> Result<IntegrationInfo, HubError> {
    let inst = by_name(hub, name)?;
    check_secret(inst.manifest.header.auth, secret)?;
    let _guard = hub.integrations.ops.lock().await;
    let (sealed, fingerprint) = hub
        .integrations
        .with_vault(|v| {
            Ok::<_, super::vault::VaultError>((
                v.seal(name, secret.as_bytes())?,
                v.fingerprint(secret.as_bytes()),
            ))
        })
        .map_err(HubError::Internal)?
        .map_err(|e| HubError::Internal(e.to_string()))?;
    hub.store
        .set_integration_credential(CredentialRecord {
            integration: name.to_owned(),
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            fingerprint,
            set_at_ms: now_ms(),
            set_by: by.to_owned(),
        })
        .await?;
    hub.integrations.reload(&hub.store).await?;
    Ok(info(by_name(hub, name)?.as_ref()))
}

/// Clears an integration's credential (it then calls its API without one).
pub async fn clear_credential(
    hub: &Hub,
    name: &str,
    by: &str,
) -> Result<IntegrationInfo, HubError> {
    by_name(hub, name)?;
    let _guard = hub.integrations.ops.lock().await;
    hub.store.clear_integration_credential(name, by).await?;
    hub.integrations.reload(&hub.store).await?;
    Ok(info(by_name(hub, name)?.as_ref()))
}

/// Runs the integration's `test_probe` (pending ones too: the operator
/// tries before approving), audited with the operator as actor.
pub async fn test(hub: &Hub, name: &str, by: &str) -> Result<ProbeRunResult, HubError> {
    let inst = by_name(hub, name)?;
    let probe = format!("{}.{}", inst.kind(), inst.manifest.header.test_probe);
    let call = IntegrationCall {
        integration: name.to_owned(),
        descriptor: ProbeDescriptor {
            probe: ProbeName::parse(&probe).map_err(|e| HubError::Internal(e.to_string()))?,
            params: Map::new(),
        },
        actor: by.to_owned(),
        timeout: None,
        via: "admin.integration_test",
        allow_pending: true,
    };
    runner::run(hub, call).await
}

/// Re-seals every credential under a new key: new key file written
/// aside, database updated in one transaction, then the key file
/// replaced (a crash in between is recovered at start).
pub async fn rotate_key(hub: &Hub, by: &str) -> Result<KeyRotated, HubError> {
    let _guard = hub.integrations.ops.lock().await;
    let creds = hub.store.integration_credentials().await?;
    let rows: Vec<(String, super::vault::Sealed)> = creds
        .iter()
        .map(|c| {
            (
                c.integration.clone(),
                super::vault::Sealed {
                    key_id: c.key_id.clone(),
                    nonce: c.nonce.clone(),
                    ciphertext: c.ciphertext.clone(),
                },
            )
        })
        .collect();
    let resealed = hub
        .integrations
        .with_vault(|v| v.begin_rotation(&rows))
        .map_err(HubError::Internal)?
        .map_err(|e| HubError::Internal(e.to_string()))?;
    let new_id = resealed
        .first()
        .map(|(_, s)| s.key_id.clone())
        .unwrap_or_default();
    let n = resealed.len() as u64;
    let update = resealed
        .into_iter()
        .map(|(name, s)| (name, s.key_id, s.nonce, s.ciphertext))
        .collect();
    match hub
        .store
        .reseal_integration_credentials(update, new_id, by)
        .await
    {
        Ok(()) => {
            hub.integrations
                .with_vault(|v| v.finish_rotation())
                .map_err(HubError::Internal)?
                .map_err(|e| HubError::Internal(e.to_string()))?;
        }
        Err(e) => {
            let _ = hub.integrations.with_vault(|v| v.abort_rotation());
            return Err(e.into());
        }
    }
    hub.integrations.reload(&hub.store).await?;
    let key_id = hub
        .integrations
        .with_vault(|v| v.key_id().to_owned())
        .map_err(HubError::Internal)?;
    Ok(KeyRotated {
        credentials: n,
        key_id,
    })
}
