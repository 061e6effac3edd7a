//! Scale tool: N simulated agents connected to one real hub, and what it
//! costs the hub.
//!
//! ```text
//! cargo run --release -p sonde-tests --bin sonde-scale -- [OPTIONS]
//!   --agents N        simulated agents (default 1000)
//!   --heartbeat-s S   heartbeat interval the hub asks for (default 5)
//!   --hold-s S        how long to measure with everyone connected (default 60)
//!   --calls N         MCP probe calls per latency measurement (default 500)
//!   --parallel N      enrollments / connections in flight at once (default 32)
//! ```
//!
//! The hub is the real `sonde-hub` process. Each simulated agent is real
//! from the hub's point of view: it gets an auto-approved enrollment token
//! from the admin API, enrolls through `POST /v1/enroll` (its own TLS key
//! and CSR, its own Ed25519 key; the hub's CA issues its certificate), then
//! connects over mutual TLS and WebSocket, says a signed hello (the
//! attestation and packs of a real agent, so catalogs are realistic) and
//! sends signed heartbeats, verifying every frame from the hub. One real
//! `sonde-agent` with the test pack answers the MCP probe calls.
//!
//! Measured: MCP probe latency with no simulated agent, then with all of
//! them connected; the hub's resident memory and CPU while they are
//! connected and idle-beating; heartbeat lag (delay of the hub's signed
//! heartbeats as the agents receive them, and how stale the hub's
//! last-seen time is for the stalest agent); enrollment and connection
//! rates. Every phase is bounded in count and time (30 minutes in all).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sonde_protocol::audit::ChainHead;
use sonde_protocol::envelope::{
    EnvelopeSigner, Kind, Nonce, PeerVerifier, SessionBinding, VerifyPolicy,
};
use sonde_protocol::messages::{
    AgentHello, EnrollRequest, EnrollResponse, Heartbeat, HubAck, HubChallenge, PackReport,
};
use sonde_protocol::time::now_ms;
use sonde_tests::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Debug, Clone)]
struct Options {
    agents: usize,
    heartbeat_s: u64,
    hold_s: u64,
    calls: usize,
    parallel: usize,
}

fn parse_args() -> Options {
    let mut o = Options {
        agents: 1000,
        heartbeat_s: 5,
        hold_s: 60,
        calls: 500,
        parallel: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--agents" => o.agents = value("--agents") as usize,
            "--heartbeat-s" => o.heartbeat_s = value("--heartbeat-s"),
            "--hold-s" => o.hold_s = value("--hold-s"),
            "--calls" => o.calls = value("--calls") as usize,
            "--parallel" => o.parallel = value("--parallel") as usize,
            "-h" | "--help" => {
                println!(
                    "sonde-scale [--agents N] [--heartbeat-s S] [--hold-s S] [--calls N] [--parallel N]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (see --help)"),
        }
    }
    o.agents = o.agents.clamp(1, 20_000);
    o.heartbeat_s = o.heartbeat_s.clamp(1, 300);
    o.hold_s = o.hold_s.clamp(5, 900);
    o.calls = o.calls.clamp(10, 100_000);
    o.parallel = o.parallel.clamp(1, 256);
    o
}

/// CPU time (user + system) of a process so far, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 Hz on Linux x86-64.
    (get(11) + get(12)) * 10.0
}

fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// p50/p99/max of MCP probe calls to the real agent.
async fn mcp_latency(client: &McpClient, calls: usize, deadline: Instant) -> (f64, f64, f64) {
    let mut lat = Vec::with_capacity(calls);
    for i in 0..calls {
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        let (err, v) = call_tool(
            client,
            "probe",
            json!({"agent": "real", "probe": "e2e.echo", "params": {"text": format!("{i}")}}),
        )
        .await;
        assert!(!err, "{v}");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    (
        percentile_ms(&lat, 0.5),
        percentile_ms(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
    )
}

/// What a simulated agent needs to connect.
struct Identity {
    agent_id: String,
    hub_id: String,
    hub_key: ed25519_dalek::VerifyingKey,
    signing: ed25519_dalek::SigningKey,
    tls: Arc<rustls::ClientConfig>,
}

/// What every simulated agent reports (copied from the real agent).
struct Template {
    attestation: sonde_protocol::attestation::Attestation,
    packs: Vec<PackReport>,
}

/// Enrolls one simulated agent through the hub's real enrollment path.
async fn enroll(
    hub: &Hub,
    http: &reqwest::Client,
    template: &Template,
    name: String,
) -> anyhow::Result<Identity> {
    let token = hub
        .admin()
        .create_token(&sonde_admin::api::TokenCreate {
            ttl_s: Some(3600),
            label: Some("scale".into()),
            auto_approve: true,
        })
        .await?
        .token;
    let tls_key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name.clone());
    let csr_pem = params.serialize_request(&tls_key)?.pem()?;
    let signing = sonde_protocol::keys::generate_signing_key()?;
    let request = EnrollRequest {
        token,
        csr_pem,
        signing_key: sonde_protocol::keys::encode_public_key(&signing.verifying_key()),
        name: name.clone(),
        hostname: name,
        attestation: template.attestation.clone(),
    };
    let response: EnrollResponse = http
        .post(format!("https://{}/v1/enroll", hub.agent_addr()))
        .json(&request)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let creds = response
        .credentials
        .ok_or_else(|| anyhow::anyhow!("not approved: {}", response.message))?;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(
        creds.ca_pem.as_bytes(),
    )?)?;
    let cert = rustls_pki_types::CertificateDer::from_pem_slice(creds.cert_pem.as_bytes())?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(tls_key.serialize_pem().as_bytes())?;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        agent_id: creds.agent_id,
        hub_id: creds.hub_id,
        hub_key: sonde_protocol::keys::decode_public_key(&creds.hub_signing_key)?,
        signing,
        tls: Arc::new(tls),
    })
}

/// Shared counters of the simulated fleet.
#[derive(Default)]
struct Stats {
    connected: AtomicUsize,
    heartbeats_sent: AtomicU64,
    heartbeats_received: AtomicU64,
    rejected: AtomicU64,
    /// Delay of hub heartbeats as received (ms), during the hold window.
    lag_ms: Mutex<Vec<f64>>,
    measuring: std::sync::atomic::AtomicBool,
}

/// Connects one simulated agent and runs it until `stop`.
async fn run_agent(
    hub_addr: String,
    id: Identity,
    template: Arc<Template>,
    stats: Arc<Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    connected: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) {
    let session = async {
        let tcp = tokio::net::TcpStream::connect(&hub_addr).await?;
        tcp.set_nodelay(true)?;
        let server = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&id.tls))
            .connect(server, tcp)
            .await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(8 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            format!("wss://{hub_addr}/v1/agent"),
            tls,
            Some(config),
        )
        .await?;
        let mut signer = EnvelopeSigner::new(&id.agent_id, id.signing.clone())?;
        let mut verifier = PeerVerifier::new(
            &id.hub_id,
            id.hub_key,
            VerifyPolicy {
                max_frame_bytes: 16 << 20,
                max_skew_ms: 60_000,
            },
        );
        verifier.new_connection();
        let (mut tx, mut rx) = ws.split();
        let mut first = async |what: &str| {
            tokio::time::timeout(Duration::from_secs(60), rx.next())
                .await
                .map_err(|_| anyhow::anyhow!("no {what} within 60 s"))?
                .ok_or_else(|| anyhow::anyhow!("closed before the {what}"))?
                .map_err(anyhow::Error::from)
        };
        // The hub's challenge (its only unbound frame), then a hello bound
        // to it and to our own nonce, as the real agent does.
        let challenge = first("challenge").await?;
        let env = verifier.verify(&challenge.into_data(), now_ms())?;
        anyhow::ensure!(
            env.kind == Kind::HubChallenge,
            "expected hub.challenge, got {}",
            env.kind
        );
        let challenge: HubChallenge = env.payload_as()?;
        let challenge = Nonce::from_hex(&challenge.nonce)
            .ok_or_else(|| anyhow::anyhow!("the hub's challenge is not 32 bytes of hex"))?;
        let nonce = Nonce::random();
        let binding = SessionBinding::new(&challenge, &nonce);
        signer.bind(binding);
        let hello = AgentHello {
            challenge: challenge.to_hex(),
            nonce: nonce.to_hex(),
            agent_id: id.agent_id.clone(),
            agent_version: "0.1.0-sim".into(),
            hostname: id.agent_id.clone(),
            attestation: template.attestation.clone(),
            max_capability: sonde_protocol::Capability::Observe,
            packs: template.packs.clone(),
            audit_head: ChainHead::genesis(),
        };
        let (_, frame) = signer.seal(Kind::AgentHello, &hello)?;
        tx.send(Message::Binary(frame.into())).await?;
        let ack = first("ack").await?;
        let env = verifier.verify_in(&ack.into_data(), now_ms(), Some(&binding))?;
        anyhow::ensure!(
            env.kind == Kind::HubAck,
            "expected hub.ack, got {}",
            env.kind
        );
        let ack: HubAck = env.payload_as()?;
        anyhow::ensure!(!ack.quarantined, "quarantined: {:?}", ack.quarantine_reason);
        Ok::<_, anyhow::Error>((tx, rx, signer, verifier, binding, ack.heartbeat_interval_ms))
    };
    let (mut tx, mut rx, mut signer, mut verifier, binding, interval_ms) = match session.await {
        Ok(s) => {
            let _ = connected.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = connected.send(Err(e));
            return;
        }
    };
    stats.connected.fetch_add(1, Ordering::SeqCst);
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
    ticker.tick().await;
    let head = ChainHead::genesis();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let Ok((_, frame)) = signer.seal(Kind::Heartbeat, &Heartbeat { audit_head: Some(head) }) else { break };
                if tx.send(Message::Binary(frame.into())).await.is_err() { break }
                stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Binary(frame) = msg else { continue };
                match verifier.verify_in(&frame, now_ms(), Some(&binding)) {
                    Ok(env) if env.kind == Kind::Heartbeat => {
                        stats.heartbeats_received.fetch_add(1, Ordering::Relaxed);
                        if stats.measuring.load(Ordering::Relaxed) {
                            let lag = (now_ms() - env.timestamp_ms) as f64;
                            if let Ok(mut l) = stats.lag_ms.lock() && l.len() < 1_000_000 {
                                l.push(lag);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => { stats.rejected.fetch_add(1, Ordering::Relaxed); }
                }
            }
        }
    }
    stats.connected.fetch_sub(1, Ordering::SeqCst);
    let _ = tx.send(Message::Close(None)).await;
}

fn raise_fd_limit(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    let max = cur.maximum.unwrap_or(u64::MAX).max(want);
    let limit = Rlimit {
        current: Some(want.min(max)),
        maximum: Some(max),
    };
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("warning: cannot raise the open-files limit to {want}: {e}");
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = parse_args();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The hub (a child) inherits the limit: two descriptors per agent here
    // and there, plus room.
    raise_fd_limit((o.agents as u64) * 2 + 4096);
    let scratch = Scratch::new();
    let hub = Hub::start_with(
        &scratch,
        &format!(
            "[mcp]\nrate_limit_per_minute = 100000000\n[agents]\nheartbeat_interval_s = {hb}\noffline_after_s = {off}\nmax_connections = {max}\nmax_unauthenticated = {pre}\nmax_unauthenticated_per_ip = {pre}\n",
            hb = o.heartbeat_s,
            off = o.heartbeat_s * 4,
            max = o.agents + 64,
            // Every simulated agent comes from 127.0.0.1: the per-address
            // pre-auth limit must admit the connections in flight at once.
            pre = o.parallel * 2 + 64
        ),
    );
    let hub_pid = hub.pid().unwrap();
    let mut real = Agent::new(&scratch, "real", "max_concurrent_probes = 16");
    real.add_pack("e2e", TEST_PACK);
    real.enroll_auto(&hub);
    real.run();
    assert!(
        real.wait_state(&hub, "online", Duration::from_secs(30))
            .await
    );
    hub.approve_pack("real", "e2e").await;
    let key = hub.api_key(&["--name", "scale"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    mcp_latency(&client, 50, deadline).await;
    let detail = hub.admin().agent("real").await.unwrap();
    let template = Arc::new(Template {
        attestation: detail.baseline.clone(),
        packs: detail.packs.clone(),
    });
    let catalog_json = serde_json::to_vec(&template.packs).unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_alone = hub.rss_kib();
    let (p50_alone, p99_alone, _) = mcp_latency(&client, o.calls, deadline).await;
    println!(
        "hub with 1 real agent: {:.1} MiB resident; MCP probe p50 {p50_alone:.2} ms, p99 {p99_alone:.2} ms ({} calls); one agent's catalog is {} KiB of JSON",
        mib(rss_alone),
        o.calls,
        catalog_json / 1024
    );

    // Enroll N agents through the real path.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let slots = Arc::new(Semaphore::new(o.parallel));
    let started = Instant::now();
    let hub = Arc::new(hub);
    let mut enrolling = Vec::with_capacity(o.agents);
    for i in 0..o.agents {
        let (hub, http, template, slots) = (
            Arc::clone(&hub),
            http.clone(),
            Arc::clone(&template),
            Arc::clone(&slots),
        );
        enrolling.push(tokio::spawn(async move {
            let _slot = slots.acquire().await.unwrap();
            enroll(&hub, &http, &template, format!("sim-{i:05}")).await
        }));
    }
    let mut ids = Vec::with_capacity(o.agents);
    for t in enrolling {
        if Instant::now() > deadline {
            panic!("enrollment did not finish in time");
        }
        ids.push(t.await.unwrap().expect("enrollment"));
    }
    let enroll_secs = started.elapsed().as_secs_f64();
    println!(
        "enrolled {} agents in {enroll_secs:.1} s ({:.0}/s: token, CSR, certificate, audit), hub {:.1} MiB",
        ids.len(),
        ids.len() as f64 / enroll_secs,
        mib(hub.rss_kib())
    );

    // Connect them all.
    let stats = Arc::new(Stats::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut waiting = Vec::with_capacity(ids.len());
    let mut sessions = Vec::with_capacity(ids.len());
    let cpu_before_connect = cpu_ms(hub_pid);
    for id in ids {
        let slot = Arc::clone(&slots).acquire_owned().await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (addr, template, stats, stop) = (
            hub.agent_addr(),
            Arc::clone(&template),
            Arc::clone(&stats),
            stop_rx.clone(),
        );
        sessions.push(tokio::spawn(run_agent(addr, id, template, stats, stop, tx)));
        waiting.push(tokio::spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(120), rx).await;
            drop(slot);
            match r {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(anyhow::anyhow!("the session ended before its ack")),
                Err(_) => Err(anyhow::anyhow!("no ack in 120 s")),
            }
        }));
        if Instant::now() > deadline {
            panic!("connecting did not finish in time");
        }
    }
    let mut failures = 0;
    for w in waiting {
        if let Err(e) = w.await.unwrap() {
            failures += 1;
            if failures <= 5 {
                eprintln!("a simulated agent could not connect: {e:#}");
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connect_cpu = cpu_ms(hub_pid) - cpu_before_connect;
    let connected = stats.connected.load(Ordering::SeqCst);
    println!(
        "connected {connected} agents ({failures} failed) in {connect_secs:.1} s ({:.0}/s); hub CPU {:.2} ms per connection (mTLS, signed hello, ack); hub {:.1} MiB",
        connected as f64 / connect_secs,
        connect_cpu / connected.max(1) as f64,
        mib(hub.rss_kib())
    );
    assert_eq!(failures, 0, "every simulated agent must connect");

    // Hold: everyone connected and beating; measure.
    stats.measuring.store(true, Ordering::SeqCst);
    let (cpu0, t0) = (cpu_ms(hub_pid), Instant::now());
    let beats0 = stats.heartbeats_sent.load(Ordering::Relaxed);
    let mut rss_max = 0u64;
    let hold_end = Instant::now() + Duration::from_secs(o.hold_s);
    let measured = {
        let client = &client;
        let calls = o.calls;
        async move { mcp_latency(client, calls, deadline).await }
    };
    tokio::pin!(measured);
    let mut latency = None;
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < hold_end || latency.is_none() {
        tokio::select! {
            l = &mut measured, if latency.is_none() => latency = Some(l),
            _ = sample.tick() => rss_max = rss_max.max(hub.rss_kib()),
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_ms(hub_pid) - cpu0;
    let beats = stats.heartbeats_sent.load(Ordering::Relaxed) - beats0;
    stats.measuring.store(false, Ordering::SeqCst);
    let (p50, p99, max) = latency.unwrap_or_default();
    let mut lag = stats.lag_ms.lock().unwrap().clone();
    lag.sort_by(f64::total_cmp);
    // How stale is the hub's view of liveness?
    let now = now_ms();
    let summaries = hub.admin().agents().await.unwrap();
    let stalest = summaries
        .iter()
        .filter(|a| a.name.starts_with("sim-"))
        .map(|a| now - a.last_seen_ms.unwrap_or(0))
        .max()
        .unwrap_or(0);
    let online = summaries
        .iter()
        .filter(|a| a.name.starts_with("sim-") && a.connected)
        .count();
    println!(
        "with {connected} agents connected for {secs:.0} s ({:.0} signed heartbeats/s in, as many out):",
        beats as f64 / secs
    );
    println!(
        "  hub resident memory {:.1} MiB (max {:.1}; {:.1} KiB per agent over the 1-agent hub)",
        mib(hub.rss_kib()),
        mib(rss_max),
        (rss_max.saturating_sub(rss_alone)) as f64 / connected.max(1) as f64
    );
    println!(
        "  hub CPU {:.1} % of one core ({:.3} ms per heartbeat, MCP calls included)",
        cpu / secs / 10.0,
        cpu / beats.max(1) as f64
    );
    println!(
        "  heartbeat lag (hub's signed heartbeat, sent → verified by the agent): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} beats",
        percentile_ms(&lag, 0.5),
        percentile_ms(&lag, 0.99),
        lag.last().copied().unwrap_or(0.0),
        lag.len()
    );
    println!(
        "  hub's last-seen of the stalest agent: {:.1} s old (heartbeat every {} s, liveness written every 5 s); {online} shown online",
        stalest as f64 / 1000.0,
        o.heartbeat_s
    );
    println!(
        "  MCP probe p50 {p50:.2} ms (alone {p50_alone:.2}), p99 {p99:.2} ms (alone {p99_alone:.2}), max {max:.2} ms; rejected frames {}",
        stats.rejected.load(Ordering::Relaxed)
    );
    let _ = stop.send(true);
    for s in sessions {
        let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
    }
    let t = Instant::now();
    real.stop();
    let mut hub = Arc::try_unwrap(hub).ok().expect("only owner");
    hub.stop();
    println!(
        "graceful stop of agent and hub: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    hub.assert_audit_ok();
}
