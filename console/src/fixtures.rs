//! Test data (unit tests only).
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sonde_admin::api::*;
use sonde_protocol::attestation::Attestation;
use sonde_protocol::audit::{AuditEntry, ChainHead};
use sonde_protocol::messages::{PackReport, PackState};
use sonde_protocol::{Capability, Digest};

use crate::app::App;
use crate::worker::{Reply, Request, Response};

pub const NOW: i64 = 1_714_566_896_000;

pub fn status(enrollments: u64, permissions: u64, quarantined: u64) -> HubStatus {
    HubStatus {
        version: "0.1.0".into(),
        started_at_ms: NOW - 3_600_000,
        agents_total: 3,
        agents_online: 2,
        pending_enrollments: enrollments,
        pending_permissions: permissions,
        pending_oauth: 0,
        quarantined,
        open_drift: quarantined,
        audit_head: ChainHead {
            seq: 42,
            hash: Digest::of(b"head"),
        },
        agent_endpoint: "wss://hub.lan:7443".into(),
        mcp_url: Some("https://127.0.0.1:7444/mcp".into()),
        ca_sha256: "ab".repeat(32),
        ca_cert_path: Some("/var/lib/sonde-hub/ca.crt".into()),
    }
}

pub fn agent(name: &str, state: AgentState) -> AgentSummary {
    AgentSummary {
        id: format!("agt-{name}"),
        name: name.into(),
        state,
        connected: state == AgentState::Online,
        last_seen_ms: Some(NOW - 5_000),
        hostname: format!("{name}.lan"),
        os: "Debian GNU/Linux 12".into(),
        agent_version: "0.1.0".into(),
        packs_active: 2,
        packs_pending: 1,
        packs_unavailable: 0,
        tags: vec!["prod".into()],
        quarantine_reason: (state == AgentState::Quarantined).then(|| "binary changed".into()),
        max_capability: Capability::Observe,
        enrolled_at_ms: NOW - 86_400_000,
        cert_expires_ms: NOW + 86_400_000,
        remote_addr: Some("10.0.0.5:50000".into()),
        sandbox: "landlock-v7".into(),
    }
}

pub fn attestation(kernel: &str) -> Attestation {
    Attestation {
        os_release: "Debian GNU/Linux 12".into(),
        kernel: kernel.into(),
        arch: "x86_64".into(),
        binary_sha256: Digest::of(kernel.as_bytes()),
        packs: vec![],
        config_sha256: Digest::of(b"config"),
        machine_id: "m1".into(),
        sandbox: "landlock-v7".into(),
        config: [
            ("max_capability", "\"observe\""),
            ("packs.zfs", "sha256:1111aaaa2222bbbb3333cccc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    }
}

pub fn pack(name: &str, state: PackState, probes: serde_json::Value) -> PackReport {
    serde_json::from_value(json!({
        "name": name,
        "version": "1.0.0",
        "description": format!("the {name} pack"),
        "manifest_sha256": Digest::of(name.as_bytes()),
        "state": state,
        "capability": "observe",
        "probes": probes,
    }))
    .unwrap()
}

pub fn probe(name: &str, params: serde_json::Value) -> serde_json::Value {
    json!({
        "name": name,
        "description": format!("does {name}"),
        "capability": "observe",
        "timeout_ms": 5000,
        "params": params,
        "output": "text",
        "registered": true,
    })
}

pub fn detail(name: &str) -> AgentDetail {
    AgentDetail {
        summary: agent(name, AgentState::Online),
        baseline: attestation("6.1"),
        baseline_fingerprint: "f".repeat(64),
        current: None,
        packs: vec![
            pack(
                "e2e",
                PackState::Active,
                json!([
                    probe(
                        "e2e.echo",
                        json!([{"name": "text", "type": "string", "max_len": 5, "required": true}])
                    ),
                    probe(
                        "e2e.sleep",
                        json!([{"name": "seconds", "type": "integer", "min": 0, "max": 30, "required": true}])
                    ),
                ]),
            ),
            pack(
                "docker",
                PackState::Pending,
                json!([probe("docker.ps", json!([]))]),
            ),
        ],
        grants: Default::default(),
        agent_audit_head: None,
        cert_sha256: "c".repeat(64),
        signing_key_fingerprint: "k".repeat(64),
    }
}

pub fn enrollment(name: &str) -> EnrollmentInfo {
    EnrollmentInfo {
        id: format!("enr-{name}"),
        name: name.into(),
        hostname: format!("{name}.lan"),
        remote_addr: "10.0.0.9:41000".into(),
        key_fingerprint: "9f86d081884c7d659a2feaa0c55ad015".into(),
        tls_key_fingerprint: "t".repeat(64),
        attestation_summary: "Debian 12, 6.1, x86_64, packs: system".into(),
        attestation: attestation("6.1"),
        attestation_fingerprint: "a".repeat(64),
        token_id: "tok1".into(),
        token_label: "e2e".into(),
        auto_approved: false,
        requested_at_ms: NOW - 120_000,
        status: EnrollmentStatus::Pending,
        decided_at_ms: None,
        decided_by: None,
    }
}

pub fn permission(agent: &str, pack: &str, state: PackState) -> PermissionRequest {
    PermissionRequest {
        agent_id: format!("agt-{agent}"),
        agent_name: agent.into(),
        pack: pack.into(),
        version: "1.0.0".into(),
        description: format!("the {pack} pack"),
        manifest_sha256: "m".repeat(64),
        state,
        decision: None,
        capability: Capability::Observe,
        requires: vec!["group docker (read the Docker socket)".into()],
        missing: vec![],
        detected: true,
    }
}

pub fn drift(agent: &str) -> DriftEvent {
    let baseline = attestation("6.1.0-18");
    let current = attestation("6.1.0-21");
    DriftEvent {
        id: 1,
        agent_id: format!("agt-{agent}"),
        agent_name: agent.into(),
        detected_at_ms: NOW - 60_000,
        baseline_fingerprint: baseline.fingerprint().to_hex(),
        current_fingerprint: current.fingerprint().to_hex(),
        changes: current.changes_from(&baseline),
        baseline,
        current,
        status: DriftStatus::Open,
        resolved_at_ms: None,
        resolved_by: None,
        agent_version: Some(VersionChange {
            before: Some("0.1.0".into()),
            after: Some("0.1.0".into()),
        }),
    }
}

pub fn entry(seq: u64, action: &str) -> AuditEntry {
    AuditEntry {
        seq,
        timestamp_ms: NOW - (1000 - seq as i64),
        actor: "operator:alice".into(),
        agent: Some("agt-nas1".into()),
        action: action.into(),
        probe: None,
        params_digest: None,
        outcome: "ok".into(),
        result_digest: None,
        detail: Default::default(),
        prev_hash: Digest::of(b"prev"),
        hash: Digest::of(&seq.to_be_bytes()),
    }
}

/// A page of entries `from` down to `to` (newest first).
pub fn page(from: u64, to: u64, next: Option<u64>) -> AuditPage {
    AuditPage {
        entries: (to..=from).rev().map(|s| entry(s, "probe")).collect(),
        next_before_seq: next,
        head: ChainHead {
            seq: from,
            hash: Digest::of(b"h"),
        },
        agent_names: [("agt-nas1".to_owned(), "nas1".to_owned())]
            .into_iter()
            .collect(),
    }
}

pub fn key_info(name: &str) -> KeyInfo {
    KeyInfo {
        id: format!("key-{name}"),
        name: name.into(),
        prefix: "sk_3f9a1c2e".into(),
        agents: vec![],
        probes: vec!["zfs.*".into()],
        tools: vec![],
        max_capability: Capability::Observe,
        created_at_ms: NOW - 1000,
        expires_at_ms: None,
        last_used_at_ms: None,
        revoked_at_ms: None,
    }
}

pub fn token(label: &str) -> TokenInfo {
    TokenInfo {
        id: format!("tok-{label}"),
        label: label.into(),
        state: TokenState::Active,
        auto_approve: false,
        created_at_ms: NOW - 1000,
        expires_at_ms: NOW + 900_000,
        used_at_ms: None,
        revoked_at_ms: None,
    }
}

/// Traffic: nas1 answers in 10..40 ms, a refusal in the last minute.
pub fn metrics() -> FleetMetrics {
    let n = 60;
    let mut calls = vec![0; n];
    let mut refusals = vec![0; n];
    calls[n - 3] = 4;
    calls[n - 2] = 8;
    calls[n - 1] = 2;
    refusals[n - 1] = 1;
    let mut latency = vec![None; n];
    latency[n - 3] = Some(10);
    latency[n - 2] = Some(40);
    latency[n - 1] = Some(20);
    FleetMetrics {
        start_ms: NOW - 59 * 60_000,
        calls: calls.clone(),
        refusals,
        agents: vec![AgentMetrics {
            agent_id: "agt-nas1".into(),
            name: "nas1".into(),
            calls,
            latency_ms: latency,
        }],
    }
}

/// Feeds a successful answer to `request`.
pub fn answer(app: &mut App, request: Request, reply: Reply) -> Vec<Request> {
    app.on_response(Response {
        request,
        result: Ok(reply),
    })
}

/// An app with a bit of everything loaded.
pub fn loaded_app() -> App {
    let mut app = App::new("/tmp/hub/admin.sock");
    app.now_ms = NOW;
    answer(&mut app, Request::Status, Reply::Status(status(1, 1, 1)));
    answer(
        &mut app,
        Request::Agents,
        Reply::Agents(vec![
            agent("nas1", AgentState::Online),
            agent("web2", AgentState::Offline),
            agent("db3", AgentState::Quarantined),
        ]),
    );
    answer(
        &mut app,
        Request::Enrollments,
        Reply::Enrollments(vec![enrollment("pi4")]),
    );
    answer(
        &mut app,
        Request::Permissions,
        Reply::Permissions(vec![
            permission("nas1", "zfs", PackState::Active),
            permission("nas1", "docker", PackState::Pending),
        ]),
    );
    answer(
        &mut app,
        Request::Drift(false),
        Reply::Drift(vec![drift("db3")]),
    );
    answer(
        &mut app,
        Request::Quarantined,
        Reply::Quarantined(vec![QuarantinedAgent {
            agent: agent("db3", AgentState::Quarantined),
            drift: Some(drift("db3")),
        }]),
    );
    answer(&mut app, Request::Metrics(60), Reply::Metrics(metrics()));
    answer(
        &mut app,
        Request::Keys,
        Reply::Keys(vec![key_info("claude")]),
    );
    answer(&mut app, Request::Tokens, Reply::Tokens(vec![token("nas")]));
    let q = app.audit.request();
    answer(&mut app, q, Reply::Audit(page(500, 301, Some(301)), 0));
    app
}

/// The whole screen drawn on a `TestBackend`.
pub fn buffer(app: &App, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    t.draw(|f| crate::ui::draw(f, app)).unwrap();
    t.backend().buffer().clone()
}

/// [`buffer`] as text, one line per row.
pub fn render(app: &App, w: u16, h: u16) -> String {
    let buf = buffer(app, w, h);
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// The first line of `screen` containing `needle`.
pub fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"))
}

/// The style of the cell where `needle` starts on screen.
pub fn style_at(app: &App, w: u16, h: u16, needle: &str) -> ratatui::style::Style {
    let buf = buffer(app, w, h);
    let text = render(app, w, h);
    let (y, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"));
    let byte = line.find(needle).unwrap();
    let col = line[..byte].chars().count() as u16;
    buf[(col, y as u16)].style()
}
