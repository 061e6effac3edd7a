//! Enrollment and the agent link, end to end: real hub and agent processes.
#![allow(clippy::unwrap_used)]

use sonde_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_happy_path_with_operator_approval() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = Agent::new(&scratch, "nas1", "");
    let (token, ca) = hub.token(false);
    let mut enroll = agent.spawn_enroll(&hub, &token, &ca);
    let admin = hub.admin();
    assert!(
        hub.wait_pending_enrollments(1).await,
        "no pending enrollment; enroll log:\n{}",
        agent.enroll_log()
    );
    let pending = admin.enrollments(false).await.unwrap().remove(0);
    assert_eq!(pending.name, "nas1");
    assert_eq!(pending.token_label, "e2e");
    assert!(
        enroll.try_wait().unwrap().is_none(),
        "enroll must wait for approval"
    );
    // The hub lists the enrollment as soon as it is committed, a moment
    // before the agent has its answer and prints the message (bounded wait).
    let waiting = Instant::now() + Duration::from_secs(10);
    while !agent
        .enroll_log()
        .contains("sonde-hub enrollments approve nas1")
        && Instant::now() < waiting
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        agent
            .enroll_log()
            .contains("sonde-hub enrollments approve nas1"),
        "clear waiting message:\n{}",
        agent.enroll_log()
    );
    hub.cli_ok(&["enrollments", "approve", "nas1"]);
    let status = tokio::task::spawn_blocking(move || enroll.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "enroll failed:\n{}", agent.enroll_log());
    for f in ["signing.key", "tls.key", "agent.crt", "ca.crt", "hub.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent.data.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f} must be 0600");
    }
    agent.run();
    assert!(
        agent
            .wait_state(&hub, "online", Duration::from_secs(30))
            .await,
        "agent log:\n{}",
        agent.log_text()
    );
    let actions: Vec<String> = hub
        .audit_entries()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "token.created",
        "token.used",
        "enrollment.requested",
        "enrollment.approved",
        "certificate.issued",
        "connection.accepted",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "audit lacks {want}: {actions:?}"
        );
    }
    hub.assert_audit_ok();
}

// Expired tokens: `sonde-hub::enroll::tests::an_enrollment_token_expires_by_the_hubs_clock`
// moves the hub's clock to the token's last millisecond and past it, with
// no sleeping; the refusal reaches the agent's CLI as in
// `enrollment_token_is_single_use` below.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_token_is_single_use() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (token, ca) = hub.token(true);
    let first = Agent::new(&scratch, "first", "");
    let out = first.output(&[
        "enroll",
        "--hub",
        &hub.agent_addr(),
        "--token",
        &token,
        "--ca-sha256",
        &ca,
        "--name",
        "first",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = Agent::new(&scratch, "second", "");
    let out = second.output(&[
        "enroll",
        "--hub",
        &hub.agent_addr(),
        "--token",
        &token,
        "--ca-sha256",
        &ca,
        "--name",
        "second",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = hub.audit_actions("enrollment.refused");
    assert_eq!(refused[0]["detail"]["reason"], "token_reused");
    assert_eq!(hub.admin().agents().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_is_refused_without_burning_the_token() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    Agent::new(&scratch, "nas", "").enroll_auto(&hub);
    let (token, ca) = hub.token(true);
    let again = Agent::new(&scratch, "nas-again", "");
    let out = again.output(&[
        "enroll",
        "--hub",
        &hub.agent_addr(),
        "--token",
        &token,
        "--ca-sha256",
        &ca,
        "--name",
        "nas",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already enrolled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = again.output(&[
        "enroll",
        "--hub",
        &hub.agent_addr(),
        "--token",
        &token,
        "--ca-sha256",
        &ca,
        "--name",
        "nas2",
    ]);
    assert!(
        out.status.success(),
        "the token must still work: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_fingerprint_means_the_token_is_never_sent() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (token, _) = hub.token(false);
    let agent = Agent::new(&scratch, "pinned", "");
    let wrong = "ab".repeat(32);
    let out = agent.output(&[
        "enroll",
        "--hub",
        &hub.agent_addr(),
        "--token",
        &token,
        "--ca-sha256",
        &wrong,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the --ca-sha256"), "{err}");
    // The hub never saw the token: it is still usable and nothing was recorded.
    let tokens = hub.admin().tokens().await.unwrap();
    assert_eq!(tokens[0].state, sonde_admin::api::TokenState::Active);
    assert!(hub.audit_actions("token.used").is_empty());
    assert!(hub.audit_actions("enrollment.refused").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_enrollment_burns_the_token_and_tells_the_agent() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let agent = Agent::new(&scratch, "nope", "");
    let (token, ca) = hub.token(false);
    let mut enroll = agent.spawn_enroll(&hub, &token, &ca);
    let admin = hub.admin();
    assert!(hub.wait_pending_enrollments(1).await);
    hub.cli_ok(&["enrollments", "deny", "nope"]);
    let status = tokio::task::spawn_blocking(move || enroll.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success());
    assert!(
        agent.enroll_log().contains("denied"),
        "{}",
        agent.enroll_log()
    );
    assert_eq!(
        admin.tokens().await.unwrap()[0].state,
        sonde_admin::api::TokenState::Used
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_csr_is_refused_and_the_token_kept() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (token, _) = hub.token(false);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "evil");
    let csr = params.serialize_request(&key).unwrap();
    let mut der = csr.der().to_vec();
    let i = der.len() / 2;
    der[i] ^= 0x20;
    let b64 = {
        use std::fmt::Write;
        let mut s = String::new();
        for chunk in der.chunks(48) {
            let _ = writeln!(s, "{}", base64_encode(chunk));
        }
        s
    };
    let pem =
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}-----END CERTIFICATE REQUEST-----\n");
    let body = serde_json::json!({
        "token": token,
        "csr_pem": pem,
        "signing_key": sonde_protocol::keys::encode_public_key(&sonde_protocol::keys::generate_signing_key().unwrap().verifying_key()),
        "name": "evil",
        "hostname": "evil",
        "attestation": {"os_release": "x", "kernel": "x", "arch": "x", "binary_sha256": "00".repeat(32), "packs": [], "config_sha256": "00".repeat(32), "machine_id": "x"}
    });
    let (status, text) = raw_https_post(&hub, "/v1/enroll", &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("signing request"), "{text}");
    assert_eq!(
        hub.admin().tokens().await.unwrap()[0].state,
        sonde_admin::api::TokenState::Active,
        "a bad request must not burn the token"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// POST over TLS to the agent port (trusting the hub CA, no client cert).
async fn raw_https_post(hub: &Hub, path: &str, body: &serde_json::Value) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = client
        .post(format!(
            "https://localhost:{}{path}",
            hub.run.agent_listen.port()
        ))
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_bad_tokens_leave_the_hub_responsive_and_consistent() {
    let scratch = Scratch::new();
    // All from one address: lift the per-address cap so that every request
    // reaches the enrollment code (the cap has its own test).
    let hub = Hub::start_with(
        &scratch,
        "[agents]\nmax_unauthenticated = 512\nmax_unauthenticated_per_ip = 512\n",
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "x");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let signing = sonde_protocol::keys::encode_public_key(
        &sonde_protocol::keys::generate_signing_key()
            .unwrap()
            .verifying_key(),
    );
    let mut tasks = Vec::new();
    for i in 0..200 {
        let body = serde_json::json!({
            "token": format!("sonde-enroll-{i:040}"),
            "csr_pem": csr,
            "signing_key": signing,
            "name": format!("bad{i}"),
            "hostname": "x",
            "attestation": {"os_release": "x", "kernel": "x", "arch": "x", "binary_sha256": "00".repeat(32), "packs": [], "config_sha256": "00".repeat(32), "machine_id": "x"}
        });
        let hub_ca = hub.ca_pem();
        let port = hub.run.agent_listen.port();
        tasks.push(tokio::spawn(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(hub_ca.as_bytes()).unwrap())
                .build()
                .unwrap();
            client
                .post(format!("https://localhost:{port}/v1/enroll"))
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // Still responsive, and a good enrollment still works.
    assert!(hub.admin().status().await.is_ok());
    let agent = Agent::new(&scratch, "good", "");
    agent.enroll_auto(&hub);
    assert_eq!(hub.audit_actions("enrollment.refused").len(), 200);
    hub.assert_audit_ok();
    let db = rusqlite::Connection::open(hub.data.join("hub.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_entry_edited_with_sqlite3() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    for _ in 0..3 {
        hub.token(false);
    }
    hub.stop();
    hub.assert_audit_ok();
    let entries = hub.audit_entries();
    let victim = entries
        .iter()
        .find(|e| e["action"] == "token.created")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    // An edit made with SQLite itself, as someone with the file would.
    let db = rusqlite::Connection::open(hub.data.join("hub.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE audit_entries SET actor = 'operator:someone-else' WHERE seq = ?1",
            [victim as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let out = hub.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("BROKEN at entry {victim} (modified)")),
        "{text}"
    );
}

/// Terminal controls an enrolling machine might send: clear screen, window
/// title, 8-bit CSI, bidi override, a fake extra row.
const HOSTILE: &str = "pwn\x1b[2J\x1b]0;owned\x07\u{9b}31m\u{202e}txt\nFAKE approved row";

fn assert_terminal_safe(out: &str, what: &str) {
    for bad in ['\x1b', '\x07', '\u{9b}', '\u{202e}'] {
        assert!(!out.contains(bad), "{what} printed {bad:?} raw:\n{out}");
    }
    assert!(
        !out.lines().any(|l| l.starts_with("FAKE")),
        "{what} let a value fake a line:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_supplied_text_is_escaped_in_every_cli_output() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let (token, _) = hub.token(false);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hostile");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let body = serde_json::json!({
        "token": token,
        "csr_pem": csr,
        "signing_key": sonde_protocol::keys::encode_public_key(&sonde_protocol::keys::generate_signing_key().unwrap().verifying_key()),
        "name": "hostile",
        "hostname": HOSTILE,
        "attestation": {"os_release": HOSTILE, "kernel": HOSTILE, "arch": "x86_64", "binary_sha256": "00".repeat(32), "packs": [], "config_sha256": "00".repeat(32), "machine_id": "x", "sandbox": HOSTILE}
    });
    let (status, text) = raw_https_post(&hub, "/v1/enroll", &body).await;
    assert_eq!(status, 200, "{text}");
    for args in [
        &["enrollments", "list"][..],
        &["--json", "enrollments", "list"],
        &["audit", "list"],
        &["--json", "audit", "list"],
    ] {
        let out = hub.cli_ok(args);
        assert_terminal_safe(&out, &format!("sonde-hub {args:?}"));
        if args[0] == "--json" {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(
                v.to_string().contains("\\u001b") || args[1] == "audit",
                "the JSON still carries the value: {v}"
            );
        }
    }
    hub.cli_ok(&["enrollments", "approve", "hostile"]);
    for args in [
        &["agents", "list"][..],
        &["--json", "agents", "list"],
        &["agents", "show", "hostile"],
    ] {
        let out = hub.cli(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_terminal_safe(&text, &format!("sonde-hub {args:?}"));
    }
}
