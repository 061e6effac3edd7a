//! The one key map. Every key the console reacts to is a row of [`KEYMAP`]:
//! where it applies ([`Scope`]), the keys, the [`Action`], the help text
//! and the short status-bar hint. Key handling ([`resolve`]), the help
//! overlay ([`help_groups`]) and the status bar ([`hints`]) are all read
//! from it, so they cannot disagree.
//!
//! Rows with no action document keys handled by a text editor (typing in a
//! prompt or a form) so that help lists them too.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::action::Action;
use crate::screens::View;

/// Where a key applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Any screen, when nothing is being typed.
    Global,
    Screen(View),
    /// Try it: typing a probe's parameters.
    Form,
    /// Try it: reading a probe's result.
    Result,
    /// Overlays.
    Confirm,
    Secret,
    /// Help, an audit entry, a verification: text to read.
    Reader,
    /// A one-line prompt: a filter, tags, a file name, a search.
    Prompt,
    Palette,
    /// The create-key and create-token forms, adding an integration.
    Editor,
    /// Typing a credential: masked, nothing of it is drawn.
    SecretInput,
}

impl Scope {
    /// The help heading.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Screen(v) => v.title(),
            Scope::Form => "Try it: the parameter form",
            Scope::Result => "Try it: the result",
            Scope::Confirm => "A confirmation",
            Scope::Secret => "A secret shown once",
            Scope::Reader => "Help, audit entry, verification",
            Scope::Prompt => "A prompt (filter, tags, file name, search)",
            Scope::Palette => "The command palette (:)",
            Scope::Editor => "Forms (create key / token, add integration)",
            Scope::SecretInput => "Typing a credential (masked)",
        }
    }

    /// Whether keys not in the map are typed as text here.
    pub fn types_text(self) -> bool {
        matches!(
            self,
            Scope::Form | Scope::Prompt | Scope::Palette | Scope::Editor | Scope::SecretInput
        )
    }
}

/// One key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Code(KeyCode),
}

impl Key {
    pub fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        let alt = ev.modifiers.contains(KeyModifiers::ALT);
        match self {
            Key::Char(c) => !ctrl && !alt && ev.code == KeyCode::Char(c),
            Key::Ctrl(c) => ctrl && ev.code == KeyCode::Char(c),
            // Two quick Esc presses can arrive as Alt+Esc: still Esc.
            Key::Code(KeyCode::Esc) => !ctrl && ev.code == KeyCode::Esc,
            Key::Code(k) => !ctrl && !alt && ev.code == k,
        }
    }

    /// How the key is written in help and hints.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "Space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Code(k) => match k {
                KeyCode::Up => "↑".into(),
                KeyCode::Down => "↓".into(),
                KeyCode::Left => "←".into(),
                KeyCode::Right => "→".into(),
                KeyCode::PageUp => "PgUp".into(),
                KeyCode::PageDown => "PgDn".into(),
                KeyCode::Home => "Home".into(),
                KeyCode::End => "End".into(),
                KeyCode::Enter => "Enter".into(),
                KeyCode::Esc => "Esc".into(),
                KeyCode::Tab => "Tab".into(),
                KeyCode::BackTab => "Shift-Tab".into(),
                KeyCode::Backspace => "Backspace".into(),
                KeyCode::F(n) => format!("F{n}"),
                other => format!("{other:?}"),
            },
        }
    }
}

/// One row of the key map.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    /// `None`: handled by the text editor (documented only).
    pub action: Option<Action>,
    pub help: &'static str,
    /// Shown in the status bar when set.
    pub hint: Option<&'static str>,
}

impl Binding {
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

use Key::{Char as C, Code as K, Ctrl};
use KeyCode::{
    BackTab, Backspace, Down, End, Enter, Esc, Home, Left, PageDown, PageUp, Right, Tab, Up,
};

const fn b(
    scope: Scope,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    hint: Option<&'static str>,
) -> Binding {
    Binding {
        scope,
        keys,
        action: Some(action),
        help,
        hint,
    }
}

const fn doc(scope: Scope, keys: &'static [Key], help: &'static str) -> Binding {
    Binding {
        scope,
        keys,
        action: None,
        help,
        hint: None,
    }
}

const G: Scope = Scope::Global;
const FLEET: Scope = Scope::Screen(View::Fleet);
const ENROLL: Scope = Scope::Screen(View::Enrollments);
const PERMS: Scope = Scope::Screen(View::Permissions);
const ATTEST: Scope = Scope::Screen(View::Attestation);
const AUDIT: Scope = Scope::Screen(View::Audit);
const KEYS: Scope = Scope::Screen(View::Keys);
const TRY: Scope = Scope::Screen(View::TryIt);
const OAUTH: Scope = Scope::Screen(View::OAuth);
const INTEG: Scope = Scope::Screen(View::Integrations);
const PATHS: Scope = Scope::Screen(View::Paths);

/// The key map. Earlier rows win within a scope.
pub const KEYMAP: &[Binding] = &[
    // Everywhere.
    b(
        G,
        &[C('?'), K(KeyCode::F(1))],
        Action::Help,
        "every key (this help)",
        Some("help"),
    ),
    b(
        G,
        &[C(':')],
        Action::Palette,
        "command palette: a screen, an agent, a filter, a sort, a theme",
        Some("cmd"),
    ),
    b(G, &[K(Tab)], Action::NextScreen, "next screen", None),
    b(
        G,
        &[K(BackTab)],
        Action::PrevScreen,
        "previous screen",
        None,
    ),
    b(G, &[C('1')], Action::GoTo(View::Fleet), "Fleet", None),
    b(
        G,
        &[C('2')],
        Action::GoTo(View::Enrollments),
        "Enrollments",
        None,
    ),
    b(
        G,
        &[C('3')],
        Action::GoTo(View::Permissions),
        "Permissions",
        None,
    ),
    b(
        G,
        &[C('4')],
        Action::GoTo(View::Attestation),
        "Attestation (drift and quarantine)",
        None,
    ),
    b(G, &[C('5')], Action::GoTo(View::Audit), "Audit", None),
    b(
        G,
        &[C('6')],
        Action::GoTo(View::Keys),
        "Keys & tokens",
        None,
    ),
    b(G, &[C('7')], Action::GoTo(View::TryIt), "Try it", None),
    b(
        G,
        &[C('8')],
        Action::GoTo(View::OAuth),
        "OAuth clients (MCP clients asking for access)",
        None,
    ),
    b(
        G,
        &[C('9')],
        Action::GoTo(View::Integrations),
        "Integrations (Prometheus, Alertmanager, Proxmox VE, UniFi)",
        None,
    ),
    b(
        G,
        &[C('0')],
        Action::GoTo(View::Paths),
        "Critical paths",
        None,
    ),
    // Critical paths.
    b(
        PATHS,
        &[C('e')],
        Action::Run,
        "run the path now (as you; audited)",
        Some("run"),
    ),
    b(
        PATHS,
        &[C('x')],
        Action::Revoke,
        "remove the path (asks y)",
        Some("remove"),
    ),
    b(G, &[K(Down), C('j')], Action::Down, "move down", None),
    b(G, &[K(Up), C('k')], Action::Up, "move up", None),
    b(G, &[K(PageDown)], Action::PageDown, "a page down", None),
    b(G, &[K(PageUp)], Action::PageUp, "a page up", None),
    b(G, &[C('g'), K(Home)], Action::Top, "first row", None),
    b(G, &[C('G'), K(End)], Action::Bottom, "last row", None),
    b(
        G,
        &[K(Enter)],
        Action::Enter,
        "open / close the detail (everything, untruncated)",
        Some("detail"),
    ),
    b(
        G,
        &[C('/')],
        Action::Filter,
        "filter this screen (Enter applies; a bad filter stays to fix)",
        Some("filter"),
    ),
    b(
        G,
        &[C('s')],
        Action::SortNext,
        "sort by the next column",
        Some("sort"),
    ),
    b(G, &[C('S')], Action::SortReverse, "reverse the sort", None),
    b(
        G,
        &[C('y')],
        Action::Copy,
        "copy the selected id to the clipboard (OSC 52)",
        Some("copy"),
    ),
    b(
        G,
        &[K(Esc)],
        Action::Back,
        "close the detail, then clear the filter, then the message",
        None,
    ),
    b(
        G,
        &[C('r')],
        Action::Refresh,
        "refresh now (data also refreshes every 2 s)",
        None,
    ),
    b(G, &[C('q')], Action::Quit, "quit", None),
    b(
        G,
        &[Ctrl('c')],
        Action::Quit,
        "quit, even while typing",
        None,
    ),
    // Fleet.
    b(
        FLEET,
        &[C('x')],
        Action::Revoke,
        "revoke the agent (asks y)",
        Some("revoke"),
    ),
    b(
        FLEET,
        &[C('t')],
        Action::Tags,
        "edit its tags",
        Some("tags"),
    ),
    b(
        FLEET,
        &[C('J')],
        Action::DetailDown,
        "scroll the detail down",
        None,
    ),
    b(
        FLEET,
        &[C('K')],
        Action::DetailUp,
        "scroll the detail up",
        None,
    ),
    // Enrollments.
    b(
        ENROLL,
        &[C('a')],
        Action::Approve,
        "approve: shows the machine and what it gets, asks y",
        Some("approve"),
    ),
    b(
        ENROLL,
        &[C('d')],
        Action::Deny,
        "deny (asks y)",
        Some("deny"),
    ),
    // Integrations.
    b(
        INTEG,
        &[C('a')],
        Action::Approve,
        "approve a pending integration: shows what it reaches, asks y",
        Some("approve"),
    ),
    b(
        INTEG,
        &[C('t')],
        Action::Test,
        "test: run its test probe (audited, works before approval)",
        Some("test"),
    ),
    b(
        INTEG,
        &[C('x')],
        Action::Revoke,
        "remove the integration and its credential (asks y)",
        Some("remove"),
    ),
    b(
        INTEG,
        &[C('c')],
        Action::Create,
        "add an integration (form; a third-party one from its signed manifest directory); it stays pending until approved",
        Some("add"),
    ),
    b(
        INTEG,
        &[C('e')],
        Action::SetCredential,
        "set or replace the credential (masked: never drawn, copied or kept after sending)",
        Some("credential"),
    ),
    b(
        INTEG,
        &[C('E')],
        Action::ClearCredential,
        "clear the credential (asks y)",
        None,
    ),
    b(
        INTEG,
        &[C('R')],
        Action::RotateKey,
        "rotate the credential key: re-encrypt every credential (asks y)",
        Some("rotate key"),
    ),
    // Permissions.
    b(
        PERMS,
        &[C('a')],
        Action::Approve,
        "approve the pack: shows what it grants, asks y",
        Some("approve"),
    ),
    b(
        PERMS,
        &[C('d')],
        Action::Deny,
        "deny a pending pack (asks y)",
        Some("deny"),
    ),
    b(
        PERMS,
        &[C('x')],
        Action::Revoke,
        "revoke an approved pack (asks y)",
        Some("revoke"),
    ),
    // Attestation.
    b(
        ATTEST,
        &[C('a')],
        Action::Approve,
        "accept the current attestation as the baseline, ending the quarantine (asks y)",
        Some("accept"),
    ),
    b(
        ATTEST,
        &[C('n')],
        Action::Keep,
        "keep the agent quarantined (recorded; it stays listed here)",
        Some("keep"),
    ),
    b(
        ATTEST,
        &[C('x')],
        Action::Revoke,
        "revoke the agent (asks y)",
        Some("revoke"),
    ),
    b(
        ATTEST,
        &[C('H')],
        Action::History,
        "history: closed drift events too, with who decided what",
        Some("history"),
    ),
    b(
        ATTEST,
        &[C('J')],
        Action::DetailDown,
        "scroll both attestations down",
        None,
    ),
    b(
        ATTEST,
        &[C('K')],
        Action::DetailUp,
        "scroll both attestations up",
        None,
    ),
    // Audit.
    b(
        AUDIT,
        &[C('v')],
        Action::Verify,
        "verify the whole chain",
        Some("verify"),
    ),
    b(
        AUDIT,
        &[C('f')],
        Action::Follow,
        "follow: new entries arrive at the top and the cursor goes with them",
        Some("follow"),
    ),
    b(
        AUDIT,
        &[C(']'), C('n')],
        Action::OlderPage,
        "older page (moving past the last row does the same)",
        None,
    ),
    b(
        AUDIT,
        &[C('['), C('p')],
        Action::NewerPage,
        "newer page",
        None,
    ),
    // OAuth clients.
    b(
        OAUTH,
        &[K(Left), C('h')],
        Action::Left,
        "requests waiting for approval",
        None,
    ),
    b(
        OAUTH,
        &[K(Right), C('l')],
        Action::Right,
        "registered clients",
        Some("clients"),
    ),
    b(
        OAUTH,
        &[C('a')],
        Action::Approve,
        "approve: choose its policy, see what it gets, y",
        Some("approve"),
    ),
    b(
        OAUTH,
        &[C('d')],
        Action::Deny,
        "deny (asks y)",
        Some("deny"),
    ),
    b(
        OAUTH,
        &[C('x')],
        Action::Revoke,
        "revoke a client: its tokens stop at once (asks y)",
        Some("revoke"),
    ),
    // Keys & tokens.
    b(KEYS, &[K(Left), C('h')], Action::Left, "API keys", None),
    b(
        KEYS,
        &[K(Right), C('l')],
        Action::Right,
        "enrollment tokens",
        Some("tokens"),
    ),
    b(
        KEYS,
        &[C('c')],
        Action::Create,
        "create (the secret is shown once)",
        Some("create"),
    ),
    b(
        KEYS,
        &[C('x')],
        Action::Revoke,
        "revoke (asks y; not for what is already revoked, used or expired)",
        Some("revoke"),
    ),
    // Try it.
    b(
        TRY,
        &[K(Right), C('l')],
        Action::Enter,
        "pick the agent, then the probe",
        Some("pick"),
    ),
    b(
        TRY,
        &[K(Left), C('h')],
        Action::Left,
        "back to the agents",
        None,
    ),
    // Try it: the form (typing).
    b(
        Scope::Form,
        &[K(Enter)],
        Action::Enter,
        "run the probe through the hub (audited as you)",
        Some("run"),
    ),
    b(
        Scope::Form,
        &[K(Esc)],
        Action::Back,
        "back to the probes",
        Some("back"),
    ),
    b(
        Scope::Form,
        &[K(Tab), K(Down)],
        Action::Down,
        "next field",
        None,
    ),
    b(
        Scope::Form,
        &[K(BackTab), K(Up)],
        Action::Up,
        "previous field",
        None,
    ),
    b(
        Scope::Form,
        &[K(PageDown)],
        Action::PageDown,
        "scroll the result",
        None,
    ),
    b(
        Scope::Form,
        &[K(PageUp)],
        Action::PageUp,
        "scroll the result back",
        None,
    ),
    b(Scope::Form, &[Ctrl('c')], Action::Quit, "quit", None),
    doc(Scope::Form, &[C(' ')], "toggle a true/false field"),
    doc(
        Scope::Form,
        &[Ctrl('u'), K(Backspace)],
        "clear the field, delete a character",
    ),
    // Try it: the result.
    b(
        Scope::Result,
        &[K(Enter)],
        Action::Enter,
        "run it again",
        Some("again"),
    ),
    b(
        Scope::Result,
        &[C('e'), K(Esc)],
        Action::EditParams,
        "edit the parameters",
        Some("edit"),
    ),
    b(
        Scope::Result,
        &[C('J')],
        Action::RawJson,
        "raw JSON / human units",
        Some("raw"),
    ),
    b(
        Scope::Result,
        &[C('/')],
        Action::Filter,
        "search the result",
        Some("search"),
    ),
    b(
        Scope::Result,
        &[C('n')],
        Action::SearchNext,
        "next match",
        None,
    ),
    b(
        Scope::Result,
        &[C('N')],
        Action::SearchPrev,
        "previous match",
        None,
    ),
    b(
        Scope::Result,
        &[C('w')],
        Action::Save,
        "save the result to a file",
        Some("save"),
    ),
    b(
        Scope::Result,
        &[C('y')],
        Action::Copy,
        "copy the result (raw JSON) to the clipboard",
        Some("copy"),
    ),
    // Overlays.
    b(
        Scope::Confirm,
        &[C('y'), C('Y')],
        Action::Confirm,
        "yes, do it",
        Some("yes"),
    ),
    doc(Scope::Confirm, &[], "any other key: no"),
    b(
        Scope::Secret,
        &[K(Down), C('j')],
        Action::Down,
        "next line",
        None,
    ),
    b(
        Scope::Secret,
        &[K(Up), C('k')],
        Action::Up,
        "previous line",
        None,
    ),
    b(
        Scope::Secret,
        &[C('y'), C('c'), K(Enter)],
        Action::Copy,
        "copy the selected line to the clipboard (OSC 52)",
        Some("copy"),
    ),
    b(
        Scope::Secret,
        &[C('p')],
        Action::PrintPlain,
        "show it in the plain terminal, to select with the mouse",
        Some("plain"),
    ),
    b(
        Scope::Secret,
        &[K(Esc), C('q')],
        Action::Back,
        "close (it is not shown again)",
        Some("close"),
    ),
    b(
        Scope::Reader,
        &[K(Down), C('j')],
        Action::Down,
        "scroll down",
        None,
    ),
    b(
        Scope::Reader,
        &[K(Up), C('k')],
        Action::Up,
        "scroll up",
        None,
    ),
    b(
        Scope::Reader,
        &[K(PageDown)],
        Action::PageDown,
        "a page down",
        None,
    ),
    b(
        Scope::Reader,
        &[K(PageUp)],
        Action::PageUp,
        "a page up",
        None,
    ),
    b(Scope::Reader, &[C('g'), K(Home)], Action::Top, "top", None),
    b(
        Scope::Reader,
        &[C('G'), K(End)],
        Action::Bottom,
        "end",
        None,
    ),
    b(
        Scope::Reader,
        &[C('y')],
        Action::Copy,
        "copy (an audit entry's hash)",
        None,
    ),
    b(
        Scope::Reader,
        &[K(Esc), C('q'), K(Enter), C('?')],
        Action::Back,
        "close",
        Some("close"),
    ),
    b(
        Scope::Prompt,
        &[K(Enter)],
        Action::Enter,
        "apply",
        Some("apply"),
    ),
    b(
        Scope::Prompt,
        &[K(Esc)],
        Action::Back,
        "cancel",
        Some("cancel"),
    ),
    b(Scope::Prompt, &[Ctrl('c')], Action::Quit, "quit", None),
    doc(
        Scope::Prompt,
        &[Ctrl('u'), K(Backspace)],
        "clear, delete a character",
    ),
    b(
        Scope::Palette,
        &[K(Down), K(Tab)],
        Action::Down,
        "next suggestion",
        None,
    ),
    b(
        Scope::Palette,
        &[K(Up), K(BackTab)],
        Action::Up,
        "previous suggestion",
        None,
    ),
    b(
        Scope::Palette,
        &[K(Right)],
        Action::Complete,
        "complete with the suggestion",
        None,
    ),
    b(
        Scope::Palette,
        &[K(Enter)],
        Action::Enter,
        "run",
        Some("run"),
    ),
    b(
        Scope::Palette,
        &[K(Esc)],
        Action::Back,
        "close",
        Some("close"),
    ),
    b(Scope::Palette, &[Ctrl('c')], Action::Quit, "quit", None),
    doc(
        Scope::Palette,
        &[Ctrl('u'), K(Backspace)],
        "clear, delete a character",
    ),
    b(
        Scope::Editor,
        &[K(Tab), K(Down)],
        Action::Down,
        "next field",
        None,
    ),
    b(
        Scope::Editor,
        &[K(BackTab), K(Up)],
        Action::Up,
        "previous field",
        None,
    ),
    b(
        Scope::Editor,
        &[K(Enter)],
        Action::Enter,
        "create",
        Some("create"),
    ),
    b(
        Scope::Editor,
        &[K(Esc)],
        Action::Back,
        "cancel",
        Some("cancel"),
    ),
    b(Scope::Editor, &[Ctrl('c')], Action::Quit, "quit", None),
    doc(Scope::Editor, &[C(' ')], "toggle a true/false field"),
    doc(
        Scope::Editor,
        &[Ctrl('u'), K(Backspace)],
        "clear the field, delete a character",
    ),
    b(
        Scope::SecretInput,
        &[K(Enter)],
        Action::Enter,
        "send it to the hub (sealed there; the console keeps nothing of it)",
        Some("set"),
    ),
    b(
        Scope::SecretInput,
        &[K(Esc)],
        Action::Back,
        "cancel (what was typed is wiped)",
        Some("cancel"),
    ),
    b(Scope::SecretInput, &[Ctrl('c')], Action::Quit, "quit", None),
    doc(
        Scope::SecretInput,
        &[Ctrl('u'), K(Backspace)],
        "clear, delete a character",
    ),
];

/// The action for `key` in the first scope of `chain` that binds it.
pub fn resolve(chain: &[Scope], key: &KeyEvent) -> Option<Action> {
    chain.iter().find_map(|scope| {
        KEYMAP
            .iter()
            .filter(|b| b.scope == *scope)
            .find(|b| b.keys.iter().any(|k| k.matches(key)))
            .and_then(|b| b.action)
    })
}

/// The scopes the help overlay lists, in order.
pub fn help_scopes() -> Vec<Scope> {
    let mut out = vec![Scope::Global];
    out.extend(View::ALL.iter().map(|v| Scope::Screen(*v)));
    out.extend([
        Scope::Form,
        Scope::Result,
        Scope::Confirm,
        Scope::Secret,
        Scope::Reader,
        Scope::Prompt,
        Scope::Palette,
        Scope::Editor,
        Scope::SecretInput,
    ]);
    out
}

/// `(heading, [(keys, help)])` for every scope with bindings.
pub fn help_groups() -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    help_scopes()
        .into_iter()
        .map(|scope| {
            let rows = KEYMAP
                .iter()
                .filter(|b| b.scope == scope)
                .map(|b| {
                    let keys = b.keys_label();
                    (if keys.is_empty() { "…".into() } else { keys }, b.help)
                })
                .collect::<Vec<_>>();
            (scope.title(), rows)
        })
        .filter(|(_, rows)| !rows.is_empty())
        .collect()
}

/// `(key, hint)` pairs for the status bar: help first, then the most
/// specific scope's hinted keys, then the rest of the chain's.
pub fn hints(chain: &[Scope]) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let first_key = |b: &Binding| b.keys.first().map(|k| k.label()).unwrap_or_default();
    if chain.contains(&Scope::Global) {
        out.push(("?".into(), "help"));
    }
    for scope in chain {
        for b in KEYMAP.iter().filter(|b| b.scope == *scope) {
            if let Some(h) = b.hint
                && !out.iter().any(|(_, seen)| *seen == h)
            {
                out.push((first_key(b), h));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn scopes_resolve_most_specific_first() {
        let attest = [Scope::Screen(View::Attestation), Scope::Global];
        assert_eq!(
            resolve(&attest, &ev(KeyCode::Char('n'))),
            Some(Action::Keep)
        );
        let audit = [Scope::Screen(View::Audit), Scope::Global];
        assert_eq!(
            resolve(&audit, &ev(KeyCode::Char('n'))),
            Some(Action::OlderPage)
        );
        assert_eq!(resolve(&audit, &ev(KeyCode::Char('q'))), Some(Action::Quit));
        // In a form, letters are text: nothing resolves them.
        assert_eq!(resolve(&[Scope::Form], &ev(KeyCode::Char('q'))), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(resolve(&[Scope::Form], &ctrl_c), Some(Action::Quit));
        assert_eq!(resolve(&audit, &ctrl_c), Some(Action::Quit));
        // Shifted letters arrive with SHIFT set.
        let shift_h = KeyEvent::new(KeyCode::Char('H'), KeyModifiers::SHIFT);
        assert_eq!(resolve(&attest, &shift_h), Some(Action::History));
        let alt_esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::ALT);
        assert_eq!(resolve(&[Scope::Form], &alt_esc), Some(Action::Back));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        for scope in help_scopes() {
            let mut seen: Vec<Key> = Vec::new();
            for b in KEYMAP.iter().filter(|b| b.scope == scope) {
                for k in b.keys {
                    assert!(!seen.contains(k), "{k:?} twice in {scope:?}");
                    seen.push(*k);
                }
            }
        }
    }

    #[test]
    fn help_and_hints_come_from_the_map() {
        let groups = help_groups();
        let total: usize = groups.iter().map(|(_, r)| r.len()).sum();
        assert_eq!(total, KEYMAP.len(), "every binding is in the help");
        let hints = hints(&[Scope::Screen(View::Permissions), Scope::Global]);
        assert_eq!(hints[0], ("?".into(), "help"));
        assert_eq!(hints[1], ("a".into(), "approve"));
        assert!(hints.contains(&("/".into(), "filter")));
        assert!(
            !hints.iter().any(|(_, h)| *h == "keep"),
            "not on this screen"
        );
    }
}
