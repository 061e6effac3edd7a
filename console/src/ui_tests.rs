//! Every screen and overlay drawn on ratatui's `TestBackend`.
#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use sonde_admin::api::*;
use sonde_protocol::messages::PackState;

use crate::app::{App, Options};
use crate::fixtures::*;
use crate::modal::{Confirm, Modal, Prompt, PromptFor, Secret, SecretItem, Tone};
use crate::screens::View;
use crate::theme::ThemeName;
use crate::worker::{Reply, Request};

fn screen(app: &App) -> String {
    render(app, 160, 45)
}

fn on(view: View) -> App {
    let mut app = loaded_app();
    app.view = view;
    app
}

fn press(app: &mut App, c: char) {
    app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
}

#[test]
fn fleet_lists_attention_first_with_traffic_and_latency() {
    let app = on(View::Fleet);
    let s = screen(&app);
    assert!(s.contains("1 Fleet (1 off)"), "{s}");
    assert!(s.contains("2 Enrollments (1)"), "{s}");
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains(".lan") || l.contains("agt-"))
        .collect();
    let order: Vec<usize> = ["db3", "web2", "nas1"]
        .iter()
        .map(|n| s.find(&format!(" {n} ")).unwrap())
        .collect();
    assert!(
        order[0] < order[1] && order[1] < order[2],
        "quarantined, offline, online:\n{s}"
    );
    let _ = rows;
    let nas = line_with(&s, " nas1 ");
    for want in ["online", "5s ago", "2/1/0", "prod", "agt-nas1", "20ms"] {
        assert!(nas.contains(want), "{want} missing in {nas}");
    }
    assert!(nas.contains("▃█▅ 20ms"), "latency sparkline: {nas}");
    let traffic = line_with(&s, "calls/min");
    assert!(traffic.contains("14 in 60m · 2 this min"), "{traffic}");
    assert!(
        traffic.contains("refusals/min") && traffic.contains("1 in 60m"),
        "{traffic}"
    );
    let status = s.lines().rev().nth(1).unwrap();
    for want in [
        "enrollments 1",
        "permissions 1",
        "quarantined 1",
        "offline 1",
        "agents 2/3 online",
    ] {
        assert!(status.contains(want), "{want} missing in {status}");
    }
    let hints = s.lines().last().unwrap();
    assert!(
        hints.starts_with("? help") && hints.contains("x revoke") && hints.contains(": cmd"),
        "{hints}"
    );
}

#[test]
fn offline_is_loud_and_revoked_is_quiet() {
    let mut app = on(View::Fleet);
    app.data.agents.push(agent("old9", AgentState::Revoked));
    let offline = style_at(&app, 160, 45, "OFFLINE");
    assert_eq!(offline.fg, Some(Color::Red));
    assert!(offline.add_modifier.contains(Modifier::BOLD));
    let revoked = style_at(&app, 160, 45, "revoked");
    assert_eq!(revoked.fg, Some(Color::DarkGray));
    assert!(revoked.add_modifier.contains(Modifier::CROSSED_OUT));
    assert!(!revoked.add_modifier.contains(Modifier::BOLD));
    // Revoked agents come last in attention order.
    let s = screen(&app);
    assert!(s.find(" old9 ").unwrap() > s.find(" nas1 ").unwrap());
    // The tab counts offline agents in colour.
    assert_eq!(style_at(&app, 160, 45, "(1 off)").fg, Some(Color::Red));
}

#[test]
fn fleet_detail_pane_shows_everything() {
    let mut app = on(View::Fleet);
    press(&mut app, 'j');
    press(&mut app, 'j');
    app.fleet.list.detail_open = true;
    let s = screen(&app);
    assert!(s.contains("Agent nas1"), "{s}");
    assert!(s.contains("loading detail"), "{s}");
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    let s = screen(&app);
    assert!(
        s.contains("Packs") && s.contains("docker") && s.contains("pending"),
        "{s}"
    );
    assert!(s.contains("agt-nas1"), "the id, whole: {s}");
    assert!(s.contains("latency/min"), "{s}");
    assert!(line_with(&s, "sandbox").contains("landlock-v7"), "{s}");
}

#[test]
fn fleet_detail_labels_sample_data_and_an_unconfined_agent() {
    let mut app = on(View::Fleet);
    press(&mut app, 'j');
    press(&mut app, 'j');
    app.fleet.list.detail_open = true;
    if let Some(a) = app.data.agents.iter_mut().find(|a| a.name == "nas1") {
        a.sandbox = "none".into();
    }
    let mut d = detail("nas1");
    d.packs[0].sample_data = Some("generated sample pool `sample` (sonde-hub demo)".into());
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(d)),
    );
    let s = screen(&app);
    assert!(
        line_with(&s, "SAMPLE DATA").contains("generated sample pool"),
        "{s}"
    );
    assert!(line_with(&s, "sandbox").contains("cannot confine"), "{s}");
}

#[test]
fn empty_states_tell_a_filter_from_an_empty_list() {
    let mut app = loaded_app();
    for (view, filter, what) in [
        (
            View::Fleet,
            "zzz",
            "No agent matches the filter \"zzz\" (3 hidden)",
        ),
        (
            View::Enrollments,
            "zzz",
            "No enrollment matches the filter \"zzz\" (1 hidden)",
        ),
        (
            View::Permissions,
            "zzz",
            "No pack matches the filter \"zzz\" (2 hidden)",
        ),
        (
            View::Attestation,
            "zzz",
            "No agent matches the filter \"zzz\" (1 hidden)",
        ),
        (
            View::Keys,
            "zzz",
            "No API key matches the filter \"zzz\" (1 hidden)",
        ),
        (
            View::TryIt,
            "zzz",
            "No online agent matches the filter \"zzz\"",
        ),
    ] {
        app.view = view;
        press(&mut app, '/');
        for c in filter.chars() {
            press(&mut app, c);
        }
        app.on_key(KeyCode::Enter.into());
        let s = screen(&app);
        assert!(s.contains(what), "{view:?}:\n{s}");
        assert!(
            s.contains("filter \"zzz\""),
            "{view:?}: the filter is on screen:\n{s}"
        );
        assert!(!s.contains("No agents yet"), "{view:?}:\n{s}");
        app.on_key(KeyCode::Esc.into());
        assert!(app.screen().filter().is_empty());
    }
    // The audit says so too.
    app.view = View::Audit;
    app.audit.filter = "agent:nobody".into();
    app.audit.entries.clear();
    assert!(screen(&app).contains("No entry matches the filter \"agent:nobody\""));
}

#[test]
fn no_agents_but_pending_enrollments_points_to_them() {
    let mut app = App::new("sock");
    answer(&mut app, Request::Agents, Reply::Agents(vec![]));
    answer(&mut app, Request::Status, Reply::Status(status(2, 0, 0)));
    let s = screen(&app);
    assert!(
        s.contains("No agents yet — 2 enrollment request(s) are waiting for you"),
        "{s}"
    );
    assert!(s.contains("Press 2 (Enrollments)"), "{s}");
    answer(&mut app, Request::Status, Reply::Status(status(0, 0, 0)));
    assert!(screen(&app).contains("Create an enrollment token"));
}

#[test]
fn empty_lists_say_so() {
    let mut app = App::new("sock");
    for (request, reply) in [
        (Request::Agents, Reply::Agents(vec![])),
        (Request::Enrollments, Reply::Enrollments(vec![])),
        (Request::Permissions, Reply::Permissions(vec![])),
        (Request::Drift(false), Reply::Drift(vec![])),
        (Request::Quarantined, Reply::Quarantined(vec![])),
        (Request::Keys, Reply::Keys(vec![])),
    ] {
        answer(&mut app, request, reply);
    }
    for (view, text) in [
        (View::Fleet, "No agents yet"),
        (View::Enrollments, "No pending enrollments."),
        (View::Permissions, "No packs reported"),
        (View::Attestation, "Nothing needs you"),
        (View::Keys, "No API keys."),
        (View::TryIt, "No agent is online."),
    ] {
        app.view = view;
        let s = screen(&app);
        assert!(s.contains(text), "{view:?}:\n{s}");
    }
}

#[test]
fn no_misleading_truncation_at_80x24() {
    let mut app = loaded_app();
    app.data.keys[0].name = "a-rather-long-key-name-for-the-laptop-of-alice".into();
    app.data.tokens[0].label = "the-nas-in-the-basement-cupboard".into();
    app.view = View::Keys;
    let s = render(&app, 80, 24);
    // Ids and prefixes are whole or absent, never cut into another value.
    assert!(s.contains("sk_3f9a1c2e"), "{s}");
    assert!(line_with(&s, "tok-nas").contains("tok-nas "), "{s}");
    // A cut name says so.
    assert!(line_with(&s, "a-rather").contains('…'), "{s}");
    for line in s.lines() {
        for id in ["sk_3f9a1c", "tok-na"] {
            if let Some(i) = line.find(id) {
                let rest = &line[i..];
                assert!(
                    rest.starts_with("sk_3f9a1c2e") || rest.starts_with("tok-nas"),
                    "cut id in {line}"
                );
            }
        }
    }
    // Every screen at 80×24: any audit time shown is whole.
    app.view = View::Audit;
    let s = render(&app, 80, 24);
    let row = line_with(&s, " 500 ");
    assert!(row.contains("05-01 12:34:"), "{s}");
    assert!(row.contains("nas1"), "{s}");
    for view in View::ALL {
        app.view = view;
        let s = render(&app, 80, 24);
        for l in s.lines() {
            assert!(
                !l.contains("agt-nas") || l.contains("agt-nas1"),
                "{view:?}: {l}"
            );
        }
    }
}

#[test]
fn enrollment_and_permission_confirmations_show_what_they_grant() {
    let mut app = on(View::Enrollments);
    press(&mut app, 'a');
    let s = screen(&app);
    assert!(
        s.contains("Approve the enrollment of pi4 (pi4.lan)?"),
        "{s}"
    );
    assert!(s.contains("client certificate"), "{s}");
    assert!(s.contains("y yes"), "{s}");
    let mut app = on(View::Permissions);
    press(&mut app, 'a');
    let s = screen(&app);
    assert!(s.contains("Approve pack docker 1.0.0 on nas1?"), "{s}");
    assert!(s.contains("• group docker (read the Docker socket)"), "{s}");
    assert!(s.contains("capability observe"), "{s}");
}

#[test]
fn permissions_show_the_os_level_change_and_every_state() {
    let mut app = on(View::Permissions);
    let s = screen(&app);
    assert!(line_with(&s, "docker").contains("PENDING"), "{s}");
    assert!(line_with(&s, " zfs ").contains("active"));
    assert!(s.contains("At OS level it needs"), "{s}");
    app.data.permissions = [
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
    // Enter enlarges the detail.
    let small = screen(&app).lines().filter(|l| l.contains("│")).count();
    app.permissions.list.detail_open = true;
    assert!(screen(&app).contains("Enter shrinks"));
    let _ = small;
}

#[test]
fn attestation_says_what_changed_old_to_new() {
    let mut app = on(View::Attestation);
    let mut d = drift("db3");
    d.current.os_release = "Debian GNU/Linux 13".into();
    d.current.packs = vec![sonde_protocol::attestation::AttestedPack {
        name: "zfs".into(),
        version: "1.1.0".into(),
        manifest_sha256: sonde_protocol::Digest::of(b"new"),
    }];
    d.baseline.packs = vec![sonde_protocol::attestation::AttestedPack {
        name: "zfs".into(),
        version: "1.0.0".into(),
        manifest_sha256: sonde_protocol::Digest::of(b"old"),
    }];
    d.current.binary_sha256 = sonde_protocol::Digest::of(b"bin2");
    d.agent_version = Some(VersionChange {
        before: Some("0.1.0".into()),
        after: Some("0.2.0".into()),
    });
    d.current.config_sha256 = sonde_protocol::Digest::of(b"cfg2");
    d.current.sandbox = "none".into();
    d.current
        .config
        .insert("max_capability".into(), "\"operate\"".into());
    d.current
        .config
        .insert("packs.zfs".into(), "sha256:9999dddd8888eeee".into());
    app.data.drift = vec![d];
    let s = screen(&app);
    for want in [
        "config max_capability: \"observe\" → \"operate\"",
        "config packs.zfs: sha256 ",
        "probe sandbox: landlock-v7 → none — probes are now less confined",
        "OS: Debian GNU/Linux 12 → Debian GNU/Linux 13",
        "kernel: 6.1.0-18 → 6.1.0-21",
        "agent version: 0.1.0 → 0.2.0",
        "pack zfs: 1.0.0 → 1.1.0",
    ] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    let row = line_with(&s, "OPEN drift");
    assert!(
        row.contains("db3") && row.contains("kernel") && row.contains("agent 0.1.0→0.2.0"),
        "{row}"
    );
    // Side by side, differences highlighted and marked.
    assert!(
        s.contains("Baseline (approved)") && s.contains("Current (now)"),
        "{s}"
    );
    let kernel = line_with(&s, "* kernel");
    assert!(
        kernel.contains("6.1.0-18") && kernel.contains("6.1.0-21"),
        "{kernel}"
    );
    assert!(
        !line_with(&s, "  arch ").contains('*'),
        "unchanged fields are not marked"
    );
    let st = style_at(&app, 160, 45, "6.1.0-18 ");
    assert_eq!(st.fg, Some(Color::Yellow));
}

#[test]
fn attestation_lists_kept_quarantines_and_history_shows_who_decided() {
    let mut app = on(View::Attestation);
    let mut kept = drift("db3");
    kept.status = DriftStatus::Kept;
    kept.resolved_by = Some("operator:alice".into());
    app.data.drift.clear();
    app.data.quarantined = vec![QuarantinedAgent {
        agent: agent("db3", AgentState::Quarantined),
        drift: Some(kept.clone()),
    }];
    let s = screen(&app);
    assert!(
        line_with(&s, "db3").contains("KEPT quarantined by operator:alice"),
        "{s}"
    );
    assert!(s.contains("still quarantined: a accepts, x revokes"), "{s}");
    app.attestation.history = true;
    app.attestation.history_loaded = true;
    app.attestation.all_events = vec![kept, drift("web1")];
    let s = screen(&app);
    assert!(s.contains("every drift event"), "{s}");
    assert!(line_with(&s, "web1").contains("OPEN"), "{s}");
}

#[test]
fn audit_rows_show_names_and_what_they_were_about() {
    let mut app = on(View::Audit);
    let mut e = entry(501, "pack.approved");
    e.detail.insert("pack".into(), serde_json::json!("docker"));
    app.audit.entries.insert(0, e);
    app.audit.entries[1].actor = "agent:agt-nas1".into();
    let s = screen(&app);
    let row = line_with(&s, " 501 ");
    assert!(
        row.contains("nas1") && !row.contains("agt-nas1") && row.contains("pack docker"),
        "{row}"
    );
    assert!(
        line_with(&s, " 500 ").contains("agent:nas1"),
        "the actor by name too:\n{s}"
    );
    assert!(s.contains("page 1") && s.contains("head #500"), "{s}");
    app.audit.filter = "outcome:denied".into();
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
    assert!(s.contains("filter \"outcome:denied\""), "{s}");
    assert!(
        s.contains("Audit chain OK: 500 entries, 2 checkpoints verified"),
        "{s}"
    );
}

#[test]
fn audit_entry_shows_the_agent_chain_head_and_verify_overlay() {
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
        names: app.audit.names.clone(),
        scroll: Default::default(),
    });
    let s = screen(&app);
    assert!(s.contains("Audit entry #7"), "{s}");
    assert!(
        line_with(&s, "agent chain head").contains("#31 abab"),
        "{s}"
    );
    assert!(s.contains("none yet after this entry"), "{s}");
    app.modal = Some(Modal::Verify(None, Default::default()));
    assert!(screen(&app).contains("verifying every entry"));
    app.modal = Some(Modal::Verify(
        Some(Ok(AuditVerifyReport {
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
        })),
        Default::default(),
    ));
    let s = screen(&app);
    assert!(s.contains("BROKEN at entry #77"), "{s}");
    assert!(line_with(&s, "why").contains("stored hash differs"));
}

#[test]
fn keys_and_tokens_lists_and_forms() {
    let mut app = on(View::Keys);
    let s = screen(&app);
    let k = line_with(&s, "claude");
    for want in ["sk_3f9a1c2e", "active", "zfs.*", "never", "key-claude"] {
        assert!(k.contains(want), "{want} missing in {k}");
    }
    assert!(line_with(&s, "tok-nas").contains("active"));
    app.modal = Some(Modal::KeyForm(crate::form::key_form()));
    let s = screen(&app);
    assert!(s.contains("Create an API key"), "{s}");
    assert!(s.contains("name*") && s.contains("required"), "{s}");
    assert!(s.contains("(default \"observe\")"), "{s}");
}

#[test]
fn a_secret_is_never_broken_at_spaces() {
    let cmd = "claude mcp add sonde --transport http https://hub.lan:7444/mcp --header \"Authorization: Bearer sonde_sk_3f9a1c2e_5ecret5ecret5ecret\"";
    let mut app = on(View::Keys);
    app.modal = Some(Modal::Secret(Secret {
        title: "New API key — shown once".into(),
        items: vec![
            SecretItem {
                label: "Add it to Claude Code".into(),
                value: cmd.into(),
            },
            SecretItem {
                label: "Trust the hub's CA".into(),
                value: "export NODE_EXTRA_CA_CERTS=/var/lib/sonde-hub/ca.crt".into(),
            },
        ],
        selected: 0,
        notes: vec![],
    }));
    for (w, h) in [(80, 24), (160, 45), (60, 30)] {
        let s = render(&app, w, h);
        // The rows of the command, in order, are the command exactly.
        let rows: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.contains("Add it to Claude Code"))
            .skip(1)
            .take_while(|l| !l.trim_matches(|c| c == '│' || c == ' ').is_empty())
            .collect();
        let joined: String = rows
            .iter()
            .map(|l| l.trim_matches('│').trim_start_matches("  ").trim_end())
            .collect::<Vec<_>>()
            .join("");
        // Spaces at the end of a row were trimmed above: compare without spaces.
        assert_eq!(
            joined.replace(' ', ""),
            cmd.replace(' ', ""),
            "{w}x{h}:\n{s}"
        );
        let first = rows[0].trim_matches('│').trim_start_matches("  ");
        assert!(
            first.trim_end().len() >= (w as usize).saturating_sub(8).min(cmd.len()),
            "rows are filled to the width, not broken at a space: {first:?}"
        );
        assert!(
            s.contains("export NODE_EXTRA_CA_CERTS=/var/lib/sonde-hub/ca.crt"),
            "{w}x{h}:\n{s}"
        );
    }
}

#[test]
fn try_it_screen_form_and_result() {
    let mut app = on(View::TryIt);
    let s = screen(&app);
    assert!(s.contains("Online agents") && s.contains("nas1"), "{s}");
    assert!(!s.contains("web2"), "offline agents are not offered");
    assert!(s.contains("Pick an agent first"), "{s}");
    app.on_key(KeyCode::Enter.into());
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    let s = screen(&app);
    assert!(s.contains("e2e.echo") && s.contains("does e2e.echo"), "{s}");
    assert!(!s.contains("docker.ps"), "pending packs are not offered");
    app.on_key(KeyCode::Enter.into());
    for c in "toolong".chars() {
        press(&mut app, c);
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
    assert!(s.contains("text: \"hello\""), "{s}");
}

#[test]
fn help_is_generated_from_the_key_map() {
    let mut app = on(View::Fleet);
    app.modal = Some(Modal::Help(Default::default()));
    let s = render(&app, 240, 400);
    for b in crate::keymap::KEYMAP {
        assert!(s.contains(b.help), "{:?} missing from the help", b.help);
    }
    for (group, _) in crate::keymap::help_groups() {
        assert!(s.contains(group), "{group} missing");
    }
    assert!(s.contains("Palette commands"), "{s}");
}

#[test]
fn the_status_bar_hints_follow_the_screen_and_the_overlay() {
    let mut app = on(View::Attestation);
    let hints = screen(&app).lines().last().unwrap().to_owned();
    assert!(
        hints.contains("a accept") && hints.contains("n keep") && hints.contains("H history"),
        "{hints}"
    );
    app.view = View::Audit;
    let hints = screen(&app).lines().last().unwrap().to_owned();
    assert!(
        hints.contains("v verify") && hints.contains("f follow") && !hints.contains("accept"),
        "{hints}"
    );
    press(&mut app, 'v');
    let hints = screen(&app).lines().last().unwrap().to_owned();
    assert!(hints.contains("Esc close"), "{hints}");
}

#[test]
fn banner_when_the_hub_is_unreachable() {
    let mut app = App::new("/data/admin.sock");
    app.data.hub_error = Some("cannot reach the hub: connection refused".into());
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
fn confirm_prompt_and_palette_overlays() {
    let mut app = on(View::Fleet);
    press(&mut app, 'x');
    let s = screen(&app);
    assert!(
        s.contains("Revoke agent db3?") && s.contains("y yes"),
        "{s}"
    );
    app.modal = Some(Modal::Prompt(Prompt {
        purpose: PromptFor::Filter(View::Fleet),
        input: "we".into(),
        error: Some("bad".into()),
    }));
    let s = screen(&app);
    assert!(s.contains("we_") && s.contains("bad"), "{s}");
    app.modal = None;
    press(&mut app, ':');
    for c in "na".chars() {
        press(&mut app, c);
    }
    let s = screen(&app);
    assert!(s.contains(":na_") && s.contains("agent nas1"), "{s}");
}

#[test]
fn themes_render_in_their_palettes_and_mono_has_no_colour() {
    for name in [ThemeName::Light, ThemeName::Solarized] {
        let mut app = App::with_options(
            "s",
            Options {
                theme: name,
                ..Options::default()
            },
        );
        app.now_ms = NOW;
        let base = loaded_app();
        app.data = base.data.clone();
        let st = style_at(&app, 160, 45, "OFFLINE");
        assert!(
            st.fg.is_some() && st.fg != Some(Color::Yellow),
            "{name:?}: {st:?}"
        );
    }
    let mut app = App::with_options(
        "s",
        Options {
            no_color: true,
            ..Options::default()
        },
    );
    app.now_ms = NOW;
    app.data = loaded_app().data.clone();
    for view in View::ALL {
        app.view = view;
        let buf = buffer(&app, 160, 45);
        for cell in buf.content() {
            assert!(
                cell.fg == Color::Reset && cell.bg == Color::Reset,
                "{view:?}: colour with NO_COLOR: {cell:?}"
            );
        }
    }
    // Offline still stands out without colour.
    app.view = View::Fleet;
    assert!(
        style_at(&app, 160, 45, "OFFLINE")
            .add_modifier
            .contains(Modifier::BOLD)
    );
}

fn every_modal(evil: &str) -> Vec<Modal> {
    vec![
        Modal::Help(Default::default()),
        Modal::Verify(None, Default::default()),
        Modal::KeyForm(crate::form::key_form()),
        Modal::TokenForm(crate::form::token_form()),
        Modal::Secret(Secret {
            title: evil.into(),
            items: vec![SecretItem {
                label: evil.into(),
                value: evil.into(),
            }],
            selected: 0,
            notes: vec![evil.into()],
        }),
        Modal::AuditEntry {
            seq: 1,
            detail: None,
            names: Default::default(),
            scroll: Default::default(),
        },
        Modal::Prompt(Prompt {
            purpose: PromptFor::Tags { agent: evil.into() },
            input: evil.into(),
            error: Some(evil.into()),
        }),
        Modal::Prompt(Prompt {
            purpose: PromptFor::SavePath,
            input: evil.into(),
            error: None,
        }),
        Modal::Confirm(Confirm {
            title: evil.into(),
            lines: vec![(evil.into(), Tone::Bad)],
            request: Request::Status,
        }),
        Modal::Palette(crate::palette::Palette {
            input: evil.into(),
            selected: 3,
            error: Some(evil.into()),
        }),
    ]
}

#[test]
fn hostile_text_is_escaped_and_nothing_panics_at_any_size() {
    let mut app = loaded_app();
    let evil = format!("ev\u{1b}[2J\u{7}il\n{}", "x".repeat(10_000));
    app.data.agents[0].name = evil.clone();
    app.data.agents[0].tags = vec![evil.clone(); 50];
    app.data.agents[0].os = "\u{202e}gnp.exe".into();
    app.data.enrollments[0].name = evil.clone();
    app.data.enrollments[0].attestation_summary = evil.clone();
    app.data.permissions[0].requires = vec![evil.clone()];
    app.data.drift[0].agent_name = evil.clone();
    app.data.drift[0].current.kernel = evil.clone();
    app.data.keys[0].name = evil.clone();
    app.audit.entries[0].actor = evil.clone();
    app.audit.entries[0]
        .detail
        .insert("why".into(), serde_json::Value::String(evil.clone()));
    app.message = Some(crate::app::Message {
        text: evil.clone(),
        error: true,
        at_ms: NOW,
        source: None,
    });
    app.data.hub_error = Some(evil.clone());
    app.data.last_ok_ms = Some(NOW - 60_000);
    app.tryit.result = Some(Ok(ProbeRunResult {
        agent: evil.clone(),
        probe: evil.clone(),
        ok: false,
        data: Some(serde_json::json!({"a": evil.clone()})),
        error_code: Some(evil.clone()),
        error: Some(evil.clone()),
        duration_ms: u64::MAX,
        truncated: true,
        redactions: Default::default(),
        audit_seq: u64::MAX,
        agent_audit_head: None,
    }));
    let sizes = [
        (160, 45),
        (80, 24),
        (40, 10),
        (20, 6),
        (19, 5),
        (1, 1),
        (2, 40),
        (200, 3),
        (21, 7),
    ];
    for view in View::ALL {
        app.view = view;
        for detail in [false, true] {
            app.fleet.list.detail_open = detail;
            app.permissions.list.detail_open = detail;
            app.attestation.list.detail_open = detail;
            app.enrollments.list.detail_open = detail;
            app.keys.detail_open = detail;
            for (w, h) in sizes {
                let s = render(&app, w, h);
                assert!(
                    !s.contains('\u{1b}') && !s.contains('\u{7}') && !s.contains('\u{202e}'),
                    "{view:?} {w}x{h}:\n{s}"
                );
            }
        }
        for m in every_modal(&evil) {
            app.modal = Some(m);
            for (w, h) in sizes {
                let s = render(&app, w, h);
                assert!(
                    !s.contains('\u{1b}') && !s.contains('\u{7}'),
                    "{view:?} {w}x{h}:\n{s}"
                );
            }
        }
        app.modal = None;
    }
    app.view = View::Fleet;
    app.fleet.list.detail_open = false;
    let s = screen(&app);
    assert!(s.contains("ev\\x1b[2J\\x07il⏎"), "{s}");
    assert!(s.contains("\\x202egnp.exe"), "{s}");
}

mod any_size {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any terminal size, any screen, any overlay: it draws.
        #[test]
        fn every_screen_draws_at_any_size(w in 1u16..220, h in 1u16..70, view in 0usize..7, modal in 0usize..11, theme in 0usize..4) {
            let mut app = loaded_app();
            app.theme = crate::theme::Theme::new(ThemeName::ALL[theme], false);
            app.view = View::ALL[view];
            app.fleet.list.detail_open = modal % 2 == 0;
            app.modal = every_modal("x").into_iter().nth(modal);
            let _ = render(&app, w, h);
        }
    }
}

#[test]
#[ignore]
fn dump_screens() {
    let mut out = String::new();
    let mut app = loaded_app();
    for (w, h) in [(80u16, 24u16), (160, 45)] {
        for view in View::ALL {
            app.view = view;
            out.push_str(&format!("==== {view:?} {w}x{h}\n"));
            out.push_str(&render(&app, w, h));
        }
        app.view = View::Fleet;
        app.fleet.list.detail_open = true;
        out.push_str(&format!("==== Fleet detail {w}x{h}\n"));
        out.push_str(&render(&app, w, h));
        app.fleet.list.detail_open = false;
        app.view = View::Permissions;
        press(&mut app, 'a');
        out.push_str(&format!("==== confirm {w}x{h}\n"));
        out.push_str(&render(&app, w, h));
        app.modal = None;
        app.view = View::Fleet;
        app.modal = Some(Modal::Help(Default::default()));
        out.push_str(&format!("==== help {w}x{h}\n"));
        out.push_str(&render(&app, w, h));
        app.modal = None;
    }
    std::fs::write("/tmp/console-screens.txt", out).unwrap();
}
