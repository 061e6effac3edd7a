//! Drawing the whole screen from the [`App`]: tabs (with what needs
//! attention and a stale marker), the hub banner, the current screen, the
//! status bar and key hints (generated from the key map), and whatever
//! overlay is open. A pure function of the state; nothing here can panic
//! on a small terminal.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, PALETTE_SUGGESTIONS};
use crate::keymap;
use crate::modal::{self, Modal, overlay};
use crate::screens::{self, View};
use crate::text::{ago, clip, fit};

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let t = &app.theme;
    if area.width < 20 || area.height < 6 {
        f.render_widget(
            Paragraph::new(fit(
                "terminal too small for sonde-console",
                area.width as usize,
            )),
            area,
        );
        return;
    }
    let banner_h = if app.data.hub_error.is_some() { 2 } else { 0 };
    let hints_h = if area.height >= 15 { 1 } else { 0 };
    let [tabs, banner, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(hints_h),
    ])
    .areas(area);
    draw_tabs(f, tabs, app);
    if let Some(e) = &app.data.hub_error {
        let age = app
            .data
            .last_ok_ms
            .map(|l| format!(" — showing data from {}", ago(app.now_ms, l)))
            .unwrap_or_default();
        f.render_widget(
            Paragraph::new(vec![
                Line::styled(
                    fit(
                        &format!(
                            " HUB NOT REACHABLE at {} — retrying every 2 s{age}",
                            app.data.socket
                        ),
                        banner.width as usize,
                    ),
                    t.alarm(),
                ),
                Line::styled(fit(&format!(" {e}"), banner.width as usize), t.bad()),
            ]),
            banner,
        );
    }
    let ctx = app.ctx();
    app.screen().view(f, body, &ctx);
    draw_status(f, status, app);
    if hints_h > 0 {
        draw_hints(f, hints, app);
    }
    if let Some(m) = &app.modal {
        draw_modal(f, body, app, m);
    }
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let narrow = area.width < 120;
    let mut spans = Vec::new();
    if !narrow {
        spans.push(Span::styled(" sonde ", t.header()));
    }
    let s = app.data.status.as_ref();
    let counts: Vec<(String, ratatui::style::Style)> = View::ALL
        .iter()
        .map(|v| match (v, s) {
            (View::Fleet, Some(s)) if s.agents_total > s.agents_online => (
                format!(" ({} off)", s.agents_total - s.agents_online),
                t.bad(),
            ),
            (View::Enrollments, Some(s)) if s.pending_enrollments > 0 => {
                (format!(" ({})", s.pending_enrollments), t.warn())
            }
            (View::OAuth, Some(s)) if s.pending_oauth > 0 => {
                (format!(" ({})", s.pending_oauth), t.warn())
            }
            (View::Permissions, Some(s)) if s.pending_permissions > 0 => {
                (format!(" ({})", s.pending_permissions), t.warn())
            }
            (View::Attestation, Some(s)) if s.quarantined.max(s.open_drift) > 0 => {
                (format!(" ({})", s.quarantined.max(s.open_drift)), t.warn())
            }
            _ => (String::new(), t.text()),
        })
        .collect();
    // Full titles where they fit: the right-most tabs take their short
    // title first when the line (with the stale marker) would overflow.
    let width_of = |v: &View, short: bool| {
        let title = if short { v.short() } else { v.title() };
        title.chars().count() + 5
    };
    let marker = if app.data.stale_for(app.now_ms).is_some() {
        26
    } else {
        0
    };
    let mut short: Vec<bool> = vec![narrow; View::ALL.len()];
    let total = |short: &[bool]| -> usize {
        7 + marker
            + View::ALL
                .iter()
                .zip(short)
                .zip(&counts)
                .map(|((v, sh), (c, _))| width_of(v, *sh) + c.chars().count())
                .sum::<usize>()
    };
    for i in (0..View::ALL.len()).rev() {
        if total(&short) <= area.width as usize {
            break;
        }
        short[i] = true;
    }
    for (i, v) in View::ALL.iter().enumerate() {
        let (count, style) = counts[i].clone();
        let current = *v == app.view;
        let base = if current {
            t.selected().add_modifier(ratatui::style::Modifier::BOLD)
        } else {
            t.text()
        };
        // The count keeps its colour on the current tab too.
        let count_style = if current {
            style.patch(t.selected())
        } else {
            style
        };
        if area.width < 100 {
            // Compact (`1 Fleet 1off│2 Enroll 1│…`): 80 columns hold every tab.
            let count: String = count
                .chars()
                .filter(|c| !matches!(c, '(' | ')' | ' '))
                .collect();
            spans.push(Span::styled(format!("{} {}", i + 1, v.short()), base));
            if !count.is_empty() {
                spans.push(Span::styled(format!(" {count}"), count_style));
            }
        } else {
            let title = if short[i] { v.short() } else { v.title() };
            spans.push(Span::styled(format!(" {} {title}", i + 1), base));
            spans.push(Span::styled(count, count_style));
            spans.push(Span::styled(" ", base));
        }
        spans.push(Span::styled("│", t.dim()));
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    if let Some(age) = app.data.stale_for(app.now_ms) {
        let marker = format!(
            " STALE: data {} old ",
            crate::text::duration_ms(age.max(0) as u64)
        );
        let pad = (area.width as usize).saturating_sub(used + marker.chars().count());
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(marker, t.alarm()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let mut spans = Vec::new();
    // Narrow: only what is not zero, so the message has room.
    let narrow = area.width < 120;
    let mut count = |label: &str, n: u64, loud: ratatui::style::Style| {
        if n > 0 || !narrow {
            let style = if n > 0 { loud } else { t.dim() };
            spans.push(Span::styled(format!("{label} {n}  "), style));
        }
    };
    match &app.data.status {
        Some(s) => {
            count("enrollments", s.pending_enrollments, t.warn());
            count("permissions", s.pending_permissions, t.warn());
            count("quarantined", s.quarantined, t.warn());
            count(
                "offline",
                s.agents_total.saturating_sub(s.agents_online),
                t.bad(),
            );
            spans.push(Span::raw(format!(
                "agents {}/{} online  ",
                s.agents_online, s.agents_total
            )));
        }
        None => spans.push(Span::styled("connecting…  ", t.dim())),
    }
    if app.busy() {
        spans.push(Span::styled(
            format!("{} ", screens::spinner(app.frame)),
            t.key(),
        ));
    }
    if let Some(m) = &app.message {
        let used: usize = spans.iter().map(|s| s.width()).sum();
        let room = (area.width as usize).saturating_sub(used);
        spans.push(Span::styled(
            fit(&m.text, room),
            if m.error { t.bad() } else { t.text() },
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The key hints of the current scope, from the key map, as many as fit.
fn draw_hints(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let mut spans = Vec::new();
    let mut used = 0usize;
    for (key, hint) in keymap::hints(&app.scopes()) {
        let w = key.chars().count() + hint.chars().count() + 3;
        if used + w > area.width as usize {
            break;
        }
        used += w;
        spans.push(Span::styled(key, t.key()));
        spans.push(Span::styled(format!(" {hint}  "), t.dim()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_modal(f: &mut Frame, area: Rect, app: &App, m: &Modal) {
    let t = &app.theme;
    match m {
        Modal::Help(scroll) => modal::render_help(f, area, scroll, t),
        Modal::Confirm(c) => modal::render_confirm(f, area, c, t),
        Modal::Prompt(p) => modal::render_prompt(f, area, p, app.view, t),
        Modal::Palette(p) => {
            let known = app.known();
            let suggestions = crate::palette::suggestions(&p.input, &known, PALETTE_SUGGESTIONS);
            let h = (suggestions.len() as u16).saturating_add(5);
            let inner = overlay(
                f,
                area,
                90,
                h,
                "Command — Enter runs, Tab/↓ picks, → completes, Esc closes",
                t,
            );
            let mut lines = vec![Line::from(vec![
                Span::styled(":", t.key()),
                Span::raw(clip(&p.input, 200)),
                Span::styled("_", t.key()),
            ])];
            if let Some(e) = &p.error {
                lines.push(Line::styled(clip(e, 200), t.bad()));
            }
            for (i, s) in suggestions.iter().enumerate() {
                let style = if i == p.selected {
                    t.selected()
                } else {
                    t.text()
                };
                lines.push(Line::from(vec![
                    Span::styled(format!(" {:<30}", clip(&s.text, 60)), style),
                    Span::styled(format!(" {}", s.help), t.dim()),
                ]));
            }
            if suggestions.is_empty() && p.error.is_none() {
                lines.push(Line::styled(
                    "fleet, audit agent:NAME, try AGENT, theme light… (? lists them all)",
                    t.dim(),
                ));
            }
            f.render_widget(Paragraph::new(lines), inner);
        }
        Modal::KeyForm(form) => modal::render_form(f, area, form, true, t),
        Modal::TokenForm(form) => modal::render_form(f, area, form, false, t),
        Modal::OAuthForm { request, form } => modal::render_oauth_form(f, area, request, form, t),
        Modal::Secret(s) => modal::render_secret(f, area, s, t),
        Modal::IntegrationForm(a) => screens::integrations::render_add_form(f, area, a, t),
        Modal::Credential(c) => screens::integrations::render_credential(f, area, c, t),
        Modal::AuditEntry {
            seq,
            detail,
            names,
            scroll,
        } => screens::audit::render_entry(f, area, *seq, detail.as_deref(), names, scroll, t),
        Modal::Verify(v, _) => screens::audit::render_verify(f, area, v.as_ref(), app.frame, t),
    }
}

#[cfg(test)]
#[path = "ui_tests.rs"]
mod tests;
