//! A local HTTPS server replaying recorded API answers, for integrations
//! whose real server cannot run here (Proxmox VE, UniFi Network). It
//! serves `GET path?query` → a file's JSON, checks the credential header
//! like the real API would (401 otherwise), and records every request
//! line it saw so a test can check what the hub sent. TLS: a self-signed
//! certificate (`rcgen`), or a leaf signed by a test CA.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Route {
    pub status: u16,
    pub body: String,
}

/// The server's certificate material.
#[derive(Debug, Clone)]
pub struct Certs {
    /// SHA-256 of the leaf (hex).
    pub leaf_sha256: String,
    /// The CA's PEM (the leaf itself when self-signed).
    pub ca_pem: String,
}

/// Request lines and the credential header seen, in order.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Debug)]
pub struct Replay {
    pub addr: SocketAddr,
    pub certs: Certs,
    /// Request lines and the auth header value seen, in order.
    pub seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn make_certs(
    with_ca: bool,
) -> (
    Certs,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use sha2::Digest;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(names).unwrap();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    if with_ca {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(leaf.der()));
        (
            Certs {
                leaf_sha256: sha,
                ca_pem: ca_cert.pem(),
            },
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
    } else {
        let leaf = leaf_params.self_signed(&leaf_key).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(leaf.der()));
        (
            Certs {
                leaf_sha256: sha,
                ca_pem: leaf.pem(),
            },
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
    }
}

impl Replay {
    /// Serves `routes` (keyed by path, or `path?query`) on 127.0.0.1 over
    /// TLS; requests without `auth_header: auth_value` get 401.
    pub async fn start(
        routes: HashMap<String, Route>,
        auth_header: &'static str,
        auth_value: String,
        with_ca: bool,
    ) -> Replay {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (certs, chain, key) = make_certs(with_ca);
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let routes = Arc::new(routes);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let routes = routes.clone();
                let seen = seen2.clone();
                let auth_value = auth_value.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let mut lines = head.split("\r\n");
                    let request = lines.next().unwrap_or("").to_owned();
                    let auth = lines
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(auth_header))
                        .map(|(_, v)| v.trim().to_owned());
                    seen.lock().unwrap().push((request.clone(), auth.clone()));
                    let target = request.split(' ').nth(1).unwrap_or("");
                    let path = target.split('?').next().unwrap_or("");
                    let (status, body) = if auth.as_deref() != Some(auth_value.as_str()) {
                        (
                            401,
                            "{\"data\":null,\"message\":\"authentication failure\"}".to_owned(),
                        )
                    } else if let Some(r) = routes.get(target).or_else(|| routes.get(path)) {
                        (r.status, r.body.clone())
                    } else {
                        (
                            404,
                            "{\"data\":null,\"message\":\"no such path\"}".to_owned(),
                        )
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Replay {
            addr,
            certs,
            seen,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}
