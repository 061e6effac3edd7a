#![allow(missing_debug_implementations)]
//! A man-in-the-middle between an agent and its hub, for the tampering
//! tests. It holds what a real attacker on the path would need to get this
//! far — the hub's server certificate and the agent's client certificate
//! (read from their data dirs) — so it can see and change every frame. What
//! it cannot do is re-sign: the envelope signatures are what the tests
//! exercise.

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sonde_protocol::envelope::{self, Kind};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::Message;

/// Knobs the test turns while the proxy runs.
#[derive(Default)]
pub struct ProxyControl {
    /// Flip one bit in the next `probe.request` going to the agent.
    pub flip_next_request: AtomicBool,
    /// Every `probe.request` frame seen going to the agent, unmodified.
    pub captured_requests: Mutex<Vec<Vec<u8>>>,
    /// Every `agent.hello` frame seen going to the hub, unmodified.
    pub captured_hellos: Mutex<Vec<Vec<u8>>>,
    /// Every `hub.challenge` frame seen going to the agent, unmodified.
    pub captured_challenges: Mutex<Vec<Vec<u8>>>,
    /// Frames to inject towards the agent on the live connection.
    inject: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    /// Connections accepted from the agent.
    pub connections: AtomicU64,
}

impl ProxyControl {
    /// The session binding of the latest connection, computed from the
    /// challenge and hello seen on the path (as a path attacker holding
    /// the hub's signing key could).
    pub fn latest_session(&self) -> Option<envelope::SessionBinding> {
        let nonce = |frame: &[u8], field: &str| {
            let d = envelope::decode(frame, usize::MAX).ok()?;
            envelope::Nonce::from_hex(d.envelope.payload.get(field)?.as_str()?)
        };
        let challenge = self.captured_challenges.lock().unwrap().last().cloned()?;
        let hello = self.captured_hellos.lock().unwrap().last().cloned()?;
        Some(envelope::SessionBinding::new(
            &nonce(&challenge, "nonce")?,
            &nonce(&hello, "nonce")?,
        ))
    }

    /// Sends a raw frame to the agent, as if from the hub.
    pub fn inject_to_agent(&self, frame: Vec<u8>) -> bool {
        self.inject
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|tx| tx.send(frame).is_ok())
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub control: Arc<ProxyControl>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Proxy {
    /// Listens on 127.0.0.1; forwards to `hub_addr` as the agent whose data
    /// dir is `agent_data`.
    pub async fn start(hub_data: &Path, agent_data: &Path, hub_addr: SocketAddr) -> Proxy {
        Proxy::start_on(0, hub_data, agent_data, hub_addr).await
    }

    /// Same, on a given port.
    pub async fn start_on(
        port: u16,
        hub_data: &Path,
        agent_data: &Path,
        hub_addr: SocketAddr,
    ) -> Proxy {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(hub_data.join("server.crt"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(hub_data.join("server.key")).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(hub_data.join("ca.crt")).unwrap())
            .unwrap();
        let agent_cert = CertificateDer::from_pem_file(agent_data.join("agent.crt")).unwrap();
        let agent_key = PrivateKeyDer::from_pem_file(agent_data.join("tls.key")).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![agent_cert], agent_key)
            .unwrap();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(ProxyControl::default());
        let (acceptor, connector) = (
            TlsAcceptor::from(Arc::new(server)),
            TlsConnector::from(Arc::new(client)),
        );
        let ctl = Arc::clone(&control);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, connector, ctl) =
                    (acceptor.clone(), connector.clone(), Arc::clone(&ctl));
                tokio::spawn(async move {
                    let _ = relay(acceptor, connector, tcp, hub_addr, ctl).await;
                });
            }
        });
        Proxy {
            addr,
            control,
            task,
        }
    }
}

/// A WebSocket link to the hub holding the agent's client certificate, as
/// an attacker with the agent's TLS key (but not its signing key) has.
pub async fn link_as_agent(
    hub_data: &Path,
    agent_data: &Path,
    hub: SocketAddr,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>>
{
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(hub_data.join("ca.crt"))?)?;
    let agent_cert = CertificateDer::from_pem_file(agent_data.join("agent.crt"))?;
    let agent_key = PrivateKeyDer::from_pem_file(agent_data.join("tls.key"))?;
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![agent_cert], agent_key)?;
    let tcp = TcpStream::connect(hub).await?;
    let tls = TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
        .await?;
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://{hub}/v1/agent"), tls).await?;
    Ok(ws)
}

async fn relay(
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    tcp: TcpStream,
    hub: SocketAddr,
    ctl: Arc<ProxyControl>,
) -> anyhow::Result<()> {
    let agent_tls = acceptor.accept(tcp).await?;
    let mut agent_ws = tokio_tungstenite::accept_async(agent_tls).await?;
    ctl.connections.fetch_add(1, Ordering::SeqCst);
    let hub_tcp = TcpStream::connect(hub).await?;
    let hub_tls = connector
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), hub_tcp)
        .await?;
    let (mut hub_ws, _) =
        tokio_tungstenite::client_async(format!("wss://{hub}/v1/agent"), hub_tls).await?;
    let (tx, mut injected) = mpsc::unbounded_channel();
    *ctl.inject.lock().unwrap() = Some(tx);
    loop {
        tokio::select! {
            m = agent_ws.next() => match m {
                Some(Ok(Message::Binary(bytes))) => {
                    let kind = envelope::decode(&bytes, usize::MAX).ok().map(|d| d.envelope.kind);
                    if kind == Some(Kind::AgentHello) {
                        ctl.captured_hellos.lock().unwrap().push(bytes.to_vec());
                    }
                    hub_ws.send(Message::Binary(bytes)).await?
                }
                Some(Ok(m)) => hub_ws.send(m).await?,
                _ => break,
            },
            m = hub_ws.next() => match m {
                Some(Ok(Message::Binary(bytes))) => {
                    let mut frame = bytes.to_vec();
                    let kind = envelope::decode(&frame, usize::MAX).ok().map(|d| d.envelope.kind);
                    if kind == Some(Kind::HubChallenge) {
                        ctl.captured_challenges.lock().unwrap().push(frame.clone());
                    }
                    if kind == Some(Kind::ProbeRequest) {
                        ctl.captured_requests.lock().unwrap().push(frame.clone());
                        if ctl.flip_next_request.swap(false, Ordering::SeqCst) {
                            // A bit in the middle of the payload.
                            let i = frame.len() - 64 - 10;
                            frame[i] ^= 0x01;
                        }
                    }
                    agent_ws.send(Message::Binary(frame.into())).await?;
                }
                Some(Ok(m)) => agent_ws.send(m).await?,
                _ => break,
            },
            Some(frame) = injected.recv() => agent_ws.send(Message::Binary(frame.into())).await?,
        }
    }
    Ok(())
}
