//! The Proxmox VE API over HTTPS (`transport = "api"`): what works for an
//! unprivileged agent, since `pvesh` is a root-only Perl script the agent
//! never runs. The same table of read-only paths and options as
//! [`super::pvesh`] is checked before every request; the request is a
//! `GET /api2/json{path}?{options}` through the GET-only client
//! ([`crate::http_client`]), authenticated with a read-only API token
//! (`Authorization: PVEAPIToken=USER@REALM!NAME=SECRET`, role
//! `PVEAuditor`), over TLS whose server certificate must have the SHA-256
//! fingerprint the operator pinned (`api_fingerprint`, as the node's
//! Certificates panel or `pvenode cert info` shows it): Proxmox VE's
//! certificates are self-signed by the cluster's own CA, so pinning the
//! node's certificate is what a client can check.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde_json::Value;

use super::Settings;
use super::pvesh::Answer;
use crate::handler::{ProbeContext, ProbeError};
use crate::http_client::{self, Endpoint, Get, HttpError};

/// Most body bytes read from one answer.
pub const MAX_BODY: usize = super::pvesh::MAX_OUTPUT;
/// Longest one request may take (never past the probe's deadline).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);
/// Largest token secret file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// A SHA-256 fingerprint as Proxmox VE shows it (`AB:CD:…`, 32 bytes) or
/// as 64 hex digits: the one rule every Sonde binary uses
/// ([`sonde_protocol::Digest::from_hex`]).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    sonde_protocol::Digest::from_hex(text).ok().map(|d| d.0)
}

/// `USER@REALM!NAME`, as `pveum user token add` names a token.
pub fn is_token_id(id: &str) -> bool {
    let Some((user, name)) = id.split_once('!') else {
        return false;
    };
    let Some((u, realm)) = user.split_once('@') else {
        return false;
    };
    let word = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    word(u, b"._-")
        && word(realm, b"_-")
        && word(name, b"_-")
        && name.as_bytes()[0].is_ascii_alphabetic()
}

/// The token secret from its file (the file is refused if it is one of
/// the agent's own; its content never reaches a result).
fn token_secret(ctx: &ProbeContext<'_>, settings: &Settings) -> Result<String, ProbeError> {
    let path = settings.api_token_file.as_ref().ok_or_else(|| {
        ProbeError::Failed("api_token_file is not set under [packs.proxmox]".into())
    })?;
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        ProbeError::Denied(format!(
            "cannot read the API token secret {shown}: {e} (it must be readable by the agent's user, mode 0400)"
        ))
    })?;
    ctx.secrets.check_file(&file, &shown)?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE)
        .read_to_string(&mut text)
        .map_err(|e| ProbeError::Failed(format!("{shown}: {e}")))?;
    let secret = text.trim().to_owned();
    if secret.is_empty()
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ProbeError::Failed(format!(
            "{shown} does not hold a token secret (the UUID `pveum user token add` printed)"
        )));
    }
    Ok(secret)
}

/// The API's address and a TLS configuration that accepts only the pinned
/// certificate.
fn endpoint(settings: &Settings) -> Result<Endpoint<'static>, ProbeError> {
    let where_ = format!("{}:{}", settings.api_host, settings.api_port);
    let fingerprint = settings
        .api_fingerprint
        .as_deref()
        .and_then(parse_fingerprint)
        .ok_or_else(|| {
            ProbeError::Failed(
                "api_fingerprint under [packs.proxmox] is missing or not a SHA-256 fingerprint"
                    .into(),
            )
        })?;
    let addr: SocketAddr = (
        settings.api_host.trim_matches(['[', ']']),
        settings.api_port,
    )
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ProbeError::Failed(format!("cannot resolve {where_}")))?;
    let config = sonde_tls::pinned_leaf_config(fingerprint, "api_fingerprint")
        .map_err(|e| ProbeError::Failed(format!("TLS setup: {e}")))?;
    let server_name = ServerName::try_from(settings.api_host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| ProbeError::Failed(format!("{}: {e}", settings.api_host)))?;
    Ok(Endpoint::Tls {
        addr,
        server_name,
        config: Arc::new(config),
    })
}

/// `GET /api2/json{path}?{options}`, already checked against the table.
pub fn get(
    ctx: &ProbeContext<'_>,
    settings: &Settings,
    path: &str,
    options: &[(&str, String)],
) -> Result<Answer, ProbeError> {
    let secret = token_secret(ctx, settings)?;
    let token_id = settings
        .api_token_id
        .as_deref()
        .filter(|t| is_token_id(t))
        .ok_or_else(|| {
            ProbeError::Failed(
                "api_token_id under [packs.proxmox] is missing or not USER@REALM!NAME".into(),
            )
        })?;
    let deadline = ctx.deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let endpoint = endpoint(settings)?;
    let mut target = format!("/api2/json{path}");
    for (i, (name, value)) in options.iter().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        target.push_str(name);
        target.push('=');
        target.push_str(value);
    }
    let auth = format!("PVEAPIToken={token_id}={secret}");
    let host = if settings.api_host.contains(':') && !settings.api_host.starts_with('[') {
        format!("[{}]", settings.api_host)
    } else {
        settings.api_host.clone()
    };
    let host = format!("{host}:{}", settings.api_port);
    let headers = [("Authorization", auth.as_str())];
    let get = Get {
        host: &host,
        target: &target,
        headers: &headers,
        max_body: MAX_BODY,
    };
    let resp = http_client::get(&endpoint, &get, deadline).map_err(|e| match e {
        HttpError::Timeout => ProbeError::Failed(format!("GET {path}: the Proxmox VE API did not answer in time")),
        HttpError::Connect { addr, reason, .. } => ProbeError::Failed(format!(
            "the Proxmox VE API at {addr}: {reason} (is pveproxy running? `systemctl status pveproxy`)"
        )),
        HttpError::Protocol(m) if m.contains("fingerprint") => ProbeError::Denied(format!(
            "GET {path}: {m}; if the node's certificate was renewed, pin the new one (`pvenode cert info`)"
        )),
        other => ProbeError::Failed(format!("GET {path}: {other}")),
    })?;
    match resp.status {
        200 => {}
        401 => {
            return Err(ProbeError::Denied(format!(
                "GET {path}: the API refused token {token_id} (401 {}): check api_token_id and the secret in api_token_file",
                resp.reason
            )));
        }
        403 => {
            return Err(ProbeError::Denied(format!(
                "GET {path}: permission denied (403 {}): grant the token the PVEAuditor role on / (`pveum acl modify / --tokens '{token_id}' --roles PVEAuditor`)",
                resp.reason
            )));
        }
        status => {
            let detail = serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| v.get("errors").map(Value::to_string))
                .unwrap_or_default();
            return Ok(Answer::ApiError(
                format!("{status} {} {detail}", resp.reason)
                    .trim()
                    .to_owned(),
            ));
        }
    }
    if resp.truncated {
        return Err(ProbeError::Failed(format!(
            "GET {path} answered more than {} MiB",
            MAX_BODY >> 20
        )));
    }
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|e| ProbeError::Failed(format!("GET {path} did not answer JSON: {e}")))?;
    Ok(Answer::Data(v.get("data").cloned().unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_token_ids() {
        let colon = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colon).map(|f| f[31]), Some(31));
        assert!(parse_fingerprint(&colon.replace(':', "")).is_some());
        for bad in [
            "",
            "AB:CD",
            &colon[3..],
            &format!("{colon}:00"),
            &colon.replace("1F", "ZZ"),
        ] {
            assert!(parse_fingerprint(bad).is_none(), "{bad}");
        }
        assert!(is_token_id("sonde@pve!agent"));
        assert!(is_token_id("monitor@pam!ro_token-1"));
        for bad in [
            "sonde@pve",
            "sonde!agent",
            "@pve!a",
            "sonde@pve!",
            "sonde@pve!1a",
            "a b@pve!x",
            "sonde@pve!a=b",
        ] {
            assert!(!is_token_id(bad), "{bad}");
        }
    }
}
