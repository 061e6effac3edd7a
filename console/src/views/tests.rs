//! Every screen and overlay drawn on ratatui's `TestBackend`.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sonde_admin::api::*;
use sonde_protocol::messages::PackState;

use crate::app::{App, Modal, View};
use crate::fixtures::*;
use crate::worker::{Reply, Request};

fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| crate::ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn screen(app: &App) -> String {
    render(app, 160, 45)
}

fn on(view: View) -> App {
    let mut app = loaded_app();
    app.view = view;
    app
}

fn line_with<'a>(s: &'a str, needle: &str) -> &'a str {
    s.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{s}"))
}

#[test]
fn fleet_lists_agents_with_status_and_counts_in_the_status_bar() {
    let app = on(View::Fleet);
    let s = screen(&app);
    assert!(s.contains("1 Fleet"), "{s}");
    assert!(s.contains("2 Enrollments (1)"), "{s}");
    let nas = line_with(&s, "nas1");
    assert!(
        nas.contains("online")
            && nas.contains("5s ago")
            && nas.contains("2/1/0")
            && nas.contains("prod"),
        "{nas}"
    );
    assert!(line_with(&s, "db3").contains("QUARANTINED"));
    assert!(line_with(&s, "web2").contains("offline"));
    let status = s.lines().last().unwrap();
    assert!(
        status.contains("enrollments 1")
            && status.contains("permissions 1")
            && status.contains("quarantined 1"),
        "{status}"
    );
    assert!(status.contains("agents 2/3 online"), "{status}");
}

#[test]
fn fleet_detail_pane() {
    let mut app = on(View::Fleet);
    app.detail_open = true;
    let s = screen(&app);
    assert!(s.contains("Agent nas1"), "{s}");
    assert!(s.contains("loading detail"), "{s}");
    crate::fixtures::answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    let s = screen(&app);
    assert!(
        s.contains("Packs") && s.contains("docker") && s.contains("pending"),
        "{s}"
    );
}

#[test]
fn enrollments_show_source_fingerprint_attestation_token_age() {
    let mut app = on(View::Enrollments);
    let s = screen(&app);
    let row = line_with(&s, "pi4");
    for want in [
        "10.0.0.9:41000",
        "9f86d081884c7d65",
        "Debian 12",
        "e2e",
        "2m ago",
    ] {
        assert!(row.contains(want), "{want} missing in {row}");
    }
    app.detail_open = true;
    let s = screen(&app);
    assert!(
        s.contains("Request from pi4") && s.contains("machine id"),
        "{s}"
    );
}

#[test]
fn permissions_show_the_os_level_change() {
    let app = on(View::Permissions);
    let s = screen(&app);
    assert!(line_with(&s, "docker").contains("PENDING"), "{s}");
    assert!(line_with(&s, "zfs").contains("active"));
    assert!(s.contains("Approving grants (OS level):"), "{s}");
    assert!(s.contains("• group docker (read the Docker socket)"), "{s}");
}

#[test]
fn attestation_side_by_side_marks_differences() {
    let app = on(View::Attestation);
    let s = screen(&app);
    assert!(
        s.contains("Baseline (approved)") && s.contains("Current (now)"),
        "{s}"
    );
    let kernel = line_with(&s, "* kernel");
    assert!(
        kernel.contains("* kernel") && kernel.contains("6.1.0-18") && kernel.contains("6.1.0-21"),
        "{kernel}"
    );
    let arch = line_with(&s, "arch ");
    assert!(
        !arch.contains('*'),
        "unchanged fields are not marked: {arch}"
    );
    // The difference is highlighted, not only marked.
    let mut t = Terminal::new(TestBackend::new(160, 45)).unwrap();
    t.draw(|f| crate::ui::draw(f, &app)).unwrap();
    let buf = t.backend().buffer().clone();
    let (y, line) = s
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("6.1.0-18"))
        .unwrap();
    let byte = line.find("6.1.0-18").unwrap();
    let col = line[..byte].chars().count() as u16;
    assert_eq!(buf[(col, y as u16)].fg, ratatui::style::Color::Yellow);
}

#[test]
fn audit_page_newest_first_with_filter_and_verify_line() {
    let mut app = on(View::Audit);
    let s = screen(&app);
    assert!(s.contains("page 1") && s.contains("head #500"), "{s}");
    let first = s.lines().position(|l| l.contains(" 500 ")).unwrap();
    let second = s.lines().position(|l| l.contains(" 499 ")).unwrap();
    assert!(first < second, "newest first");
    assert!(line_with(&s, " 500 ").contains("operator:alice"));
    app.filters[View::Audit.index()] = "outcome:denied".into();
    app.audit.last_verify = Some(Ok(AuditVerifyReport {
        ok: true,
        entries: 500,
        head: None,
        checkpoints_verified: 2,
        last_checkpoint: None,
        broken: None,
        duration_ms: 3,
    }));
    let s = screen(&app);
    assert!(s.contains("filter: outcome:denied"), "{s}");
    assert!(
        s.contains("Audit chain OK: 500 entries, 2 checkpoints verified"),
        "{s}"
    );
}

#[test]
fn audit_entry_shows_the_agent_chain_head() {
    let mut app = on(View::Audit);
    let mut e = entry(7, "probe");
    e.detail.insert(
        "agent_audit_head".into(),
        serde_json::json!({"seq": 31, "hash": "ab".repeat(32)}),
    );
    app.modal = Some(Modal::AuditEntry {
        seq: 7,
        detail: Some(Box::new(AuditEntryDetail {
            entry: e,
            checkpoint: None,
        })),
    });
    let s = screen(&app);
    assert!(s.contains("Audit entry #7"), "{s}");
    assert!(
        line_with(&s, "agent chain head").contains("#31 abab"),
        "{s}"
    );
    assert!(s.contains("none yet after this entry"), "{s}");
}

#[test]
fn verify_overlay_ok_and_broken() {
    let mut app = on(View::Audit);
    app.modal = Some(Modal::Verify(None));
    assert!(screen(&app).contains("verifying every entry"));
    app.modal = Some(Modal::Verify(Some(Ok(AuditVerifyReport {
        ok: false,
        entries: 80,
        head: None,
        checkpoints_verified: 0,
        last_checkpoint: None,
        broken: Some(ChainBreakInfo {
            seq: 77,
            kind: "hash".into(),
            message: "stored hash differs".into(),
        }),
        duration_ms: 1,
    }))));
    let s = screen(&app);
    assert!(s.contains("BROKEN at entry #77"), "{s}");
    assert!(line_with(&s, "why").contains("stored hash differs"));
}

#[test]
fn keys_and_tokens_lists_and_create_forms() {
    let mut app = on(View::Keys);
    let s = screen(&app);
    let k = line_with(&s, "claude");
    assert!(
        k.contains("sk_3f9a1c2e")
            && k.contains("active")
            && k.contains("zfs.*")
            && k.contains("never"),
        "{k}"
    );
    assert!(line_with(&s, "tok-nas").contains("active"));
    app.modal = Some(Modal::KeyForm(crate::form::key_form()));
    let s = screen(&app);
    assert!(s.contains("Create an API key"), "{s}");
    assert!(s.contains("name*") && s.contains("required"), "{s}");
    assert!(s.contains("(default \"observe\")"), "{s}");
    app.modal = Some(Modal::Secret {
        title: "New API key — shown once, copy it now".into(),
        lines: vec![
            "sk_secret".into(),
            "claude mcp add sonde --transport http".into(),
        ],
    });
    let s = screen(&app);
    assert!(
        s.contains("shown once") && s.contains("claude mcp add sonde"),
        "{s}"
    );
}

#[test]
fn try_it_screen_form_and_result() {
    let mut app = on(View::TryIt);
    let s = screen(&app);
    assert!(s.contains("Online agents") && s.contains("nas1"), "{s}");
    assert!(!s.contains("web2"), "offline agents are not offered");
    assert!(s.contains("Pick an agent first"), "{s}");
    app.on_key(crossterm::event::KeyCode::Enter.into());
    crate::fixtures::answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    let s = screen(&app);
    assert!(s.contains("e2e.echo") && s.contains("does e2e.echo"), "{s}");
    assert!(!s.contains("docker.ps"), "pending packs are not offered");
    app.on_key(crossterm::event::KeyCode::Enter.into());
    for c in "toolong".chars() {
        app.on_key(crossterm::event::KeyCode::Char(c).into());
    }
    let s = screen(&app);
    assert!(s.contains("▶ text*: toolong_"), "{s}");
    assert!(s.contains("✗ at most 5 bytes, got 7"), "{s}");
    assert!(s.contains("cannot run yet"), "{s}");
    app.tryit.result = Some(Ok(ProbeRunResult {
        agent: "nas1".into(),
        probe: "e2e.echo".into(),
        ok: true,
        data: Some(serde_json::json!({"text": "hello"})),
        error_code: None,
        error: None,
        duration_ms: 42,
        truncated: true,
        redactions: [("password".to_owned(), 2u64)].into_iter().collect(),
        audit_seq: 9,
        agent_audit_head: None,
    }));
    let s = screen(&app);
    assert!(line_with(&s, "duration").contains("42 ms"), "{s}");
    assert!(line_with(&s, "truncated").contains("yes"));
    assert!(line_with(&s, "redactions").contains("2 (password: 2)"));
    assert!(line_with(&s, "audit entry").contains("#9"));
    assert!(s.contains("\"text\": \"hello\""), "{s}");
}

#[test]
fn help_lists_every_key_group() {
    let mut app = on(View::Fleet);
    app.modal = Some(Modal::Help);
    let s = render(&app, 160, 80);
    for (group, _) in super::help::KEYS.iter().take(4) {
        assert!(s.contains(group), "{group} missing:\n{s}");
    }
    assert!(
        s.contains("Tab / Shift-Tab") && s.contains("q  Ctrl-C"),
        "{s}"
    );
}

#[test]
fn banner_when_the_hub_is_unreachable() {
    let mut app = App::new("/data/admin.sock");
    app.hub_error = Some("cannot reach the hub: connection refused".into());
    let s = screen(&app);
    assert!(
        s.contains("HUB NOT REACHABLE at /data/admin.sock — retrying"),
        "{s}"
    );
    assert!(s.contains("connection refused"));
    assert!(s.contains("connecting…"));
    assert!(s.contains("Loading…"));
}

#[test]
fn confirm_and_filter_overlays() {
    let mut app = on(View::Fleet);
    app.on_key(crossterm::event::KeyCode::Char('x').into());
    let s = screen(&app);
    assert!(
        s.contains("Revoke agent nas1?") && s.contains("y yes"),
        "{s}"
    );
    app.modal = Some(Modal::Filter { input: "we".into() });
    assert!(screen(&app).contains("/we_"));
}

#[test]
fn empty_lists_say_so() {
    let mut app = App::new("sock");
    for (request, reply) in [
        (Request::Agents, Reply::Agents(vec![])),
        (Request::Enrollments, Reply::Enrollments(vec![])),
        (Request::Permissions, Reply::Permissions(vec![])),
        (Request::Drift(false), Reply::Drift(vec![])),
        (Request::Keys, Reply::Keys(vec![])),
    ] {
        crate::fixtures::answer(&mut app, request, reply);
    }
    let expect = [
        (View::Fleet, "No agents yet"),
        (View::Enrollments, "No pending enrollments."),
        (View::Permissions, "No packs waiting"),
        (View::Attestation, "No open drift"),
        (View::Keys, "No API keys."),
        (View::TryIt, "No agent is online."),
    ];
    for (view, text) in expect {
        app.view = view;
        let s = screen(&app);
        assert!(s.contains(text), "{view:?}:\n{s}");
    }
}

#[test]
fn hostile_text_is_escaped_and_nothing_panics() {
    let mut app = loaded_app();
    let evil = format!("ev\u{1b}[2J\u{7}il\n{}", "x".repeat(10_000));
    app.agents[0].name = evil.clone();
    app.agents[0].tags = vec![evil.clone(); 50];
    app.agents[0].os = "\u{202e}gnp.exe".into();
    app.enrollments[0].name = evil.clone();
    app.enrollments[0].attestation_summary = evil.clone();
    app.permissions[0].requires = vec![evil.clone()];
    app.drift[0].agent_name = evil.clone();
    app.keys[0].name = evil.clone();
    app.audit.entries[0].actor = evil.clone();
    app.audit.entries[0]
        .detail
        .insert("why".into(), serde_json::Value::String(evil.clone()));
    app.message = Some(crate::app::Message {
        text: evil.clone(),
        error: true,
    });
    app.hub_error = Some(evil.clone());
    for view in View::ALL {
        app.view = view;
        for detail in [false, true] {
            app.detail_open = detail;
            for (w, h) in [(160, 45), (80, 24), (40, 10), (19, 5), (1, 1)] {
                let s = render(&app, w, h);
                assert!(
                    !s.contains('\u{1b}') && !s.contains('\u{7}') && !s.contains('\u{202e}'),
                    "{view:?} {w}x{h}:\n{s}"
                );
            }
        }
    }
    app.view = View::Fleet;
    let s = screen(&app);
    assert!(s.contains("ev\\x1b[2J\\x07il⏎"), "{s}");
    assert!(s.contains("\\x202egnp.exe"), "{s}");
    // Every overlay at a tiny size.
    app.on_key(crossterm::event::KeyCode::Char('x').into());
    render(&app, 10, 6);
    for m in [
        Modal::Help,
        Modal::Verify(None),
        Modal::KeyForm(crate::form::key_form()),
        Modal::TokenForm(crate::form::token_form()),
        Modal::Secret {
            title: evil.clone(),
            lines: vec![evil.clone()],
        },
        Modal::AuditEntry {
            seq: 1,
            detail: None,
        },
        Modal::Tags {
            agent: evil.clone(),
            input: evil.clone(),
        },
    ] {
        app.modal = Some(m);
        render(&app, 160, 45);
        render(&app, 22, 7);
    }
}

#[test]
fn permission_states_render() {
    let mut app = on(View::Permissions);
    app.permissions = [
        PackState::Unavailable,
        PackState::Revoked,
        PackState::Refused,
    ]
    .into_iter()
    .map(|s| permission("nas1", s.as_str(), s))
    .collect();
    let s = screen(&app);
    assert!(
        s.contains("unavailable") && s.contains("revoked") && s.contains("REFUSED"),
        "{s}"
    );
}

#[test]
fn attestation_history_shows_who_decided() {
    let mut app = on(View::Attestation);
    app.drift_history = true;
    let mut kept = drift("db3");
    kept.status = DriftStatus::Kept;
    kept.resolved_by = Some("operator:alice".into());
    app.drift = vec![kept, drift("web1")];
    let s = screen(&app);
    assert!(s.contains("all events"), "{s}");
    assert!(
        line_with(&s, "db3").contains("kept by operator:alice"),
        "{s}"
    );
    assert!(line_with(&s, "web1").contains("open"), "{s}");
}

#[test]
fn fleet_detail_labels_a_pack_that_serves_sample_data() {
    let mut app = on(View::Fleet);
    app.detail_open = true;
    let mut d = detail("nas1");
    d.packs[0].sample_data = Some("generated sample pool `sample` (sonde-hub demo)".into());
    crate::fixtures::answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(d)),
    );
    let s = screen(&app);
    assert!(
        line_with(&s, "SAMPLE DATA").contains("generated sample pool"),
        "{s}"
    );
}
