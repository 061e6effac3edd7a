//! Selection by id, sorting and bounded scrolling, shared by the screens.
//!
//! A [`Selection`] remembers *which item* is selected (its id), never only
//! a row number: after a refresh or a re-sort the cursor is wherever that
//! item now is. Only when the item is gone does the cursor fall back to the
//! row it was on (the next item), and the selection then names that item.

use std::cell::Cell;

use crate::action::Action;

/// What every list screen keeps: the selected item, the operator's filter
/// and sort, and whether the detail pane is open. The [`Screen`] trait's
/// defaults do the filter, sort, `Esc` and sync plumbing for a screen that
/// hands out its `ListState`.
///
/// [`Screen`]: crate::screens::Screen
#[derive(Debug, Clone, Default)]
pub struct ListState {
    pub selection: Selection,
    pub filter: String,
    pub sort: Sort,
    pub detail_open: bool,
}

impl ListState {
    /// Rows one page key moves.
    pub const PAGE: isize = 10;

    /// Applies a list action (up, down, page, top, bottom, wheel; `Enter`
    /// opens or closes the detail) among `ids`, the rows in shown order.
    /// `false` for any other action: the screen handles those.
    pub fn navigate<S: AsRef<str>>(&mut self, action: Action, ids: &[S]) -> bool {
        match action {
            Action::Down | Action::ScrollDown => self.selection.move_by(ids, 1),
            Action::Up | Action::ScrollUp => self.selection.move_by(ids, -1),
            Action::PageDown => self.selection.move_by(ids, Self::PAGE),
            Action::PageUp => self.selection.move_by(ids, -Self::PAGE),
            Action::Top => self.selection.select(ids, 0),
            Action::Bottom => self.selection.select(ids, usize::MAX),
            Action::Enter => self.detail_open = !self.detail_open,
            _ => return false,
        }
        true
    }
}

/// The selected item of one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    id: Option<String>,
    /// Where the item was last seen (the fallback when it disappears).
    index: usize,
}

impl Selection {
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The selected row among `ids` (shown order).
    pub fn cursor<S: AsRef<str>>(&self, ids: &[S]) -> Option<usize> {
        if ids.is_empty() {
            return None;
        }
        self.id
            .as_deref()
            .and_then(|id| ids.iter().position(|x| x.as_ref() == id))
            .or(Some(self.index.min(ids.len() - 1)))
    }

    /// After the rows changed: keep the item, or take the one now at its
    /// row. An empty list keeps the id (a filter may hide it for a while).
    pub fn sync<S: AsRef<str>>(&mut self, ids: &[S]) {
        if let Some(i) = self.cursor(ids) {
            self.index = i;
            self.id = Some(ids[i].as_ref().to_owned());
        }
    }

    pub fn select<S: AsRef<str>>(&mut self, ids: &[S], index: usize) {
        if ids.is_empty() {
            return;
        }
        let i = index.min(ids.len() - 1);
        self.index = i;
        self.id = Some(ids[i].as_ref().to_owned());
    }

    /// Selects an item by id (even one not listed yet: it is selected when
    /// it appears).
    pub fn select_id(&mut self, id: impl Into<String>) {
        self.id = Some(id.into());
    }

    pub fn move_by<S: AsRef<str>>(&mut self, ids: &[S], delta: isize) {
        let Some(cur) = self.cursor(ids) else {
            return;
        };
        let next = (cur as isize)
            .saturating_add(delta)
            .clamp(0, ids.len() as isize - 1);
        self.select(ids, next as usize);
    }
}

/// How a list is sorted: a column by index into the screen's sort keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    pub reverse: bool,
}

impl Sort {
    pub fn next(&mut self, columns: usize) {
        self.column = (self.column + 1) % columns.max(1);
        self.reverse = false;
    }

    /// By name (case-insensitive prefix), for the palette's `sort`.
    pub fn by_name(&mut self, names: &[&str], name: &str) -> Result<(), String> {
        let wanted = name.trim().to_lowercase();
        let found = names
            .iter()
            .position(|n| n.to_lowercase() == wanted)
            .or_else(|| {
                names
                    .iter()
                    .position(|n| n.to_lowercase().starts_with(&wanted))
            });
        match found {
            Some(i) if !wanted.is_empty() => {
                self.column = i;
                Ok(())
            }
            _ => Err(format!("sort by {} (not {name:?})", names.join(", "))),
        }
    }
}

/// A scroll offset that cannot go past the end: the view records how many
/// rows there are and how many fit, and moves are clamped to that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scroll {
    pub offset: u16,
    /// Largest useful offset, set when drawn.
    max: Cell<u16>,
}

impl Scroll {
    /// Records the content and viewport heights (called while drawing) and
    /// returns the offset to draw with.
    pub fn fit(&self, content_rows: usize, viewport_rows: u16) -> u16 {
        let max = content_rows
            .saturating_sub(viewport_rows as usize)
            .min(u16::MAX as usize) as u16;
        self.max.set(max);
        self.offset.min(max)
    }

    pub fn by(&mut self, delta: i32) {
        let max = i32::from(self.max.get());
        let cur = i32::from(self.offset.min(self.max.get()));
        self.offset = (cur + delta).clamp(0, max) as u16;
    }

    pub fn top(&mut self) {
        self.offset = 0;
    }

    pub fn bottom(&mut self) {
        self.offset = self.max.get();
    }

    /// Makes row `row` visible (search matches).
    pub fn show(&mut self, row: usize, viewport_rows: u16) {
        let row = row.min(u16::MAX as usize) as u16;
        if row < self.offset || row >= self.offset.saturating_add(viewport_rows.max(1)) {
            self.offset = row.min(self.max.get());
        }
    }

    pub fn max(&self) -> u16 {
        self.max.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_follows_its_item_through_reorders() {
        let mut s = Selection::default();
        let ids = ["a", "b", "c"];
        s.select(&ids, 1);
        assert_eq!(s.id(), Some("b"));
        // Re-sorted: the cursor moves with "b".
        assert_eq!(s.cursor(&["b", "c", "a"]), Some(0));
        // "b" gone: the row it was on, and the selection names that item.
        s.sync(&["a", "c"]);
        assert_eq!(s.id(), Some("c"));
        // Empty (a filter): the id is kept for when it comes back.
        s.sync::<&str>(&[]);
        assert_eq!(s.id(), Some("c"));
        assert_eq!(s.cursor(&["x", "c"]), Some(1));
        s.move_by(&["x", "c"], -5);
        assert_eq!(s.id(), Some("x"));
        s.move_by(&["x", "c"], 5);
        assert_eq!(s.id(), Some("c"));
    }

    #[test]
    fn scrolling_stops_at_the_end() {
        let mut s = Scroll::default();
        assert_eq!(s.fit(100, 10), 0);
        s.by(1000);
        assert_eq!(s.offset, 90);
        s.by(-5);
        assert_eq!(s.offset, 85);
        s.by(-1000);
        assert_eq!(s.offset, 0);
        // Content shorter than the view: no scrolling at all.
        s.fit(3, 10);
        s.by(10);
        assert_eq!(s.offset, 0);
        s.fit(100, 10);
        s.bottom();
        assert_eq!(s.offset, 90);
        s.show(5, 10);
        assert_eq!(s.offset, 5);
    }

    #[test]
    fn list_actions_move_the_selection_and_toggle_the_detail() {
        let ids: Vec<String> = (0..25).map(|i| format!("r{i}")).collect();
        let mut l = ListState::default();
        assert!(l.navigate(Action::Down, &ids));
        assert_eq!(l.selection.id(), Some("r1"));
        assert!(l.navigate(Action::PageDown, &ids));
        assert_eq!(l.selection.id(), Some("r11"));
        assert!(l.navigate(Action::Bottom, &ids));
        assert_eq!(l.selection.id(), Some("r24"));
        assert!(l.navigate(Action::PageUp, &ids));
        assert_eq!(l.selection.id(), Some("r14"));
        assert!(l.navigate(Action::Top, &ids));
        assert_eq!(l.selection.id(), Some("r0"));
        assert!(l.navigate(Action::Enter, &ids));
        assert!(l.detail_open);
        // Anything else is the screen's.
        assert!(!l.navigate(Action::Approve, &ids));
        assert!(l.detail_open);
        assert_eq!(l.selection.id(), Some("r0"));
    }

    #[test]
    fn sorts_by_name_or_prefix() {
        let mut s = Sort::default();
        assert!(s.by_name(&["name", "status", "seen"], "STAT").is_ok());
        assert_eq!(s.column, 1);
        assert!(
            s.by_name(&["name"], "zzz")
                .unwrap_err()
                .contains("sort by name")
        );
        s.next(3);
        assert_eq!(s.column, 2);
        s.next(3);
        assert_eq!(s.column, 0);
    }
}
