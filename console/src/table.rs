//! Tables that never cut a value silently: each column has a minimum and a
//! natural width and a priority; when the terminal is narrow the least
//! important columns are left out first, and a value that still does not
//! fit is cut with `…`. Columns marked `whole` (ids, key prefixes, times)
//! are never cut: they are shown whole or not at all, and the detail pane
//! shows everything.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell as TuiCell, HighlightSpacing, Paragraph, Row, Table as TuiTable,
    TableState, Wrap,
};

use crate::text::{fit, width};
use crate::theme::Theme;

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub title: &'static str,
    pub min: u16,
    pub max: u16,
    /// 0 = most important; higher numbers are left out first.
    pub priority: u8,
    /// Never cut: shown whole or left out.
    pub whole: bool,
}

impl Column {
    pub const fn new(title: &'static str, min: u16, max: u16, priority: u8) -> Column {
        Column {
            title,
            min,
            max,
            priority,
            whole: false,
        }
    }

    pub const fn whole(title: &'static str, priority: u8) -> Column {
        Column {
            title,
            min: 1,
            max: u16::MAX,
            priority,
            whole: true,
        }
    }
}

/// One cell: text (cleaned and fitted when drawn) and its style.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub text: String,
    pub style: Style,
}

pub fn cell(text: impl Into<String>, style: Style) -> Cell {
    Cell {
        text: text.into(),
        style,
    }
}

pub fn plain(text: impl Into<String>) -> Cell {
    cell(text, Style::new())
}

/// A table to draw.
#[derive(Debug, Clone, Default)]
pub struct Table<'a> {
    pub title: String,
    pub columns: &'a [Column],
    pub rows: Vec<Vec<Cell>>,
    pub selected: Option<usize>,
    /// The sorted column and whether reversed (an arrow in its header).
    pub sorted: Option<(usize, bool)>,
    /// What to say when there are no rows.
    pub empty: Vec<Line<'static>>,
    pub focused: bool,
}

/// Space between columns.
const SPACING: u16 = 1;
/// The selection marker `> `.
const MARKER: u16 = 2;

/// Which columns to show and how wide, for `available` columns of screen.
/// `natural[i]` is the widest value of column `i` (header included).
pub fn layout(columns: &[Column], natural: &[u16], available: u16) -> Vec<(usize, u16)> {
    let need: Vec<u16> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let n = natural.get(i).copied().unwrap_or(0).max(1);
            if c.whole { n } else { c.min.min(n).max(1) }
        })
        .collect();
    let want: Vec<u16> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let n = natural.get(i).copied().unwrap_or(0).max(1);
            if c.whole {
                n
            } else {
                n.clamp(need[i], c.max.max(need[i]))
            }
        })
        .collect();
    let mut visible: Vec<usize> = (0..columns.len()).collect();
    let total = |v: &[usize]| -> u32 {
        v.iter().map(|&i| u32::from(need[i])).sum::<u32>()
            + u32::from(SPACING) * (v.len().saturating_sub(1) as u32)
    };
    while visible.len() > 1 && total(&visible) > u32::from(available) {
        // The least important column goes first (the rightmost of equals).
        let drop = visible
            .iter()
            .enumerate()
            .max_by_key(|&(pos, &i)| (columns[i].priority, pos))
            .map(|(pos, _)| pos)
            .unwrap_or(visible.len() - 1);
        visible.remove(drop);
    }
    if visible.is_empty() {
        return Vec::new();
    }
    let mut widths: Vec<u16> = visible.iter().map(|&i| need[i]).collect();
    if visible.len() == 1 {
        widths[0] = want[visible[0]].min(available);
        return vec![(visible[0], widths[0])];
    }
    let mut extra = u32::from(available).saturating_sub(total(&visible));
    // Grow towards the natural width, most important columns first.
    let mut order: Vec<usize> = (0..visible.len()).collect();
    order.sort_by_key(|&pos| (columns[visible[pos]].priority, pos));
    for pos in order {
        let grow = u32::from(want[visible[pos]].saturating_sub(widths[pos])).min(extra);
        widths[pos] = widths[pos].saturating_add(grow as u16);
        extra -= grow;
    }
    visible.into_iter().zip(widths).collect()
}

/// A bordered block with a title fitted to the width.
pub fn block(title: &str, area: Rect, border: Style) -> Block<'static> {
    let room = area.width.saturating_sub(4) as usize;
    Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(format!(" {} ", fit(title, room.saturating_sub(2))))
}

/// Draws the table (or its empty message).
pub fn render(f: &mut Frame, area: Rect, t: &Table, theme: &Theme) {
    if area.width < 3 || area.height < 2 {
        return;
    }
    let border = if t.focused { theme.key() } else { Style::new() };
    let block = block(&t.title, area, border);
    let inner = block.inner(area);
    if t.rows.is_empty() {
        f.render_widget(block, area);
        f.render_widget(
            Paragraph::new(t.empty.clone()).wrap(Wrap { trim: false }),
            inner,
        );
        return;
    }
    let arrow = |i: usize| match t.sorted {
        Some((c, false)) if c == i => "▲",
        Some((c, true)) if c == i => "▼",
        _ => "",
    };
    let natural: Vec<u16> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let header = width(c.title) + width(arrow(i));
            let widest = t
                .rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| width(&crate::text::clip(&c.text, crate::text::MAX_TEXT)))
                .max()
                .unwrap_or(0);
            header.max(widest).min(u16::MAX as usize) as u16
        })
        .collect();
    let available = inner.width.saturating_sub(MARKER);
    let shown = layout(t.columns, &natural, available);
    let header = Row::new(
        shown
            .iter()
            .map(|&(i, w)| {
                TuiCell::from(fit(
                    &format!("{}{}", t.columns[i].title, arrow(i)),
                    w as usize,
                ))
            })
            .collect::<Vec<_>>(),
    )
    .style(theme.header());
    let rows: Vec<Row> = t
        .rows
        .iter()
        .map(|r| {
            Row::new(
                shown
                    .iter()
                    .map(|&(i, w)| match r.get(i) {
                        Some(c) => TuiCell::from(Line::from(Span::styled(
                            fit(&c.text, w as usize),
                            c.style,
                        ))),
                        None => TuiCell::from(""),
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let widths: Vec<Constraint> = shown.iter().map(|&(_, w)| Constraint::Length(w)).collect();
    let count = t.rows.len();
    let widget = TuiTable::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(SPACING)
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(t.selected.map(|s| s.min(count - 1)));
    f.render_stateful_widget(widget, area, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: [Column; 4] = [
        Column::new("NAME", 6, 30, 0),
        Column::whole("ID", 3),
        Column::new("OS", 4, 40, 2),
        Column::new("TAGS", 4, 30, 4),
    ];

    #[test]
    fn wide_terminals_show_everything_at_its_natural_width() {
        let l = layout(&COLS, &[10, 14, 20, 8], 200);
        assert_eq!(l, [(0, 10), (1, 14), (2, 20), (3, 8)]);
    }

    #[test]
    fn narrow_terminals_drop_the_least_important_columns_and_keep_ids_whole() {
        // Every minimum: 6 + 14 + 4 + 4 + 3 spaces = 31.
        let l = layout(&COLS, &[10, 14, 20, 8], 31);
        assert_eq!(l.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(l[1], (1, 14), "ids are never cut");
        // Tags go first, then the id (whole or not at all).
        let l = layout(&COLS, &[10, 14, 20, 8], 26);
        assert_eq!(l.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
        let l = layout(&COLS, &[10, 14, 20, 8], 15);
        assert_eq!(l.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
        for available in 0..60 {
            let l = layout(&COLS, &[10, 14, 20, 8], available);
            let used: u32 = l.iter().map(|(_, w)| u32::from(*w)).sum::<u32>()
                + l.len().saturating_sub(1) as u32;
            assert!(used <= u32::from(available.max(1)), "{available}: {l:?}");
            for (i, w) in &l {
                if COLS[*i].whole && l.len() > 1 {
                    assert_eq!(*w, 14);
                }
            }
        }
    }
}
