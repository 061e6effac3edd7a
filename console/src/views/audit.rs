//! Audit: the hub's chain, newest first, one page at a time; entry detail
//! and verification overlays.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};
use sonde_admin::api::{AuditEntryDetail, AuditVerifyReport};
use sonde_protocol::audit::AuditEntry;

use super::{kv, overlay, styles, table};
use crate::app::{App, View, verify_line};
use crate::text::{clean, clip, utc};

fn outcome_span(outcome: &str) -> Span<'static> {
    let style = match outcome {
        "ok" | "success" | "approved" => styles::good(),
        "denied" | "refused" | "error" | "failed" | "rejected" => styles::bad(),
        _ => Default::default(),
    };
    Span::styled(clip(outcome, 12), style)
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let a = &app.audit;
    let [info, list] = Layout::vertical([Constraint::Length(2), Constraint::Min(3)]).areas(area);
    let filter = &app.filters[View::Audit.index()];
    let head = a
        .head
        .as_ref()
        .map(|h| format!("head #{} {}", h.seq, h.hash.short()))
        .unwrap_or_default();
    let more = if a.next_before.is_some() {
        "older: ] or ↓ past the end"
    } else {
        "oldest page"
    };
    let mut lines = vec![Line::from(vec![
        Span::raw(format!("page {}  ", a.page() + 1)),
        Span::styled(head, styles::dim()),
        Span::raw(format!("  {more}  ")),
        Span::styled(
            if filter.is_empty() {
                "no filter (/ to filter)".to_owned()
            } else {
                format!("filter: {}", clip(filter, 80))
            },
            if filter.is_empty() {
                styles::dim()
            } else {
                styles::warn()
            },
        ),
    ])];
    if let Some(v) = &a.last_verify {
        let ok = matches!(v, Ok(r) if r.ok);
        lines.push(Line::styled(
            verify_line(v),
            if ok { styles::good() } else { styles::bad() },
        ));
    } else {
        lines.push(Line::styled("v verifies the chain", styles::dim()));
    }
    f.render_widget(Paragraph::new(lines), info);
    let rows: Vec<Row> = a
        .entries
        .iter()
        .map(|e| {
            Row::new(vec![
                Cell::from(e.seq.to_string()),
                Cell::from(utc(e.timestamp_ms)),
                Cell::from(clip(&e.actor, 30)),
                Cell::from(clip(&e.action, 28)),
                Cell::from(clip(e.agent.as_deref().unwrap_or("-"), 24)),
                Cell::from(clip(e.probe.as_deref().unwrap_or("-"), 28)),
                Cell::from(outcome_span(&e.outcome)),
            ])
        })
        .collect();
    let empty = if app.is_loaded("audit") {
        "No entries match."
    } else {
        "Loading…"
    };
    table(
        f,
        list,
        "Audit (newest first) — Enter detail, v verify",
        &[
            "SEQ",
            "TIME (UTC)",
            "ACTOR",
            "ACTION",
            "AGENT",
            "PROBE",
            "OUTCOME",
        ],
        &[
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Min(12),
            Constraint::Min(14),
            Constraint::Min(8),
            Constraint::Min(8),
            Constraint::Length(10),
        ],
        rows,
        Some(app.selected_in(View::Audit)),
        empty,
    );
}

fn entry_lines(e: &AuditEntry) -> Vec<Line<'static>> {
    let mut lines = vec![
        kv("seq", e.seq.to_string()),
        kv("time", utc(e.timestamp_ms)),
        kv("actor", e.actor.clone()),
        kv("action", e.action.clone()),
        kv("agent", e.agent.clone().unwrap_or_else(|| "-".into())),
        kv("probe", e.probe.clone().unwrap_or_else(|| "-".into())),
        kv("outcome", e.outcome.clone()),
        kv(
            "params digest",
            e.params_digest
                .map(|d| d.to_hex())
                .unwrap_or_else(|| "-".into()),
        ),
        kv(
            "result digest",
            e.result_digest
                .map(|d| d.to_hex())
                .unwrap_or_else(|| "-".into()),
        ),
        kv("prev hash", e.prev_hash.to_hex()),
        kv("hash", e.hash.to_hex()),
    ];
    match e.detail.get("agent_audit_head") {
        Some(h) => lines.push(Line::from(vec![
            Span::styled(format!("{:<18}", "agent chain head"), styles::warn()),
            Span::raw(format!(
                "#{} {}",
                h.get("seq").map(|s| s.to_string()).unwrap_or_default(),
                clip(h.get("hash").and_then(|v| v.as_str()).unwrap_or("?"), 64)
            )),
        ])),
        None => lines.push(kv("agent chain head", "- (not a probe answer)")),
    }
    lines.push(Line::styled("detail", styles::header()));
    for (k, v) in &e.detail {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        lines.push(kv(&format!("  {}", clip(k, 16)), clean(&text)));
    }
    lines
}

pub fn render_entry(
    f: &mut Frame,
    area: Rect,
    seq: u64,
    detail: Option<&AuditEntryDetail>,
    scroll: u16,
) {
    let inner = overlay(
        f,
        area,
        120,
        30,
        &format!("Audit entry #{seq} — Esc closes"),
    );
    let lines = match detail {
        None => vec![Line::styled("loading…", styles::dim())],
        Some(d) => {
            let mut l = entry_lines(&d.entry);
            l.push(Line::raw(""));
            l.push(match &d.checkpoint {
                Some(c) => kv(
                    "checkpoint",
                    format!(
                        "#{} signed {} {}",
                        c.seq,
                        utc(c.timestamp_ms),
                        c.hash.short()
                    ),
                ),
                None => kv("checkpoint", "none yet after this entry"),
            });
            l
        }
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        inner,
    );
}

pub fn render_verify(
    f: &mut Frame,
    area: Rect,
    v: Option<&Result<AuditVerifyReport, String>>,
    frame: u64,
) {
    let inner = overlay(f, area, 100, 12, "Verify the audit chain — Esc closes");
    let lines = match v {
        None => vec![Line::raw(format!(
            "{} verifying every entry and checkpoint…",
            super::spinner(frame)
        ))],
        Some(r) => {
            let ok = matches!(r, Ok(rep) if rep.ok);
            let mut l = vec![Line::styled(
                verify_line(r),
                if ok { styles::good() } else { styles::bad() },
            )];
            if let Ok(rep) = r {
                if let Some(h) = &rep.head {
                    l.push(kv("head", format!("#{} {}", h.seq, h.hash.to_hex())));
                }
                if let Some(c) = &rep.last_checkpoint {
                    l.push(kv(
                        "last checkpoint",
                        format!("#{} {} {}", c.seq, utc(c.timestamp_ms), c.hash.to_hex()),
                    ));
                }
                if let Some(b) = &rep.broken {
                    l.push(kv("first broken", format!("#{}", b.seq)));
                    l.push(kv("kind", b.kind.clone()));
                    l.push(kv("why", b.message.clone()));
                }
            }
            l
        }
    };
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
