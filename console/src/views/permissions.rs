//! Permissions: pack grants per agent, pending first, with the exact
//! OS-level change each one needs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};
use sonde_admin::api::PermissionRequest;
use sonde_protocol::messages::{GrantDecision, PackState};

use super::{block, styles, table};
use crate::app::{App, View};
use crate::text::clip;

fn state_span(p: &PermissionRequest) -> Span<'static> {
    match p.state {
        PackState::Pending => Span::styled("PENDING", styles::warn()),
        PackState::Active => Span::styled("active", styles::good()),
        PackState::Unavailable => Span::styled("unavailable", styles::dim()),
        PackState::Revoked => Span::styled("revoked", styles::bad()),
        PackState::Refused => Span::styled("REFUSED", styles::bad()),
    }
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let perms = app.visible_permissions();
    let [list, detail] = Layout::vertical([Constraint::Min(5), Constraint::Length(10)]).areas(area);
    let rows: Vec<Row> = perms
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(clip(&p.agent_name, 32)),
                Cell::from(clip(&p.pack, 20)),
                Cell::from(clip(&p.version, 10)),
                Cell::from(state_span(p)),
                Cell::from(match p.decision {
                    Some(GrantDecision::Approved) => "approved",
                    Some(GrantDecision::Revoked) => "revoked",
                    None => "-",
                }),
                Cell::from(p.capability.as_str()),
                Cell::from(clip(&p.requires.join("; "), 80)),
            ])
        })
        .collect();
    let empty = if app.is_loaded("permissions") {
        "No packs waiting for a decision."
    } else {
        "Loading…"
    };
    table(
        f,
        list,
        "Pack permissions — a approve, d deny, x revoke",
        &[
            "AGENT",
            "PACK",
            "VERSION",
            "STATE",
            "DECISION",
            "CAPABILITY",
            "NEEDS",
        ],
        &[
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Min(20),
        ],
        rows,
        Some(app.selected_in(View::Permissions)),
        empty,
    );
    let Some(p) = perms.get(app.selection()) else {
        return;
    };
    let mut lines = vec![Line::raw(clip(&p.description, 300))];
    lines.push(Line::styled(
        "Approving grants (OS level):",
        styles::header(),
    ));
    if p.requires.is_empty() {
        lines.push(Line::styled(
            "  nothing beyond the agent's own user",
            styles::dim(),
        ));
    }
    for r in &p.requires {
        lines.push(Line::raw(format!("  • {}", clip(r, 300))));
    }
    for m in &p.missing {
        lines.push(Line::styled(
            format!("  missing: {}", clip(m, 300)),
            styles::warn(),
        ));
    }
    lines.push(Line::styled(
        format!("manifest sha256 {}", clip(&p.manifest_sha256, 64)),
        styles::dim(),
    ));
    f.render_widget(
        Paragraph::new(lines)
            .block(block(&format!(
                "{} on {}",
                clip(&p.pack, 30),
                clip(&p.agent_name, 40)
            )))
            .wrap(Wrap { trim: false }),
        detail,
    );
}
