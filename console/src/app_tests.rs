//! Key → action → state, without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use sonde_admin::api::*;
use sonde_protocol::messages::PackState;

use super::*;
use crate::fixtures::*;
use crate::worker::{Failure, Reply, Request, Response};

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(app: &mut App, c: char) -> Vec<Request> {
    key(app, KeyCode::Char(c))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert!(ch(app, c).is_empty());
    }
}

fn labels(r: &[Request]) -> Vec<&'static str> {
    r.iter().map(Request::label).collect()
}

#[test]
fn views_switch_with_tab_numbers_and_backtab_and_refresh() {
    let mut app = loaded_app();
    assert_eq!(app.view, View::Fleet);
    let r = key(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Enrollments);
    assert_eq!(labels(&r), ["status", "enrollments"]);
    ch(&mut app, '5');
    assert_eq!(app.view, View::Audit);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Attestation);
    ch(&mut app, '1');
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::TryIt, "wraps around");
    ch(&mut app, '7');
    assert_eq!(app.view, View::TryIt);
    // Same view again: nothing to do.
    assert!(ch(&mut app, '7').is_empty());
}

#[test]
fn q_and_ctrl_c_quit_and_help_opens_and_closes() {
    let mut app = loaded_app();
    ch(&mut app, '?');
    assert!(matches!(app.modal, Some(Modal::Help)));
    ch(&mut app, 'j');
    assert_eq!(app.modal_scroll, 1);
    key(&mut app, KeyCode::Esc);
    assert!(app.modal.is_none());
    assert!(!app.quit);
    ch(&mut app, 'q');
    assert!(app.quit);

    let mut app = loaded_app();
    ch(&mut app, '/');
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit, "Ctrl-C quits even with an overlay open");
}

#[test]
fn moving_is_clamped_and_harmless_on_empty_lists() {
    let mut app = loaded_app();
    for _ in 0..10 {
        ch(&mut app, 'j');
    }
    assert_eq!(app.selection(), 2);
    key(&mut app, KeyCode::Up);
    assert_eq!(app.selection(), 1);
    ch(&mut app, 'g');
    assert_eq!(app.selection(), 0);
    ch(&mut app, 'G');
    assert_eq!(app.selection(), 2);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.selection(), 0);
    app.on_scroll(true);
    assert_eq!(app.selection(), 2);

    let mut empty = App::new("sock");
    for code in [
        KeyCode::Down,
        KeyCode::Up,
        KeyCode::End,
        KeyCode::Enter,
        KeyCode::Char('x'),
        KeyCode::Char('t'),
    ] {
        for v in ['1', '2', '3', '4', '5', '6', '7'] {
            ch(&mut empty, v);
            let r = key(&mut empty, code);
            assert!(
                r.iter().all(|r| !r.is_action()),
                "{code:?} on an empty {:?} sent {r:?}",
                empty.view
            );
            empty.modal = None;
        }
    }
}

#[test]
fn enrollment_approve_is_direct_and_deny_needs_confirmation() {
    let mut app = loaded_app();
    ch(&mut app, '2');
    assert_eq!(
        ch(&mut app, 'a'),
        [Request::ApproveEnrollment("pi4".into())]
    );

    assert!(ch(&mut app, 'd').is_empty());
    assert!(matches!(app.modal, Some(Modal::Confirm { .. })));
    assert!(ch(&mut app, 'n').is_empty(), "anything but y cancels");
    assert!(app.modal.is_none());

    ch(&mut app, 'd');
    assert_eq!(ch(&mut app, 'y'), [Request::DenyEnrollment("pi4".into())]);
    assert!(app.modal.is_none());

    // The answer refreshes the screen and says what happened.
    let r = answer(
        &mut app,
        Request::DenyEnrollment("pi4".into()),
        Reply::Done("denied enrollment of pi4".into()),
    );
    assert!(labels(&r).contains(&"enrollments"));
    assert_eq!(
        app.message.as_ref().unwrap().text,
        "denied enrollment of pi4"
    );
}

#[test]
fn fleet_revoke_confirms_and_tags_edit() {
    let mut app = loaded_app();
    ch(&mut app, 'j');
    ch(&mut app, 'x');
    match &app.modal {
        Some(Modal::Confirm { prompt, request }) => {
            assert!(prompt.contains("web2"), "{prompt}");
            assert_eq!(request, &Request::RevokeAgent("web2".into()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ch(&mut app, 'y'), [Request::RevokeAgent("web2".into())]);

    ch(&mut app, 't');
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "d, nas");
    let r = key(&mut app, KeyCode::Enter);
    assert_eq!(
        r,
        [Request::SetTags(
            "web2".into(),
            vec!["prod".into(), "nas".into()]
        )]
    );
}

#[test]
fn enter_opens_the_agent_detail_which_follows_the_selection() {
    let mut app = loaded_app();
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        [Request::Agent("nas1".into())]
    );
    assert!(app.detail_open);
    assert_eq!(ch(&mut app, 'j'), [Request::Agent("web2".into())]);
    key(&mut app, KeyCode::Esc);
    assert!(!app.detail_open);
}

#[test]
fn filter_narrows_the_list_and_esc_clears_it() {
    let mut app = loaded_app();
    ch(&mut app, '/');
    typed(&mut app, "WEB");
    key(&mut app, KeyCode::Enter);
    let names: Vec<_> = app
        .visible_agents()
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["web2"]);
    // The filter is per screen.
    ch(&mut app, '2');
    assert_eq!(app.visible_enrollments().len(), 1);
    ch(&mut app, '1');
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.visible_agents().len(), 3);
    // Esc in the prompt cancels.
    ch(&mut app, '/');
    typed(&mut app, "zzz");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.visible_agents().len(), 3);
}

#[test]
fn permissions_pending_first_approve_deny_revoke() {
    let mut app = loaded_app();
    ch(&mut app, '3');
    let rows = app.visible_permissions();
    assert_eq!(rows[0].pack, "docker");
    assert_eq!(rows[0].state, PackState::Pending);
    assert_eq!(
        ch(&mut app, 'a'),
        [Request::DecidePack(
            "nas1".into(),
            "docker".into(),
            "approve".into()
        )]
    );
    ch(&mut app, 'j');
    ch(&mut app, 'x');
    assert_eq!(
        ch(&mut app, 'y'),
        [Request::DecidePack(
            "nas1".into(),
            "zfs".into(),
            "revoke".into()
        )]
    );
    ch(&mut app, 'd');
    assert_eq!(
        ch(&mut app, 'Y'),
        [Request::DecidePack(
            "nas1".into(),
            "zfs".into(),
            "deny".into()
        )]
    );
}

#[test]
fn attestation_accept_keep_revoke() {
    let mut app = loaded_app();
    ch(&mut app, '4');
    ch(&mut app, 'a');
    assert_eq!(ch(&mut app, 'y'), [Request::AcceptBaseline("db3".into())]);
    assert_eq!(
        ch(&mut app, 'n'),
        [Request::KeepQuarantined("db3".into())],
        "keeping the quarantine is a decision the hub records"
    );
    ch(&mut app, 'x');
    assert_eq!(ch(&mut app, 'y'), [Request::RevokeAgent("db3".into())]);
}

#[test]
fn audit_pages_through_the_chain_without_loading_it_all() {
    let mut app = loaded_app();
    ch(&mut app, '5');
    assert_eq!(app.audit.entries.len(), 200);
    key(&mut app, KeyCode::End);
    // Past the last row: the next (older) page, by cursor.
    let r = key(&mut app, KeyCode::Down);
    let Request::Audit(q, generation) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.before_seq, Some(301));
    assert_eq!(q.limit, Some(AUDIT_PAGE));
    assert_eq!(*generation, 1);
    // A stale answer (generation 0) is ignored.
    answer(
        &mut app,
        Request::Audit(AuditQuery::default(), 0),
        Reply::Audit(page(999, 990, None), 0),
    );
    assert_eq!(app.audit.entries[0].seq, 500);
    answer(
        &mut app,
        r[0].clone(),
        Reply::Audit(page(300, 101, Some(101)), 1),
    );
    assert_eq!(app.audit.page(), 1);
    assert_eq!(app.audit.entries[0].seq, 300);
    assert_eq!(app.selection(), 0);
    // Above the first row: back to the newer page, selecting its last row.
    let r = key(&mut app, KeyCode::Up);
    let Request::Audit(q, 2) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.before_seq, None);
    answer(
        &mut app,
        r[0].clone(),
        Reply::Audit(page(500, 301, Some(301)), 2),
    );
    assert_eq!(app.selection(), 199);
    assert_eq!(app.audit.entries[199].seq, 301);
    // `]` and `[` page too; g goes back to the newest.
    let r = ch(&mut app, ']');
    answer(
        &mut app,
        r[0].clone(),
        Reply::Audit(page(300, 101, Some(101)), 3),
    );
    let r = ch(&mut app, ']');
    answer(&mut app, r[0].clone(), Reply::Audit(page(100, 1, None), 4));
    assert_eq!(app.audit.page(), 2);
    key(&mut app, KeyCode::End);
    assert!(
        key(&mut app, KeyCode::Down).is_empty(),
        "oldest page: nothing further"
    );
    let r = ch(&mut app, 'g');
    let Request::Audit(q, _) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.before_seq, None);
    assert_eq!(app.audit.page(), 0);
}

#[test]
fn live_refresh_keeps_the_selected_entry() {
    let mut app = loaded_app();
    ch(&mut app, '5');
    ch(&mut app, 'j');
    assert_eq!(app.audit.entries[app.selection()].seq, 499);
    let generation = app.audit.generation;
    answer(
        &mut app,
        Request::Audit(AuditQuery::default(), generation),
        Reply::Audit(page(503, 304, Some(304)), generation),
    );
    assert_eq!(app.audit.entries[app.selection()].seq, 499);
}

#[test]
fn audit_filter_is_parsed_into_the_query() {
    let q = parse_audit_filter(
        "agent:nas1 actor:key:sk_1 probe:zfs.list outcome:error since:1h until:1000",
        NOW,
    )
    .unwrap();
    assert_eq!(q.agent.as_deref(), Some("nas1"));
    assert_eq!(q.actor.as_deref(), Some("key:sk_1"));
    assert_eq!(q.probe.as_deref(), Some("zfs.list"));
    assert_eq!(q.outcome.as_deref(), Some("error"));
    assert_eq!(q.since_ms, Some(NOW - 3_600_000));
    assert_eq!(q.until_ms, Some(1000));
    assert!(parse_audit_filter("nas1", NOW).is_err());
    assert!(parse_audit_filter("color:red", NOW).is_err());
    assert!(parse_audit_filter("since:soon", NOW).is_err());
    assert!(parse_audit_filter("agent:", NOW).is_err());
    assert_eq!(parse_audit_filter("", NOW).unwrap(), AuditQuery::default());

    let mut app = loaded_app();
    ch(&mut app, '5');
    ch(&mut app, '/');
    typed(&mut app, "outcome:denied");
    let r = key(&mut app, KeyCode::Enter);
    let Request::Audit(q, _) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.outcome.as_deref(), Some("denied"));
    assert_eq!(q.before_seq, None);
    ch(&mut app, '/');
    typed(&mut app, " bogus");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(app.message.as_ref().unwrap().error);
}

#[test]
fn audit_entry_detail_and_verify() {
    let mut app = loaded_app();
    ch(&mut app, '5');
    ch(&mut app, 'j');
    assert_eq!(key(&mut app, KeyCode::Enter), [Request::AuditEntry(499)]);
    let d = AuditEntryDetail {
        entry: entry(499, "probe"),
        checkpoint: None,
    };
    answer(
        &mut app,
        Request::AuditEntry(499),
        Reply::AuditEntry(Box::new(d)),
    );
    assert!(matches!(
        &app.modal,
        Some(Modal::AuditEntry {
            detail: Some(_),
            ..
        })
    ));
    key(&mut app, KeyCode::Esc);

    assert_eq!(ch(&mut app, 'v'), [Request::AuditVerify]);
    assert!(matches!(app.modal, Some(Modal::Verify(None))));
    let report = AuditVerifyReport {
        ok: true,
        entries: 500,
        head: None,
        checkpoints_verified: 5,
        last_checkpoint: None,
        broken: None,
        duration_ms: 12,
    };
    answer(
        &mut app,
        Request::AuditVerify,
        Reply::AuditVerify(report.clone()),
    );
    assert!(matches!(&app.modal, Some(Modal::Verify(Some(Ok(_))))));
    assert!(verify_line(&Ok(report.clone())).starts_with("Audit chain OK: 500 entries"));
    let broken = AuditVerifyReport {
        ok: false,
        broken: Some(ChainBreakInfo {
            seq: 77,
            kind: "hash".into(),
            message: "hash does not match".into(),
        }),
        ..report
    };
    assert_eq!(
        verify_line(&Ok(broken)),
        "Audit chain BROKEN at entry #77: hash — hash does not match"
    );
}

#[test]
fn creating_a_key_shows_the_secret_once() {
    let mut app = loaded_app();
    ch(&mut app, '6');
    ch(&mut app, 'c');
    assert!(matches!(app.modal, Some(Modal::KeyForm(_))));
    // Not valid yet: Enter keeps the form and says why.
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(matches!(app.modal, Some(Modal::KeyForm(_))));
    typed(&mut app, "laptop");
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    typed(&mut app, "zfs.*, system.*");
    let r = key(&mut app, KeyCode::Enter);
    let [Request::CreateKey(k)] = r.as_slice() else {
        panic!("{r:?}")
    };
    assert_eq!(k.name, "laptop");
    assert_eq!(k.probes, ["zfs.*", "system.*"]);
    assert_eq!(k.expires_in_s, None);
    let created = KeyCreated {
        key: "sk_secret".into(),
        info: crate::fixtures::key("laptop"),
        mcp_url: None,
        claude_command: Some("claude mcp add sonde --transport http https://hub/mcp --header \"Authorization: Bearer sk_secret\"".into()),
    };
    answer(
        &mut app,
        Request::CreateKey(k.clone()),
        Reply::KeyCreated(Box::new(created)),
    );
    let Some(Modal::Secret { lines, .. }) = &app.modal else {
        panic!()
    };
    assert!(lines.iter().any(|l| l.starts_with("claude mcp add")));
    key(&mut app, KeyCode::Esc);
    assert!(app.modal.is_none());
}

#[test]
fn creating_and_revoking_tokens() {
    let mut app = loaded_app();
    ch(&mut app, '6');
    key(&mut app, KeyCode::Right);
    assert_eq!(app.keys_pane, KeysPane::Tokens);
    ch(&mut app, 'c');
    typed(&mut app, "nas");
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    ch(&mut app, ' ');
    let r = key(&mut app, KeyCode::Enter);
    assert_eq!(
        r,
        [Request::CreateToken(TokenCreate {
            ttl_s: Some(900),
            label: Some("nas".into()),
            auto_approve: true
        })]
    );
    ch(&mut app, 'x');
    assert_eq!(ch(&mut app, 'y'), [Request::RevokeToken("tok-nas".into())]);
    key(&mut app, KeyCode::Left);
    ch(&mut app, 'x');
    assert_eq!(ch(&mut app, 'y'), [Request::RevokeKey("key-claude".into())]);
}

#[test]
fn try_it_picks_agent_probe_validates_and_runs() {
    let mut app = loaded_app();
    ch(&mut app, '7');
    assert_eq!(app.tryit_agents().len(), 1, "online agents only");
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        [Request::Agent("nas1".into())]
    );
    assert_eq!(app.tryit.focus, TryFocus::Probes);
    assert!(app.tryit_probes().is_empty(), "until the detail arrives");
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    let names: Vec<_> = app.tryit_probes().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["e2e.echo", "e2e.sleep"], "active packs only");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.tryit.focus, TryFocus::Form);
    // In the form, letters are typed, not commands.
    assert!(
        key(&mut app, KeyCode::Enter).is_empty(),
        "required field empty"
    );
    assert!(app.message.as_ref().unwrap().error);
    typed(&mut app, "qhello!");
    assert!(!app.quit);
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "too long");
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    let r = key(&mut app, KeyCode::Enter);
    assert_eq!(
        r,
        [Request::Probe(ProbeRun {
            agent: "nas1".into(),
            probe: "e2e.echo".into(),
            params: json!({"text": "qhell"}).as_object().cloned().unwrap(),
        })]
    );
    assert!(app.tryit.running);
    assert!(
        key(&mut app, KeyCode::Enter).is_empty(),
        "one run at a time"
    );
    let result = ProbeRunResult {
        agent: "nas1".into(),
        probe: "e2e.echo".into(),
        ok: true,
        data: Some(json!({"text": "qhell"})),
        error_code: None,
        error: None,
        duration_ms: 12,
        truncated: false,
        redactions: Default::default(),
        audit_seq: 77,
        agent_audit_head: None,
    };
    answer(&mut app, r[0].clone(), Reply::Probe(Box::new(result)));
    assert!(!app.tryit.running);
    assert!(matches!(app.tryit.result, Some(Ok(_))));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.tryit.focus, TryFocus::Probes);
    key(&mut app, KeyCode::Left);
    assert_eq!(app.tryit.focus, TryFocus::Agents);
}

#[test]
fn try_it_failure_is_shown() {
    let mut app = loaded_app();
    ch(&mut app, '7');
    key(&mut app, KeyCode::Enter);
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "hi");
    let r = key(&mut app, KeyCode::Enter);
    app.on_response(Response {
        request: r[0].clone(),
        result: Err(Failure {
            message: "agent nas1 is not connected".into(),
            unreachable: false,
        }),
    });
    assert!(!app.tryit.running);
    assert_eq!(
        app.tryit.result,
        Some(Err("agent nas1 is not connected".into()))
    );
}

#[test]
fn unreachable_hub_sets_the_banner_until_it_answers() {
    let mut app = App::new("/x/admin.sock");
    let r = app.tick(NOW);
    assert_eq!(labels(&r), ["status", "agents"]);
    for req in r {
        app.on_response(Response {
            request: req,
            result: Err(Failure {
                message: "connection refused".into(),
                unreachable: true,
            }),
        });
    }
    assert_eq!(app.hub_error.as_deref(), Some("connection refused"));
    assert!(
        app.message.is_none(),
        "reads failing while unreachable only show the banner"
    );
    assert!(app.tick(NOW + 500).is_empty(), "not yet");
    let r = app.tick(NOW + REFRESH_MS);
    assert_eq!(labels(&r), ["status", "agents"], "keeps retrying");
    answer(&mut app, Request::Status, Reply::Status(status(0, 0, 0)));
    assert!(app.hub_error.is_none());
}

#[test]
fn reads_in_flight_are_not_asked_again() {
    let mut app = App::new("sock");
    assert_eq!(labels(&app.refresh()), ["status", "agents"]);
    assert!(app.refresh().is_empty());
    assert!(app.busy());
    answer(&mut app, Request::Agents, Reply::Agents(vec![]));
    assert_eq!(labels(&app.refresh()), ["agents"]);
    // Actions are never dropped.
    ch(&mut app, '2');
    app.enrollments = vec![enrollment("a")];
    assert_eq!(labels(&ch(&mut app, 'a')), ["approve enrollment"]);
    assert_eq!(labels(&ch(&mut app, 'a')), ["approve enrollment"]);
}

#[test]
fn action_failures_are_reported() {
    let mut app = loaded_app();
    app.on_response(Response {
        request: Request::RevokeAgent("nas1".into()),
        result: Err(Failure {
            message: "no such agent".into(),
            unreachable: false,
        }),
    });
    let m = app.message.clone().unwrap();
    assert!(m.error);
    assert_eq!(m.text, "revoke agent: no such agent");
}

#[test]
fn try_it_result_scrolls_in_the_form() {
    let mut app = loaded_app();
    ch(&mut app, '7');
    key(&mut app, KeyCode::Enter);
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::PageDown);
    assert_eq!(app.tryit.result_scroll, 10);
    app.on_scroll(false);
    assert_eq!(app.tryit.result_scroll, 7);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.tryit.result_scroll, 0);
    assert_eq!(
        app.tryit.form.as_ref().unwrap().fields[0].input,
        "",
        "not typed"
    );
}

#[test]
fn attestation_history_shows_decisions_and_closed_events_are_not_decided_again() {
    let mut app = loaded_app();
    ch(&mut app, '4');
    assert_eq!(
        ch(&mut app, 'H'),
        [Request::Drift(true)],
        "H asks the hub for every drift event"
    );
    assert!(app.drift_history);
    let mut kept = drift("db3");
    kept.status = DriftStatus::Kept;
    kept.resolved_by = Some("operator:alice".into());
    answer(&mut app, Request::Drift(true), Reply::Drift(vec![kept]));
    for key in ['a', 'n', 'x'] {
        assert!(ch(&mut app, key).is_empty(), "{key} on a closed event");
        assert!(app.modal.is_none(), "no confirmation for a closed event");
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("already closed"),
            "{:?}",
            app.message
        );
    }
    assert_eq!(ch(&mut app, 'H'), [Request::Drift(false)]);
    assert!(!app.drift_history);
}
