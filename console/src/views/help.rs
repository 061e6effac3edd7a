//! The `?` overlay: every key.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{overlay, styles};

/// (keys, what they do) — the whole key map, grouped by screen.
pub const KEYS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("Tab / Shift-Tab", "next / previous screen"),
            (
                "1 … 7",
                "Fleet, Enrollments, Permissions, Attestation, Audit, Keys & tokens, Try it",
            ),
            ("↑ ↓  j k", "move"),
            ("PgUp PgDn", "move 20 rows"),
            (
                "g / Home, G / End",
                "first / last row (g on Audit: back to newest)",
            ),
            ("mouse wheel", "scroll"),
            ("Enter", "open / close the detail"),
            (
                "/",
                "filter this screen (Enter applies, Esc cancels, empty clears)",
            ),
            (
                "Esc",
                "close the detail, clear the filter, dismiss the message",
            ),
            ("r", "refresh now (data also refreshes every 2 s)"),
            ("?  F1", "this help (Esc closes, j/k scroll)"),
            ("q  Ctrl-C", "quit"),
            ("y", "confirm a destructive action (any other key cancels)"),
        ],
    ),
    (
        "Fleet",
        &[("x", "revoke the agent (confirm)"), ("t", "edit its tags")],
    ),
    (
        "Enrollments",
        &[("a", "approve the request"), ("d", "deny it (confirm)")],
    ),
    (
        "Permissions",
        &[
            ("a", "approve the pack grant"),
            ("d", "deny it (confirm)"),
            ("x", "revoke an approved pack (confirm)"),
        ],
    ),
    (
        "Attestation",
        &[
            ("a", "accept the new baseline, end the quarantine (confirm)"),
            ("n", "keep the agent quarantined"),
            ("x", "revoke the agent (confirm)"),
            ("H", "show closed drift events too, with their decision"),
        ],
    ),
    (
        "Audit",
        &[
            ("Enter", "entry detail (with the agent-side chain head)"),
            ("v", "verify the whole chain"),
            (
                "] / n, [ / p",
                "next (older) / previous (newer) page; moving past a page edge does the same",
            ),
            (
                "/",
                "agent:NAME actor:KEY probe:NAME outcome:ok action:ACTION since:1h until:10m",
            ),
        ],
    ),
    (
        "Keys & tokens",
        &[
            ("← → h l", "API keys / enrollment tokens"),
            ("c", "create (a form; the secret is shown once)"),
            ("x", "revoke (confirm)"),
        ],
    ),
    (
        "Try it",
        &[
            ("Enter  l", "pick the agent, then the probe"),
            ("h  Esc", "back"),
            (
                "in the form: type",
                "edit the field (validated as you type)",
            ),
            ("in the form: ↑ ↓ Tab", "previous / next field"),
            ("in the form: Space", "toggle a true/false field"),
            ("in the form: Ctrl-U", "clear the field"),
            (
                "in the form: Enter",
                "run the probe through the hub (audited)",
            ),
            ("in the form: PgUp PgDn, wheel", "scroll the result"),
        ],
    ),
    (
        "Forms (create key / token)",
        &[
            ("↑ ↓ Tab", "previous / next field"),
            ("Enter", "create"),
            ("Esc", "cancel"),
        ],
    ),
];

pub fn render(f: &mut Frame, area: Rect, scroll: u16) {
    let mut lines = Vec::new();
    for (group, keys) in KEYS {
        lines.push(Line::from(Span::styled(
            *group,
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )));
        for (k, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {k:<24}"), styles::key()),
                Span::raw(*what),
            ]));
        }
        lines.push(Line::raw(""));
    }
    let area = overlay(f, area, 90, 40, "Help: every key — Esc closes, j/k scroll");
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}
