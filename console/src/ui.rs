//! Drawing the whole screen from the [`App`]: tabs, the hub banner, the
//! current view, the status bar, and whatever overlay is open.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Modal, View};
use crate::text::clip;
use crate::views::{self, overlay, styles};

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < 20 || area.height < 6 {
        f.render_widget(Paragraph::new("terminal too small"), area);
        return;
    }
    let banner_h = if app.hub_error.is_some() { 2 } else { 0 };
    let [tabs, banner, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(f, tabs, app);
    if let Some(e) = &app.hub_error {
        f.render_widget(
            Paragraph::new(vec![
                Line::styled(
                    format!(
                        " HUB NOT REACHABLE at {} — retrying every 2 s",
                        clip(&app.socket, 100)
                    ),
                    Style::default()
                        .fg(Color::White)
                        .bg(Color::Red)
                        .add_modifier(Modifier::BOLD),
                ),
                Line::styled(format!(" {}", clip(e, 300)), styles::bad()),
            ]),
            banner,
        );
    }
    match app.view {
        View::Fleet => views::fleet::render(f, body, app),
        View::Enrollments => views::enrollments::render(f, body, app),
        View::Permissions => views::permissions::render(f, body, app),
        View::Attestation => views::attestation::render(f, body, app),
        View::Audit => views::audit::render(f, body, app),
        View::Keys => views::keys::render(f, body, app),
        View::TryIt => views::tryit::render(f, body, app),
    }
    draw_status(f, status, app);
    if let Some(modal) = &app.modal {
        draw_modal(f, body, app, modal);
    }
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let narrow = area.width < 120;
    let mut spans = Vec::new();
    if !narrow {
        spans.push(Span::styled(
            " sonde ",
            Style::default().add_modifier(Modifier::BOLD),
        ));
    }
    let s = app.status.as_ref();
    for (i, v) in View::ALL.iter().enumerate() {
        let count = match (v, s) {
            (View::Enrollments, Some(s)) if s.pending_enrollments > 0 => {
                format!(" ({})", s.pending_enrollments)
            }
            (View::Permissions, Some(s)) if s.pending_permissions > 0 => {
                format!(" ({})", s.pending_permissions)
            }
            (View::Attestation, Some(s)) if s.open_drift > 0 => format!(" ({})", s.open_drift),
            _ => String::new(),
        };
        let title = if narrow { v.short() } else { v.title() };
        let text = format!(" {} {title}{count} ", i + 1);
        let style = if *v == app.view {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else if !count.is_empty() {
            styles::warn()
        } else {
            Style::default()
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw("│"));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![Span::styled("? help  ", styles::key())];
    let count = |label: &str, n: u64| {
        let style = if n > 0 { styles::warn() } else { styles::dim() };
        Span::styled(format!("{label} {n}  "), style)
    };
    match &app.status {
        Some(s) => {
            spans.push(count("enrollments", s.pending_enrollments));
            spans.push(count("permissions", s.pending_permissions));
            spans.push(count("quarantined", s.quarantined));
            spans.push(Span::raw(format!(
                "agents {}/{} online  ",
                s.agents_online, s.agents_total
            )));
        }
        None => spans.push(Span::styled("connecting…  ", styles::dim())),
    }
    if app.busy() {
        spans.push(Span::styled(
            format!("{} ", views::spinner(app.frame)),
            styles::key(),
        ));
    }
    if let Some(m) = &app.message {
        spans.push(Span::styled(
            clip(&m.text, 200),
            if m.error {
                styles::bad()
            } else {
                Style::default()
            },
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_modal(f: &mut Frame, area: Rect, app: &App, modal: &Modal) {
    match modal {
        Modal::Help => views::help::render(f, area, app.modal_scroll),
        Modal::Confirm { prompt, .. } => {
            let inner = overlay(f, area, 80, 7, "Confirm");
            f.render_widget(
                Paragraph::new(vec![
                    Line::raw(clip(prompt, 300)),
                    Line::raw(""),
                    Line::from(vec![
                        Span::styled("y", styles::key()),
                        Span::raw(" yes   "),
                        Span::styled("any other key", styles::key()),
                        Span::raw(" no"),
                    ]),
                ])
                .wrap(Wrap { trim: false }),
                inner,
            );
        }
        Modal::Filter { input } => {
            let hint = if app.view == View::Audit {
                "agent:NAME actor:KEY probe:NAME outcome:ok action:ACTION since:1h until:10m"
            } else {
                "text to look for (case-insensitive); empty shows everything"
            };
            let inner = overlay(
                f,
                area,
                90,
                6,
                &format!("Filter {} — Enter applies, Esc cancels", app.view.title()),
            );
            f.render_widget(
                Paragraph::new(vec![
                    Line::from(vec![
                        Span::raw(format!("/{}", clip(input, 200))),
                        Span::styled("_", styles::key()),
                    ]),
                    Line::styled(hint, styles::dim()),
                ]),
                inner,
            );
        }
        Modal::Tags { agent, input } => {
            let inner = overlay(
                f,
                area,
                80,
                6,
                &format!("Tags of {} — Enter saves, Esc cancels", clip(agent, 40)),
            );
            f.render_widget(
                Paragraph::new(vec![
                    Line::from(vec![
                        Span::raw(clip(input, 200)),
                        Span::styled("_", styles::key()),
                    ]),
                    Line::styled("comma- or space-separated", styles::dim()),
                ]),
                inner,
            );
        }
        Modal::KeyForm(form) | Modal::TokenForm(form) => {
            let title = if matches!(modal, Modal::KeyForm(_)) {
                "Create an API key — Enter creates, Esc cancels"
            } else {
                "Create an enrollment token — Enter creates, Esc cancels"
            };
            let inner = overlay(f, area, 100, 24, title);
            let mut lines = views::tryit::form_lines(form, true);
            lines.push(Line::raw(""));
            lines.push(match form.values() {
                Ok(_) => Line::styled("ready: Enter creates it", styles::good()),
                Err(e) => Line::styled(format!("not yet: {}", clip(&e, 200)), styles::bad()),
            });
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        }
        Modal::Secret { title, lines } => {
            let inner = overlay(
                f,
                area,
                area.width.saturating_sub(4),
                14,
                &format!("{title} — Esc closes"),
            );
            let text: Vec<Line> = lines.iter().map(|l| Line::raw(clip(l, 1000))).collect();
            f.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
        }
        Modal::AuditEntry { seq, detail } => {
            views::audit::render_entry(f, area, *seq, detail.as_deref(), app.modal_scroll)
        }
        Modal::Verify(v) => views::audit::render_verify(f, area, v.as_ref(), app.frame),
    }
}
