//! TLS for the agent: enrollment's client config (the hub CA pinned by
//! fingerprint through `sonde_tls`: no trust on first use), the mutual-TLS
//! config of the link, and small HTTPS helpers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sonde_protocol::Digest;
use sonde_tls::PinnedCa;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::identity::DataDir;

/// Text of the error when the pin does not match.
pub const PIN_MISMATCH: &str = "the hub's CA does not match the --ca-sha256 fingerprint; nothing was sent (check the fingerprint printed by `sonde-hub token create`)";

/// Client config for enrollment: the hub CA pinned by its SHA-256
/// (`sonde_tls::PinnedCa`: no trust on first use), no client certificate.
pub fn enrollment_config(pin: Digest) -> anyhow::Result<rustls::ClientConfig> {
    Ok(PinnedCa::new(pin.0, PIN_MISMATCH).client_config()?)
}

/// Client config for the link: the stored hub CA as the only root, and the
/// agent's certificate.
pub fn link_config(data: &DataDir) -> anyhow::Result<rustls::ClientConfig> {
    let ca = CertificateDer::from_pem_file(data.ca())
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.ca().display()))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let (cert_path, key_path) = if data.identity().exists() {
        (data.identity(), data.identity())
    } else {
        (data.cert(), data.tls_key())
    };
    let cert = CertificateDer::from_pem_file(&cert_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(sonde_tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client certificate in use and its expiry (Unix ms).
pub fn current_cert(data: &DataDir) -> anyhow::Result<(CertificateDer<'static>, i64)> {
    let path = if data.identity().exists() {
        data.identity()
    } else {
        data.cert()
    };
    let cert = CertificateDer::from_pem_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let expires = parsed.validity().not_after.timestamp() * 1000;
    Ok((cert.clone(), expires))
}

/// True if `cert_pem` certifies exactly the public key of `key`.
pub fn cert_matches_key(cert_pem: &str, key: &rcgen::KeyPair) -> bool {
    let Ok(cert) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return false;
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&cert) else {
        return false;
    };
    parsed.public_key().raw == rcgen::PublicKeyData::subject_public_key_info(key).as_slice()
}

/// Splits `HOST:PORT` (IPv6 as `[::1]:7443`).
pub fn split_address(address: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("hub address {address:?} must be HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("hub address {address:?}: {port:?} is not a port"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        anyhow::bail!("hub address {address:?} has no host");
    }
    Ok((host, port))
}

/// Opens a TLS connection to `HOST:PORT`.
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    address: &str,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let (host, port) = split_address(address)?;
    let name = ServerName::try_from(host.clone())
        .map_err(|_| anyhow::anyhow!("{host:?} is not a valid host name"))?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {address} timed out"))?
    .map_err(|e| anyhow::anyhow!("cannot connect to {address}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(
        Duration::from_secs(15),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| anyhow::anyhow!("TLS handshake with {address} timed out"))?
    .map_err(|e| anyhow::anyhow!("TLS handshake with {address} failed: {e}"))?;
    Ok(tls)
}

/// POSTs JSON over an open TLS connection; returns status and body.
pub async fn post_json(
    tls: TlsStream<TcpStream>,
    host: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<(u16, Bytes)> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::post(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .map_err(|_| anyhow::anyhow!("the hub did not answer within 30 s"))??;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
