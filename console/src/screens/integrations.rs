//! Integrations: the hub-side integrations (Prometheus, Alertmanager,
//! Proxmox VE, UniFi, signed third-party ones). Add one (`c`: a form with
//! what `sonde-hub integrations add` takes; a third-party one from its
//! signed manifest directory; the hub's refusal is shown in the form, and
//! the new integration is pending), approve a pending one (shows what it
//! reaches and asks `y`), test it (its test probe, audited with the
//! operator as actor), set or replace its credential (`e`: a masked input,
//! see [`CredentialInput`]), clear the credential (asks `y`), remove it
//! (asks `y`), rotate the credential key (asks `y`). Credentials are never
//! shown: only whether one is set, its keyed fingerprint and when.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::{IntegrationAction, IntegrationInfo};

use super::{Ctx, Effect, Screen, View, empty_lines, kv, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::form::{self, Form};
use crate::keymap::Scope;
use crate::list::ListState;
use crate::modal::{Confirm, Modal, Tone, overlay};
use crate::table::{self, Column, cell, plain};
use crate::text::{clip, utc};
use crate::theme::Theme;
use crate::worker::{IntegrationAddForm, Request, SecretText};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// Longest credential the hub accepts (bytes), so the input buffer is
/// allocated once at this size and never reallocated (a reallocation
/// would leave a copy of the secret behind in freed memory).
pub const MAX_SECRET: usize = 4096;

/// The "add integration" form, kept open while the hub answers so that a
/// refusal is shown in it with everything typed kept.
#[derive(Debug, Clone)]
pub struct AddForm {
    pub form: Form,
    /// The hub's refusal of the last attempt, word for word.
    pub error: Option<String>,
    pub sending: bool,
}

impl Default for AddForm {
    fn default() -> Self {
        AddForm {
            form: form::integration_form(),
            error: None,
            sending: false,
        }
    }
}

/// The request the form describes: exactly the fields typed (empty ones
/// left out), or what is wrong with them. Cross-field rules the schema
/// cannot say are checked here; the hub checks everything again.
pub fn add_request(form: &Form) -> Result<IntegrationAddForm, String> {
    let values = form.values()?;
    let text = |k: &str| {
        values
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let kind = text("kind");
    let manifest_dir = text("manifest_dir");
    match (&kind, &manifest_dir) {
        (None, None) => {
            return Err(format!(
                "kind: one of {}, or a third-party manifest_dir",
                form::INTEGRATION_KINDS.join(", ")
            ));
        }
        (Some(_), Some(_)) => {
            return Err(
                "kind or manifest_dir, not both (a third-party manifest names its own kind)".into(),
            );
        }
        _ => {}
    }
    let fingerprint = text("fingerprint");
    let ca_file = text("ca_file");
    if fingerprint.is_some() && ca_file.is_some() {
        return Err("fingerprint or ca_file: pin one, not both".into());
    }
    let base_url = text("base_url").unwrap_or_default();
    if (fingerprint.is_some() || ca_file.is_some()) && !base_url.starts_with("https://") {
        return Err("base_url: a TLS pin needs an https:// URL".into());
    }
    let mut settings = Map::new();
    if let Some(q) = text("queries") {
        if kind.as_deref() != Some("prometheus") {
            return Err("queries: only a prometheus integration takes approved queries".into());
        }
        let mut queries = Map::new();
        for item in q.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, expr)) = item.split_once('=') else {
                return Err(format!("queries: {:?} is not NAME=PROMQL", clip(item, 60)));
            };
            let name = name.trim();
            if queries
                .insert(name.to_owned(), Value::String(expr.trim().to_owned()))
                .is_some()
            {
                return Err(format!("queries: {name:?} is named twice"));
            }
        }
        settings.insert("queries".into(), Value::Object(queries));
    }
    if let Some(site) = text("site") {
        if kind.as_deref() != Some("unifi") {
            return Err("site: only a unifi integration takes a site".into());
        }
        settings.insert("site".into(), Value::String(site));
    }
    Ok(IntegrationAddForm {
        add: sonde_admin::api::IntegrationAdd {
            name: text("name").unwrap_or_default(),
            kind: kind.unwrap_or_default(),
            base_url,
            ca_pem: None,
            fingerprint,
            settings,
            manifest: None,
            signature: None,
        },
        ca_file,
        manifest_dir,
    })
}

/// Typing an integration's credential. What is typed is never drawn (only
/// how many characters), never copied, never logged (`Debug` redacts it),
/// and lives in one buffer allocated once and zeroed when dropped; on
/// Enter it moves into the request (see `worker::SecretText`), so the
/// input is empty again while the hub answers.
#[derive(Clone)]
pub struct CredentialInput {
    pub integration: String,
    pub kind: String,
    /// What is set now (fingerprint, when, by whom), to say it is replaced.
    pub current: Option<String>,
    input: Zeroizing<String>,
    pub error: Option<String>,
    pub sending: bool,
}

impl std::fmt::Debug for CredentialInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialInput")
            .field("integration", &self.integration)
            .field("input", &"<redacted>")
            .field("error", &self.error)
            .field("sending", &self.sending)
            .finish()
    }
}

fn secret_buffer() -> Zeroizing<String> {
    Zeroizing::new(String::with_capacity(MAX_SECRET))
}

impl CredentialInput {
    pub fn new(i: &IntegrationInfo) -> CredentialInput {
        CredentialInput {
            integration: i.name.clone(),
            kind: i.kind.clone(),
            current: i.credential.as_ref().map(credential_line),
            input: secret_buffer(),
            error: None,
            sending: false,
        }
    }

    /// Characters typed so far (all that is ever shown of them).
    pub fn typed(&self) -> usize {
        self.input.chars().count()
    }

    /// A typed character: kept within [`MAX_SECRET`] bytes (no
    /// reallocation); control characters are not part of a credential.
    pub fn push(&mut self, c: char) -> bool {
        if c.is_control() || self.input.len() + c.len_utf8() > MAX_SECRET {
            return false;
        }
        self.input.push(c);
        self.error = None;
        true
    }

    pub fn backspace(&mut self) {
        self.input.pop();
    }

    pub fn clear(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.input);
    }

    /// The request that sets it, taking the text out of the input (the
    /// buffer moves into the request); or why it cannot be sent, in words
    /// that never repeat it.
    pub fn take_request(&mut self) -> Result<Request, String> {
        check_secret(&self.kind, &self.input)?;
        let secret = std::mem::replace(&mut self.input, secret_buffer());
        Ok(Request::SetCredential(
            self.integration.clone(),
            SecretText::new(secret),
        ))
    }
}

/// The hub's rules for a credential's form (`integrations::admin`),
/// checked before sending; messages never include the secret.
fn check_secret(kind: &str, secret: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Err("nothing typed yet".into());
    }
    if secret.len() > MAX_SECRET {
        return Err(format!("a credential is at most {MAX_SECRET} bytes"));
    }
    if secret.trim() != secret {
        return Err("a credential cannot start or end with a space".into());
    }
    if kind == "proxmox"
        && !secret
            .split_once('=')
            .is_some_and(|(id, s)| id.contains('@') && id.contains('!') && !s.is_empty())
    {
        return Err(
            "a Proxmox VE token is USER@REALM!TOKENID=SECRET (as `pveum user token add` prints it)"
                .into(),
        );
    }
    Ok(())
}

/// What the credential of this kind is, for the input's help line.
fn credential_hint(kind: &str) -> &'static str {
    match kind {
        "proxmox" => {
            "an API token USER@REALM!TOKENID=SECRET (a PVEAuditor token: `pveum user token add`)"
        }
        "unifi" => "an API key (UniFi Network: Settings → Control Plane → Integrations)",
        "prometheus" | "alertmanager" => {
            "a bearer token (only if a proxy in front of it asks for one)"
        }
        _ => "what its manifest's auth needs (a bearer token or an API key)",
    }
}

/// The add form over the screen: the fields, then what Enter would do —
/// the hub's refusal of the last attempt, word for word, if there was one.
pub fn render_add_form(f: &mut Frame, area: Rect, a: &AddForm, t: &Theme) {
    let inner = overlay(
        f,
        area,
        110,
        34,
        "Add an integration — Enter adds it (pending until approved), Esc cancels",
        t,
    );
    let mut lines = crate::screens::tryit::form_lines(&a.form, !a.sending, t);
    lines.push(Line::raw(""));
    if a.sending {
        lines.push(Line::styled("sending to the hub…", t.dim()));
    } else if let Some(e) = &a.error {
        lines.push(Line::styled(
            format!("✗ the hub refused it: {}", clip(e, 600)),
            t.bad(),
        ));
        lines.push(Line::styled("fix the field and press Enter again", t.dim()));
    } else {
        lines.push(match add_request(&a.form) {
            Ok(_) => Line::styled(
                "ready: Enter adds it (pending; a approves it, e sets its credential)",
                t.good(),
            ),
            Err(e) => Line::styled(format!("not yet: {}", clip(&e, 300)), t.bad()),
        });
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// The masked input: never a character of the secret, only how many.
pub fn render_credential(f: &mut Frame, area: Rect, c: &CredentialInput, t: &Theme) {
    let inner = overlay(
        f,
        area,
        100,
        11,
        &format!(
            "Credential of {} — Enter sets it, Esc cancels",
            clip(&c.integration, 40)
        ),
        t,
    );
    let typed = c.typed();
    let mut lines = vec![
        Line::styled(
            format!("{}: {}", clip(&c.kind, 40), credential_hint(&c.kind)),
            t.dim(),
        ),
        Line::from(vec![
            ratatui::text::Span::raw(if c.sending {
                "sending to the hub…".to_owned()
            } else if typed == 0 {
                "type or paste it (nothing of it is shown)".to_owned()
            } else {
                format!("{typed} character(s) typed, not shown")
            }),
            ratatui::text::Span::styled("_", t.key()),
        ]),
        Line::styled(
            match &c.current {
                Some(cur) => format!("replaces the credential {cur}"),
                None => "no credential is set yet".to_owned(),
            },
            t.dim(),
        ),
        Line::styled(
            "sealed by the hub with a key outside its database; never shown or returned again",
            t.dim(),
        ),
    ];
    if let Some(e) = &c.error {
        lines.push(Line::styled(format!("✗ {}", clip(e, 300)), t.bad()));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

const SORTS: &[&str] = &["name", "kind", "state"];

const COLUMNS: [Column; 6] = [
    Column::new("NAME", 6, 32, 0),
    Column::new("KIND", 6, 16, 1),
    Column::whole("STATE", 0),
    Column::new("URL", 10, 60, 2),
    Column::new("TLS", 8, 40, 4),
    Column::new("CREDENTIAL", 6, 20, 3),
];

#[derive(Debug, Clone, Default)]
pub struct Integrations {
    pub list: ListState,
}

/// A set credential as the operator recognises it: keyed fingerprint,
/// when, by whom (never any of the secret).
fn credential_line(c: &sonde_admin::api::CredentialInfo) -> String {
    format!("{} set {} by {}", c.fingerprint, utc(c.set_at_ms), c.set_by)
}

fn credential(i: &IntegrationInfo) -> String {
    i.credential
        .as_ref()
        .map(|c| c.fingerprint.clone())
        .unwrap_or_else(|| "none".into())
}

impl Integrations {
    pub fn rows<'a>(&self, data: &'a HubData) -> Vec<&'a IntegrationInfo> {
        let mut rows: Vec<&IntegrationInfo> = data
            .integrations
            .iter()
            .filter(|i| {
                matches_filter(
                    &self.list.filter,
                    &[&i.name, &i.kind, &i.state, &i.base_url],
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.list.sort.column {
                1 => a.kind.cmp(&b.kind),
                2 => a.state.cmp(&b.state),
                _ => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.name.cmp(&b.name));
            if self.list.sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    fn ids(rows: &[&IntegrationInfo]) -> Vec<String> {
        rows.iter().map(|i| i.name.clone()).collect()
    }

    pub fn selected<'a>(&self, data: &'a HubData) -> Option<&'a IntegrationInfo> {
        let rows = self.rows(data);
        rows.get(self.list.selection.cursor(&Integrations::ids(&rows))?)
            .copied()
    }
}

/// What approving lets MCP clients reach, for the confirmation.
fn approval(i: &IntegrationInfo) -> Confirm {
    Confirm {
        title: format!("Approve integration {} ({})?", clip(&i.name, 64), i.kind),
        lines: vec![
            (format!("{} · TLS: {}", i.base_url, i.trust), Tone::Normal),
            (
                format!(
                    "MCP keys whose agent scope matches {:?} may run: {}",
                    i.name,
                    i.probes.join(", ")
                ),
                Tone::Warn,
            ),
            (
                format!(
                    "manifest sha256 {}{}",
                    i.manifest_sha256,
                    if i.signed {
                        " (signed by a trusted publisher)"
                    } else {
                        ""
                    }
                ),
                Tone::Dim,
            ),
            (format!("credential: {}", credential(i)), Tone::Dim),
        ],
        request: Request::IntegrationAction(i.name.clone(), IntegrationAction::Approve),
    }
}

impl Screen for Integrations {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Integrations), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        vec![Request::Integrations]
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let ids = Integrations::ids(&self.rows(ctx.data));
        if self.list.navigate(action, &ids) {
            return Vec::new();
        }
        match action {
            Action::Approve => {
                if let Some(i) = self.selected(ctx.data) {
                    if i.state == "approved" {
                        return vec![Effect::Say(format!("{} is already approved", i.name))];
                    }
                    return vec![Effect::Open(Modal::Confirm(approval(i)))];
                }
            }
            Action::Test => {
                if let Some(i) = self.selected(ctx.data) {
                    return vec![Effect::Send(Request::TestIntegration(i.name.clone()))];
                }
            }
            Action::Revoke => {
                if let Some(i) = self.selected(ctx.data) {
                    return vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Remove integration {}?", clip(&i.name, 64)),
                        lines: vec![(
                            "Its credential is deleted too; MCP clients lose it at once.".into(),
                            Tone::Warn,
                        )],
                        request: Request::IntegrationAction(
                            i.name.clone(),
                            IntegrationAction::Remove,
                        ),
                    }))];
                }
            }
            Action::Create => {
                return vec![Effect::Open(Modal::IntegrationForm(AddForm::default()))];
            }
            Action::SetCredential => {
                if let Some(i) = self.selected(ctx.data) {
                    return vec![Effect::Open(Modal::Credential(CredentialInput::new(i)))];
                }
            }
            Action::ClearCredential => {
                if let Some(i) = self.selected(ctx.data) {
                    let Some(c) = &i.credential else {
                        return vec![Effect::Say(format!(
                            "{} has no credential; nothing to clear",
                            clip(&i.name, 64)
                        ))];
                    };
                    return vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Clear the credential of {}?", clip(&i.name, 64)),
                        lines: vec![
                            (
                                credential_line(c),
                                Tone::Dim,
                            ),
                            (
                                "The sealed secret is deleted; calls that need it fail until a new one is set (e).".into(),
                                Tone::Warn,
                            ),
                        ],
                        request: Request::IntegrationAction(i.name.clone(), IntegrationAction::ClearCredential),
                    }))];
                }
            }
            Action::RotateKey => {
                return vec![Effect::Open(Modal::Confirm(Confirm {
                    title: "Rotate the integrations' credential key?".into(),
                    lines: vec![(
                        "Every stored credential is re-encrypted under a new key in integrations.key; the old key is gone afterwards (backups of it no longer open anything).".into(),
                        Tone::Normal,
                    )],
                    request: Request::RotateIntegrationKey,
                }))];
            }
            Action::Copy => {
                if let Some(i) = self.selected(ctx.data) {
                    return vec![Effect::Copy {
                        what: format!("the name of {}", clip(&i.name, 40)),
                        text: i.name.clone(),
                    }];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    list_screen!(Integrations, SORTS);

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let rows = self.rows(ctx.data);
        let ids = Integrations::ids(&rows);
        let [list, detail] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Length(if self.list.detail_open { 13 } else { 0 }),
        ])
        .areas(area);
        let table_rows = rows
            .iter()
            .map(|i| {
                vec![
                    plain(i.name.clone()),
                    plain(i.kind.clone()),
                    cell(
                        i.state.clone(),
                        if i.state == "pending" {
                            t.warn()
                        } else {
                            Style::new()
                        },
                    ),
                    plain(i.base_url.clone()),
                    cell(i.trust.clone(), t.dim()),
                    plain(credential(i)),
                ]
            })
            .collect();
        let sorted = match self.list.sort.column {
            1 => 1,
            2 => 2,
            _ => 0,
        };
        table::render(
            f,
            list,
            &table::Table {
                title: list_title(
                    "Integrations",
                    rows.len(),
                    ctx.data.integrations.len(),
                    &self.list.filter,
                ),
                columns: &COLUMNS,
                rows: table_rows,
                selected: self.list.selection.cursor(&ids),
                sorted: Some((sorted, self.list.sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("integrations"),
                    ctx.data.integrations.len(),
                    &self.list.filter,
                    "integration",
                    vec![
                        Line::raw("No integrations."),
                        Line::styled(
                            "c adds one (or: sonde-hub integrations add NAME --kind prometheus|alertmanager|proxmox|unifi --url URL)",
                            t.dim(),
                        ),
                    ],
                ),
                focused: false,
            },
            t,
        );
        if self.list.detail_open
            && let Some(i) = self.selected(ctx.data)
        {
            let lines = vec![
                kv(
                    t,
                    "kind",
                    format!(
                        "{}{}",
                        i.kind,
                        if i.signed {
                            " (signed third-party)"
                        } else {
                            ""
                        }
                    ),
                ),
                kv(t, "base url", i.base_url.clone()),
                kv(t, "tls", i.trust.clone()),
                kv(
                    t,
                    "settings",
                    serde_json::to_string(&i.settings).unwrap_or_default(),
                ),
                kv(t, "probes", i.probes.join(", ")),
                kv(t, "diagnose", i.diagnose_categories.join(", ")),
                kv(t, "manifest sha256", i.manifest_sha256.clone()),
                kv(
                    t,
                    "added",
                    format!("{} by {}", utc(i.created_at_ms), i.created_by),
                ),
                kv(
                    t,
                    "approved",
                    match (&i.approved_at_ms, &i.approved_by) {
                        (Some(at), Some(by)) => format!("{} by {by}", utc(*at)),
                        _ => "pending: a to approve".into(),
                    },
                ),
                kv(
                    t,
                    "credential",
                    match &i.credential {
                        Some(c) => credential_line(c),
                        None => "none: e sets it".into(),
                    },
                ),
            ];
            f.render_widget(
                Paragraph::new(lines)
                    .block(table::block(
                        &format!("Integration {}", clip(&i.name, 40)),
                        detail,
                        Style::new(),
                    ))
                    .wrap(Wrap { trim: false }),
                detail,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use serde_json::Map;

    fn info(name: &str, state: &str) -> IntegrationInfo {
        IntegrationInfo {
            name: name.into(),
            kind: "proxmox".into(),
            base_url: "https://pve1.lan:8006/".into(),
            trust: "pinned certificate AB:CD".into(),
            settings: Map::new(),
            manifest_sha256: "00".repeat(32),
            signed: false,
            builtin: true,
            state: state.into(),
            created_at_ms: 0,
            created_by: "operator:root".into(),
            approved_at_ms: None,
            approved_by: None,
            credential: None,
            probes: vec!["proxmox.nodes".into(), "proxmox.guests".into()],
            diagnose_categories: vec!["proxmox".into()],
        }
    }

    #[test]
    fn integrations_screen_lists_approves_with_confirmation_and_never_shows_a_secret() {
        let mut data = HubData {
            integrations: vec![info("pve", "pending"), info("zz\u{1b}[31m", "approved")],
            ..HubData::default()
        };
        data.loaded.insert("integrations");
        let ctx = Ctx {
            data: &data,
            now_ms: 0,
            theme: crate::theme::Theme::default(),
            frame: 0,
        };
        let mut s = Integrations::default();
        s.sync(&ctx);
        let effects = s.update(Action::Approve, &ctx);
        match &effects[..] {
            [Effect::Open(Modal::Confirm(c))] => {
                assert!(c.title.contains("pve"));
                assert_eq!(
                    c.request,
                    Request::IntegrationAction("pve".into(), IntegrationAction::Approve)
                );
            }
            other => panic!("{other:?}"),
        }
        let effects = s.update(Action::Test, &ctx);
        assert!(matches!(&effects[..], [Effect::Send(Request::TestIntegration(n))] if n == "pve"));
        s.update(Action::Enter, &ctx);
        for (w, h) in [(120, 30), (40, 10), (8, 3)] {
            let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
            term.draw(|f| s.view(f, f.area(), &ctx)).unwrap();
            let text: String = term
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect();
            assert!(!text.contains('\u{1b}'), "hub text is escaped");
            if w == 120 {
                assert!(text.contains("pve") && text.contains("pending"), "{text}");
                assert!(text.contains("none: e sets it"), "{text}");
            }
        }
    }

    // ---- the add form, the credential input, clearing (through the app) ----

    use crate::app::App;
    use crate::fixtures::{answer, render};
    use crate::worker::{Failure, Reply, Response};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn app_with(infos: Vec<IntegrationInfo>) -> App {
        let mut app = App::new("/tmp/hub/admin.sock");
        app.view = View::Integrations;
        answer(&mut app, Request::Integrations, Reply::Integrations(infos));
        app
    }

    fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            assert!(
                key(app, KeyCode::Char(c)).is_empty(),
                "typing {c:?} sent something"
            );
        }
    }

    /// Focus the add form's field `name` (Tab from the first).
    fn field(app: &mut App, name: &str) {
        let Some(Modal::IntegrationForm(a)) = &app.modal else {
            panic!("no add form: {:?}", app.modal);
        };
        let at = a
            .form
            .fields
            .iter()
            .position(|f| f.spec.name == name)
            .unwrap();
        let from = a.form.focus;
        let n = a.form.fields.len();
        for _ in 0..(at + n - from) % n {
            key(app, KeyCode::Tab);
        }
    }

    fn with_credential(mut i: IntegrationInfo) -> IntegrationInfo {
        i.credential = Some(sonde_admin::api::CredentialInfo {
            fingerprint: "fp:0123abcd".into(),
            set_at_ms: 1_700_000_000_000,
            set_by: "operator:root".into(),
        });
        i
    }

    #[test]
    fn add_form_sends_exactly_the_typed_fields() {
        let mut app = app_with(vec![]);
        assert!(render(&app, 160, 40).contains("c adds one"));
        key(&mut app, KeyCode::Char('c'));
        assert!(matches!(app.modal, Some(Modal::IntegrationForm(_))));
        typed(&mut app, "prom1");
        field(&mut app, "kind");
        typed(&mut app, "prometheus");
        field(&mut app, "base_url");
        typed(&mut app, "http://127.0.0.1:9090");
        field(&mut app, "queries");
        typed(
            &mut app,
            "disk_free=node_filesystem_avail_bytes{mountpoint=\"/\"}; jobs=count by (job, instance)(up)",
        );
        let screen = render(&app, 160, 45);
        assert!(screen.contains("ready: Enter adds it"), "{screen}");
        let sent = key(&mut app, KeyCode::Enter);
        let [Request::AddIntegration(req)] = &sent[..] else {
            panic!("{sent:?}");
        };
        let mut queries = Map::new();
        queries.insert(
            "disk_free".into(),
            Value::String("node_filesystem_avail_bytes{mountpoint=\"/\"}".into()),
        );
        queries.insert(
            "jobs".into(),
            Value::String("count by (job, instance)(up)".into()),
        );
        let mut settings = Map::new();
        settings.insert("queries".into(), Value::Object(queries));
        assert_eq!(
            **req,
            IntegrationAddForm {
                add: sonde_admin::api::IntegrationAdd {
                    name: "prom1".into(),
                    kind: "prometheus".into(),
                    base_url: "http://127.0.0.1:9090".into(),
                    ca_pem: None,
                    fingerprint: None,
                    settings,
                    manifest: None,
                    signature: None,
                },
                ca_file: None,
                manifest_dir: None,
            }
        );
        // Open while the hub answers; Enter does not send twice.
        assert!(render(&app, 160, 45).contains("sending to the hub"));
        assert!(key(&mut app, KeyCode::Enter).is_empty());
        // Added: the form closes, the new one is selected.
        answer(
            &mut app,
            Request::AddIntegration(req.clone()),
            Reply::Done("added".into()),
        );
        assert!(app.modal.is_none());
        assert_eq!(app.integrations.list.selection.id(), Some("prom1"));

        // A pinned Proxmox VE from its fingerprint; a third-party one from
        // its manifest directory (the worker reads the files).
        let mut app = app_with(vec![]);
        key(&mut app, KeyCode::Char('c'));
        typed(&mut app, "pve1");
        field(&mut app, "kind");
        typed(&mut app, "proxmox");
        field(&mut app, "base_url");
        typed(&mut app, "https://pve1.lan:8006");
        field(&mut app, "fingerprint");
        typed(&mut app, &"ab:".repeat(31));
        typed(&mut app, "ab");
        let sent = key(&mut app, KeyCode::Enter);
        let [Request::AddIntegration(req)] = &sent[..] else {
            panic!("{sent:?}");
        };
        assert_eq!(
            req.add.fingerprint.as_deref(),
            Some(&*format!("{}ab", "ab:".repeat(31)))
        );
        assert!(req.add.settings.is_empty() && req.ca_file.is_none());
        let mut app = app_with(vec![]);
        key(&mut app, KeyCode::Char('c'));
        typed(&mut app, "buildinfo");
        field(&mut app, "base_url");
        typed(&mut app, "http://127.0.0.1:9090");
        field(&mut app, "manifest_dir");
        typed(&mut app, "/etc/sonde/integrations/buildinfo");
        let sent = key(&mut app, KeyCode::Enter);
        let [Request::AddIntegration(req)] = &sent[..] else {
            panic!("{sent:?}");
        };
        assert_eq!(req.add.kind, "");
        assert_eq!(
            req.manifest_dir.as_deref(),
            Some("/etc/sonde/integrations/buildinfo")
        );
    }

    #[test]
    fn add_form_shows_bad_input_and_the_hubs_refusal_in_the_form() {
        let mut app = app_with(vec![]);
        key(&mut app, KeyCode::Char('c'));
        typed(&mut app, "Bad Name");
        let screen = render(&app, 160, 45);
        assert!(screen.contains("✗ must match"), "{screen}");
        assert!(screen.contains("not yet: name"), "{screen}");
        assert!(key(&mut app, KeyCode::Enter).is_empty(), "nothing sent");
        assert!(matches!(app.modal, Some(Modal::IntegrationForm(_))));
        // Cross-field rules.
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        typed(&mut app, "unifi1");
        field(&mut app, "kind");
        typed(&mut app, "prometheus");
        field(&mut app, "base_url");
        typed(&mut app, "http://192.0.2.1:8443");
        field(&mut app, "site");
        typed(&mut app, "default");
        let screen = render(&app, 160, 45);
        assert!(
            screen.contains("site: only a unifi integration takes a site"),
            "{screen}"
        );
        field(&mut app, "kind");
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        typed(&mut app, "unifi");
        field(&mut app, "fingerprint");
        typed(&mut app, &"0".repeat(64));
        assert!(
            render(&app, 160, 45).contains("a TLS pin needs an https:// URL"),
            "pin on http"
        );
        field(&mut app, "fingerprint");
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        let sent = key(&mut app, KeyCode::Enter);
        let [Request::AddIntegration(req)] = &sent[..] else {
            panic!("{sent:?}");
        };
        // The hub's refusal, word for word, in the form; the fields stay.
        let refusal = "an agent is named \"unifi1\"; agents and integrations share names (MCP clients pass either as the target)";
        app.on_response(Response {
            request: Request::AddIntegration(req.clone()),
            result: Err(Failure {
                message: refusal.into(),
                unreachable: false,
            }),
        });
        let screen = render(&app, 160, 45);
        assert!(
            screen.contains("the hub refused it: an agent is named \"unifi1\""),
            "{screen}"
        );
        assert!(
            screen.contains("unifi1") && screen.contains("http://192.0.2.1:8443"),
            "{screen}"
        );
        let Some(Modal::IntegrationForm(a)) = &app.modal else {
            panic!("the form closed");
        };
        assert!(!a.sending);
        // Editing clears the refusal; Esc closes without sending.
        typed(&mut app, "x");
        assert!(!render(&app, 160, 45).contains("the hub refused it"));
        assert!(key(&mut app, KeyCode::Esc).is_empty());
        assert!(app.modal.is_none());
    }

    #[test]
    fn credential_input_is_masked_and_never_kept_after_sending() {
        let mut app = app_with(vec![info("pve", "pending")]);
        key(&mut app, KeyCode::Char('e'));
        assert!(matches!(app.modal, Some(Modal::Credential(_))));
        // Characters found nowhere else on screen, so any echo shows.
        let secret = "root@pam!sonde=ЖΩ§ЖΩ§-7f3e";
        typed(&mut app, secret);
        for (w, h) in [(160, 45), (60, 12), (20, 6)] {
            let screen = render(&app, w, h);
            for c in ['Ж', 'Ω', '§'] {
                assert!(!screen.contains(c), "{c:?} drawn at {w}x{h}:\n{screen}");
            }
            assert!(
                !screen.contains("sonde=") && !screen.contains("7f3e"),
                "{screen}"
            );
            if w == 160 {
                assert!(
                    screen.contains("26 character(s) typed, not shown"),
                    "{screen}"
                );
            }
        }
        let debug = format!("{:?}", app.modal);
        assert!(!debug.contains("ЖΩ§"), "{debug}");
        let sent = key(&mut app, KeyCode::Enter);
        let [Request::SetCredential(name, s)] = &sent[..] else {
            panic!("{sent:?}");
        };
        assert_eq!(name, "pve");
        assert_eq!(s.expose(), secret);
        assert!(!format!("{sent:?}").contains("ЖΩ§"));
        // Nothing of it stays in the console's state while the hub answers.
        let Some(Modal::Credential(c)) = &app.modal else {
            panic!("closed before the answer");
        };
        assert_eq!(c.typed(), 0);
        assert!(c.sending);
        assert!(render(&app, 160, 45).contains("sending to the hub"));
        // Refused: said in the input, retyped from nothing.
        app.on_response(Response {
            request: sent[0].clone(),
            result: Err(Failure {
                message: "a credential cannot hold control characters or surrounding spaces".into(),
                unreachable: false,
            }),
        });
        let screen = render(&app, 160, 45);
        assert!(
            screen.contains("the hub refused it: a credential cannot"),
            "{screen}"
        );
        // A malformed Proxmox token is refused before sending, without
        // repeating it.
        typed(&mut app, "ЖΩ§");
        assert!(key(&mut app, KeyCode::Enter).is_empty());
        let screen = render(&app, 160, 45);
        assert!(
            screen.contains("USER@REALM!TOKENID=SECRET") && !screen.contains('Ж'),
            "{screen}"
        );
        // Esc drops it.
        key(&mut app, KeyCode::Esc);
        assert!(app.modal.is_none());
        // Set: closes.
        key(&mut app, KeyCode::Char('e'));
        typed(&mut app, secret);
        let sent = key(&mut app, KeyCode::Enter);
        answer(
            &mut app,
            sent[0].clone(),
            Reply::Done("credential set".into()),
        );
        assert!(app.modal.is_none());
        // The key map and the hints name the new keys.
        let hints = crate::keymap::hints(&app.scopes());
        for want in ["add", "credential"] {
            assert!(hints.iter().any(|(_, h)| *h == want), "{hints:?}");
        }
    }

    #[test]
    fn secret_text_is_wiped_and_redacted() {
        let mut s = SecretText::new(Zeroizing::new("tok-123".to_owned()));
        assert_eq!(format!("{s:?}"), "SecretText(<redacted>)");
        s.wipe();
        assert!(s.is_empty());
    }

    #[test]
    fn clearing_a_credential_asks_for_confirmation() {
        let mut app = app_with(vec![
            info("bare", "approved"),
            with_credential(info("pve", "approved")),
        ]);
        // `bare` (first) has none: nothing to ask.
        assert!(key(&mut app, KeyCode::Char('E')).is_empty());
        assert!(app.modal.is_none());
        assert!(app.message.as_ref().unwrap().text.contains("no credential"));
        key(&mut app, KeyCode::Down);
        assert!(key(&mut app, KeyCode::Char('E')).is_empty(), "asks first");
        let screen = render(&app, 160, 45);
        assert!(screen.contains("Clear the credential of pve?"), "{screen}");
        assert!(screen.contains("fp:0123abcd"), "{screen}");
        // Any key but y: nothing is sent.
        assert!(key(&mut app, KeyCode::Char('n')).is_empty());
        assert!(app.modal.is_none());
        key(&mut app, KeyCode::Char('E'));
        let sent = key(&mut app, KeyCode::Char('y'));
        assert_eq!(
            sent,
            vec![Request::IntegrationAction(
                "pve".into(),
                IntegrationAction::ClearCredential
            )]
        );
    }
}
