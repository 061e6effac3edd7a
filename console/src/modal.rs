//! Overlays drawn over a screen that take the keys while open: help, a
//! confirmation, a prompt, the command palette, the create forms, a secret
//! shown once, an audit entry and a chain verification; and the
//! integration form and masked credential input (their state and drawing
//! live with the Integrations screen).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use sonde_admin::api::{AuditEntryDetail, AuditVerifyReport};
use std::collections::BTreeMap;

use crate::form::Form;
use crate::keymap::{self, Scope};
use crate::list::Scroll;
use crate::palette::Palette;
use crate::screens::View;
use crate::table;
use crate::text::{clip, fit, wrap_chars};
use crate::theme::Theme;
use crate::worker::Request;

/// How a line of a confirmation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Normal,
    Dim,
    Warn,
    Bad,
}

impl Tone {
    pub fn style(self, t: &Theme) -> Style {
        match self {
            Tone::Normal => t.text(),
            Tone::Dim => t.dim(),
            Tone::Warn => t.warn(),
            Tone::Bad => t.bad(),
        }
    }
}

/// `y` sends the request; any other key cancels.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub title: String,
    /// What the action does, grants or needs.
    pub lines: Vec<(String, Tone)>,
    pub request: Request,
}

/// What a prompt's text is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptFor {
    Filter(View),
    Tags {
        agent: String,
    },
    /// Where to save a probe result.
    SavePath,
    /// Search within a probe result.
    Search,
}

/// A one-line text prompt. A refused value keeps the prompt open with the
/// text and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub purpose: PromptFor,
    pub input: String,
    pub error: Option<String>,
}

/// Longest text a prompt takes.
pub const MAX_PROMPT: usize = 512;

impl Prompt {
    pub fn new(purpose: PromptFor, input: impl Into<String>) -> Prompt {
        Prompt {
            purpose,
            input: input.into(),
            error: None,
        }
    }

    /// Edits the text; `true` when the key was an edit.
    pub fn edit(&mut self, key: &crossterm::event::KeyEvent) -> bool {
        edit_line(&mut self.input, key, MAX_PROMPT)
    }
}

/// Backspace, Ctrl-U and printable characters on a line of text.
pub fn edit_line(input: &mut String, key: &crossterm::event::KeyEvent, max: usize) -> bool {
    use crossterm::event::{KeyCode, KeyModifiers};
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Backspace => {
            input.pop();
        }
        KeyCode::Char('u') if ctrl => input.clear(),
        KeyCode::Char(c) if !ctrl && !c.is_control() => {
            if input.chars().count() < max {
                input.push(c);
            }
        }
        _ => return false,
    }
    true
}

/// One copyable line of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretItem {
    pub label: String,
    pub value: String,
}

/// A secret shown once, with its ready-to-paste lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub title: String,
    pub items: Vec<SecretItem>,
    pub selected: usize,
    pub notes: Vec<String>,
}

/// Something drawn over the current screen that takes the keys.
#[derive(Debug, Clone)]
pub enum Modal {
    Help(Scroll),
    Confirm(Confirm),
    Prompt(Prompt),
    Palette(Palette),
    KeyForm(Form),
    TokenForm(Form),
    /// The policy for an OAuth client the operator is approving.
    OAuthForm {
        request: Box<sonde_admin::api::OAuthRequestInfo>,
        form: Form,
    },
    Secret(Secret),
    /// Adding an integration (stays open until the hub answers).
    IntegrationForm(crate::screens::integrations::AddForm),
    /// Typing an integration's credential (masked).
    Credential(crate::screens::integrations::CredentialInput),
    AuditEntry {
        seq: u64,
        detail: Option<Box<AuditEntryDetail>>,
        /// Agent names by id (from the page the entry came from).
        names: BTreeMap<String, String>,
        scroll: Scroll,
    },
    /// `None` while the hub is verifying.
    Verify(Option<Result<AuditVerifyReport, String>>, Scroll),
}

impl Modal {
    /// The key-map scope while this is open.
    pub fn scope(&self) -> Scope {
        match self {
            Modal::Help(_) | Modal::AuditEntry { .. } | Modal::Verify(..) => Scope::Reader,
            Modal::Confirm(_) => Scope::Confirm,
            Modal::Prompt(_) => Scope::Prompt,
            Modal::Palette(_) => Scope::Palette,
            Modal::KeyForm(_)
            | Modal::TokenForm(_)
            | Modal::OAuthForm { .. }
            | Modal::IntegrationForm(_) => Scope::Editor,
            Modal::Credential(_) => Scope::SecretInput,
            Modal::Secret(_) => Scope::Secret,
        }
    }

    /// The scroll of a reading overlay.
    pub fn scroll_mut(&mut self) -> Option<&mut Scroll> {
        match self {
            Modal::Help(s) | Modal::AuditEntry { scroll: s, .. } | Modal::Verify(_, s) => Some(s),
            _ => None,
        }
    }
}

/// Clears a centred box of at most `w`×`h` and returns its inner area.
pub fn overlay(f: &mut Frame, area: Rect, w: u16, h: u16, title: &str, theme: &Theme) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, rect);
    let b = table::block(title, rect, theme.key());
    let inner = b.inner(rect);
    f.render_widget(b, rect);
    inner
}

/// The help overlay: every key, from the key map, and the palette's commands.
pub fn render_help(f: &mut Frame, area: Rect, scroll: &Scroll, theme: &Theme) {
    let width = area.width.min(150).saturating_sub(2) as usize;
    // Two columns: the keys, and the help wrapped beside them.
    let row = |lines: &mut Vec<Line<'static>>, keys: &str, help: &str| {
        let text = crate::text::wrap_words(help, width.saturating_sub(24).max(10));
        for (i, part) in text.into_iter().enumerate() {
            let left = if i == 0 {
                format!("  {keys:<22}")
            } else {
                " ".repeat(24)
            };
            lines.push(Line::from(vec![
                Span::styled(left, theme.key()),
                Span::raw(part),
            ]));
        }
    };
    let mut lines = Vec::new();
    for (group, rows) in keymap::help_groups() {
        lines.push(Line::styled(group, theme.header()));
        for (keys, help) in rows {
            row(&mut lines, &keys, help);
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled("Palette commands (:)", theme.header()));
    for (cmd, help) in crate::palette::COMMANDS {
        row(&mut lines, cmd, help);
    }
    let inner = overlay(
        f,
        area,
        area.width.min(150),
        area.height,
        "Help: every key — Esc closes, j/k scroll",
        theme,
    );
    let rows = crate::screens::fleet::wrapped_rows(&lines, inner.width);
    let offset = scroll.fit(rows, inner.height);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((offset, 0)),
        inner,
    );
}

pub fn render_confirm(f: &mut Frame, area: Rect, c: &Confirm, theme: &Theme) {
    let mut lines = vec![Line::styled(clip(&c.title, 300), theme.header())];
    for (text, tone) in &c.lines {
        lines.push(Line::styled(clip(text, 600), tone.style(theme)));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("y", theme.key()),
        Span::raw(" yes   "),
        Span::styled("any other key", theme.key()),
        Span::raw(" no"),
    ]));
    // As tall as the wrapped text needs (and the screen allows).
    let w = area.width.min(100);
    let rows = crate::screens::fleet::wrapped_rows(&lines, w.saturating_sub(2));
    // Word wrapping leaves ragged ends: a little room beyond the estimate.
    let h = (rows.min(200) as u16).saturating_add(4);
    let inner = overlay(f, area, w, h, "Confirm", theme);
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

pub fn render_prompt(f: &mut Frame, area: Rect, p: &Prompt, view: View, theme: &Theme) {
    let (title, hint) = match &p.purpose {
        PromptFor::Filter(View::Audit) => (
            "Filter the audit — Enter applies, Esc cancels".to_owned(),
            "agent:NAME-or-id actor:KEY probe:NAME outcome:denied action:pack.* since:2h until:2024-05-01",
        ),
        PromptFor::Filter(v) => (
            format!("Filter {} — Enter applies, Esc cancels", v.title()),
            "words to look for (all must match, any case); empty shows everything",
        ),
        PromptFor::Tags { agent } => (
            format!("Tags of {} — Enter saves, Esc cancels", clip(agent, 40)),
            "comma- or space-separated",
        ),
        PromptFor::SavePath => (
            "Save the result to a file — Enter saves, Esc cancels".to_owned(),
            "a new file (an existing one is never replaced)",
        ),
        PromptFor::Search => (
            "Search the result — Enter finds, n/N next/previous".to_owned(),
            "text to find (any case)",
        ),
    };
    let _ = view;
    let inner = overlay(f, area, 100, 7, &title, theme);
    let room = inner.width.saturating_sub(2) as usize;
    // The end of long input, where the typing happens.
    let shown: String = {
        let n = p.input.chars().count();
        p.input
            .chars()
            .skip(n.saturating_sub(room.max(1)))
            .collect()
    };
    let mut lines = vec![
        Line::from(vec![
            Span::raw(crate::text::clean(&shown)),
            Span::styled("_", theme.key()),
        ]),
        Line::styled(fit(hint, inner.width as usize), theme.dim()),
    ];
    if let Some(e) = &p.error {
        lines.push(Line::styled(clip(e, 300), theme.bad()));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

pub fn render_form(f: &mut Frame, area: Rect, form: &Form, key: bool, theme: &Theme) {
    let title = if key {
        "Create an API key — Enter creates, Esc cancels"
    } else {
        "Create an enrollment token — Enter creates, Esc cancels"
    };
    let inner = overlay(f, area, 100, 24, title, theme);
    let mut lines = crate::screens::tryit::form_lines(form, true, theme);
    lines.push(Line::raw(""));
    lines.push(match form.values() {
        Ok(_) => Line::styled("ready: Enter creates it", theme.good()),
        Err(e) => Line::styled(format!("not yet: {}", clip(&e, 200)), theme.bad()),
    });
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// The policy form for approving an OAuth client, under what it is.
pub fn render_oauth_form(
    f: &mut Frame,
    area: Rect,
    r: &sonde_admin::api::OAuthRequestInfo,
    form: &Form,
    theme: &Theme,
) {
    let inner = overlay(
        f,
        area,
        100,
        26,
        "Approve an MCP client — Enter reviews, Esc cancels",
        theme,
    );
    let mut lines = vec![
        Line::raw(format!(
            "{} · code {} · sent back to {}",
            clip(&crate::text::clean(&r.client_name), 60),
            crate::text::clean(&r.user_code),
            clip(&crate::text::clean(&r.redirect_host), 60)
        )),
        Line::styled(
            "Check that the code is the one the browser page shows. What may it use?",
            theme.warn(),
        ),
        Line::raw(""),
    ];
    lines.extend(crate::screens::tryit::form_lines(form, true, theme));
    lines.push(Line::raw(""));
    lines.push(match form.values() {
        Ok(_) => Line::styled("ready: Enter shows what it grants", theme.good()),
        Err(e) => Line::styled(format!("not yet: {}", clip(&e, 200)), theme.bad()),
    });
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// The secret, each line whole: wrapped at any character (never at spaces,
/// so a command does not turn into several lines that each look whole),
/// the selected one marked; `y` copies it exactly.
pub fn render_secret(f: &mut Frame, area: Rect, s: &Secret, theme: &Theme) {
    let inner = overlay(
        f,
        area,
        area.width,
        area.height,
        &format!("{} — y copy, p plain, Esc close", s.title),
        theme,
    );
    let room = inner.width.saturating_sub(2) as usize;
    let mut lines = Vec::new();
    for (i, item) in s.items.iter().enumerate() {
        let selected = i == s.selected;
        lines.push(Line::from(vec![
            Span::styled(if selected { "▶ " } else { "  " }, theme.key()),
            Span::styled(
                clip(&item.label, 200),
                if selected {
                    theme.header()
                } else {
                    theme.dim()
                },
            ),
        ]));
        for row in wrap_chars(&item.value, room) {
            lines.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(row, if selected { theme.key() } else { theme.text() }),
            ]));
        }
        lines.push(Line::raw(""));
    }
    for n in &s.notes {
        lines.push(Line::styled(clip(n, 400), theme.dim()));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
