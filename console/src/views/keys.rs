//! Keys & tokens: API keys (for MCP clients) and enrollment tokens.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};
use sonde_admin::api::TokenState;

use super::{styles, table};
use crate::app::{App, KeysPane, View};
use crate::text::{ago, clip, utc};

fn list_or_all(v: &[String]) -> String {
    if v.is_empty() {
        "*".into()
    } else {
        clip(&v.join(","), 40)
    }
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let keys = app.visible_keys();
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| {
            let state = if k.revoked_at_ms.is_some() {
                Span::styled("revoked", styles::bad())
            } else if k.expires_at_ms.is_some_and(|t| t <= app.now_ms) {
                Span::styled("expired", styles::dim())
            } else {
                Span::styled("active", styles::good())
            };
            Row::new(vec![
                Cell::from(clip(&k.name, 30)),
                Cell::from(clip(&k.prefix, 14)),
                Cell::from(state),
                Cell::from(k.max_capability.as_str()),
                Cell::from(list_or_all(&k.agents)),
                Cell::from(list_or_all(&k.probes)),
                Cell::from(list_or_all(&k.tools)),
                Cell::from(k.expires_at_ms.map(utc).unwrap_or_else(|| "never".into())),
                Cell::from(
                    k.last_used_at_ms
                        .map(|t| ago(app.now_ms, t))
                        .unwrap_or_else(|| "never".into()),
                ),
            ])
        })
        .collect();
    let focus = |p: KeysPane| if app.keys_pane == p { "▶ " } else { "" };
    table(
        f,
        top,
        &format!(
            "{}API keys — c create, x revoke, → tokens",
            focus(KeysPane::Keys)
        ),
        &[
            "NAME",
            "PREFIX",
            "STATE",
            "MAX CAP",
            "AGENTS",
            "PROBES",
            "TOOLS",
            "EXPIRES",
            "LAST USED",
        ],
        &[
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Min(6),
            Constraint::Min(6),
            Constraint::Min(6),
            Constraint::Length(20),
            Constraint::Length(10),
        ],
        rows,
        (app.keys_pane == KeysPane::Keys).then(|| app.selected_in(View::Keys)),
        if app.is_loaded("keys") {
            "No API keys. c creates one."
        } else {
            "Loading…"
        },
    );
    let tokens = app.visible_tokens();
    let rows: Vec<Row> = tokens
        .iter()
        .map(|t| {
            let state = match t.state {
                TokenState::Active => Span::styled("active", styles::good()),
                TokenState::Used => Span::raw("used"),
                TokenState::Expired => Span::styled("expired", styles::dim()),
                TokenState::Revoked => Span::styled("revoked", styles::bad()),
            };
            Row::new(vec![
                Cell::from(clip(&t.label, 30)),
                Cell::from(clip(&t.id, 20)),
                Cell::from(state),
                Cell::from(if t.auto_approve { "yes" } else { "no" }),
                Cell::from(ago(app.now_ms, t.created_at_ms)),
                Cell::from(utc(t.expires_at_ms)),
            ])
        })
        .collect();
    table(
        f,
        bottom,
        &format!(
            "{}Enrollment tokens — c create, x revoke, ← keys",
            focus(KeysPane::Tokens)
        ),
        &["LABEL", "ID", "STATE", "AUTO-APPROVE", "CREATED", "EXPIRES"],
        &[
            Constraint::Min(10),
            Constraint::Length(20),
            Constraint::Length(8),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(20),
        ],
        rows,
        (app.keys_pane == KeysPane::Tokens).then(|| app.selected[7]),
        if app.is_loaded("tokens") {
            "No enrollment tokens. → then c creates one."
        } else {
            "Loading…"
        },
    );
}
