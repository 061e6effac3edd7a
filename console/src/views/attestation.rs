//! Attestation: drift events, the baseline and the current attestation side
//! by side with the differences highlighted (and marked `*` for terminals
//! without colour).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};
use sonde_admin::api::{DriftEvent, DriftStatus};
use sonde_protocol::attestation::Attestation;

use super::{block, styles, table};
use crate::app::{App, View};
use crate::text::{ago, clip};

/// (field, value) pairs of an attestation, in a fixed order.
pub fn fields(a: &Attestation) -> Vec<(String, String)> {
    let mut out = vec![
        ("os_release".to_owned(), a.os_release.clone()),
        ("kernel".to_owned(), a.kernel.clone()),
        ("arch".to_owned(), a.arch.clone()),
        ("binary_sha256".to_owned(), a.binary_sha256.to_hex()),
        ("config_sha256".to_owned(), a.config_sha256.to_hex()),
        ("machine_id".to_owned(), a.machine_id.clone()),
    ];
    for p in &a.packs {
        out.push((
            format!("pack {}", p.name),
            format!("{} {}", p.version, p.manifest_sha256.short()),
        ));
    }
    out
}

fn side(title: &str, mine: &[(String, String)], other: &[(String, String)]) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(title.to_owned(), styles::header())];
    // Every field of either side, so a pack present on one side only shows.
    let mut names: Vec<&String> = mine.iter().map(|(k, _)| k).collect();
    for (k, _) in other {
        if !names.contains(&k) {
            names.push(k);
        }
    }
    for name in names {
        let value = mine
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let theirs = other
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let changed = value != theirs;
        let shown = value
            .map(|v| clip(v, 200))
            .unwrap_or_else(|| "(absent)".into());
        let style = if changed {
            styles::changed()
        } else {
            Default::default()
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} {:<16}", if changed { "*" } else { " " }, clip(name, 16)),
                styles::dim(),
            ),
            Span::styled(shown, style),
        ]));
    }
    lines
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let events = app.visible_drift();
    let [list, detail] = Layout::vertical([Constraint::Length(8), Constraint::Min(6)]).areas(area);
    let rows: Vec<Row> = events
        .iter()
        .map(|d| {
            Row::new(vec![
                Cell::from(clip(&d.agent_name, 32)),
                Cell::from(status_text(d)),
                Cell::from(ago(app.now_ms, d.detected_at_ms)),
                Cell::from(clip(&d.baseline_fingerprint, 16)),
                Cell::from(clip(&d.current_fingerprint, 16)),
                Cell::from(clip(
                    &d.changes
                        .iter()
                        .map(|c| c.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    80,
                )),
            ])
        })
        .collect();
    let empty = match (app.is_loaded("drift"), app.drift_history) {
        (false, _) => "Loading…",
        (true, false) => "No open drift: every agent matches its baseline. (H: history)",
        (true, true) => "No drift was ever detected.",
    };
    let title = if app.drift_history {
        "Attestation drift, all events — a accept baseline, n keep quarantined, x revoke, H open only"
    } else {
        "Attestation drift — a accept baseline, n keep quarantined, x revoke, H history"
    };
    table(
        f,
        list,
        title,
        &[
            "AGENT", "STATUS", "DETECTED", "BASELINE", "CURRENT", "CHANGED",
        ],
        &[
            Constraint::Min(10),
            Constraint::Length(22),
            Constraint::Length(10),
            Constraint::Length(17),
            Constraint::Length(17),
            Constraint::Min(20),
        ],
        rows,
        Some(app.selected_in(View::Attestation)),
        empty,
    );
    let Some(d) = events.get(app.selection()) else {
        return;
    };
    let base = fields(&d.baseline);
    let cur = fields(&d.current);
    let [l, r] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(detail);
    f.render_widget(
        Paragraph::new(side(
            &format!("fingerprint {}", clip(&d.baseline_fingerprint, 64)),
            &base,
            &cur,
        ))
        .block(block("Baseline (approved)"))
        .wrap(Wrap { trim: false }),
        l,
    );
    f.render_widget(
        Paragraph::new(side(
            &format!("fingerprint {}", clip(&d.current_fingerprint, 64)),
            &cur,
            &base,
        ))
        .block(block("Current (now)"))
        .wrap(Wrap { trim: false }),
        r,
    );
}

/// `open`, or the decision and who made it (`kept by operator:alice`).
fn status_text(d: &DriftEvent) -> String {
    let decision = match d.status {
        DriftStatus::Open => return "open".into(),
        DriftStatus::Accepted => "accepted",
        DriftStatus::Revoked => "revoked",
        DriftStatus::Kept => "kept",
    };
    match &d.resolved_by {
        Some(by) => format!("{decision} by {}", clip(by, 24)),
        None => decision.into(),
    }
}
