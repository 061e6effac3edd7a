//! Fleet: every agent, and a detail pane (Enter).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};
use sonde_admin::api::{AgentState, AgentSummary};

use super::{block, kv, styles, table};
use crate::app::{App, View};
use crate::text::{ago, clip, utc};

pub fn state_cell(a: &AgentSummary) -> Span<'static> {
    match a.state {
        AgentState::Online => Span::styled("online", styles::good()),
        AgentState::Offline => Span::styled("offline", styles::dim()),
        AgentState::Quarantined => Span::styled("QUARANTINED", styles::warn()),
        AgentState::Revoked => Span::styled("revoked", styles::bad()),
    }
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let agents = app.visible_agents();
    let (list_area, detail_area) = if app.detail_open {
        let [l, r] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .areas(area);
        (l, Some(r))
    } else {
        (area, None)
    };
    let rows: Vec<Row> = agents
        .iter()
        .map(|a| {
            Row::new(vec![
                Cell::from(clip(&a.name, 40)),
                Cell::from(state_cell(a)),
                Cell::from(
                    a.last_seen_ms
                        .map(|t| ago(app.now_ms, t))
                        .unwrap_or_else(|| "never".into()),
                ),
                Cell::from(clip(&a.os, 40)),
                Cell::from(clip(&a.agent_version, 16)),
                Cell::from(format!(
                    "{}/{}/{}",
                    a.packs_active, a.packs_pending, a.packs_unavailable
                )),
                Cell::from(clip(&a.tags.join(","), 60)),
            ])
        })
        .collect();
    let empty = if app.is_loaded("agents") {
        "No agents yet. Create an enrollment token (6 Keys & tokens, c) and run the enroll line on a machine."
    } else {
        "Loading…"
    };
    table(
        f,
        list_area,
        "Fleet",
        &[
            "NAME",
            "STATUS",
            "LAST SEEN",
            "OS",
            "VERSION",
            "PACKS a/p/u",
            "TAGS",
        ],
        &[
            Constraint::Min(12),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Min(12),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Min(8),
        ],
        rows,
        Some(app.selected_in(View::Fleet)),
        empty,
    );
    if let Some(area) = detail_area {
        render_detail(f, area, app);
    }
}

fn render_detail(f: &mut Frame, area: Rect, app: &App) {
    let Some(a) = app.selected_agent() else {
        f.render_widget(
            Paragraph::new("No agent selected").block(block("Agent")),
            area,
        );
        return;
    };
    let mut lines = vec![
        kv("name", a.name.clone()),
        Line::from(vec![
            Span::styled(format!("{:<18}", "status"), styles::dim()),
            state_cell(a),
        ]),
        kv("connected", if a.connected { "yes" } else { "no" }),
        kv("hostname", a.hostname.clone()),
        kv("os", a.os.clone()),
        kv("agent version", a.agent_version.clone()),
        kv(
            "address",
            a.remote_addr.clone().unwrap_or_else(|| "-".into()),
        ),
        kv("max capability", a.max_capability.as_str()),
        kv("enrolled", utc(a.enrolled_at_ms)),
        kv("cert expires", utc(a.cert_expires_ms)),
        kv("tags", a.tags.join(", ")),
    ];
    if let Some(r) = &a.quarantine_reason {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<18}", "quarantined"), styles::warn()),
            Span::raw(clip(r, 300)),
        ]));
    }
    match &app.agent_detail {
        Some(d) if d.summary.name == a.name => {
            lines.push(kv("baseline", d.baseline_fingerprint.clone()));
            lines.push(kv("cert sha256", d.cert_sha256.clone()));
            lines.push(kv("signing key", d.signing_key_fingerprint.clone()));
            if let Some(h) = &d.agent_audit_head {
                lines.push(kv(
                    "agent audit head",
                    format!("#{} {}", h.seq, h.hash.short()),
                ));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled("Packs", styles::header()));
            if d.packs.is_empty() {
                lines.push(Line::styled("  none reported", styles::dim()));
            }
            for p in &d.packs {
                lines.push(Line::raw(format!(
                    "  {:<12} {:<8} {:<11} {}",
                    clip(&p.name, 12),
                    clip(&p.version, 8),
                    p.state.as_str(),
                    p.capability
                )));
                for m in &p.missing {
                    lines.push(Line::styled(
                        format!("      missing: {}", clip(m, 200)),
                        styles::warn(),
                    ));
                }
                if let Some(sample) = &p.sample_data {
                    lines.push(Line::styled(
                        format!("      SAMPLE DATA: {}", clip(sample, 200)),
                        styles::warn(),
                    ));
                }
            }
        }
        _ => lines.push(Line::styled("loading detail…", styles::dim())),
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(block(&format!("Agent {}", clip(&a.name, 40))))
            .wrap(Wrap { trim: false }),
        area,
    );
}
