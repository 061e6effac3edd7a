//! The integrations' HTTP client: `GET` only, over hyper's HTTP/1 client
//! on tokio-rustls (no OpenSSL), bounded in time and bytes.
//!
//! **TLS** (SECURITY.md, "integration TLS pinning"): by default the
//! server is verified against the system's trust roots
//! (`rustls-native-certs`: Debian's `/etc/ssl/certs`, which the operator
//! already maintains; no compiled-in root list to go stale). For
//! self-signed homelab gear an integration pins either
//! - a CA certificate (PEM): the server's chain must lead to that CA
//!   *only* (system roots are not consulted) and its name must match; or
//! - the server certificate's SHA-256 fingerprint (as Proxmox VE and
//!   UniFi show it): exactly that certificate, handshake signatures still
//!   verified.
//!
//! There is no option to skip verification. Plain `http` is allowed for
//! APIs that have no TLS (Prometheus, Alertmanager on a LAN), but a
//! credential is never sent over it except to a loopback address.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use url::Url;

/// How the server is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trust {
    /// The system's roots.
    #[default]
    System,
    /// Only this CA (PEM, one or more certificates).
    Ca { pem: String },
    /// Exactly the certificate with this SHA-256 (64 hex digits).
    Fingerprint { sha256: String },
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("{0} did not answer within {1} ms")]
    Timeout(String, u64),
    #[error("{0}: {1}")]
    Protocol(String, String),
    #[error("the answer from {0} is larger than {1} bytes")]
    TooLarge(String, usize),
    #[error(
        "refusing to send a credential over plain http to {0} (use https, or a loopback address)"
    )]
    CleartextCredential(String),
}

/// Parses a fingerprint with the one rule every Sonde binary uses
/// ([`sonde_protocol::Digest::from_hex`]: 64 hex digits, `:` separators
/// and a `sha256:` prefix allowed).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    sonde_protocol::Digest::from_hex(text).ok().map(|d| d.0)
}

/// The certificates of a PEM text.
pub fn parse_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CA PEM does not parse: {e}"))?;
    if certs.is_empty() {
        return Err("the CA PEM holds no certificate".into());
    }
    Ok(certs)
}

impl Trust {
    /// Checks the pin's form (at `add`).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Trust::System => Ok(()),
            Trust::Ca { pem } => {
                let certs = parse_pem(pem)?;
                let mut roots = RootCertStore::empty();
                let (ok, _) = roots.add_parsable_certificates(certs);
                if ok == 0 {
                    return Err("no usable CA certificate in the PEM".into());
                }
                Ok(())
            }
            Trust::Fingerprint { sha256 } => {
                parse_fingerprint(sha256).map(|_| ()).ok_or_else(|| {
                    "the fingerprint must be a SHA-256 (64 hex digits, ':' allowed)".into()
                })
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Trust::System => "system roots".into(),
            Trust::Ca { pem } => format!(
                "pinned CA (sha256 {})",
                parse_pem(pem)
                    .ok()
                    .and_then(|c| c.first().map(|c| hex::encode(Sha256::digest(c.as_ref()))))
                    .unwrap_or_default()
            ),
            Trust::Fingerprint { sha256 } => format!("pinned certificate {sha256}"),
        }
    }
}

static SYSTEM_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's trust roots");
    }
    let (added, _) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, "system trust roots loaded for integrations");
    Arc::new(roots)
});

fn tls_config(trust: &Trust) -> Result<ClientConfig, HttpError> {
    let setup = |e: rustls::Error| HttpError::Setup(format!("TLS setup: {e}"));
    let roots = match trust {
        // The same pinned-certificate check as the proxmox pack's.
        Trust::Fingerprint { sha256 } => {
            let sha256 = parse_fingerprint(sha256).ok_or_else(|| {
                HttpError::Setup("the pinned fingerprint is not a SHA-256".into())
            })?;
            return sonde_tls::pinned_leaf_config(sha256, "fingerprint").map_err(setup);
        }
        Trust::System => SYSTEM_ROOTS.clone(),
        Trust::Ca { pem } => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(parse_pem(pem).map_err(HttpError::Setup)?);
            Arc::new(roots)
        }
    };
    Ok(ClientConfig::builder_with_provider(sonde_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// One `GET`. `auth` is the header carrying the credential, if any.
pub async fn get(
    url: &Url,
    auth: Option<(HeaderName, HeaderValue)>,
    trust: &Trust,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Answer, HttpError> {
    let origin = url.origin().ascii_serialization();
    let ms = timeout.as_millis() as u64;
    match tokio::time::timeout(timeout, get_inner(url, auth, trust, max_bytes, &origin)).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout(origin, ms)),
    }
}

async fn get_inner(
    url: &Url,
    auth: Option<(HeaderName, HeaderValue)>,
    trust: &Trust,
    max_bytes: usize,
    origin: &str,
) -> Result<Answer, HttpError> {
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(HttpError::Setup(format!("scheme {other} is not allowed"))),
    };
    if !https && auth.is_some() && !is_loopback(url) {
        return Err(HttpError::CleartextCredential(origin.to_owned()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::Setup("no host".into()))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| HttpError::Setup("no port".into()))?;
    let bare = host.trim_matches(['[', ']']).to_owned();
    let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| HttpError::Connect(origin.to_owned(), e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut req = Request::get(path_and_query)
        .header(HOST, host_header)
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("sonde-hub/", env!("CARGO_PKG_VERSION")));
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| HttpError::Setup(e.to_string()))?;
    if https {
        let config = tls_config(trust)?;
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(bare.clone())
                .map_err(|e| HttpError::Setup(format!("{host}: {e}")))?,
        };
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls(origin.to_owned(), e.to_string()))?;
        send(TokioIo::new(stream), req, max_bytes, origin).await
    } else {
        send(TokioIo::new(tcp), req, max_bytes, origin).await
    }
}

async fn send<T>(
    io: T,
    req: Request<Empty<Bytes>>,
    max_bytes: usize,
    origin: &str,
) -> Result<Answer, HttpError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let perr = |e: &dyn std::fmt::Display| HttpError::Protocol(origin.to_owned(), e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| perr(&e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| perr(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    HttpError::TooLarge(origin.to_owned(), max_bytes)
                } else {
                    perr(&e)
                }
            })?
            .to_bytes();
        Ok(Answer { status, body })
    }
    .await;
    driver.abort();
    result
}

/// A header value for a secret, refusing bytes a header cannot carry
/// (CR/LF would otherwise split the request).
pub fn secret_header(value: &[u8]) -> Result<HeaderValue, HttpError> {
    let mut v = HeaderValue::from_bytes(value).map_err(|_| {
        HttpError::Setup("the stored credential holds bytes a header cannot carry".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-answer HTTPS server; returns its URL, leaf SHA-256 and CA PEM.
    async fn server(with_ca: bool) -> (Url, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let (chain, ca_pem, leaf_der) = if with_ca {
            let ca_key = KeyPair::generate().unwrap();
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::from_params(&ca_params, ca_key);
            let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
            (
                vec![leaf.der().clone(), ca.der().clone()],
                ca.pem(),
                leaf.der().clone(),
            )
        } else {
            let leaf = leaf_params.self_signed(&leaf_key).unwrap();
            (vec![leaf.der().clone()], leaf.pem(), leaf.der().clone())
        };
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (
            Url::parse(&format!("https://127.0.0.1:{port}/x")).unwrap(),
            hex::encode(Sha256::digest(leaf_der.as_ref())),
            ca_pem,
        )
    }

    async fn try_get(url: &Url, trust: &Trust) -> Result<Answer, HttpError> {
        get(url, None, trust, Duration::from_secs(5), 1024).await
    }

    #[tokio::test]
    async fn pins_are_enforced_and_cleartext_credentials_refused() {
        let (url, sha, _) = server(false).await;
        // Self-signed, not pinned: refused by the system roots.
        assert!(matches!(
            try_get(&url, &Trust::System).await,
            Err(HttpError::Tls(..))
        ));
        // A wrong fingerprint: refused.
        let wrong = Trust::Fingerprint {
            sha256: "ab".repeat(32),
        };
        assert!(matches!(
            try_get(&url, &wrong).await,
            Err(HttpError::Tls(..))
        ));
        // The right one: answered.
        let right = Trust::Fingerprint {
            sha256: sha.clone(),
        };
        let a = try_get(&url, &right).await.unwrap();
        assert_eq!(
            (a.status, a.body.as_ref()),
            (200, b"{\"ok\":true}".as_ref())
        );
        // A CA pin: only the CA that signed the server.
        let (ca_url, _, ca_pem) = server(true).await;
        let a = try_get(&ca_url, &Trust::Ca { pem: ca_pem }).await.unwrap();
        assert_eq!(a.status, 200);
        let (_, _, other_ca) = server(true).await;
        assert!(matches!(
            try_get(&ca_url, &Trust::Ca { pem: other_ca }).await,
            Err(HttpError::Tls(..))
        ));
        // Bounded body.
        assert!(matches!(
            get(&url, None, &right, Duration::from_secs(5), 4).await,
            Err(HttpError::TooLarge(..))
        ));
        // A credential over plain http goes to loopback only.
        let remote = Url::parse("http://192.0.2.1:9/x").unwrap();
        let auth = Some((
            hyper::header::AUTHORIZATION,
            secret_header(b"Bearer t").unwrap(),
        ));
        assert!(matches!(
            get(&remote, auth, &Trust::System, Duration::from_secs(2), 1024).await,
            Err(HttpError::CleartextCredential(_))
        ));
        assert!(secret_header(b"a\r\nX-Injected: 1").is_err());
        assert!(
            Trust::Fingerprint {
                sha256: "zz".into()
            }
            .check()
            .is_err()
        );
        assert!(
            Trust::Ca {
                pem: "not pem".into()
            }
            .check()
            .is_err()
        );
    }
}
