//! Key → action → state, without a terminal.
#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use sonde_admin::api::*;
use sonde_protocol::messages::{GrantDecision, PackState};

use super::*;
use crate::fixtures::*;
use crate::modal::Tone;
use crate::screens::keys::KeysPane;
use crate::screens::tryit::TryFocus;
use crate::worker::{Failure, Reply, Request, Response};

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(app: &mut App, c: char) -> Vec<Request> {
    key(app, KeyCode::Char(c))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert!(ch(app, c).is_empty(), "typing {c:?} sent something");
    }
}

fn labels(r: &[Request]) -> Vec<&'static str> {
    r.iter().map(Request::label).collect()
}

fn message(app: &App) -> String {
    app.message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

fn confirm_of(app: &App) -> crate::modal::Confirm {
    match &app.modal {
        Some(Modal::Confirm(c)) => c.clone(),
        other => panic!("no confirmation open: {other:?}"),
    }
}

fn fail(app: &mut App, request: Request, message: &str, unreachable: bool) -> Vec<Request> {
    app.on_response(Response {
        request,
        result: Err(Failure {
            message: message.into(),
            unreachable,
        }),
    })
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
    assert_eq!(app.view, View::Paths, "wraps around");
    assert!(ch(&mut app, '0').is_empty(), "same screen: nothing to do");
}

#[test]
fn q_and_ctrl_c_quit_and_help_opens_scrolls_and_closes() {
    let mut app = loaded_app();
    ch(&mut app, '?');
    assert!(matches!(app.modal, Some(Modal::Help(_))));
    render(&app, 100, 30);
    ch(&mut app, 'j');
    match &app.modal {
        Some(Modal::Help(s)) => assert_eq!(s.offset, 1),
        other => panic!("{other:?}"),
    }
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
    let name = |app: &App| app.fleet.selected(&app.data).unwrap().name.clone();
    // Attention first: quarantined, offline, online.
    assert_eq!(name(&app), "db3");
    for _ in 0..10 {
        ch(&mut app, 'j');
    }
    assert_eq!(name(&app), "nas1");
    key(&mut app, KeyCode::Up);
    assert_eq!(name(&app), "web2");
    ch(&mut app, 'g');
    assert_eq!(name(&app), "db3");
    ch(&mut app, 'G');
    assert_eq!(name(&app), "nas1");
    key(&mut app, KeyCode::PageUp);
    assert_eq!(name(&app), "db3");
    app.on_scroll(true);
    assert_eq!(name(&app), "web2");

    let mut empty = App::new("sock");
    for code in [
        KeyCode::Down,
        KeyCode::Up,
        KeyCode::End,
        KeyCode::PageDown,
        KeyCode::Enter,
        KeyCode::Char('a'),
        KeyCode::Char('d'),
        KeyCode::Char('n'),
        KeyCode::Char('x'),
        KeyCode::Char('t'),
        KeyCode::Char('y'),
        KeyCode::Char('s'),
    ] {
        for v in ['1', '2', '3', '4', '5', '6', '7'] {
            ch(&mut empty, v);
            let r = key(&mut empty, code);
            assert!(
                r.iter().all(|r| !r.is_action()),
                "{code:?} on an empty {:?} sent {r:?}",
                empty.view
            );
            assert!(!matches!(empty.modal, Some(Modal::Confirm(_))));
            empty.modal = None;
        }
    }
}

#[test]
fn enrollment_approval_shows_the_machine_and_needs_y() {
    let mut app = loaded_app();
    ch(&mut app, '2');
    assert!(
        ch(&mut app, 'a').is_empty(),
        "approving is never a single key"
    );
    let c = confirm_of(&app);
    assert!(
        c.title.contains("pi4") && c.title.contains("pi4.lan"),
        "{}",
        c.title
    );
    let text: Vec<&str> = c.lines.iter().map(|(l, _)| l.as_str()).collect();
    let all = text.join("\n");
    for want in [
        "10.0.0.9:41000",
        "9f86d081884c7d659a2feaa0c55ad015",
        "Debian GNU/Linux 12",
        "token e2e",
        "client certificate",
    ] {
        assert!(all.contains(want), "{want} missing:\n{all}");
    }
    assert!(c.lines.iter().any(|(_, t)| *t == Tone::Warn));
    assert!(
        ch(&mut app, 'a').is_empty(),
        "a second a is not y: cancelled"
    );
    assert!(app.modal.is_none());
    assert!(message(&app).contains("cancelled"));
    ch(&mut app, 'a');
    assert_eq!(
        ch(&mut app, 'y'),
        [Request::ApproveEnrollment("pi4".into())]
    );

    ch(&mut app, 'd');
    assert!(ch(&mut app, 'n').is_empty(), "anything but y cancels");
    ch(&mut app, 'd');
    assert_eq!(ch(&mut app, 'y'), [Request::DenyEnrollment("pi4".into())]);
    let r = answer(
        &mut app,
        Request::DenyEnrollment("pi4".into()),
        Reply::Done("denied enrollment of pi4".into()),
    );
    assert!(labels(&r).contains(&"enrollments"), "{r:?}");
    assert_eq!(message(&app), "denied enrollment of pi4");
}

#[test]
fn a_second_keystroke_never_approves_another_pack() {
    // The report: `a` on a pending pack re-sorted the list, the cursor
    // landed on another row, and a second `a` approved docker unasked.
    let mut app = loaded_app();
    let mut perms = vec![
        permission("nas1", "zfs", PackState::Pending),
        permission("nas1", "docker", PackState::Pending),
        permission("nas1", "system", PackState::Active),
    ];
    perms[2].decision = Some(GrantDecision::Approved);
    answer(
        &mut app,
        Request::Permissions,
        Reply::Permissions(perms.clone()),
    );
    ch(&mut app, '3');
    // Pending first, by name: docker, zfs, then system.
    ch(&mut app, 'j');
    assert_eq!(app.permissions.selected(&app.data).unwrap().pack, "zfs");
    ch(&mut app, 'a');
    let c = confirm_of(&app);
    assert!(c.title.contains("zfs"), "{}", c.title);
    assert!(
        c.lines.iter().any(|(l, _)| l.contains("group docker")),
        "what it grants is shown"
    );
    assert_eq!(
        ch(&mut app, 'y'),
        [Request::DecidePack(
            "nas1".into(),
            "zfs".into(),
            sonde_admin::api::PackAction::Approve
        )]
    );
    // The hub answers; the list re-sorts (zfs is no longer pending).
    let r = answer(
        &mut app,
        Request::DecidePack(
            "nas1".into(),
            "zfs".into(),
            sonde_admin::api::PackAction::Approve,
        ),
        Reply::Done("approve: pack zfs on nas1".into()),
    );
    assert!(labels(&r).contains(&"permissions"));
    perms[0].state = PackState::Active;
    perms[0].decision = Some(GrantDecision::Approved);
    answer(&mut app, Request::Permissions, Reply::Permissions(perms));
    let rows: Vec<String> = app
        .permissions
        .rows(&app.data)
        .iter()
        .map(|p| p.pack.clone())
        .collect();
    assert_eq!(rows, ["docker", "system", "zfs"], "re-sorted");
    assert_eq!(
        app.permissions.selected(&app.data).unwrap().pack,
        "zfs",
        "the cursor follows zfs, not its old row"
    );
    // The second `a`: zfs is approved already; nothing is sent or asked.
    assert!(ch(&mut app, 'a').is_empty());
    assert!(app.modal.is_none());
    assert!(
        message(&app).contains("already approved"),
        "{}",
        message(&app)
    );
    // Approving docker still takes its own a + y.
    ch(&mut app, 'g');
    ch(&mut app, 'a');
    assert!(confirm_of(&app).title.contains("docker"));
    assert!(ch(&mut app, 'a').is_empty());
    assert!(app.modal.is_none());
}

#[test]
fn permissions_deny_and_revoke_only_where_they_mean_something() {
    let mut app = loaded_app();
    ch(&mut app, '3');
    // docker (pending) first, then zfs (active, approved).
    app.data.permissions[0].decision = Some(GrantDecision::Approved);
    assert!(ch(&mut app, 'x').is_empty());
    assert!(
        app.modal.is_none(),
        "a pending pack is not revoked: {}",
        message(&app)
    );
    ch(&mut app, 'd');
    assert_eq!(
        ch(&mut app, 'Y'),
        [Request::DecidePack(
            "nas1".into(),
            "docker".into(),
            sonde_admin::api::PackAction::Deny
        )]
    );
    ch(&mut app, 'j');
    ch(&mut app, 'x');
    assert!(confirm_of(&app).title.contains("Revoke pack zfs"));
    assert_eq!(
        ch(&mut app, 'y'),
        [Request::DecidePack(
            "nas1".into(),
            "zfs".into(),
            sonde_admin::api::PackAction::Revoke
        )]
    );
    ch(&mut app, 'd');
    assert!(app.modal.is_none());
    assert!(message(&app).contains("x revokes it"));
}

/// Puts `first` at the front of every list, as a refresh bringing a new
/// item would, and reverses the rest.
fn reorder<T: Clone>(list: &[T], first: T) -> Vec<T> {
    let mut out = vec![first];
    out.extend(list.iter().rev().cloned());
    out
}

#[test]
fn selection_follows_the_item_by_id_on_every_screen() {
    let mut app = loaded_app();
    // Fleet.
    ch(&mut app, 'j');
    let before = app.fleet.selected(&app.data).unwrap().id.clone();
    let agents = reorder(&app.data.agents, agent("aaa", AgentState::Offline));
    answer(&mut app, Request::Agents, Reply::Agents(agents));
    assert_eq!(app.fleet.selected(&app.data).unwrap().id, before);
    // Enrollments.
    answer(
        &mut app,
        Request::Enrollments,
        Reply::Enrollments(vec![enrollment("pi4"), enrollment("pi5")]),
    );
    ch(&mut app, '2');
    ch(&mut app, 'G');
    let before = app.enrollments.selected(&app.data).unwrap().id.clone();
    let mut list = reorder(&app.data.enrollments, enrollment("aaa"));
    list[0].requested_at_ms = 0;
    answer(&mut app, Request::Enrollments, Reply::Enrollments(list));
    assert_eq!(app.enrollments.selected(&app.data).unwrap().id, before);
    // Attestation.
    ch(&mut app, '4');
    let before = app
        .attestation
        .selected(&app.data)
        .unwrap()
        .agent_id
        .clone();
    let mut newer = drift("web9");
    newer.detected_at_ms = NOW;
    answer(
        &mut app,
        Request::Drift(false),
        Reply::Drift(vec![newer, drift("db3")]),
    );
    assert_eq!(app.attestation.rows(&app.data)[0].agent_name, "web9");
    assert_eq!(
        app.attestation.selected(&app.data).unwrap().agent_id,
        before
    );
    // Keys and tokens.
    answer(
        &mut app,
        Request::Keys,
        Reply::Keys(vec![key_info("a"), key_info("b")]),
    );
    answer(
        &mut app,
        Request::Tokens,
        Reply::Tokens(vec![token("a"), token("b")]),
    );
    ch(&mut app, '6');
    ch(&mut app, 'j');
    let before = app.keys.selected_key(&app.data).unwrap().id.clone();
    let mut newest = key_info("c");
    newest.created_at_ms = NOW;
    answer(
        &mut app,
        Request::Keys,
        Reply::Keys(vec![newest, key_info("b"), key_info("a")]),
    );
    assert_eq!(app.keys.selected_key(&app.data).unwrap().id, before);
    key(&mut app, KeyCode::Right);
    ch(&mut app, 'j');
    let before = app.keys.selected_token(&app.data).unwrap().id.clone();
    let mut newest = token("c");
    newest.created_at_ms = NOW;
    answer(
        &mut app,
        Request::Tokens,
        Reply::Tokens(vec![newest, token("b"), token("a")]),
    );
    assert_eq!(app.keys.selected_token(&app.data).unwrap().id, before);
    // Audit: a live refresh keeps the entry (not following).
    ch(&mut app, '5');
    ch(&mut app, 'j');
    assert_eq!(app.audit.selected().unwrap().seq, 499);
    let q = app.audit.request();
    let generation = app.audit.generation;
    answer(
        &mut app,
        q,
        Reply::Audit(page(503, 304, Some(304)), generation),
    );
    assert_eq!(app.audit.selected().unwrap().seq, 499);
    assert_eq!(app.audit.new_above, 3);
}

mod by_id {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever order a refresh brings, the selected agent stays selected.
        #[test]
        fn fleet_selection_survives_any_refresh(
            n in 2usize..12,
            pick in 0usize..12,
            order in proptest::collection::vec(0u32..1000, 12),
            sort in 0usize..6,
        ) {
            let mut app = App::new("sock");
            app.now_ms = NOW;
            let states = [AgentState::Online, AgentState::Offline, AgentState::Quarantined, AgentState::Revoked];
            let agents: Vec<AgentSummary> = (0..n).map(|i| agent(&format!("a{i}"), states[i % 4])).collect();
            answer(&mut app, Request::Agents, Reply::Agents(agents.clone()));
            app.fleet.list.sort.column = sort;
            for _ in 0..pick.min(n - 1) {
                ch(&mut app, 'j');
            }
            let before = app.fleet.selected(&app.data).unwrap().id.clone();
            let mut shuffled = agents;
            shuffled.sort_by_key(|a| order[a.name[1..].parse::<usize>().unwrap()]);
            for a in &mut shuffled {
                a.last_seen_ms = Some(NOW - i64::from(order[0]));
            }
            answer(&mut app, Request::Agents, Reply::Agents(shuffled));
            prop_assert_eq!(app.fleet.selected(&app.data).unwrap().id.clone(), before);
        }
    }
}

#[test]
fn kept_quarantine_stays_reachable_and_releasable() {
    let mut app = loaded_app();
    ch(&mut app, '4');
    assert_eq!(
        ch(&mut app, 'n'),
        [Request::KeepQuarantined("db3".into())],
        "keeping the quarantine is a decision the hub records"
    );
    answer(
        &mut app,
        Request::KeepQuarantined("db3".into()),
        Reply::Done("db3 stays quarantined".into()),
    );
    // The hub: no open drift, db3 still quarantined with its kept event.
    let mut kept = drift("db3");
    kept.status = DriftStatus::Kept;
    kept.resolved_by = Some("operator:alice".into());
    answer(&mut app, Request::Drift(false), Reply::Drift(vec![]));
    answer(
        &mut app,
        Request::Quarantined,
        Reply::Quarantined(vec![QuarantinedAgent {
            agent: agent("db3", AgentState::Quarantined),
            drift: Some(kept),
        }]),
    );
    let rows = app.attestation.rows(&app.data);
    assert_eq!(rows.len(), 1, "the kept agent is still listed");
    assert!(
        crate::screens::attestation::state_text(&rows[0])
            .starts_with("KEPT quarantined by operator:alice")
    );
    assert!(ch(&mut app, 'n').is_empty());
    assert!(
        message(&app).contains("already kept quarantined"),
        "{}",
        message(&app)
    );
    ch(&mut app, 'a');
    let c = confirm_of(&app);
    assert!(
        c.lines
            .iter()
            .any(|(l, _)| l.contains("kernel: 6.1.0-18 → 6.1.0-21")),
        "{c:?}"
    );
    assert_eq!(ch(&mut app, 'y'), [Request::AcceptBaseline("db3".into())]);
    ch(&mut app, 'x');
    assert_eq!(ch(&mut app, 'y'), [Request::RevokeAgent("db3".into())]);
    // Quarantined with no drift record at all: still listed, still releasable.
    answer(
        &mut app,
        Request::Quarantined,
        Reply::Quarantined(vec![QuarantinedAgent {
            agent: agent("db3", AgentState::Quarantined),
            drift: None,
        }]),
    );
    assert_eq!(app.attestation.rows(&app.data).len(), 1);
    ch(&mut app, 'a');
    assert_eq!(ch(&mut app, 'y'), [Request::AcceptBaseline("db3".into())]);
}

#[test]
fn closed_drift_events_in_history_are_not_decided_again() {
    let mut app = loaded_app();
    answer(&mut app, Request::Quarantined, Reply::Quarantined(vec![]));
    ch(&mut app, '4');
    assert_eq!(
        ch(&mut app, 'H'),
        [Request::Drift(true)],
        "H asks for every drift event"
    );
    assert!(app.attestation.history);
    let mut accepted = drift("db3");
    accepted.status = DriftStatus::Accepted;
    accepted.resolved_by = Some("operator:alice".into());
    answer(&mut app, Request::Drift(true), Reply::Drift(vec![accepted]));
    for k in ['a', 'n', 'x'] {
        assert!(ch(&mut app, k).is_empty(), "{k} on a closed event");
        assert!(app.modal.is_none(), "no confirmation for a closed event");
        assert!(
            message(&app).contains("already closed"),
            "{}",
            message(&app)
        );
    }
    assert_eq!(
        ch(&mut app, 'H'),
        [Request::Drift(false), Request::Quarantined]
    );
    assert!(!app.attestation.history);
}

#[test]
fn audit_shows_names_filters_by_name_and_says_what_each_entry_was_about() {
    use crate::screens::audit::{agent_name, subject};
    let mut app = loaded_app();
    ch(&mut app, '5');
    let e = app.audit.selected().unwrap().clone();
    assert_eq!(agent_name(&e, &app.audit.names), "nas1", "names, not ids");
    ch(&mut app, '/');
    typed(&mut app, "agent:nas1 since:2w");
    let r = key(&mut app, KeyCode::Enter);
    let Request::Audit(q, _) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(
        q.agent.as_deref(),
        Some("nas1"),
        "the hub resolves names and ids"
    );
    assert_eq!(
        q.since_ms,
        Some(NOW - 14 * 86_400_000),
        "the hub CLI's duration grammar"
    );
    // What each entry was about.
    let mut approved = entry(1, "pack.approved");
    approved.detail.insert("pack".into(), json!("docker"));
    assert_eq!(subject(&approved), "pack docker");
    let mut denied = entry(2, "enrollment.denied");
    denied.agent = None;
    denied.detail.insert("name".into(), json!("pi4"));
    assert_eq!(subject(&denied), "machine pi4");
    assert_eq!(agent_name(&denied, &app.audit.names), "-");
    let mut refused = entry(3, "enrollment.refused");
    refused.detail.insert("name".into(), json!("evil"));
    refused
        .detail
        .insert("remote_addr".into(), json!("10.9.9.9:1"));
    refused
        .detail
        .insert("reason".into(), json!("token_reused"));
    assert_eq!(
        subject(&refused),
        "machine evil from 10.9.9.9:1: token_reused"
    );
    let mut probe = entry(4, "probe");
    probe.probe = Some("zfs.list".into());
    probe.outcome = "denied".into();
    probe
        .detail
        .insert("reason".into(), json!("outside the key's probes"));
    assert_eq!(subject(&probe), "zfs.list: outside the key's probes");
}

#[test]
fn filter_input_survives_a_parse_error() {
    let mut app = loaded_app();
    ch(&mut app, '5');
    ch(&mut app, '/');
    typed(&mut app, "agent:nas1 outcom:denied");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    match &app.modal {
        Some(Modal::Prompt(p)) => {
            assert_eq!(
                p.input, "agent:nas1 outcom:denied",
                "the text stays to be fixed"
            );
            assert!(
                p.error
                    .as_deref()
                    .unwrap()
                    .contains("unknown filter \"outcom\"")
            );
        }
        other => panic!("the prompt closed: {other:?}"),
    }
    // Fix it in place.
    for _ in 0..":denied".len() {
        key(&mut app, KeyCode::Backspace);
    }
    assert!(
        matches!(&app.modal, Some(Modal::Prompt(p)) if p.error.is_none()),
        "editing clears the error"
    );
    typed(&mut app, "e:denied");
    let r = key(&mut app, KeyCode::Enter);
    assert!(app.modal.is_none());
    let Request::Audit(q, _) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.outcome.as_deref(), Some("denied"));
    assert_eq!(app.audit.filter, "agent:nas1 outcome:denied");
}

#[test]
fn messages_expire_and_errors_clear_when_their_cause_is_gone() {
    let mut app = loaded_app();
    app.tick(NOW);
    ch(&mut app, 'r');
    assert_eq!(message(&app), "refreshing");
    app.tick(NOW + MESSAGE_MS - 1);
    assert!(app.message.is_some());
    app.tick(NOW + MESSAGE_MS);
    assert!(app.message.is_none(), "an info message expires");
    // An error from a read goes as soon as that read succeeds.
    fail(&mut app, Request::Permissions, "database is locked", false);
    assert!(app.message.as_ref().unwrap().error);
    answer(&mut app, Request::Agents, Reply::Agents(vec![]));
    assert!(app.message.is_some(), "another read does not clear it");
    answer(&mut app, Request::Permissions, Reply::Permissions(vec![]));
    assert!(app.message.is_none(), "the cause is gone");
    // And any error expires in the end.
    fail(
        &mut app,
        Request::RevokeAgent("x".into()),
        "no such agent",
        false,
    );
    app.tick(NOW + MESSAGE_MS + ERROR_MS);
    assert!(app.message.is_none());
}

#[test]
fn enter_opens_the_detail_on_every_list_screen() {
    let mut app = loaded_app();
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        [Request::Agent("db3".into())]
    );
    assert!(app.fleet.list.detail_open);
    assert_eq!(
        ch(&mut app, 'j'),
        [Request::Agent("web2".into())],
        "the detail follows"
    );
    key(&mut app, KeyCode::Esc);
    assert!(!app.fleet.list.detail_open);
    ch(&mut app, '2');
    key(&mut app, KeyCode::Enter);
    assert!(app.enrollments.list.detail_open);
    ch(&mut app, '3');
    key(&mut app, KeyCode::Enter);
    assert!(app.permissions.list.detail_open);
    ch(&mut app, '4');
    key(&mut app, KeyCode::Enter);
    assert!(app.attestation.list.detail_open);
    key(&mut app, KeyCode::Esc);
    assert!(!app.attestation.list.detail_open);
    ch(&mut app, '6');
    key(&mut app, KeyCode::Enter);
    assert!(app.keys.detail_open);
    ch(&mut app, '5');
    assert_eq!(key(&mut app, KeyCode::Enter), [Request::AuditEntry(500)]);
    assert!(matches!(app.modal, Some(Modal::AuditEntry { .. })));
}

#[test]
fn page_down_stops_at_the_end_of_a_result() {
    let mut app = try_it_with_result(json!({"lines": (0..100).collect::<Vec<_>>()}));
    render(&app, 160, 45);
    for _ in 0..50 {
        key(&mut app, KeyCode::PageDown);
    }
    let max = app.tryit.scroll.max();
    assert!(max > 0);
    assert_eq!(app.tryit.scroll.offset, max, "no scrolling past the end");
    let s = render(&app, 160, 45);
    assert!(s.contains("  - 99"), "the last line is on screen:\n{s}");
    key(&mut app, KeyCode::PageUp);
    assert!(app.tryit.scroll.offset < max);
    ch(&mut app, 'g');
    assert_eq!(app.tryit.scroll.offset, 0);
    // The same from the form.
    ch(&mut app, 'e');
    for _ in 0..50 {
        key(&mut app, KeyCode::PageDown);
    }
    assert_eq!(app.tryit.scroll.offset, max);
}

#[test]
fn nothing_revoked_used_or_expired_is_offered_for_revocation() {
    let mut app = loaded_app();
    let mut revoked = key_info("old");
    revoked.revoked_at_ms = Some(NOW - 10);
    answer(&mut app, Request::Keys, Reply::Keys(vec![revoked]));
    let mut used_then_revoked = token("used");
    used_then_revoked.used_at_ms = Some(NOW - 100);
    used_then_revoked.revoked_at_ms = Some(NOW - 10);
    used_then_revoked.state = TokenState::Revoked;
    let mut expired = token("late");
    expired.expires_at_ms = NOW - 1;
    expired.created_at_ms = NOW - 5000;
    answer(
        &mut app,
        Request::Tokens,
        Reply::Tokens(vec![used_then_revoked, expired]),
    );
    ch(&mut app, '6');
    assert!(ch(&mut app, 'x').is_empty());
    assert!(app.modal.is_none(), "{:?}", app.modal);
    assert!(message(&app).contains("already revoked"));
    key(&mut app, KeyCode::Right);
    assert!(ch(&mut app, 'x').is_empty());
    assert!(app.modal.is_none());
    assert!(message(&app).contains("already used"), "{}", message(&app));
    ch(&mut app, 'j');
    assert!(ch(&mut app, 'x').is_empty());
    assert!(message(&app).contains("expired"), "{}", message(&app));
    // A used token shows as used, even after a revoke.
    let s = render(&app, 160, 45);
    assert!(line_with(&s, "tok-used").contains(" used "), "{s}");
    // An agent already revoked: no prompt either.
    let mut app = loaded_app();
    app.data.agents[2].state = AgentState::Revoked;
    ch(&mut app, 'G');
    assert_eq!(
        app.fleet.selected(&app.data).unwrap().state,
        AgentState::Revoked
    );
    assert!(ch(&mut app, 'x').is_empty());
    assert!(app.modal.is_none());
    assert!(message(&app).contains("already revoked"));
}

fn created_key(app: &mut App) {
    let created = KeyCreated {
        key: "sonde_sk_3f9a1c2e_5ecret5ecret5ecret5ecret5ecret".into(),
        info: key_info("laptop"),
        mcp_url: Some("https://hub.lan:7444/mcp".into()),
        claude_command: Some(
            "claude mcp add sonde --transport http https://hub.lan:7444/mcp --header \"Authorization: Bearer sonde_sk_3f9a1c2e_5ecret5ecret5ecret5ecret5ecret\"".into(),
        ),
    };
    let req = Request::CreateKey(KeyCreate {
        name: "laptop".into(),
        agents: vec![],
        probes: vec![],
        tools: vec![],
        max_capability: Default::default(),
        expires_in_s: None,
    });
    answer(app, req, Reply::KeyCreated(Box::new(created)));
}

#[test]
fn copy_emits_osc52_with_the_whole_secret() {
    let mut app = loaded_app();
    created_key(&mut app);
    let Some(Modal::Secret(s)) = &app.modal else {
        panic!("{:?}", app.modal)
    };
    let labels: Vec<&str> = s.items.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(
        s.items[2].value == "export NODE_EXTRA_CA_CERTS=/var/lib/sonde-hub/ca.crt",
        "{:?}",
        s.items[2]
    );
    ch(&mut app, 'y');
    assert_eq!(
        app.output,
        [crate::clipboard::osc52(
            "sonde_sk_3f9a1c2e_5ecret5ecret5ecret5ecret5ecret"
        )]
    );
    assert!(message(&app).contains("copied"), "{}", message(&app));
    app.output.clear();
    ch(&mut app, 'j');
    ch(&mut app, 'c');
    assert_eq!(app.output.len(), 1);
    assert!(app.output[0].starts_with("\x1b]52;c;"));
    let b64 = app.output[0]
        .trim_start_matches("\x1b]52;c;")
        .trim_end_matches('\x07');
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert!(
        String::from_utf8(decoded)
            .unwrap()
            .starts_with("claude mcp add sonde --transport http")
    );
    // The plain view prints each line whole, for mouse selection.
    ch(&mut app, 'p');
    let plain = app.plain.take().unwrap();
    assert!(
        plain
            .iter()
            .any(|l| l.starts_with("claude mcp add") && l.ends_with("5ecret\""))
    );
    assert!(
        plain
            .iter()
            .any(|l| l == "export NODE_EXTRA_CA_CERTS=/var/lib/sonde-hub/ca.crt")
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.modal.is_none());
    // In tmux, the passthrough form too.
    let mut app = App::with_options(
        "s",
        Options {
            in_tmux: true,
            ..Options::default()
        },
    );
    app.fleet.list.selection.select_id("agt-x");
    app.data.agents = vec![agent("x", AgentState::Online)];
    ch(&mut app, 'y');
    assert_eq!(app.output.len(), 2);
    assert!(app.output[1].starts_with("\x1bPtmux;"));
}

#[test]
fn enroll_token_secret_puts_the_command_first() {
    let mut app = loaded_app();
    let created = TokenCreated {
        token: "sonde_et_abc".into(),
        info: token("nas"),
        ca_sha256: "cd".repeat(32),
        enroll_command:
            "sonde-agent enroll --hub hub.lan:7443 --token sonde_et_abc --ca-sha256 cdcd".into(),
    };
    let r = answer(
        &mut app,
        Request::CreateToken(TokenCreate {
            ttl_s: None,
            label: None,
            auto_approve: false,
        }),
        Reply::TokenCreated(Box::new(created)),
    );
    assert!(labels(&r).contains(&"status"));
    let Some(Modal::Secret(s)) = &app.modal else {
        panic!()
    };
    assert!(s.items[0].value.starts_with("sonde-agent enroll"));
    ch(&mut app, 'y');
    assert_eq!(app.output.len(), 1);
}

#[test]
fn palette_jumps_to_screens_agents_filters_and_probes() {
    let mut app = loaded_app();
    ch(&mut app, ':');
    typed(&mut app, "perm");
    let r = key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Permissions);
    assert!(labels(&r).contains(&"permissions"));
    assert!(app.modal.is_none());
    // An agent: Fleet, selected, detail open.
    ch(&mut app, ':');
    typed(&mut app, "agent web2");
    let r = key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Fleet);
    assert_eq!(app.fleet.selected(&app.data).unwrap().name, "web2");
    assert!(app.fleet.list.detail_open);
    assert!(r.contains(&Request::Agent("web2".into())));
    // A bare name works, and a filter hiding it is cleared.
    app.fleet.list.filter = "web".into();
    ch(&mut app, ':');
    typed(&mut app, "nas1");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.fleet.selected(&app.data).unwrap().name, "nas1");
    assert!(app.fleet.list.filter.is_empty());
    // A filtered audit.
    ch(&mut app, ':');
    typed(&mut app, "audit agent:nas1 outcome:denied");
    let r = key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Audit);
    assert_eq!(app.audit.filter, "agent:nas1 outcome:denied");
    assert!(
        r.iter()
            .any(|r| matches!(r, Request::Audit(q, _) if q.agent.as_deref() == Some("nas1")))
    );
    // A bad one keeps the palette open with the error.
    ch(&mut app, ':');
    typed(&mut app, "audit colour:red");
    key(&mut app, KeyCode::Enter);
    match &app.modal {
        Some(Modal::Palette(p)) => assert!(p.error.as_deref().unwrap().contains("unknown filter")),
        other => panic!("{other:?}"),
    }
    key(&mut app, KeyCode::Esc);
    // A suggestion picked with ↓ runs as it is.
    ch(&mut app, ':');
    typed(&mut app, "en");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.view,
        View::Enrollments,
        "a prefix runs its only command"
    );
    ch(&mut app, ':');
    key(&mut app, KeyCode::Enter);
    assert!(
        matches!(app.modal, Some(Modal::Palette(_))),
        "nothing typed or picked: stays open"
    );
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Permissions, "the third suggestion");
    // Completion: Tab picks, → completes.
    ch(&mut app, ':');
    typed(&mut app, "tok");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Keys);
    assert_eq!(app.keys.pane, KeysPane::Tokens);
    ch(&mut app, ':');
    typed(&mut app, "th");
    key(&mut app, KeyCode::Right);
    typed(&mut app, "light");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.theme.name, crate::theme::ThemeName::Light);
    // Try: agent now, probe when its list arrives.
    ch(&mut app, ':');
    typed(&mut app, "try nas1 e2e.echo");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::TryIt);
    assert_eq!(app.tryit.agent.as_deref(), Some("nas1"));
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    assert_eq!(app.tryit.focus, TryFocus::Form);
    assert_eq!(app.tryit.probe.as_ref().unwrap().name, "e2e.echo");
}

#[test]
fn sort_by_column_keeps_the_selection() {
    let mut app = loaded_app();
    ch(&mut app, 'j');
    let before = app.fleet.selected(&app.data).unwrap().name.clone();
    ch(&mut app, 's');
    assert!(message(&app).contains("sorted by name"));
    let names: Vec<String> = app
        .fleet
        .rows(&app.data)
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["db3", "nas1", "web2"]);
    assert_eq!(app.fleet.selected(&app.data).unwrap().name, before);
    ch(&mut app, 'S');
    let names: Vec<String> = app
        .fleet
        .rows(&app.data)
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["web2", "nas1", "db3"]);
    ch(&mut app, ':');
    typed(&mut app, "sort status");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.fleet.list.sort.column, 2);
    // The audit keeps the chain's order.
    ch(&mut app, '5');
    ch(&mut app, 's');
    assert!(message(&app).contains("hub's order"));
}

#[test]
fn audit_follow_mode_and_the_cursor_staying_put() {
    let mut app = loaded_app();
    ch(&mut app, '5');
    assert!(app.audit.follow, "follows by default");
    let generation = app.audit.generation;
    let refresh = |app: &mut App, top: u64| {
        let q = app.audit.request();
        answer(
            app,
            q,
            Reply::Audit(page(top, top - 199, Some(top - 199)), generation),
        );
    };
    refresh(&mut app, 502);
    assert_eq!(
        app.audit.selected().unwrap().seq,
        502,
        "following: the newest"
    );
    ch(&mut app, 'j');
    assert!(!app.audit.follow, "moving off the top stops following");
    refresh(&mut app, 505);
    assert_eq!(
        app.audit.selected().unwrap().seq,
        501,
        "the cursor stays on its entry"
    );
    assert_eq!(app.audit.new_above, 3);
    let s = render(&app, 160, 45);
    assert!(s.contains("+3 new above"), "{s}");
    ch(&mut app, 'f');
    assert!(app.audit.follow);
    assert_eq!(app.audit.selected().unwrap().seq, 505);
    assert!(render(&app, 160, 45).contains("FOLLOWING"));
}

#[test]
fn audit_pages_through_the_chain_without_loading_it_all() {
    let mut app = loaded_app();
    ch(&mut app, '5');
    assert_eq!(app.audit.entries.len(), 200);
    key(&mut app, KeyCode::End);
    let r = key(&mut app, KeyCode::Down);
    let Request::Audit(q, generation) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.before_seq, Some(301));
    assert_eq!(q.limit, Some(crate::screens::audit::AUDIT_PAGE));
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
    assert_eq!(app.audit.selected().unwrap().seq, 300);
    // Above the first row: back to the newer page, on its last row.
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
    assert_eq!(app.audit.selected().unwrap().seq, 301);
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
    assert!(message(&app).contains("oldest page"));
    let r = ch(&mut app, 'g');
    let Request::Audit(q, g) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(q.before_seq, None);
    assert_eq!(app.audit.page(), 0);
    answer(
        &mut app,
        r[0].clone(),
        Reply::Audit(page(500, 301, Some(301)), *g),
    );
    // A failed older page keeps the page we have.
    let r = ch(&mut app, ']');
    assert_eq!(app.audit.page(), 1);
    fail(&mut app, r[0].clone(), "bad cursor", false);
    assert_eq!(app.audit.page(), 0);
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
    let s = render(&app, 160, 45);
    assert!(
        line_with(&s, "agent   ").contains("nas1 (agt-nas1)"),
        "the name, with the id: {s}"
    );
    ch(&mut app, 'y');
    assert_eq!(app.output.len(), 1, "y copies the entry's hash");
    key(&mut app, KeyCode::Esc);
    assert_eq!(ch(&mut app, 'v'), [Request::AuditVerify]);
    assert!(matches!(app.modal, Some(Modal::Verify(None, _))));
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
    assert!(matches!(&app.modal, Some(Modal::Verify(Some(Ok(_)), _))));
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
        crate::screens::audit::verify_line(&Ok(broken)),
        "Audit chain BROKEN at entry #77: hash — hash does not match"
    );
}

#[test]
fn creating_keys_and_tokens_from_forms() {
    let mut app = loaded_app();
    ch(&mut app, '6');
    ch(&mut app, 'c');
    assert!(matches!(app.modal, Some(Modal::KeyForm(_))));
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "not valid yet");
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
    key(&mut app, KeyCode::Right);
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

fn try_it_with_result(data: serde_json::Value) -> App {
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
    let result = ProbeRunResult {
        agent: "nas1".into(),
        probe: "e2e.echo".into(),
        ok: true,
        data: Some(data),
        error_code: None,
        error: None,
        duration_ms: 1234,
        truncated: false,
        redactions: Default::default(),
        audit_seq: 77,
        agent_audit_head: None,
    };
    answer(&mut app, r[0].clone(), Reply::Probe(Box::new(result)));
    app
}

#[test]
fn try_it_picks_agent_probe_validates_and_runs() {
    let mut app = loaded_app();
    ch(&mut app, '7');
    assert_eq!(app.tryit.agents(&app.data).len(), 1, "online agents only");
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        [Request::Agent("nas1".into())]
    );
    assert_eq!(app.tryit.focus, TryFocus::Probes);
    assert!(
        app.tryit.probes(&app.data).is_empty(),
        "until the detail arrives"
    );
    answer(
        &mut app,
        Request::Agent("nas1".into()),
        Reply::Agent(Box::new(detail("nas1"))),
    );
    let names: Vec<_> = app
        .tryit
        .probes(&app.data)
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, ["e2e.echo", "e2e.sleep"], "active packs only");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.tryit.focus, TryFocus::Form);
    assert!(
        key(&mut app, KeyCode::Enter).is_empty(),
        "required field empty"
    );
    assert!(app.message.as_ref().unwrap().error);
    typed(&mut app, "qhello!");
    assert!(!app.quit, "q is typed in a form");
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
    fail(&mut app, r[0].clone(), "agent nas1 is not connected", false);
    assert!(!app.tryit.running);
    assert_eq!(
        app.tryit.result,
        Some(Err("agent nas1 is not connected".into()))
    );
    assert_eq!(app.tryit.focus, TryFocus::Result);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.tryit.focus, TryFocus::Form);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.tryit.focus, TryFocus::Probes);
    key(&mut app, KeyCode::Left);
    assert_eq!(app.tryit.focus, TryFocus::Agents);
}

#[test]
fn try_it_result_in_human_units_raw_json_search_copy_and_save() {
    let mut app = try_it_with_result(
        json!({"pool": "tank", "used_bytes": 1_099_511_627_776u64, "scrubbed_at": 1_714_566_896u64}),
    );
    assert_eq!(app.tryit.focus, TryFocus::Result);
    let s = render(&app, 160, 45);
    assert!(
        line_with(&s, "used_bytes").contains("1099511627776  (1.0 TiB)"),
        "{s}"
    );
    assert!(
        line_with(&s, "scrubbed_at").contains("2024-05-01 12:34:56Z"),
        "{s}"
    );
    assert!(line_with(&s, "duration").contains("1234 ms (1.2 s)"), "{s}");
    ch(&mut app, 'J');
    let s = render(&app, 160, 45);
    assert!(s.contains("\"used_bytes\": 1099511627776"), "raw JSON: {s}");
    assert!(!s.contains("TiB"));
    ch(&mut app, 'J');
    // Search.
    ch(&mut app, '/');
    assert!(matches!(&app.modal, Some(Modal::Prompt(p)) if p.purpose == PromptFor::Search));
    typed(&mut app, "tank");
    key(&mut app, KeyCode::Enter);
    assert!(message(&app).contains("match 1 of 1"), "{}", message(&app));
    ch(&mut app, 'n');
    assert!(message(&app).contains("match 1 of 1"));
    // Copy the data.
    ch(&mut app, 'y');
    assert_eq!(app.output.len(), 1);
    // Save: a prompt with a file name, then a request to write it.
    ch(&mut app, 'w');
    let Some(Modal::Prompt(p)) = &app.modal else {
        panic!("{:?}", app.modal)
    };
    assert!(
        p.input.starts_with("sonde-nas1-e2e.echo-") && p.input.ends_with(".json"),
        "{}",
        p.input
    );
    for _ in 0..p.input.len() {
        key(&mut app, KeyCode::Backspace);
    }
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(
        matches!(&app.modal, Some(Modal::Prompt(p)) if p.error.is_some()),
        "a name is needed"
    );
    typed(&mut app, "out.json");
    let r = key(&mut app, KeyCode::Enter);
    let [Request::SaveFile { path, contents }] = r.as_slice() else {
        panic!("{r:?}")
    };
    assert_eq!(path, "out.json");
    let saved: ProbeRunResult = serde_json::from_str(contents).unwrap();
    assert_eq!(saved.audit_seq, 77);
    // Enter runs it again; e edits.
    let r = key(&mut app, KeyCode::Enter);
    assert!(matches!(r.as_slice(), [Request::Probe(_)]));
}

#[test]
fn unreachable_hub_sets_the_banner_and_marks_the_data_stale() {
    let mut app = loaded_app();
    app.data.last_ok_ms = Some(NOW);
    let r = app.tick(NOW);
    assert_eq!(app.data.stale_for(NOW), None);
    for req in r {
        fail(&mut app, req, "connection refused", true);
    }
    assert_eq!(app.data.hub_error.as_deref(), Some("connection refused"));
    assert!(
        app.message.is_none(),
        "reads failing while unreachable only show the banner"
    );
    assert!(app.tick(NOW + 500).is_empty(), "not yet");
    let r = app.tick(NOW + REFRESH_MS);
    assert!(labels(&r).contains(&"status"), "keeps retrying");
    for req in r {
        fail(&mut app, req, "connection refused", true);
    }
    assert_eq!(app.data.stale_for(NOW + 35_000), Some(35_000));
    app.now_ms = NOW + 35_000;
    let s = render(&app, 160, 45);
    assert!(s.contains("STALE: data 35.0 s old"), "{s}");
    assert!(s.contains("HUB NOT REACHABLE"), "{s}");
    assert!(s.contains("showing data from 35s ago"), "{s}");
    answer(&mut app, Request::Status, Reply::Status(status(0, 0, 0)));
    assert!(app.data.hub_error.is_none());
    assert_eq!(app.data.stale_for(app.now_ms), None);
}

#[test]
fn reads_in_flight_are_not_asked_again_and_traffic_is_read_every_ten_seconds() {
    let mut app = App::new("sock");
    assert_eq!(labels(&app.tick(0)), ["status", "agents", "metrics"]);
    assert!(app.refresh().is_empty());
    assert!(app.busy());
    answer(&mut app, Request::Agents, Reply::Agents(vec![]));
    answer(&mut app, Request::Metrics(60), Reply::Metrics(metrics()));
    assert_eq!(
        labels(&app.tick(REFRESH_MS)),
        ["agents"],
        "metrics: not yet"
    );
    answer(&mut app, Request::Agents, Reply::Agents(vec![]));
    assert_eq!(labels(&app.tick(METRICS_MS)), ["agents", "metrics"]);
    // Actions are never dropped.
    ch(&mut app, '6');
    app.data.keys = vec![key_info("a")];
    ch(&mut app, 'x');
    assert_eq!(labels(&ch(&mut app, 'y')), ["revoke key"]);
    ch(&mut app, 'x');
    assert_eq!(labels(&ch(&mut app, 'y')), ["revoke key"]);
}

#[test]
fn action_failures_are_reported() {
    let mut app = loaded_app();
    fail(
        &mut app,
        Request::RevokeAgent("nas1".into()),
        "no such agent",
        false,
    );
    let m = app.message.clone().unwrap();
    assert!(m.error);
    assert_eq!(m.text, "revoke agent: no such agent");
}

#[test]
fn fleet_revoke_confirms_and_tags_edit() {
    let mut app = loaded_app();
    ch(&mut app, 'j');
    ch(&mut app, 'x');
    let c = confirm_of(&app);
    assert!(c.title.contains("web2"), "{}", c.title);
    assert_eq!(c.request, Request::RevokeAgent("web2".into()));
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
fn filters_narrow_each_screen_and_esc_clears_them() {
    let mut app = loaded_app();
    ch(&mut app, '/');
    typed(&mut app, "WEB");
    key(&mut app, KeyCode::Enter);
    let names: Vec<_> = app
        .fleet
        .rows(&app.data)
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["web2"]);
    // Several words: all must match.
    ch(&mut app, '/');
    key(&mut app, KeyCode::Char('u'));
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    typed(&mut app, "prod offline");
    key(&mut app, KeyCode::Enter);
    let names: Vec<_> = app
        .fleet
        .rows(&app.data)
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["web2"]);
    // Per screen.
    ch(&mut app, '2');
    assert_eq!(app.enrollments.rows(&app.data).len(), 1);
    ch(&mut app, '1');
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.fleet.rows(&app.data).len(), 3);
    ch(&mut app, '/');
    typed(&mut app, "zzz");
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        app.fleet.rows(&app.data).len(),
        3,
        "Esc in the prompt cancels"
    );
}

#[test]
fn themes_change_and_no_color_wins() {
    let mut app = App::with_options(
        "s",
        Options {
            no_color: true,
            ..Options::default()
        },
    );
    assert!(app.theme.is_mono());
    ch(&mut app, ':');
    typed(&mut app, "theme solarized");
    key(&mut app, KeyCode::Enter);
    assert!(app.theme.is_mono(), "NO_COLOR stays in force");
    assert!(message(&app).contains("NO_COLOR"));
    let mut app = App::with_options(
        "s",
        Options {
            theme: crate::theme::ThemeName::Light,
            ..Options::default()
        },
    );
    assert_eq!(app.theme.name, crate::theme::ThemeName::Light);
    ch(&mut app, ':');
    typed(&mut app, "theme dark");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.theme.name, crate::theme::ThemeName::Dark);
}

#[test]
fn long_details_scroll_with_j_and_k() {
    let mut app = loaded_app();
    app.fleet.list.detail_open = true;
    answer(
        &mut app,
        Request::Agent("db3".into()),
        Reply::Agent(Box::new(detail("db3"))),
    );
    render(&app, 80, 24);
    assert!(
        app.fleet.detail_scroll.max() > 0,
        "the detail is longer than its pane at 80x24"
    );
    for _ in 0..30 {
        ch(&mut app, 'J');
    }
    assert_eq!(
        app.fleet.detail_scroll.offset,
        app.fleet.detail_scroll.max()
    );
    assert_eq!(
        app.fleet.selected(&app.data).unwrap().name,
        "db3",
        "the list keeps its cursor"
    );
    ch(&mut app, 'K');
    assert!(app.fleet.detail_scroll.offset < app.fleet.detail_scroll.max());
    ch(&mut app, '4');
    render(&app, 80, 24);
    for _ in 0..30 {
        ch(&mut app, 'J');
    }
    assert_eq!(
        app.attestation.detail_scroll.offset,
        app.attestation.detail_scroll.max()
    );
    let s = render(&app, 80, 24);
    assert!(s.contains("J/K scroll"), "{s}");
}
