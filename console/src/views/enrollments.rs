//! Enrollments: pending requests to join the fleet.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use super::{block, kv, table};
use crate::app::{App, View};
use crate::text::{ago, clip, utc};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let rows_data = app.visible_enrollments();
    let [list, detail] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(if app.detail_open { 12 } else { 0 }),
    ])
    .areas(area);
    let rows: Vec<Row> = rows_data
        .iter()
        .map(|e| {
            Row::new(vec![
                Cell::from(clip(&e.name, 32)),
                Cell::from(clip(&e.remote_addr, 24)),
                Cell::from(clip(&e.key_fingerprint, 16)),
                Cell::from(clip(&e.attestation_summary, 60)),
                Cell::from(clip(&e.token_label, 20)),
                Cell::from(ago(app.now_ms, e.requested_at_ms)),
            ])
        })
        .collect();
    let empty = if app.is_loaded("enrollments") {
        "No pending enrollments."
    } else {
        "Loading…"
    };
    table(
        f,
        list,
        "Pending enrollments — a approve, d deny",
        &["NAME", "FROM", "KEY", "ATTESTATION", "TOKEN", "AGE"],
        &[
            Constraint::Min(10),
            Constraint::Length(22),
            Constraint::Length(17),
            Constraint::Min(20),
            Constraint::Length(12),
            Constraint::Length(9),
        ],
        rows,
        Some(app.selected_in(View::Enrollments)),
        empty,
    );
    if app.detail_open
        && let Some(e) = rows_data.get(app.selection())
    {
        let a = &e.attestation;
        let lines = vec![
            kv("hostname", e.hostname.clone()),
            kv("key sha256", e.key_fingerprint.clone()),
            kv("tls key sha256", e.tls_key_fingerprint.clone()),
            kv("os", a.os_release.clone()),
            kv("kernel / arch", format!("{} / {}", a.kernel, a.arch)),
            kv("binary sha256", a.binary_sha256.to_hex()),
            kv("machine id", a.machine_id.clone()),
            kv(
                "packs",
                a.packs
                    .iter()
                    .map(|p| format!("{} {}", p.name, p.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            kv("requested", utc(e.requested_at_ms)),
            kv("token", format!("{} ({})", e.token_label, e.token_id)),
        ];
        f.render_widget(
            Paragraph::new(lines)
                .block(block(&format!("Request from {}", clip(&e.name, 40))))
                .wrap(Wrap { trim: false }),
            detail,
        );
    }
}
