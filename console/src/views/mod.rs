//! One module per screen, plus what they share. Every `render` draws from
//! `&App` only; hub text goes through [`crate::text::clip`] first.

pub mod attestation;
pub mod audit;
pub mod enrollments;
pub mod fleet;
pub mod help;
pub mod keys;
pub mod permissions;
pub mod tryit;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Clear, Row, Table, TableState};

use crate::text::clip;

/// Styles that read on a 16-colour terminal (and without colour: selection
/// is reversed video, warnings are bold).
pub mod styles {
    use ratatui::style::{Color, Modifier, Style};

    pub fn header() -> Style {
        Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    pub fn selected() -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn key() -> Style {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    }
    pub fn good() -> Style {
        Style::default().fg(Color::Green)
    }
    pub fn warn() -> Style {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    }
    pub fn bad() -> Style {
        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn dim() -> Style {
        Style::default().fg(Color::DarkGray)
    }
    pub fn changed() -> Style {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}

/// A bordered block with a title.
pub fn block(title: &str) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", clip(title, 120)))
}

/// A table of rows with a header; `selected` is highlighted and kept in view.
#[allow(clippy::too_many_arguments)]
pub fn table<'a>(
    f: &mut Frame,
    area: Rect,
    title: &str,
    header: &[&str],
    widths: &[Constraint],
    rows: Vec<Row<'a>>,
    selected: Option<usize>,
    empty: &str,
) {
    let count = rows.len();
    let block = block(&format!("{title} ({count})"));
    if rows.is_empty() {
        let inner = block.inner(area);
        f.render_widget(block, area);
        f.render_widget(
            ratatui::widgets::Paragraph::new(Line::styled(empty.to_owned(), styles::dim()))
                .wrap(ratatui::widgets::Wrap { trim: false }),
            inner,
        );
        return;
    }
    let header = Row::new(header.iter().map(|h| Cell::from(h.to_string()))).style(styles::header());
    let widget = Table::new(rows, widths.to_vec())
        .header(header)
        .block(block)
        .row_highlight_style(styles::selected())
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(selected.map(|s| s.min(count - 1)));
    f.render_stateful_widget(widget, area, &mut state);
}

/// Clears a centred box of at most `w`×`h` and returns its inner area.
pub fn overlay(f: &mut Frame, area: Rect, w: u16, h: u16, title: &str) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, rect);
    let b = block(title).style(Style::default().add_modifier(Modifier::empty()));
    let inner = b.inner(rect);
    f.render_widget(b, rect);
    inner
}

/// `key value` lines for detail panes.
pub fn kv(key: &str, value: impl Into<String>) -> Line<'static> {
    Line::from(vec![
        ratatui::text::Span::styled(format!("{key:<18}"), styles::dim()),
        ratatui::text::Span::raw(clip(&value.into(), 400)),
    ])
}

/// One frame of an ASCII spinner (readable everywhere).
pub fn spinner(frame: u64) -> char {
    ['|', '/', '-', '\\'][(frame % 4) as usize]
}

#[cfg(test)]
mod tests;
