//! `sonde-agent enroll`: join a hub.
//!
//! The agent makes its TLS key and Ed25519 key here and never sends either.
//! It talks to the hub only after the TLS handshake proved the hub holds a
//! certificate under the CA whose SHA-256 the operator gave (`--ca-sha256`):
//! with a wrong fingerprint the token is never sent.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sonde_protocol::Digest;
use sonde_protocol::keys::encode_public_key;
use sonde_protocol::messages::{
    AgentCredentials, EnrollRequest, EnrollResponse, EnrollStatusRequest, EnrollmentStatus,
    ErrorBody,
};
use sonde_protocol::time::now_ms;
use std::sync::Arc;
use std::time::Duration;

use crate::config::AgentConfig;
use crate::identity::{DataDir, HubInfo, PendingEnrollment, replace_private, write_private};
use crate::runtime::Runtime;
use crate::tls;

/// What `enroll` was asked.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub hub: String,
    pub token: String,
    pub ca_sha256: String,
    pub name: Option<String>,
    /// Submit and return without waiting for approval (run again to resume).
    pub no_wait: bool,
}

async fn post(
    pin: Digest,
    address: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    let config = Arc::new(tls::enrollment_config(pin)?);
    let stream = tls::connect(config, address).await.map_err(|e| {
        if e.to_string().contains(tls::PIN_MISMATCH) {
            anyhow::anyhow!("refusing to enroll: {}", tls::PIN_MISMATCH)
        } else {
            e
        }
    })?;
    let (host, _) = tls::split_address(address)?;
    tls::post_json(stream, &host, path, body).await
}

fn api_error(status: u16, body: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => anyhow::anyhow!("the hub refused the enrollment ({status}): {}", e.message),
        Err(_) => anyhow::anyhow!(
            "the hub answered HTTP {status}: {}",
            String::from_utf8_lossy(body)
        ),
    }
}

/// Enrolls (or resumes a pending enrollment) and stores the credentials.
pub async fn enroll(config: AgentConfig, opts: EnrollOptions) -> anyhow::Result<HubInfo> {
    let data = DataDir::new(&config.data_dir);
    if let Some(h) = data.hub()? {
        anyhow::bail!(
            "this agent is already enrolled as {} ({}) with hub {}; to enroll again, stop the agent and remove {} and {}",
            h.name,
            h.agent_id,
            h.address,
            data.hub_info().display(),
            data.cert().display()
        );
    }
    let pin = Digest::from_hex(&opts.ca_sha256).map_err(|e| anyhow::anyhow!("--ca-sha256: {e}"))?;
    let name = opts.name.clone().unwrap_or_else(crate::attest::hostname);
    let runtime = Runtime::open(config)?;
    let signing = runtime.signing_key.clone();
    let pending = match data.pending_enrollment()? {
        Some(p)
            if p.address == opts.hub
                && Digest::from_hex(&p.ca_sha256).ok() == Some(pin)
                && p.name == name =>
        {
            eprintln!(
                "Resuming the pending enrollment {} of {name}.",
                p.enrollment_id
            );
            p
        }
        _ => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name.clone());
            params.distinguished_name = dn;
            let csr = params.serialize_request(&key)?.pem()?;
            let _ = std::fs::remove_file(data.tls_key());
            write_private(&data.tls_key(), key.serialize_pem().as_bytes())?;
            let request = EnrollRequest {
                token: opts.token.trim().to_owned(),
                csr_pem: csr,
                signing_key: encode_public_key(&signing.verifying_key()),
                name: name.clone(),
                hostname: crate::attest::hostname(),
                attestation: runtime.attestation(),
            };
            let (status, body) = post(pin, &opts.hub, "/v1/enroll", &request).await?;
            if status != 200 {
                return Err(api_error(status, &body));
            }
            let response: EnrollResponse = serde_json::from_slice(&body)?;
            if response.status == EnrollmentStatus::Approved {
                return store(&data, &opts.hub, pin, &name, response.credentials);
            }
            let p = PendingEnrollment {
                enrollment_id: response.enrollment_id,
                address: opts.hub.clone(),
                ca_sha256: pin.to_hex(),
                name: name.clone(),
            };
            replace_private(&data.pending(), &serde_json::to_vec_pretty(&p)?)?;
            eprintln!(
                "Enrollment {} of {name} submitted. Waiting for an operator to approve it on the hub:\n  sonde-hub enrollments approve {name}\n(or in sonde-console, Enrollments view)",
                p.enrollment_id
            );
            p
        }
    };
    if opts.no_wait {
        anyhow::bail!(
            "enrollment {} is pending approval; run the same `sonde-agent enroll` again to collect the certificate",
            pending.enrollment_id
        );
    }
    let mut delay = Duration::from_secs(1);
    loop {
        let request = EnrollStatusRequest::sign(&pending.enrollment_id, now_ms(), &signing);
        match post(pin, &opts.hub, "/v1/enroll/status", &request).await {
            Ok((200, body)) => {
                let response: EnrollResponse = serde_json::from_slice(&body)?;
                match response.status {
                    EnrollmentStatus::Approved => {
                        let info = store(&data, &opts.hub, pin, &name, response.credentials)?;
                        let _ = std::fs::remove_file(data.pending());
                        return Ok(info);
                    }
                    EnrollmentStatus::Denied => {
                        let _ = std::fs::remove_file(data.pending());
                        anyhow::bail!("the enrollment was denied: {}", response.message);
                    }
                    EnrollmentStatus::Pending => {}
                }
            }
            Ok((status, body)) => return Err(api_error(status, &body)),
            Err(e) => tracing::warn!(error = %e, "could not reach the hub; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn store(
    data: &DataDir,
    address: &str,
    pin: Digest,
    name: &str,
    credentials: Option<AgentCredentials>,
) -> anyhow::Result<HubInfo> {
    let c = credentials.ok_or_else(|| {
        anyhow::anyhow!("the hub approved the enrollment but sent no certificate")
    })?;
    let ca = CertificateDer::from_pem_slice(c.ca_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the hub sent an unreadable CA: {e}"))?;
    if Digest::of(&ca) != pin {
        anyhow::bail!("the hub sent a CA that does not match --ca-sha256; refusing to store it");
    }
    sonde_protocol::keys::decode_public_key(&c.hub_signing_key)
        .map_err(|e| anyhow::anyhow!("the hub sent an invalid signing key: {e}"))?;
    replace_private(&data.cert(), c.cert_pem.as_bytes())?;
    replace_private(&data.ca(), c.ca_pem.as_bytes())?;
    let info = HubInfo {
        address: address.to_owned(),
        hub_id: c.hub_id,
        hub_signing_key: c.hub_signing_key,
        agent_id: c.agent_id,
        name: name.to_owned(),
        ca_sha256: pin.to_hex(),
        enrolled_at_ms: now_ms(),
    };
    replace_private(&data.hub_info(), &serde_json::to_vec_pretty(&info)?)?;
    Ok(info)
}
