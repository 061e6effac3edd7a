//! The screens. Each one is a component: its own state (selection by id,
//! filter, sort, what is open), `update(action)` returning [`Effect`]s,
//! and `view`, which draws from that state and the shared [`HubData`]
//! only. Nothing here talks to the hub: effects carry the requests.

/// The accessors of a list screen (a struct with a `list: ListState` field,
/// `rows(data)` and `ids(rows)`), written once: `list_screen!(Fleet, SORTS);`
/// inside its `impl Screen`.
macro_rules! list_screen {
    ($screen:ident, $sorts:expr) => {
        fn list(&self) -> Option<&$crate::list::ListState> {
            Some(&self.list)
        }

        fn list_mut(&mut self) -> Option<&mut $crate::list::ListState> {
            Some(&mut self.list)
        }

        fn list_ids(&self, data: &$crate::data::HubData) -> Vec<String> {
            $screen::ids(&self.rows(data))
        }

        fn sort_names(&self) -> &'static [&'static str] {
            $sorts
        }
    };
}

pub mod attestation;
pub mod audit;
pub mod enrollments;
pub mod fleet;
pub mod integrations;
pub mod keys;
pub mod oauth;
pub mod paths;
pub mod permissions;
pub mod tryit;

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::{ListState, Sort};
use crate::modal::Modal;
use crate::text::clip;
use crate::theme::Theme;
use crate::worker::{Reply, Request};

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Fleet,
    Enrollments,
    Permissions,
    Attestation,
    Audit,
    Keys,
    TryIt,
    OAuth,
    Integrations,
    Paths,
}

impl View {
    pub const ALL: [View; 10] = [
        View::Fleet,
        View::Enrollments,
        View::Permissions,
        View::Attestation,
        View::Audit,
        View::Keys,
        View::TryIt,
        View::OAuth,
        View::Integrations,
        View::Paths,
    ];

    pub const fn title(self) -> &'static str {
        match self {
            View::Fleet => "Fleet",
            View::Enrollments => "Enrollments",
            View::Permissions => "Permissions",
            View::Attestation => "Attestation",
            View::Audit => "Audit",
            View::Keys => "Keys & tokens",
            View::TryIt => "Try it",
            View::OAuth => "OAuth",
            View::Integrations => "Integrations",
            View::Paths => "Paths",
        }
    }

    /// Tab label for narrow terminals.
    pub fn short(self) -> &'static str {
        match self {
            View::Fleet => "Fleet",
            View::Enrollments => "Enroll",
            View::Permissions => "Perms",
            View::Attestation => "Attest",
            View::Audit => "Audit",
            View::Keys => "Keys",
            View::TryIt => "Try",
            View::OAuth => "OAuth",
            View::Integrations => "Integr",
            View::Paths => "Paths",
        }
    }

    /// The palette's name for it.
    pub fn command(self) -> &'static str {
        match self {
            View::Fleet => "fleet",
            View::Enrollments => "enrollments",
            View::Permissions => "permissions",
            View::Attestation => "attestation",
            View::Audit => "audit",
            View::Keys => "keys",
            View::TryIt => "try",
            View::OAuth => "oauth",
            View::Integrations => "integrations",
            View::Paths => "paths",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    pub fn offset(self, by: isize) -> View {
        let n = View::ALL.len() as isize;
        let i = (self.index() as isize + by).rem_euclid(n);
        View::ALL[i as usize]
    }
}

/// What a screen sees while it updates or draws.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub data: &'a HubData,
    pub now_ms: i64,
    pub theme: Theme,
    /// Draw counter (spinners).
    pub frame: u64,
}

/// What an update asks the app to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a request (reads already in flight are not sent twice).
    Send(Request),
    /// Read again even if the same read is in flight (after an action).
    Read(Request),
    Open(Modal),
    Say(String),
    Complain(String),
    /// Copy to the clipboard; `what` names it in the message.
    Copy {
        what: String,
        text: String,
    },
    GoTo(View),
    /// Show lines in the plain terminal for selecting with the mouse.
    Plain(Vec<String>),
}

/// One screen.
pub trait Screen {
    /// The key-map scopes that apply, most specific first.
    fn scopes(&self) -> Vec<Scope>;
    /// What to read from the hub to show this screen.
    fn reads(&self, ctx: &Ctx) -> Vec<Request>;
    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect>;
    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx);
    /// A list screen's state; the defaults of `back`, `filter`,
    /// `set_filter`, `sort_mut` and `sync` work on it. Screens that are not
    /// one list (Audit, Keys & tokens, Try it, OAuth) override those.
    fn list(&self) -> Option<&ListState> {
        None
    }
    fn list_mut(&mut self) -> Option<&mut ListState> {
        None
    }
    /// The ids of the rows a list screen shows, in shown order.
    fn list_ids(&self, _data: &HubData) -> Vec<String> {
        Vec::new()
    }
    /// `Esc`: closes what the screen has open; `false` when nothing was.
    fn back(&mut self) -> bool {
        self.list_mut()
            .is_some_and(|l| std::mem::take(&mut l.detail_open))
    }
    fn filter(&self) -> &str {
        self.list().map_or("", |l| l.filter.as_str())
    }
    /// The operator's filter; an error keeps the prompt open, with the text.
    fn set_filter(&mut self, text: &str, ctx: &Ctx) -> Result<Vec<Effect>, String> {
        if let Some(l) = self.list_mut() {
            l.filter = text.to_owned();
        }
        self.sync(ctx);
        Ok(Vec::new())
    }
    /// Sort column names (empty: not sortable).
    fn sort_names(&self) -> &'static [&'static str] {
        &[]
    }
    fn sort_mut(&mut self) -> Option<&mut Sort> {
        self.list_mut().map(|l| &mut l.sort)
    }
    /// After the shared data changed: selections follow their items.
    fn sync(&mut self, ctx: &Ctx) {
        let ids = self.list_ids(ctx.data);
        if let Some(l) = self.list_mut() {
            l.selection.sync(&ids);
        }
    }
    /// Answers to this screen's own requests.
    fn on_reply(&mut self, _request: &Request, _reply: &Reply, _ctx: &Ctx) -> Vec<Effect> {
        Vec::new()
    }
    fn on_failure(&mut self, _request: &Request, _message: &str, _unreachable: bool) {}
    /// A key typed while the screen takes text (Try it's form).
    fn type_key(&mut self, _key: KeyEvent) -> Vec<Effect> {
        Vec::new()
    }
}

/// Whether every word of `filter` is in one of `parts` (case-insensitive).
pub fn matches_filter(filter: &str, parts: &[&str]) -> bool {
    filter.split_whitespace().all(|word| {
        let word = word.to_lowercase();
        parts.iter().any(|p| p.to_lowercase().contains(&word))
    })
}

/// `Fleet (3)`, or `Fleet (1 of 3) · filter "web"`: the filter is always
/// on screen while it hides anything.
pub fn list_title(name: &str, shown: usize, total: usize, filter: &str) -> String {
    if filter.is_empty() {
        format!("{name} ({total})")
    } else {
        format!(
            "{name} ({shown} of {total}) · filter \"{}\"",
            clip(filter, 60)
        )
    }
}

/// What an empty list says: loading, a filter that hides everything, or
/// `none` (the list really is empty).
pub fn empty_lines(
    theme: &Theme,
    loaded: bool,
    total: usize,
    filter: &str,
    what: &str,
    none: Vec<Line<'static>>,
) -> Vec<Line<'static>> {
    if !loaded {
        return vec![Line::styled("Loading…", theme.dim())];
    }
    if total > 0 && !filter.is_empty() {
        return vec![
            Line::styled(
                format!(
                    "No {what} matches the filter \"{}\" ({total} hidden).",
                    clip(filter, 80)
                ),
                theme.warn(),
            ),
            Line::styled("Esc clears the filter; / edits it.", theme.dim()),
        ];
    }
    none
}

/// `key  value` for detail panes (the value cleaned, never cut: panes wrap).
pub fn kv(theme: &Theme, key: &str, value: impl Into<String>) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<18}"), theme.dim()),
        Span::raw(crate::text::clean(&value.into())),
    ])
}

/// [`kv`] with a styled value.
pub fn kv_styled(
    theme: &Theme,
    key: &str,
    value: impl Into<String>,
    style: Style,
) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<18}"), theme.dim()),
        Span::styled(crate::text::clean(&value.into()), style),
    ])
}

/// One frame of an ASCII spinner (readable everywhere).
pub fn spinner(frame: u64) -> char {
    ['|', '/', '-', '\\'][(frame % 4) as usize]
}
