//! The agent link end to end: probes, packs, ceiling, scrubbing, tampering,
//! replay, staleness, drift, reconnects, revocation, hostile connections.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sonde_tests::proxy::Proxy;
use sonde_tests::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// An online agent with the e2e test pack approved.
async fn agent_with_test_pack(scratch: &Scratch, hub: &Hub, name: &str, extra: &str) -> Agent {
    let mut agent = Agent::new(scratch, name, extra);
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(hub);
    agent.run();
    assert!(
        agent.wait_state(hub, "online", T).await,
        "agent log:\n{}",
        agent.log_text()
    );
    hub.approve_pack(name, "e2e").await;
    agent
}

/// Is a process named `comm` running as a child of `parent`?
fn child_running(parent: u32, comm: &str) -> bool {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten().any(|e| {
                let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                    return false;
                };
                // pid (comm) state ppid ...
                let Some((name, rest)) =
                    stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
                else {
                    return false;
                };
                let ppid = rest.split_whitespace().nth(1);
                name == comm && ppid == Some(parent.to_string().as_str())
            })
        })
        .unwrap_or(false)
}

fn agent_audit(agent: &Agent) -> String {
    let out = agent.output(&["audit", "list", "--limit", "200"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn agent_audit_verifies(agent: &Agent) -> String {
    let out = agent.output(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "agent audit verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_runs_and_its_signed_result_is_cross_audited() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let agent = agent_with_test_pack(&scratch, &hub, "nas", "").await;
    let r = admin_probe(&hub, "nas", "e2e.echo", json!({"text": "hello world"}))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.data.as_ref().unwrap()["text"], "hello world\n");
    let head = r.agent_audit_head.unwrap();
    assert!(head.seq >= 1);
    let entry = hub.admin().audit_entry(r.audit_seq).await.unwrap().entry;
    assert_eq!(entry.action, "probe");
    assert_eq!(entry.probe.as_deref(), Some("e2e.echo"));
    assert!(entry.actor.starts_with("operator:"));
    assert_eq!(entry.detail["agent_audit_head"]["seq"], head.seq);
    assert_eq!(entry.detail["agent_audit_head"]["hash"], head.hash.to_hex());
    // One entry on the agent per call: the verdict (with the receipt time).
    let local = agent_audit(&agent);
    assert_eq!(local.matches("probe.ran").count(), 1, "{local}");
    assert!(!local.contains("probe.received"), "{local}");
    agent_audit_verifies(&agent);
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pack_permission_pending_approved_active_revoked() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = Agent::new(&scratch, "box", "");
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(&hub);
    agent.run();
    assert!(agent.wait_state(&hub, "online", T).await);
    let perms = hub.admin().permissions(false).await.unwrap();
    let p = perms.iter().find(|p| p.pack == "e2e").expect("e2e pending");
    assert_eq!(p.state, sonde_protocol::messages::PackState::Pending);
    let before = admin_probe(&hub, "box", "e2e.echo", json!({"text": "x"})).await;
    assert!(before.unwrap_err().to_string().contains("unknown probe"));
    hub.approve_pack("box", "e2e").await;
    assert!(
        admin_probe(&hub, "box", "e2e.echo", json!({"text": "x"}))
            .await
            .unwrap()
            .ok
    );
    hub.cli_ok(&["packs", "revoke", "box", "e2e"]);
    let admin = hub.admin();
    assert!(
        wait_for(T, || async {
            admin
                .agent("box")
                .await
                .map(|d| {
                    d.packs.iter().any(|p| {
                        p.name == "e2e" && p.state == sonde_protocol::messages::PackState::Revoked
                    })
                })
                .unwrap_or(false)
        })
        .await
    );
    assert!(
        admin_probe(&hub, "box", "e2e.echo", json!({"text": "x"}))
            .await
            .unwrap_err()
            .to_string()
            .contains("unknown probe")
    );
    // The grant survives a restart of the agent: still revoked.
    agent.stop();
    agent.run();
    assert!(agent.wait_state(&hub, "online", T).await);
    assert!(
        admin_probe(&hub, "box", "e2e.echo", json!({"text": "x"}))
            .await
            .is_err()
    );
    let actions: Vec<_> = hub
        .audit_entries()
        .into_iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains(&"pack.approved".to_owned())
            && actions.contains(&"pack.revoked".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interact_probe_is_reachable_under_observe() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let _agent = agent_with_test_pack(&scratch, &hub, "obs", "").await;
    let interact = admin_probe(&hub, "obs", "e2e.restart", json!({}))
        .await
        .unwrap_err()
        .to_string();
    let missing = admin_probe(&hub, "obs", "e2e.does_not_exist", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(interact.contains("unknown probe"), "{interact}");
    // Indistinguishable from a probe that does not exist.
    assert_eq!(
        interact.replace("e2e.restart", "X"),
        missing.replace("e2e.does_not_exist", "X")
    );
    // The same pack under an `interact` ceiling registers it.
    let _agent2 =
        agent_with_test_pack(&scratch, &hub, "act", "max_capability = \"interact\"").await;
    assert!(
        admin_probe(&hub, "act", "e2e.restart", json!({}))
            .await
            .unwrap()
            .ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_scrubbed_before_they_leave_the_machine() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let _agent = agent_with_test_pack(&scratch, &hub, "sec", "").await;
    let r = admin_probe(&hub, "sec", "e2e.secrets", json!({}))
        .await
        .unwrap();
    let text = r.data.unwrap()["text"].as_str().unwrap().to_owned();
    assert!(
        !text.contains("hunter2") && !text.contains("AKIAIOSFODNN7EXAMPLE"),
        "{text}"
    );
    assert!(
        text.contains("DB_PASSWORD=[REDACTED:secret_assignment]"),
        "{text}"
    );
    assert_eq!(r.redactions["secret_assignment"], 1);
    assert_eq!(r.redactions["aws_access_key"], 1);
}

/// An agent whose link goes through a proxy (configured before enrollment,
/// so the attestation baseline already includes it).
async fn proxied_agent(scratch: &Scratch, hub: &Hub) -> (Agent, Proxy) {
    // Reserve the proxy port first: the agent's config must name it.
    let probe_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe_listener.local_addr().unwrap().port();
    drop(probe_listener);
    let mut agent = Agent::new(scratch, "mitm", &format!("hub = \"127.0.0.1:{port}\""));
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(hub);
    let proxy = Proxy::start_on(port, &hub.data, &agent.data, hub.run.agent_listen).await;
    agent.run();
    assert!(
        agent.wait_state(hub, "online", T).await,
        "agent log:\n{}",
        agent.log_text()
    );
    hub.approve_pack("mitm", "e2e").await;
    (agent, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_is_rejected_and_audited_on_both_sides() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (agent, proxy) = proxied_agent(&scratch, &hub).await;
    assert!(
        admin_probe(
            &hub,
            "mitm",
            "e2e.echo",
            json!({"text": "through the proxy"})
        )
        .await
        .unwrap()
        .ok
    );
    proxy
        .control
        .flip_next_request
        .store(true, Ordering::SeqCst);
    let r = admin_probe(&hub, "mitm", "e2e.echo", json!({"text": "tampered"}))
        .await
        .unwrap();
    assert!(!r.ok);
    assert_eq!(r.error_code.as_deref(), Some("rejected_by_agent"), "{r:?}");
    assert!(r.error.unwrap().contains("signature"));
    let rejected = hub.audit_actions("envelope.rejected_by_agent");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["detail"]["code"], "bad_signature");
    let local = agent_audit(&agent);
    assert!(local.contains("envelope.rejected"), "{local}");
    assert!(!local.contains("tampered"));
    agent_audit_verifies(&agent);
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_is_rejected() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (agent, proxy) = proxied_agent(&scratch, &hub).await;
    assert!(
        admin_probe(&hub, "mitm", "e2e.echo", json!({"text": "once"}))
            .await
            .unwrap()
            .ok
    );
    let captured = proxy
        .control
        .captured_requests
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    let ran_before = agent_audit(&agent).matches("probe.ran").count();
    assert!(proxy.control.inject_to_agent(captured));
    let seen = hub
        .wait_audited("envelope.rejected_by_agent", None, T)
        .await;
    assert!(seen, "the hub never heard of the rejection");
    let entry = &hub.audit_actions("envelope.rejected_by_agent")[0];
    assert!(
        ["replay", "sequence"].contains(&entry["detail"]["code"].as_str().unwrap()),
        "{entry}"
    );
    assert_eq!(
        agent_audit(&agent).matches("probe.ran").count(),
        ran_before,
        "the replay must not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_request_is_rejected_even_when_correctly_signed() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (agent, proxy) = proxied_agent(&scratch, &hub).await;
    let hub_key = sonde_protocol::keys::decode_secret_key(
        &std::fs::read_to_string(hub.data.join("signing.key")).unwrap(),
    )
    .unwrap();
    let hub_id = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(agent.data.join("hub.json")).unwrap(),
    )
    .unwrap()["hub_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = sonde_protocol::messages::ProbeRequest {
        request_id: "req-stale".into(),
        descriptor: serde_json::from_value(json!({"probe": "e2e.echo", "params": {"text": "old"}}))
            .unwrap(),
        actor: "attacker".into(),
        timeout_ms: 5000,
    };
    let mut env = sonde_protocol::Envelope::new(
        sonde_protocol::Kind::ProbeRequest,
        &hub_id,
        u64::MAX / 2,
        &request,
    )
    .unwrap();
    env.timestamp_ms -= 120_000;
    // Signed for this very session: only its age gives it away.
    let session = proxy
        .control
        .latest_session()
        .expect("a session on the path");
    assert!(
        proxy
            .control
            .inject_to_agent(env.sign_in(&hub_key, Some(&session)).unwrap())
    );
    assert!(
        hub.wait_audited("envelope.rejected_by_agent", None, T)
            .await
    );
    assert_eq!(
        hub.audit_actions("envelope.rejected_by_agent")[0]["detail"]["code"],
        "stale_timestamp"
    );
    assert!(
        !agent_audit(&agent).contains("attacker"),
        "the stale request must not even be recorded as received"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_drift_quarantines_until_accepted() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = agent_with_test_pack(&scratch, &hub, "drifty", "").await;
    agent.stop();
    // Change the pack set: a new (unapproved) pack appears.
    agent.add_pack(
        "extra",
        &TEST_PACK.replace("name = \"e2e\"", "name = \"extra\""),
    );
    agent.run();
    assert!(
        agent.wait_state(&hub, "quarantined", T).await,
        "hub log:\n{}",
        hub.log_text()
    );
    let drift = hub.admin().drift(false).await.unwrap();
    assert_eq!(drift.len(), 1);
    assert!(
        drift[0].changes.iter().any(|c| c.field == "pack:extra"),
        "{:?}",
        drift[0].changes
    );
    let refused = admin_probe(&hub, "drifty", "e2e.echo", json!({"text": "x"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("quarantined"), "{refused}");
    // The operator looks and keeps it quarantined: the drift is closed as
    // kept, audited, and the agent still answers nothing.
    hub.cli_ok(&["agents", "keep-quarantined", "drifty"]);
    assert!(hub.admin().drift(false).await.unwrap().is_empty());
    let all = hub.admin().drift(true).await.unwrap();
    assert_eq!(all[0].status, sonde_admin::api::DriftStatus::Kept);
    assert!(
        all[0]
            .resolved_by
            .as_deref()
            .unwrap()
            .starts_with("operator:")
    );
    assert_eq!(hub.audit_actions("attestation.kept_quarantined").len(), 1);
    assert!(
        admin_probe(&hub, "drifty", "e2e.echo", json!({"text": "x"}))
            .await
            .is_err()
    );
    let again = hub.cli(&["agents", "keep-quarantined", "drifty"]);
    assert!(
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("no open attestation drift"),
        "{again:?}"
    );
    // Later the operator accepts the new baseline after all.
    hub.cli_ok(&["agents", "accept", "drifty"]);
    assert!(agent.wait_state(&hub, "online", T).await);
    assert!(
        admin_probe(&hub, "drifty", "e2e.echo", json!({"text": "x"}))
            .await
            .unwrap()
            .ok
    );
    assert!(hub.admin().drift(false).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_agent_binary_is_drift() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = online_agent(&scratch, &hub, "bin", "").await;
    agent.stop();
    let copy = agent.dir.join("sonde-agent-modified");
    let mut bytes = std::fs::read(&agent.binary).unwrap();
    bytes.extend_from_slice(b"\0sonde drift test\0");
    std::fs::write(&copy, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    agent.binary = copy;
    agent.run();
    assert!(
        agent.wait_state(&hub, "quarantined", T).await,
        "agent log:\n{}",
        agent.log_text()
    );
    let drift = hub.admin().drift(false).await.unwrap();
    assert!(drift[0].changes.iter().any(|c| c.field == "binary_sha256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reconnects_after_the_hub_is_killed_and_restarted() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let agent = online_agent(&scratch, &hub, "phoenix", "").await;
    hub.kill();
    hub.restart();
    assert!(
        agent
            .wait_state(&hub, "online", Duration::from_secs(90))
            .await,
        "agent log:\n{}",
        agent.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_drops_the_live_connection_and_refuses_the_next() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let agent = online_agent(&scratch, &hub, "gone", "").await;
    hub.cli_ok(&["agents", "revoke", "gone"]);
    assert!(agent.wait_state(&hub, "revoked", T).await);
    assert!(hub.admin().status().await.unwrap().agents_online == 0);
    let refused = hub
        .wait_audited("connection.refused", Some(("reason", "revoked")), T)
        .await;
    assert!(
        refused,
        "the reconnect was not refused as revoked; agent log:\n{}",
        agent.log_text()
    );
    assert!(agent.log_text().contains("revoked"), "{}", agent.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let victim = online_agent(&scratch, &hub, "victim", "").await;
    // A second hub (another CA) issues a certificate naming the victim's id.
    let other_scratch = Scratch::new();
    let other = Hub::start(&other_scratch);
    let impostor = Agent::new(&other_scratch, "victim", "");
    impostor.enroll_auto(&other);
    let proxy_to_real = Proxy::start(&hub.data, &impostor.data, hub.run.agent_listen).await;
    // The "proxy" presents the other CA's agent certificate to the real hub.
    let _ = tokio_tungstenite_connect_through(&proxy_to_real).await;
    let refused = hub
        .wait_audited(
            "connection.refused",
            Some(("reason", "TLS handshake failed")),
            T,
        )
        .await;
    assert!(refused, "hub log:\n{}", hub.log_text());
    assert!(
        victim.wait_state(&hub, "online", T).await,
        "the real agent is unaffected"
    );
}

/// Opens a WebSocket through a proxy (which then dials the hub with its certificate).
async fn tokio_tungstenite_connect_through(proxy: &Proxy) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .dangerous()
    .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned(),
            tcp,
        )
        .await?;
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(format!("wss://{}/v1/agent", proxy.addr), tls),
    )
    .await;
    Ok(())
}

#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_to_run_as_root() {
    if !is_root() {
        skip_unless_ci("needs root to try running the agent as root");
        return;
    }
    let scratch = Scratch::new();
    let agent = Agent::new(&scratch, "root", "");
    for args in [
        vec!["run"],
        vec!["status"],
        vec!["probe", "--local", "system.uptime"],
    ] {
        let out = std::process::Command::new(&agent.binary)
            .arg("--config")
            .arg(&agent.config)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} ran as root");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refuses to run as root") && err.contains("useradd"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_probe_leaves_a_chain_that_verifies() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = agent_with_test_pack(&scratch, &hub, "crash", "").await;
    let hub_task = {
        let admin = hub.admin();
        tokio::spawn(async move {
            let run = sonde_admin::api::ProbeRun {
                agent: "crash".into(),
                probe: "e2e.sleep".into(),
                params: json!({"seconds": 20}).as_object().cloned().unwrap(),
            };
            admin.probe(&run).await
        })
    };
    // The probe's entry is written with its verdict; wait for its process.
    let pid = agent.pid().unwrap();
    assert!(
        wait_until(T, || child_running(pid, "sleep")),
        "the probe never started"
    );
    agent.kill();
    let verified = agent_audit_verifies(&agent);
    assert!(verified.starts_with("OK"), "{verified}");
    let r = hub_task.await.unwrap().unwrap();
    assert!(!r.ok);
    assert_eq!(r.error_code.as_deref(), Some("disconnected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_replaces_the_first() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let agent = online_agent(&scratch, &hub, "twin", "").await;
    let mut second = agent
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let replaced = hub.wait_audited("connection.replaced", None, T).await;
    let _ = second.kill();
    let _ = second.wait();
    assert!(replaced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_do_not_crash_or_bloat_the_hub() {
    use tokio::io::AsyncWriteExt;
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let agent = online_agent(&scratch, &hub, "steady", "").await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Warm up, then measure.
    for _ in 0..20 {
        let mut tcp = tokio::net::TcpStream::connect(hub.run.agent_listen)
            .await
            .unwrap();
        let _ = tcp.write_all(b"\x16\x03\x01garbage").await;
    }
    let rss_before = hub.rss_kib();
    // 1. Raw garbage instead of TLS.
    for i in 0..150u32 {
        let mut tcp = tokio::net::TcpStream::connect(hub.run.agent_listen)
            .await
            .unwrap();
        let junk: Vec<u8> = (0..2048u32)
            .map(|j| (i.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8)
            .collect();
        let _ = tcp.write_all(&junk).await;
    }
    // 2. Garbage HTTP over TLS without a client certificate. A fresh
    // connection per request: after a 413 the hub closes the connection
    // (the body was not read), and a pooled one could race that close.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", hub.run.agent_listen.port());
    for _ in 0..50 {
        let r = client
            .post(format!("{base}/v1/enroll"))
            .body("{\"token\": [}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    // An oversized body is refused from its head (413) before any of it is
    // read. Sent by hand: a client that goes on writing the body after the
    // refusal meets the closed connection (EPIPE) instead of the answer.
    let head = raw_request(
        &hub,
        "POST /v1/enroll HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 200000\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("body_too_large"), "{head}");
    let r = client.get(format!("{base}/v1/agent")).send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // 3. Garbage and oversized WebSocket frames from a holder of a valid agent certificate.
    let proxy = Proxy::start(&hub.data, &agent.data, hub.run.agent_listen).await;
    for i in 0..50u8 {
        let tls = tls_to(&proxy).await;
        if let Ok((mut ws, _)) =
            tokio_tungstenite::client_async(format!("wss://{}/v1/agent", proxy.addr), tls).await
        {
            use futures_util::SinkExt;
            let frame = if i == 0 {
                vec![0u8; 20 << 20]
            } else {
                vec![i; 300]
            };
            let _ = ws
                .send(tokio_tungstenite::tungstenite::Message::Binary(
                    frame.into(),
                ))
                .await;
            let _ = ws.close(None).await;
        }
    }
    // The hub still works: status, the steady agent, enrollment.
    assert!(hub.admin().status().await.is_ok());
    assert!(agent.wait_state(&hub, "online", T).await);
    Agent::new(&scratch, "later", "").enroll_auto(&hub);
    let rss_after = hub.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "hub memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    hub.assert_audit_ok();
    // Refusals were audited, but a flood cannot bloat the chain.
    let refused = hub.audit_actions("connection.refused").len();
    assert!((1..=120).contains(&refused), "{refused} refusal entries");
}

/// Writes `request` (a request head, no body) to the hub's agent port over
/// TLS, trusting the hub CA, and returns what the hub answers before it
/// closes the connection (bounded in time).
async fn raw_request(hub: &Hub, request: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(hub.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(hub.run.agent_listen)
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the answer is complete or the connection ends; the hub does
    // not wait for the announced body.
    let _ = tokio::time::timeout(T, async {
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if text.contains("\r\n\r\n") && text.ends_with('}') {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn tls_to(proxy: &Proxy) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1")
                .unwrap()
                .to_owned(),
            tcp,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_renews_its_certificate_over_the_link() {
    let scratch = Scratch::new();
    let hub = Hub::start_with(&scratch, "[agents]\nmin_cert_renewal_interval_s = 0\n");
    // A threshold above the 90-day validity makes it renew at once.
    let mut agent = online_agent(
        &scratch,
        &hub,
        "renewer",
        "renew_cert_days_before_expiry = 100",
    )
    .await;
    let found = wait_until(T, || agent.data.join("identity.pem").exists());
    let listing: Vec<String> = std::fs::read_dir(&agent.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        found,
        "data dir: {listing:?}\nagent log:\n{}",
        agent.log_text()
    );
    let renewed = hub.audit_actions("certificate.renewed");
    assert_eq!(renewed.len(), 1);
    let new_sha = renewed[0]["detail"]["cert_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    // The next connection uses the new certificate (the old one is superseded).
    agent.stop();
    agent.run();
    assert!(
        agent.wait_state(&hub, "online", T).await,
        "agent log:\n{}",
        agent.log_text()
    );
    let detail = hub.admin().agent("renewer").await.unwrap();
    assert!(hub.audit_actions("certificate.renewed").len() >= 2 || detail.cert_sha256 == new_sha);
    assert!(
        !agent.data.join("agent.crt").exists(),
        "the old certificate is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissued_server_certificate_keeps_agents_and_clients_connected() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let agent = online_agent(&scratch, &hub, "steady", "").await;
    let before = std::fs::read(hub.data.join("server.crt")).unwrap();
    hub.stop();
    let out = hub.cli_ok(&["cert", "reissue", "--hostname", "hub.example"]);
    assert!(out.contains("hub.example"), "{out}");
    assert_ne!(std::fs::read(hub.data.join("server.crt")).unwrap(), before);
    hub.restart();
    assert!(
        agent
            .wait_state(&hub, "online", Duration::from_secs(90))
            .await,
        "the agent trusts the same CA; agent log:\n{}",
        agent.log_text()
    );
    let key = hub.api_key(&["--name", "after-reissue"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (err, v) = call_tool(&client, "list_agents", json!({})).await;
    assert!(!err, "{v}");
    assert_eq!(hub.audit_actions("hub.server_cert_reissued").len(), 1);
    hub.assert_audit_ok();
    client.cancel().await.unwrap();
}

/// The next binary frame from the hub on a raw link (10 s at most).
async fn next_frame<S>(ws: &mut S) -> Option<Vec<u8>>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => return Some(b.to_vec()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                return None;
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

fn kind_of(frame: &[u8]) -> sonde_protocol::Kind {
    sonde_protocol::envelope::decode(frame, usize::MAX)
        .unwrap()
        .envelope
        .kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_replayed_after_a_hub_restart_is_refused() {
    use futures_util::SinkExt;
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let (mut agent, proxy) = proxied_agent(&scratch, &hub).await;
    let hello = proxy
        .control
        .captured_hellos
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the agent's hello went through the proxy");
    agent.stop();
    // A restart empties every in-memory replay cache.
    hub.stop();
    hub.restart();
    let mut ws = sonde_tests::proxy::link_as_agent(&hub.data, &agent.data, hub.run.agent_listen)
        .await
        .unwrap();
    let challenge = next_frame(&mut ws).await.expect("the hub speaks first");
    assert_eq!(kind_of(&challenge), sonde_protocol::Kind::HubChallenge);
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        hello.into(),
    ))
    .await
    .unwrap();
    let answer = next_frame(&mut ws).await.expect("a reject");
    assert_eq!(kind_of(&answer), sonde_protocol::Kind::HubReject);
    assert!(
        next_frame(&mut ws).await.is_none(),
        "the hub closes the link"
    );
    let rejected = hub.audit_actions("envelope.rejected");
    assert!(
        rejected.iter().any(|e| e["detail"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("challenge")),
        "{rejected:?}"
    );
    assert!(
        hub.audit_actions("connection.accepted").len() == 1,
        "only the real first connection was accepted"
    );
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_an_earlier_connection_is_refused_on_the_next() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let (agent, proxy) = proxied_agent(&scratch, &hub).await;
    assert!(
        admin_probe(
            &hub,
            "mitm",
            "e2e.echo",
            json!({"text": "first connection"})
        )
        .await
        .unwrap()
        .ok
    );
    let captured = proxy
        .control
        .captured_requests
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    hub.stop();
    hub.restart();
    assert!(
        wait_for(T, || async {
            proxy.control.connections.load(Ordering::SeqCst) >= 2
        })
        .await
    );
    assert!(agent.wait_state(&hub, "online", T).await);
    // Within the ±60 s window, signed by the real hub key: only the session
    // binding tells it apart.
    assert!(proxy.control.inject_to_agent(captured));
    assert!(
        wait_until(T, || hub
            .audit_actions("envelope.rejected_by_agent")
            .iter()
            .any(|e| e["detail"]["code"] == "bad_signature")),
        "agent audit:\n{}\nhub: {:?}",
        agent_audit(&agent),
        hub.audit_actions("envelope.rejected_by_agent")
    );
    assert!(agent_audit(&agent).contains("envelope.rejected"));
    let runs = agent_audit(&agent).matches("first connection").count();
    assert_eq!(runs, 0, "parameters never reach the audit in clear");
    let ran = agent_audit(&agent).matches("probe.ran").count();
    assert_eq!(
        ran,
        1,
        "the replayed request did not run: {}",
        agent_audit(&agent)
    );
    agent_audit_verifies(&agent);
}

/// Completes the handshake as `agent` on a raw link, signing with its key.
async fn handshake_as(
    hub: &Hub,
    agent: &Agent,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use futures_util::SinkExt;
    use sonde_protocol::envelope::{EnvelopeSigner, Nonce, SessionBinding};
    let mut ws = sonde_tests::proxy::link_as_agent(&hub.data, &agent.data, hub.run.agent_listen)
        .await
        .unwrap();
    let challenge = next_frame(&mut ws).await.unwrap();
    let challenge = sonde_protocol::envelope::decode(&challenge, usize::MAX).unwrap();
    let hub_nonce = Nonce::from_hex(challenge.envelope.payload["nonce"].as_str().unwrap()).unwrap();
    let key = sonde_protocol::keys::decode_secret_key(
        &std::fs::read_to_string(agent.data.join("signing.key")).unwrap(),
    )
    .unwrap();
    let id = agent.agent_id();
    let nonce = Nonce::random();
    let mut signer = EnvelopeSigner::new(&id, key).unwrap();
    signer.bind(SessionBinding::new(&hub_nonce, &nonce));
    let hello = json!({
        "challenge": hub_nonce.to_hex(), "nonce": nonce.to_hex(), "agent_id": id,
        "agent_version": "0", "hostname": "raw", "max_capability": "observe", "packs": [],
        "audit_head": {"seq": 0, "hash": "00".repeat(32)},
        "attestation": {"os_release": "x", "kernel": "x", "arch": "x", "binary_sha256": "00".repeat(32),
            "packs": [], "config_sha256": "00".repeat(32), "machine_id": "x", "sandbox": "none"},
    });
    let (_, frame) = signer
        .seal(sonde_protocol::Kind::AgentHello, &hello)
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        frame.into(),
    ))
    .await
    .unwrap();
    let ack = next_frame(&mut ws).await.expect("an answer to the hello");
    assert_eq!(kind_of(&ack), sonde_protocol::Kind::HubAck);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frames_count_towards_the_bad_frame_limit() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = online_agent(&scratch, &hub, "chatty", "").await;
    agent.stop();
    let mut ws = handshake_as(&hub, &agent).await;
    let mut sent = 0;
    for _ in 0..1000 {
        if ws
            .send(Message::Text("not an envelope".into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the link stayed open after {sent} text frames"
    );
    assert!(
        wait_until(T, || hub.audit_actions("connection.closed").iter().any(
            |e| e["detail"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("invalid frames")
        )),
        "{:?}",
        hub.audit_actions("connection.closed")
    );
    let rejected = hub.audit_actions("envelope.rejected");
    assert!(
        rejected.len() <= 21,
        "rejections are audited within a bound: {}",
        rejected.len()
    );
    hub.assert_audit_ok();
}

/// Opens `n` TCP connections to `to` from `from`, and keeps them.
async fn idle_connections(
    from: std::net::Ipv4Addr,
    to: std::net::SocketAddr,
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::new(from.into(), 0))
            .unwrap();
        if let Ok(s) = socket.connect(to).await {
            held.push(s);
        }
    }
    held
}

/// Whether the hub closed `tcp` without a word (read EOF or reset).
async fn was_dropped(tcp: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_unauthenticated_connections_cannot_lock_out_agents() {
    let scratch = Scratch::new();
    // Idle handshakes hold their slots for the whole test.
    let hub = Hub::start_with(&scratch, "[agents]\nhandshake_timeout_s = 120\n");
    let mut agent = online_agent(&scratch, &hub, "steady", "").await;
    let to = hub.run.agent_listen;
    // 1. One address opens 1,024 idle connections: it gets 16.
    let mut one = idle_connections(std::net::Ipv4Addr::new(127, 0, 0, 2), to, 1024).await;
    let mut dropped = 0;
    for tcp in one.iter_mut().skip(16).take(20) {
        dropped += usize::from(was_dropped(tcp).await);
    }
    assert_eq!(
        dropped, 20,
        "connections past the per-address cap are dropped at once"
    );
    // 2. Many addresses fill the whole unauthenticated pool (256).
    let mut many = Vec::new();
    for i in 1..=40u8 {
        many.extend(idle_connections(std::net::Ipv4Addr::new(127, 0, 1, i), to, 16).await);
    }
    let mut stranger = idle_connections(std::net::Ipv4Addr::new(127, 0, 2, 1), to, 1).await;
    assert!(
        was_dropped(&mut stranger[0]).await,
        "a new address is refused while the pool is full"
    );
    // The agent reconnects from the address it used before, and works.
    agent.stop();
    agent.run();
    assert!(
        agent.wait_state(&hub, "online", T).await,
        "the agent was locked out; hub log:\n{}",
        hub.log_text()
    );
    let r = admin_probe(&hub, "steady", "system.uptime", json!({}))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    // Refusals are audited within the budget (60 a minute, then a count).
    let refused = hub.audit_actions("connection.refused");
    assert!(!refused.is_empty());
    assert!(refused.len() <= 61, "{} refusal entries", refused.len());
    drop((one, many));
    hub.assert_audit_ok();
}
