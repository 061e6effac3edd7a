//! The console's state and how keys and hub answers change it. No terminal
//! and no I/O here: a key becomes an [`Action`] through the key map, the
//! open overlay or the current screen turns it into [`Effect`]s, and the
//! effects become the [`Request`]s returned to the caller (the run loop
//! hands them to the worker). Terminal output (OSC 52) is queued in
//! [`App::output`]. So the whole key → action → state logic is testable on
//! its own.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::HashMap;

use crate::action::Action;
use crate::data::HubData;
use crate::keymap::{self, Scope};
use crate::modal::{Modal, Prompt, PromptFor};
use crate::palette::Palette;
use crate::screens::attestation::AttestationScreen;
use crate::screens::audit::Audit;
use crate::screens::enrollments::Enrollments;
use crate::screens::fleet::Fleet;
use crate::screens::integrations::Integrations;
use crate::screens::keys::Keys;
use crate::screens::oauth::OAuthScreen;
use crate::screens::paths::Paths;
use crate::screens::permissions::Permissions;
use crate::screens::tryit::TryIt;
use crate::screens::{Ctx, Effect, Screen, View};
use crate::text::clip;
use crate::theme::{Theme, ThemeName};
use crate::worker::{Reply, Request, Response};

/// How often data is refreshed (and the hub retried when unreachable).
pub const REFRESH_MS: i64 = 2000;
/// How often probe traffic (sparklines) is read.
pub const METRICS_MS: i64 = 10_000;
/// How long a status message stays.
pub const MESSAGE_MS: i64 = 8_000;
/// How long an error stays (unless its cause goes away sooner).
pub const ERROR_MS: i64 = 30_000;
/// Suggestions the palette shows.
pub const PALETTE_SUGGESTIONS: usize = 8;

/// A line in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
    pub at_ms: i64,
    /// The request whose failure this reports: cleared when it succeeds.
    pub source: Option<&'static str>,
}

/// Start-up choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub theme: ThemeName,
    /// `NO_COLOR` is set: every theme is drawn without colour.
    pub no_color: bool,
    /// Inside tmux: OSC 52 is also sent through tmux's passthrough.
    pub in_tmux: bool,
}

/// Everything the console shows.
#[derive(Debug)]
pub struct App {
    pub data: HubData,
    pub theme: Theme,
    pub options: Options,
    pub view: View,
    pub modal: Option<Modal>,
    pub quit: bool,
    /// Wall clock for "5m ago" (set by [`App::tick`]).
    pub now_ms: i64,
    pub frame: u64,
    pub message: Option<Message>,
    pub fleet: Fleet,
    pub enrollments: Enrollments,
    pub permissions: Permissions,
    pub attestation: AttestationScreen,
    pub audit: Audit,
    pub keys: Keys,
    pub tryit: TryIt,
    pub oauth: OAuthScreen,
    pub integrations: Integrations,
    pub paths: Paths,
    pub in_flight: HashMap<&'static str, usize>,
    /// Reads sent and not answered yet (the same read is not sent twice).
    reads_in_flight: Vec<Request>,
    last_refresh_ms: Option<i64>,
    last_metrics_ms: Option<i64>,
    /// Escape sequences for the terminal (OSC 52), written by the run loop.
    pub output: Vec<String>,
    /// Lines to show in the plain terminal (the run loop suspends the
    /// full-screen view for that).
    pub plain: Option<Vec<String>>,
}

macro_rules! screen {
    ($app:expr, $view:expr) => {{
        let s: &mut dyn Screen = match $view {
            View::Fleet => &mut $app.fleet,
            View::Enrollments => &mut $app.enrollments,
            View::Permissions => &mut $app.permissions,
            View::Attestation => &mut $app.attestation,
            View::Audit => &mut $app.audit,
            View::Keys => &mut $app.keys,
            View::TryIt => &mut $app.tryit,
            View::OAuth => &mut $app.oauth,
            View::Integrations => &mut $app.integrations,
            View::Paths => &mut $app.paths,
        };
        s
    }};
}

mod overlays;

impl App {
    pub fn new(socket: impl Into<String>) -> App {
        App::with_options(socket, Options::default())
    }

    pub fn with_options(socket: impl Into<String>, options: Options) -> App {
        App {
            data: HubData::new(socket),
            theme: Theme::new(options.theme, options.no_color),
            options,
            view: View::Fleet,
            modal: None,
            quit: false,
            now_ms: 0,
            frame: 0,
            message: None,
            fleet: Fleet::default(),
            enrollments: Enrollments::default(),
            permissions: Permissions::default(),
            attestation: AttestationScreen::default(),
            audit: Audit::default(),
            keys: Keys::default(),
            tryit: TryIt::default(),
            oauth: OAuthScreen::default(),
            integrations: Integrations::default(),
            paths: Paths::default(),
            in_flight: HashMap::new(),
            reads_in_flight: Vec::new(),
            last_refresh_ms: None,
            last_metrics_ms: None,
            output: Vec::new(),
            plain: None,
        }
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            data: &self.data,
            now_ms: self.now_ms,
            theme: self.theme,
            frame: self.frame,
        }
    }

    /// The screen shown.
    pub fn screen(&self) -> &dyn Screen {
        match self.view {
            View::Fleet => &self.fleet,
            View::Enrollments => &self.enrollments,
            View::Permissions => &self.permissions,
            View::Attestation => &self.attestation,
            View::Audit => &self.audit,
            View::Keys => &self.keys,
            View::TryIt => &self.tryit,
            View::OAuth => &self.oauth,
            View::Integrations => &self.integrations,
            View::Paths => &self.paths,
        }
    }

    /// The key-map scopes in effect, most specific first.
    pub fn scopes(&self) -> Vec<Scope> {
        match &self.modal {
            Some(m) => vec![m.scope()],
            None => self.screen().scopes(),
        }
    }

    /// Calls to the hub in progress.
    pub fn busy(&self) -> bool {
        self.in_flight.values().any(|n| *n > 0)
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
            at_ms: self.now_ms,
            source: None,
        });
    }

    fn complain(&mut self, text: impl Into<String>, source: Option<&'static str>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
            at_ms: self.now_ms,
            source,
        });
    }

    /// Tracks what is sent; reads already in flight are not asked again
    /// (a slow hub does not pile up requests) unless `force`d.
    fn emit(&mut self, requests: Vec<Request>, force: bool) -> Vec<Request> {
        let mut out = Vec::new();
        for r in requests {
            if !r.is_action() {
                if !force && self.reads_in_flight.contains(&r) {
                    continue;
                }
                self.reads_in_flight.push(r.clone());
            }
            *self.in_flight.entry(r.label()).or_insert(0) += 1;
            out.push(r);
        }
        out
    }

    fn sync_all(&mut self) {
        let ctx = Ctx {
            data: &self.data,
            now_ms: self.now_ms,
            theme: self.theme,
            frame: self.frame,
        };
        self.fleet.sync(&ctx);
        self.enrollments.sync(&ctx);
        self.permissions.sync(&ctx);
        self.attestation.sync(&ctx);
        self.audit.sync(&ctx);
        self.keys.sync(&ctx);
        self.tryit.sync(&ctx);
        self.integrations.sync(&ctx);
    }

    // ---- refresh ----

    fn refresh_requests(&mut self, force: bool) -> Vec<Request> {
        let ctx = Ctx {
            data: &self.data,
            now_ms: self.now_ms,
            theme: self.theme,
            frame: self.frame,
        };
        let mut reads = vec![Request::Status];
        reads.extend(screen!(self, self.view).reads(&ctx));
        // Traffic is read less often than the rest.
        let metrics_due = force
            || self
                .last_metrics_ms
                .is_none_or(|t| self.now_ms.saturating_sub(t) >= METRICS_MS || self.now_ms < t);
        if reads.iter().any(|r| matches!(r, Request::Metrics(_))) {
            if metrics_due {
                self.last_metrics_ms = Some(self.now_ms);
                let minutes = self.data.metrics_minutes(self.now_ms);
                for r in &mut reads {
                    if let Request::Metrics(m) = r {
                        *m = minutes;
                    }
                }
            } else {
                reads.retain(|r| !matches!(r, Request::Metrics(_)));
            }
        }
        reads
    }

    /// What the current screen needs from the hub.
    pub fn refresh(&mut self) -> Vec<Request> {
        let r = self.refresh_requests(false);
        self.emit(r, false)
    }

    /// After an action: read again even what is already being read (that
    /// answer may predate the action).
    fn refresh_after_action(&mut self) -> Vec<Request> {
        let r = self.refresh_requests(true);
        self.emit(r, true)
    }

    /// Called from the draw loop: refreshes every [`REFRESH_MS`] and lets
    /// messages expire.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Request> {
        self.now_ms = now_ms;
        self.frame = self.frame.wrapping_add(1);
        if let Some(m) = &self.message {
            let ttl = if m.error { ERROR_MS } else { MESSAGE_MS };
            if now_ms.saturating_sub(m.at_ms) >= ttl || now_ms < m.at_ms {
                self.message = None;
            }
        }
        let due = self
            .last_refresh_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= REFRESH_MS || now_ms < t);
        if due {
            self.last_refresh_ms = Some(now_ms);
            self.refresh()
        } else {
            Vec::new()
        }
    }

    // ---- keys ----

    /// One key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return Vec::new();
        }
        let effects = match self.modal.take() {
            Some(modal) => self.modal_key(modal, key),
            None => {
                let scopes = self.scopes();
                match keymap::resolve(&scopes, &key) {
                    Some(action) => self.act(action),
                    None if scopes.first().is_some_and(|s| s.types_text()) => {
                        screen!(self, self.view).type_key(key)
                    }
                    None => Vec::new(),
                }
            }
        };
        self.apply(effects)
    }

    /// Mouse wheel.
    pub fn on_scroll(&mut self, down: bool) -> Vec<Request> {
        let action = if down {
            Action::ScrollDown
        } else {
            Action::ScrollUp
        };
        let effects = match self.modal.take() {
            Some(mut modal) => {
                if let Some(s) = modal.scroll_mut() {
                    s.by(if down { 3 } else { -3 });
                }
                self.modal = Some(modal);
                Vec::new()
            }
            None => self.act(action),
        };
        self.apply(effects)
    }

    /// An action with no overlay open.
    pub fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::Help => vec![Effect::Open(Modal::Help(Default::default()))],
            Action::Palette => vec![Effect::Open(Modal::Palette(Palette::default()))],
            Action::NextScreen => vec![Effect::GoTo(self.view.offset(1))],
            Action::PrevScreen => vec![Effect::GoTo(self.view.offset(-1))],
            Action::GoTo(v) => vec![Effect::GoTo(v)],
            Action::Refresh => {
                self.say("refreshing");
                let r = self.refresh_requests(true);
                r.into_iter().map(Effect::Send).collect()
            }
            Action::Filter => {
                let prompt = if self.scopes().first() == Some(&Scope::Result) {
                    Prompt::new(PromptFor::Search, self.tryit.search.clone())
                } else {
                    Prompt::new(
                        PromptFor::Filter(self.view),
                        self.screen().filter().to_owned(),
                    )
                };
                vec![Effect::Open(Modal::Prompt(prompt))]
            }
            Action::SortNext | Action::SortReverse => self.sort(action),
            Action::Back => {
                if screen!(self, self.view).back() {
                    Vec::new()
                } else if !self.screen().filter().is_empty() {
                    self.set_filter(self.view, "").unwrap_or_default()
                } else {
                    self.message = None;
                    Vec::new()
                }
            }
            other => {
                let ctx = Ctx {
                    data: &self.data,
                    now_ms: self.now_ms,
                    theme: self.theme,
                    frame: self.frame,
                };
                screen!(self, self.view).update(other, &ctx)
            }
        }
    }

    fn sort(&mut self, action: Action) -> Vec<Effect> {
        let names = self.screen().sort_names();
        let Some(sort) = screen!(self, self.view).sort_mut() else {
            return vec![Effect::Say("this screen keeps the hub's order".into())];
        };
        if action == Action::SortReverse {
            sort.reverse = !sort.reverse;
        } else {
            sort.next(names.len());
        }
        let text = format!(
            "sorted by {}{}",
            names.get(sort.column).unwrap_or(&"?"),
            if sort.reverse { ", reversed" } else { "" }
        );
        self.sync_all();
        vec![Effect::Say(text)]
    }

    fn set_filter(&mut self, view: View, text: &str) -> Result<Vec<Effect>, String> {
        let ctx = Ctx {
            data: &self.data,
            now_ms: self.now_ms,
            theme: self.theme,
            frame: self.frame,
        };
        screen!(self, view).set_filter(text, &ctx)
    }

    /// Carries out effects; returns the requests to send.
    fn apply(&mut self, effects: Vec<Effect>) -> Vec<Request> {
        let mut out = Vec::new();
        for e in effects {
            match e {
                Effect::Send(r) => out.extend(self.emit(vec![r], false)),
                Effect::Read(r) => out.extend(self.emit(vec![r], true)),
                Effect::Open(m) => self.modal = Some(m),
                Effect::Say(t) => self.say(t),
                Effect::Complain(t) => self.complain(t, None),
                Effect::Copy { what, text } => self.copy(&what, &text),
                Effect::GoTo(v) => {
                    if self.view != v {
                        self.view = v;
                        out.extend(self.refresh());
                    }
                }
                Effect::Plain(lines) => self.plain = Some(lines),
            }
        }
        out
    }

    /// Queues the OSC 52 sequence that copies `text`.
    fn copy(&mut self, what: &str, text: &str) {
        match crate::clipboard::sequences(text, self.options.in_tmux) {
            Some(seqs) => {
                self.output.extend(seqs);
                self.say(format!(
                    "copied {what} ({} characters) to the clipboard (OSC 52; in tmux it needs set-clipboard on)",
                    text.chars().count()
                ));
            }
            None => self.complain(
                format!("{what} is too long to copy through the terminal"),
                None,
            ),
        }
    }

    // ---- answers ----

    /// One answer from the hub.
    pub fn on_response(&mut self, response: Response) -> Vec<Request> {
        let label = response.request.label();
        if let Some(n) = self.in_flight.get_mut(label) {
            *n = n.saturating_sub(1);
        }
        if let Some(i) = self
            .reads_in_flight
            .iter()
            .position(|r| *r == response.request)
        {
            self.reads_in_flight.remove(i);
        }
        let reply = match response.result {
            Ok(reply) => reply,
            Err(f) => {
                if f.unreachable {
                    self.data.hub_error = Some(f.message.clone());
                }
                // The integration form and the credential input wait for
                // their answer: a refusal is shown in them, word for word.
                match (&response.request, &mut self.modal) {
                    (Request::AddIntegration(_), Some(Modal::IntegrationForm(a))) => {
                        a.sending = false;
                        a.error = Some(f.message);
                        return Vec::new();
                    }
                    (Request::SetCredential(name, _), Some(Modal::Credential(c)))
                        if *name == c.integration =>
                    {
                        c.sending = false;
                        c.error = Some(format!("the hub refused it: {}", f.message));
                        return Vec::new();
                    }
                    _ => {}
                }
                self.audit
                    .on_failure(&response.request, &f.message, f.unreachable);
                self.tryit
                    .on_failure(&response.request, &f.message, f.unreachable);
                if let (Request::AuditVerify, Some(Modal::Verify(v, _))) =
                    (&response.request, &mut self.modal)
                {
                    *v = Some(Err(f.message.clone()));
                }
                if !f.unreachable || response.request.is_action() {
                    self.complain(format!("{label}: {}", f.message), Some(label));
                }
                return Vec::new();
            }
        };
        self.data.hub_error = None;
        self.data.last_ok_ms = Some(self.now_ms);
        // The cause of an error is gone once the same call succeeds.
        if self
            .message
            .as_ref()
            .is_some_and(|m| m.error && m.source == Some(label))
        {
            self.message = None;
        }
        if self.data.take(label, &reply) {
            self.sync_all();
            return Vec::new();
        }
        let ctx = Ctx {
            data: &self.data,
            now_ms: self.now_ms,
            theme: self.theme,
            frame: self.frame,
        };
        let mut effects = Vec::new();
        match &reply {
            Reply::Audit(..) => {
                effects.extend(self.audit.on_reply(&response.request, &reply, &ctx))
            }
            Reply::AuditVerify(report) => {
                effects.extend(self.audit.on_reply(&response.request, &reply, &ctx));
                effects.push(Effect::Say(crate::screens::audit::verify_line(&Ok(
                    report.clone()
                ))));
                if let Some(Modal::Verify(v, _)) = &mut self.modal {
                    *v = Some(Ok(report.clone()));
                }
            }
            Reply::AuditEntry(d) => {
                if let Some(Modal::AuditEntry { seq, detail, .. }) = &mut self.modal
                    && *seq == d.entry.seq
                {
                    *detail = Some(d.clone());
                }
            }
            Reply::Drift(_) => {
                effects.extend(self.attestation.on_reply(&response.request, &reply, &ctx))
            }
            Reply::Probe(r) if matches!(response.request, Request::TestIntegration(_)) => {
                effects.push(if r.ok {
                    Effect::Say(format!(
                        "test of {}: {} answered in {} ms",
                        r.agent, r.probe, r.duration_ms
                    ))
                } else {
                    Effect::Complain(format!(
                        "test of {} failed ({}): {}",
                        r.agent,
                        r.error_code.as_deref().unwrap_or("error"),
                        r.error.as_deref().unwrap_or("")
                    ))
                });
            }
            Reply::Probe(_) => effects.extend(self.tryit.on_reply(&response.request, &reply, &ctx)),
            Reply::Done(text) => {
                match (&response.request, &self.modal) {
                    (Request::AddIntegration(req), Some(Modal::IntegrationForm(_))) => {
                        self.modal = None;
                        self.integrations
                            .list
                            .selection
                            .select_id(req.add.name.clone());
                    }
                    (Request::SetCredential(..), Some(Modal::Credential(_))) => self.modal = None,
                    _ => {}
                }
                effects.push(Effect::Say(text.clone()));
                let mut out = self.apply(effects);
                if !matches!(response.request, Request::SaveFile { .. }) {
                    out.extend(self.refresh_after_action());
                }
                return out;
            }
            Reply::KeyCreated(k) => {
                effects.push(Effect::Open(Modal::Secret(self.key_secret(k))));
                effects.push(Effect::Say(format!(
                    "created API key {}",
                    clip(&k.info.name, 64)
                )));
                let mut out = self.apply(effects);
                out.extend(self.refresh_after_action());
                return out;
            }
            Reply::TokenCreated(t) => {
                effects.push(Effect::Open(Modal::Secret(overlays::token_secret(t))));
                effects.push(Effect::Say("created an enrollment token".into()));
                let mut out = self.apply(effects);
                out.extend(self.refresh_after_action());
                return out;
            }
            _ => {}
        }
        self.apply(effects)
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
