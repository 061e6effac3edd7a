//! Try it: pick an online agent, one of its probes, fill the parameters
//! (validated as you type) and run it through the hub.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use super::{block, kv, styles, table};
use crate::app::{App, TryFocus, View};
use crate::form::Form;
use crate::text::{clean, clip};

/// A form as lines: label, input (with a cursor on the focused field when
/// `editing`), type hint, and the validation message.
pub fn form_lines(form: &Form, editing: bool) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if form.is_empty() {
        lines.push(Line::styled(
            "This probe takes no parameters.",
            styles::dim(),
        ));
    }
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let marker = if focused && editing { "▶ " } else { "  " };
        let required = if field.spec.required { "*" } else { "" };
        let mut spans = vec![
            Span::styled(
                format!("{marker}{}{required}", field.spec.name),
                if focused {
                    styles::key()
                } else {
                    Default::default()
                },
            ),
            Span::raw(": "),
        ];
        if field.input.is_empty() {
            let placeholder = match &field.spec.default {
                Some(d) => format!("(default {d})"),
                None => String::new(),
            };
            spans.push(Span::styled(clip(&placeholder, 60), styles::dim()));
        } else {
            // Show the end of long input, where the typing happens.
            let n = field.input.chars().count();
            let tail: String = field.input.chars().skip(n.saturating_sub(80)).collect();
            spans.push(Span::raw(clean(&tail)));
        }
        if focused && editing {
            spans.push(Span::styled("_", styles::key()));
        }
        lines.push(Line::from(spans));
        let mut hint = vec![Span::styled(
            format!("    {}", field.kind_hint()),
            styles::dim(),
        )];
        if !field.spec.description.is_empty() {
            hint.push(Span::styled(
                format!(" — {}", clip(&field.spec.description, 100)),
                styles::dim(),
            ));
        }
        lines.push(Line::from(hint));
        if let Some(e) = &field.error {
            lines.push(Line::styled(
                format!("    ✗ {}", clip(e, 200)),
                styles::bad(),
            ));
        }
    }
    lines
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
    let [agents_area, probes_area] =
        Layout::vertical([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(left);
    let t = &app.tryit;
    let agents = app.tryit_agents();
    let rows: Vec<Row> = agents
        .iter()
        .map(|a| {
            let mark = if t.agent.as_ref() == Some(&a.name) {
                "●"
            } else {
                " "
            };
            Row::new(vec![
                Cell::from(format!("{mark} {}", clip(&a.name, 30))),
                Cell::from(clip(&a.os, 30)),
            ])
        })
        .collect();
    table(
        f,
        agents_area,
        &format!(
            "{}Online agents — Enter picks",
            if t.focus == TryFocus::Agents {
                "▶ "
            } else {
                ""
            }
        ),
        &["AGENT", "OS"],
        &[Constraint::Min(10), Constraint::Min(10)],
        rows,
        (t.focus == TryFocus::Agents).then(|| app.selected_in(View::TryIt)),
        if app.is_loaded("agents") {
            "No agent is online."
        } else {
            "Loading…"
        },
    );
    let probes = app.tryit_probes();
    let rows: Vec<Row> = probes
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(clip(&p.name, 30)),
                Cell::from(clip(&p.description, 80)),
            ])
        })
        .collect();
    let empty = match &t.agent {
        None => "Pick an agent first.",
        Some(name)
            if app
                .agent_detail
                .as_ref()
                .is_some_and(|d| &d.summary.name == name) =>
        {
            "No runnable probes (no active pack)."
        }
        Some(_) => "Loading probes…",
    };
    table(
        f,
        probes_area,
        &format!(
            "{}Probes (active packs) — Enter fills",
            if t.focus == TryFocus::Probes {
                "▶ "
            } else {
                ""
            }
        ),
        &["PROBE", "DESCRIPTION"],
        &[Constraint::Length(24), Constraint::Min(10)],
        rows,
        (t.focus != TryFocus::Agents).then_some(t.probe_sel),
        empty,
    );
    let [form_area, result_area] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(right);
    let mut lines = Vec::new();
    match (&t.probe, &t.form) {
        (Some(p), Some(form)) => {
            lines.push(Line::raw(clip(&p.description, 300)));
            lines.push(Line::styled(
                format!(
                    "capability {} · timeout {} ms · returns: {}",
                    p.capability,
                    p.timeout_ms,
                    clip(&p.output, 120)
                ),
                styles::dim(),
            ));
            lines.push(Line::raw(""));
            lines.extend(form_lines(form, t.focus == TryFocus::Form));
            lines.push(Line::raw(""));
            lines.push(match form.values() {
                Ok(_) if t.running => Line::styled("running…", styles::warn()),
                Ok(_) => Line::styled(
                    "Enter runs it through the hub (audited as you).",
                    styles::good(),
                ),
                Err(e) => Line::styled(format!("cannot run yet: {}", clip(&e, 200)), styles::bad()),
            });
        }
        _ => lines.push(Line::styled(
            "Pick a probe to fill its parameters.",
            styles::dim(),
        )),
    }
    let title = match &t.probe {
        Some(p) => format!(
            "{}{}",
            if t.focus == TryFocus::Form {
                "▶ "
            } else {
                ""
            },
            clip(&p.name, 60)
        ),
        None => "Parameters".into(),
    };
    f.render_widget(
        Paragraph::new(lines)
            .block(block(&title))
            .wrap(Wrap { trim: false }),
        form_area,
    );

    let mut lines = Vec::new();
    match &t.result {
        None if t.running => lines.push(Line::styled(
            format!("{} waiting for the agent…", super::spinner(app.frame)),
            styles::warn(),
        )),
        None => lines.push(Line::styled("No result yet.", styles::dim())),
        Some(Err(e)) => lines.push(Line::styled(clip(e, 1000), styles::bad())),
        Some(Ok(r)) => {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<18}", "outcome"), styles::dim()),
                if r.ok {
                    Span::styled("ok", styles::good())
                } else {
                    Span::styled("failed", styles::bad())
                },
            ]));
            lines.push(kv("duration", format!("{} ms", r.duration_ms)));
            lines.push(kv("truncated", if r.truncated { "yes" } else { "no" }));
            let redactions: u64 = r.redactions.values().sum();
            let by_rule = r
                .redactions
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(kv(
                "redactions",
                if redactions == 0 {
                    "0".into()
                } else {
                    format!("{redactions} ({by_rule})")
                },
            ));
            lines.push(kv("audit entry", format!("#{}", r.audit_seq)));
            if let Some(code) = &r.error_code {
                lines.push(kv(
                    "error",
                    format!("{code}: {}", r.error.as_deref().unwrap_or("")),
                ));
            }
            if let Some(data) = &r.data {
                lines.push(Line::styled("data", styles::header()));
                let pretty = serde_json::to_string_pretty(data).unwrap_or_default();
                for l in pretty.lines().take(500) {
                    lines.push(Line::raw(clip(l, 400)));
                }
            }
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(block("Result"))
            .wrap(Wrap { trim: false })
            .scroll((t.result_scroll, 0)),
        result_area,
    );
}
