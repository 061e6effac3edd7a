//! The console's state and how keys and hub answers change it. No terminal
//! and no I/O here: handlers return the [`Request`]s to send to the hub, so
//! the whole key → action → state logic is testable on its own.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use sonde_admin::api::*;
use sonde_protocol::audit::{AuditEntry, ChainHead};
use sonde_protocol::messages::{PackState, ProbeSummary};
use std::collections::HashMap;

use crate::form::{self, Form};
use crate::worker::{Reply, Request, Response};

/// Entries per audit page.
pub const AUDIT_PAGE: u32 = 200;
/// How often data is refreshed (and the hub retried when unreachable).
pub const REFRESH_MS: i64 = 2000;

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
}

impl View {
    pub const ALL: [View; 7] = [
        View::Fleet,
        View::Enrollments,
        View::Permissions,
        View::Attestation,
        View::Audit,
        View::Keys,
        View::TryIt,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Fleet => "Fleet",
            View::Enrollments => "Enrollments",
            View::Permissions => "Permissions",
            View::Attestation => "Attestation",
            View::Audit => "Audit",
            View::Keys => "Keys & tokens",
            View::TryIt => "Try it",
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
            View::TryIt => "Try it",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    fn offset(self, by: isize) -> View {
        let n = View::ALL.len() as isize;
        let i = (self.index() as isize + by).rem_euclid(n);
        View::ALL[i as usize]
    }
}

/// Which list has the focus on the Keys & tokens screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysPane {
    Keys,
    Tokens,
}

/// Where the focus is on the Try it screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryFocus {
    Agents,
    Probes,
    Form,
}

/// Something drawn over the current screen that takes the keys.
#[derive(Debug, Clone)]
pub enum Modal {
    Help,
    /// `y` sends the request, anything else cancels.
    Confirm {
        prompt: String,
        request: Request,
    },
    /// Typing the current screen's filter.
    Filter {
        input: String,
    },
    Tags {
        agent: String,
        input: String,
    },
    KeyForm(Form),
    TokenForm(Form),
    /// A secret shown once (key or token) with its ready-to-paste line.
    Secret {
        title: String,
        lines: Vec<String>,
    },
    AuditEntry {
        seq: u64,
        detail: Option<Box<AuditEntryDetail>>,
    },
    /// `None` while the hub is verifying.
    Verify(Option<Result<AuditVerifyReport, String>>),
}

/// The audit screen: one page of the chain at a time.
#[derive(Debug, Clone, Default)]
pub struct AuditView {
    pub entries: Vec<AuditEntry>,
    /// `before_seq` of every page from the newest to the current one.
    pub cursors: Vec<Option<u64>>,
    /// Cursor of the next (older) page, if there is one.
    pub next_before: Option<u64>,
    /// The filters (paging fields unset).
    pub query: AuditQuery,
    pub generation: u64,
    pub head: Option<ChainHead>,
    /// After a page loads, select its last row (paging upwards).
    pub select_last: bool,
    pub last_verify: Option<Result<AuditVerifyReport, String>>,
}

impl AuditView {
    pub fn page(&self) -> usize {
        self.cursors.len().saturating_sub(1)
    }

    fn request(&self) -> Request {
        let mut q = self.query.clone();
        q.before_seq = self.cursors.last().copied().flatten();
        q.limit = Some(AUDIT_PAGE);
        Request::Audit(q, self.generation)
    }
}

/// The Try it screen.
#[derive(Debug, Clone)]
pub struct TryIt {
    pub focus: TryFocus,
    /// The agent whose probes are listed.
    pub agent: Option<String>,
    pub probe_sel: usize,
    /// The probe the form is for, and the form.
    pub probe: Option<ProbeSummary>,
    pub form: Option<Form>,
    pub result: Option<Result<ProbeRunResult, String>>,
    pub running: bool,
    /// Lines of the result scrolled away (PgUp/PgDn, wheel).
    pub result_scroll: u16,
}

impl Default for TryIt {
    fn default() -> Self {
        TryIt {
            focus: TryFocus::Agents,
            agent: None,
            probe_sel: 0,
            probe: None,
            form: None,
            result: None,
            running: false,
            result_scroll: 0,
        }
    }
}

/// A line in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// Everything the console shows.
#[derive(Debug, Clone)]
pub struct App {
    /// Where the hub is expected (for the banner).
    pub socket: String,
    pub view: View,
    pub modal: Option<Modal>,
    pub modal_scroll: u16,
    pub quit: bool,
    /// Wall clock for "5m ago" (set by [`App::tick`]).
    pub now_ms: i64,
    pub frame: u64,
    pub in_flight: HashMap<&'static str, usize>,
    /// Reads sent and not answered yet (the same read is not sent twice).
    reads_in_flight: Vec<Request>,
    /// Set while the hub is unreachable: the banner.
    pub hub_error: Option<String>,
    pub message: Option<Message>,
    pub loaded: HashMap<&'static str, bool>,
    pub status: Option<HubStatus>,
    pub agents: Vec<AgentSummary>,
    pub agent_detail: Option<AgentDetail>,
    pub enrollments: Vec<EnrollmentInfo>,
    pub permissions: Vec<PermissionRequest>,
    pub drift: Vec<DriftEvent>,
    /// Attestation shows closed drift events too (with the decision).
    pub drift_history: bool,
    pub keys: Vec<KeyInfo>,
    pub tokens: Vec<TokenInfo>,
    pub audit: AuditView,
    pub tryit: TryIt,
    pub keys_pane: KeysPane,
    /// Selected row per screen (index 7: the tokens list).
    pub selected: [usize; 8],
    pub filters: [String; 7],
    /// Enter toggles the detail pane of list screens.
    pub detail_open: bool,
    last_refresh_ms: Option<i64>,
}

fn matches_filter(filter: &str, parts: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let needle = filter.to_lowercase();
    parts.iter().any(|p| p.to_lowercase().contains(&needle))
}

/// Parses the audit filter line: `agent:NAME actor:KEY probe:NAME
/// outcome:ok action:ACTION since:1h until:10m` (durations ago, or
/// milliseconds since the epoch).
pub fn parse_audit_filter(text: &str, now_ms: i64) -> Result<AuditQuery, String> {
    let mut q = AuditQuery::default();
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once(':') else {
            return Err(format!(
                "{word:?}: use key:value with agent, actor, probe, outcome, action, since, until"
            ));
        };
        if value.is_empty() {
            return Err(format!("{key}: needs a value"));
        }
        let time = |v: &str| -> Result<i64, String> {
            if let Some(ms) = crate::text::parse_duration(v) {
                Ok(now_ms.saturating_sub(ms))
            } else {
                v.parse::<i64>()
                    .map_err(|_| format!("{key}:{v}: use a duration like 30m, 2h, 7d"))
            }
        };
        match key {
            "agent" => q.agent = Some(value.into()),
            "actor" => q.actor = Some(value.into()),
            "probe" => q.probe = Some(value.into()),
            "outcome" => q.outcome = Some(value.into()),
            "action" => q.action = Some(value.into()),
            "since" => q.since_ms = Some(time(value)?),
            "until" => q.until_ms = Some(time(value)?),
            other => {
                return Err(format!(
                    "unknown filter {other:?} (agent, actor, probe, outcome, action, since, until)"
                ));
            }
        }
    }
    Ok(q)
}

fn is_online(a: &AgentSummary) -> bool {
    a.state == AgentState::Online && a.connected
}

/// Probes an operator can run on this agent: registered probes of active packs.
pub fn runnable_probes(detail: &AgentDetail) -> Vec<&ProbeSummary> {
    detail
        .packs
        .iter()
        .filter(|p| p.state == PackState::Active)
        .flat_map(|p| p.probes.iter())
        .filter(|p| p.registered)
        .collect()
}

impl App {
    pub fn new(socket: impl Into<String>) -> App {
        App {
            socket: socket.into(),
            view: View::Fleet,
            modal: None,
            modal_scroll: 0,
            quit: false,
            now_ms: 0,
            frame: 0,
            in_flight: HashMap::new(),
            reads_in_flight: Vec::new(),
            hub_error: None,
            message: None,
            loaded: HashMap::new(),
            status: None,
            agents: Vec::new(),
            agent_detail: None,
            enrollments: Vec::new(),
            permissions: Vec::new(),
            drift: Vec::new(),
            drift_history: false,
            keys: Vec::new(),
            tokens: Vec::new(),
            audit: AuditView {
                cursors: vec![None],
                ..AuditView::default()
            },
            tryit: TryIt::default(),
            keys_pane: KeysPane::Keys,
            selected: [0; 8],
            filters: Default::default(),
            detail_open: false,
            last_refresh_ms: None,
        }
    }

    /// Calls to the hub in progress.
    pub fn busy(&self) -> bool {
        self.in_flight.values().any(|n| *n > 0)
    }

    pub fn is_loaded(&self, label: &str) -> bool {
        self.loaded.get(label).copied().unwrap_or(false)
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    /// Tracks what is sent; reads already in flight are not asked again
    /// (a slow hub does not pile up requests).
    fn emit(&mut self, requests: Vec<Request>) -> Vec<Request> {
        self.emit_inner(requests, false)
    }

    fn emit_inner(&mut self, requests: Vec<Request>, force: bool) -> Vec<Request> {
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

    // ---- rows as shown (filtered) ----

    fn filter(&self, view: View) -> &str {
        &self.filters[view.index()]
    }

    pub fn visible_agents(&self) -> Vec<&AgentSummary> {
        let f = self.filter(View::Fleet);
        self.agents
            .iter()
            .filter(|a| {
                let tags = a.tags.join(" ");
                matches_filter(f, &[&a.name, &a.hostname, &a.os, a.state.as_str(), &tags])
            })
            .collect()
    }

    pub fn visible_enrollments(&self) -> Vec<&EnrollmentInfo> {
        let f = self.filter(View::Enrollments);
        self.enrollments
            .iter()
            .filter(|e| matches_filter(f, &[&e.name, &e.hostname, &e.remote_addr, &e.token_label]))
            .collect()
    }

    /// Pending first, then by agent and pack.
    pub fn visible_permissions(&self) -> Vec<&PermissionRequest> {
        let f = self.filter(View::Permissions);
        let mut rows: Vec<&PermissionRequest> = self
            .permissions
            .iter()
            .filter(|p| matches_filter(f, &[&p.agent_name, &p.pack, p.state.as_str()]))
            .collect();
        rows.sort_by_key(|p| {
            (
                p.state != PackState::Pending,
                p.agent_name.clone(),
                p.pack.clone(),
            )
        });
        rows
    }

    pub fn visible_drift(&self) -> Vec<&DriftEvent> {
        let f = self.filter(View::Attestation);
        self.drift
            .iter()
            .filter(|d| matches_filter(f, &[&d.agent_name]))
            .collect()
    }

    pub fn visible_keys(&self) -> Vec<&KeyInfo> {
        let f = self.filter(View::Keys);
        self.keys
            .iter()
            .filter(|k| matches_filter(f, &[&k.name, &k.prefix]))
            .collect()
    }

    pub fn visible_tokens(&self) -> Vec<&TokenInfo> {
        let f = self.filter(View::Keys);
        self.tokens
            .iter()
            .filter(|t| matches_filter(f, &[&t.label, &t.id]))
            .collect()
    }

    /// Agents the Try it screen offers (online ones).
    pub fn tryit_agents(&self) -> Vec<&AgentSummary> {
        self.agents.iter().filter(|a| is_online(a)).collect()
    }

    /// Probes of the Try it agent, filtered.
    pub fn tryit_probes(&self) -> Vec<&ProbeSummary> {
        let f = self.filter(View::TryIt);
        match (&self.agent_detail, &self.tryit.agent) {
            (Some(d), Some(name)) if &d.summary.name == name => runnable_probes(d)
                .into_iter()
                .filter(|p| matches_filter(f, &[&p.name, &p.description]))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn slot(&self) -> usize {
        if self.view == View::Keys && self.keys_pane == KeysPane::Tokens {
            7
        } else {
            self.view.index()
        }
    }

    /// Rows in the focused list.
    pub fn row_count(&self) -> usize {
        match self.view {
            View::Fleet => self.visible_agents().len(),
            View::Enrollments => self.visible_enrollments().len(),
            View::Permissions => self.visible_permissions().len(),
            View::Attestation => self.visible_drift().len(),
            View::Audit => self.audit.entries.len(),
            View::Keys => match self.keys_pane {
                KeysPane::Keys => self.visible_keys().len(),
                KeysPane::Tokens => self.visible_tokens().len(),
            },
            View::TryIt => match self.tryit.focus {
                TryFocus::Agents => self.tryit_agents().len(),
                _ => self.tryit_probes().len(),
            },
        }
    }

    /// The selected row of the focused list (clamped).
    pub fn selection(&self) -> usize {
        let n = self.row_count();
        let s = if self.view == View::TryIt && self.tryit.focus != TryFocus::Agents {
            self.tryit.probe_sel
        } else {
            self.selected[self.slot()]
        };
        s.min(n.saturating_sub(1))
    }

    /// The selected row of a given screen's main list (for drawing).
    pub fn selected_in(&self, view: View) -> usize {
        self.selected[view.index()]
    }

    fn set_selection(&mut self, s: usize) {
        if self.view == View::TryIt && self.tryit.focus != TryFocus::Agents {
            self.tryit.probe_sel = s;
        } else {
            let slot = self.slot();
            self.selected[slot] = s;
        }
    }

    pub fn selected_agent(&self) -> Option<&AgentSummary> {
        self.visible_agents().get(self.selected[0]).copied()
    }

    // ---- refresh ----

    /// What the current screen needs from the hub.
    pub fn refresh(&mut self) -> Vec<Request> {
        let r = self.refresh_requests();
        self.emit(r)
    }

    /// After an action: read again even what is already being read (that
    /// answer may predate the action).
    fn refresh_after_action(&mut self) -> Vec<Request> {
        let r = self.refresh_requests();
        self.emit_inner(r, true)
    }

    fn refresh_requests(&self) -> Vec<Request> {
        let mut r = vec![Request::Status];
        match self.view {
            View::Fleet => {
                r.push(Request::Agents);
                if self.detail_open
                    && let Some(a) = self.selected_agent()
                {
                    r.push(Request::Agent(a.name.clone()));
                }
            }
            View::Enrollments => r.push(Request::Enrollments),
            View::Permissions => r.push(Request::Permissions),
            View::Attestation => r.push(Request::Drift(self.drift_history)),
            View::Audit => {
                if self.audit.page() == 0 || !self.is_loaded("audit") {
                    r.push(self.audit.request());
                }
            }
            View::Keys => {
                r.push(Request::Keys);
                r.push(Request::Tokens);
            }
            View::TryIt => r.push(Request::Agents),
        }
        r
    }

    /// Called from the draw loop; refreshes every [`REFRESH_MS`].
    pub fn tick(&mut self, now_ms: i64) -> Vec<Request> {
        self.now_ms = now_ms;
        self.frame = self.frame.wrapping_add(1);
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
        if key.kind == crossterm::event::KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            self.quit = true;
            return Vec::new();
        }
        if self.modal.is_some() {
            return self.modal_key(key);
        }
        if self.view == View::TryIt && self.tryit.focus == TryFocus::Form {
            return self.form_key(key);
        }
        match key.code {
            KeyCode::Char('q') => {
                self.quit = true;
                Vec::new()
            }
            KeyCode::Char('?') | KeyCode::F(1) => {
                self.open(Modal::Help);
                Vec::new()
            }
            KeyCode::Tab => self.switch(self.view.offset(1)),
            KeyCode::BackTab => self.switch(self.view.offset(-1)),
            KeyCode::Char(c @ '1'..='7') => {
                let i = (c as usize) - ('1' as usize);
                self.switch(View::ALL[i])
            }
            KeyCode::Char('r') if !ctrl => {
                self.say("refreshing");
                self.refresh()
            }
            KeyCode::Char('/') => {
                let input = self.filters[self.view.index()].clone();
                self.open(Modal::Filter { input });
                Vec::new()
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(20),
            KeyCode::PageUp => self.move_by(-20),
            KeyCode::Home | KeyCode::Char('g') => self.move_to_start(),
            KeyCode::End | KeyCode::Char('G') => {
                let n = self.row_count();
                self.set_selection(n.saturating_sub(1));
                self.after_move()
            }
            KeyCode::Esc => {
                if self.view == View::TryIt && self.tryit.focus == TryFocus::Probes {
                    self.tryit.focus = TryFocus::Agents;
                } else if self.detail_open {
                    self.detail_open = false;
                } else if !self.filters[self.view.index()].is_empty() {
                    return self.apply_filter(String::new());
                } else {
                    self.message = None;
                }
                Vec::new()
            }
            _ => self.view_key(key),
        }
    }

    /// Mouse wheel: three rows.
    pub fn on_scroll(&mut self, down: bool) -> Vec<Request> {
        if self.modal.is_some() {
            self.modal_scroll = if down {
                self.modal_scroll.saturating_add(3)
            } else {
                self.modal_scroll.saturating_sub(3)
            };
            return Vec::new();
        }
        if self.view == View::TryIt && self.tryit.focus == TryFocus::Form {
            self.tryit.result_scroll = if down {
                self.tryit.result_scroll.saturating_add(3)
            } else {
                self.tryit.result_scroll.saturating_sub(3)
            };
            return Vec::new();
        }
        let mut out = Vec::new();
        for _ in 0..3 {
            out.extend(self.move_by(if down { 1 } else { -1 }));
        }
        out
    }

    fn open(&mut self, modal: Modal) {
        self.modal = Some(modal);
        self.modal_scroll = 0;
    }

    fn confirm(&mut self, prompt: String, request: Request) {
        self.open(Modal::Confirm { prompt, request });
    }

    fn switch(&mut self, view: View) -> Vec<Request> {
        if self.view == view {
            return Vec::new();
        }
        self.view = view;
        self.detail_open = false;
        self.refresh()
    }

    fn move_to_start(&mut self) -> Vec<Request> {
        if self.view == View::Audit && self.audit.page() > 0 {
            // Back to the newest entries.
            self.audit.cursors.truncate(1);
            self.audit.generation += 1;
            self.audit.select_last = false;
            self.selected[View::Audit.index()] = 0;
            return self.emit(vec![self.audit.request()]);
        }
        self.set_selection(0);
        self.after_move()
    }

    fn move_by(&mut self, by: isize) -> Vec<Request> {
        let n = self.row_count();
        let cur = self.selection();
        if self.view == View::Audit {
            // Past either end of the page: the next or previous page.
            if by > 0 && (n == 0 || cur + 1 >= n) {
                if let Some(next) = self.audit.next_before
                    && n > 0
                {
                    self.audit.cursors.push(Some(next));
                    self.audit.generation += 1;
                    self.audit.select_last = false;
                    self.selected[View::Audit.index()] = 0;
                    return self.emit(vec![self.audit.request()]);
                }
                return Vec::new();
            }
            if by < 0 && cur == 0 && self.audit.page() > 0 {
                self.audit.cursors.pop();
                self.audit.generation += 1;
                self.audit.select_last = true;
                return self.emit(vec![self.audit.request()]);
            }
        }
        if n == 0 {
            return Vec::new();
        }
        let next = (cur as isize + by).clamp(0, n as isize - 1) as usize;
        self.set_selection(next);
        self.after_move()
    }

    /// Detail panes follow the selection.
    fn after_move(&mut self) -> Vec<Request> {
        if self.view == View::Fleet
            && self.detail_open
            && let Some(a) = self.selected_agent()
        {
            let name = a.name.clone();
            return self.emit(vec![Request::Agent(name)]);
        }
        Vec::new()
    }

    fn apply_filter(&mut self, text: String) -> Vec<Request> {
        let i = self.view.index();
        if self.view == View::Audit {
            match parse_audit_filter(&text, self.now_ms) {
                Ok(q) => {
                    self.audit.query = q;
                    self.audit.cursors = vec![None];
                    self.audit.generation += 1;
                    self.audit.select_last = false;
                    self.selected[i] = 0;
                    self.filters[i] = text;
                    return self.emit(vec![self.audit.request()]);
                }
                Err(e) => {
                    self.complain(format!("filter: {e}"));
                    return Vec::new();
                }
            }
        }
        self.filters[i] = text;
        if self.view == View::TryIt {
            self.tryit.probe_sel = 0;
        } else {
            self.selected[self.slot()] = 0;
        }
        Vec::new()
    }

    fn modal_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let Some(modal) = self.modal.take() else {
            return Vec::new();
        };
        let mut keep = true;
        let mut out = Vec::new();
        let modal = match modal {
            Modal::Confirm { prompt, request } => {
                keep = false;
                if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.say(format!("{}…", request.label()));
                    out = self.emit(vec![request]);
                } else {
                    self.say("cancelled");
                }
                Modal::Confirm {
                    prompt,
                    request: Request::Status,
                }
            }
            Modal::Filter { mut input } => {
                match key.code {
                    KeyCode::Enter => {
                        keep = false;
                        out = self.apply_filter(input.trim().to_owned());
                    }
                    KeyCode::Esc => keep = false,
                    KeyCode::Backspace => {
                        input.pop();
                    }
                    KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        input.clear()
                    }
                    KeyCode::Char(c) if input.chars().count() < 512 => input.push(c),
                    _ => {}
                }
                Modal::Filter { input }
            }
            Modal::Tags { agent, mut input } => {
                match key.code {
                    KeyCode::Enter => {
                        keep = false;
                        let tags: Vec<String> = input
                            .split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect();
                        out = self.emit(vec![Request::SetTags(agent.clone(), tags)]);
                    }
                    KeyCode::Esc => keep = false,
                    KeyCode::Backspace => {
                        input.pop();
                    }
                    KeyCode::Char(c) if input.chars().count() < 512 => input.push(c),
                    _ => {}
                }
                Modal::Tags { agent, input }
            }
            Modal::KeyForm(mut f) => {
                match edit_form(&mut f, key) {
                    FormKey::Cancel => keep = false,
                    FormKey::Submit => match f.values().map(|v| key_create(&v)) {
                        Ok(req) => {
                            keep = false;
                            out = self.emit(vec![Request::CreateKey(req)]);
                        }
                        Err(e) => self.complain(e),
                    },
                    FormKey::Edited => {}
                }
                Modal::KeyForm(f)
            }
            Modal::TokenForm(mut f) => {
                match edit_form(&mut f, key) {
                    FormKey::Cancel => keep = false,
                    FormKey::Submit => match f.values().map(|v| token_create(&v)) {
                        Ok(req) => {
                            keep = false;
                            out = self.emit(vec![Request::CreateToken(req)]);
                        }
                        Err(e) => self.complain(e),
                    },
                    FormKey::Edited => {}
                }
                Modal::TokenForm(f)
            }
            other => {
                match key.code {
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?') => {
                        keep = false
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        self.modal_scroll = self.modal_scroll.saturating_add(1)
                    }
                    KeyCode::Up | KeyCode::Char('k') => {
                        self.modal_scroll = self.modal_scroll.saturating_sub(1)
                    }
                    KeyCode::PageDown => self.modal_scroll = self.modal_scroll.saturating_add(10),
                    KeyCode::PageUp => self.modal_scroll = self.modal_scroll.saturating_sub(10),
                    _ => {}
                }
                other
            }
        };
        if keep {
            self.modal = Some(modal);
        } else {
            self.modal_scroll = 0;
        }
        out
    }

    fn form_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let Some(form) = self.tryit.form.as_mut() else {
            self.tryit.focus = TryFocus::Probes;
            return Vec::new();
        };
        match key.code {
            KeyCode::PageDown => {
                self.tryit.result_scroll = self.tryit.result_scroll.saturating_add(10);
                return Vec::new();
            }
            KeyCode::PageUp => {
                self.tryit.result_scroll = self.tryit.result_scroll.saturating_sub(10);
                return Vec::new();
            }
            _ => {}
        }
        match edit_form(form, key) {
            FormKey::Cancel => {
                self.tryit.focus = TryFocus::Probes;
                Vec::new()
            }
            FormKey::Edited => Vec::new(),
            FormKey::Submit => self.run_probe(),
        }
    }

    fn run_probe(&mut self) -> Vec<Request> {
        let (Some(agent), Some(probe), Some(form)) =
            (&self.tryit.agent, &self.tryit.probe, &self.tryit.form)
        else {
            return Vec::new();
        };
        if self.tryit.running {
            self.say("a probe is already running");
            return Vec::new();
        }
        match form.values() {
            Ok(params) => {
                let run = ProbeRun {
                    agent: agent.clone(),
                    probe: probe.name.clone(),
                    params,
                };
                self.tryit.running = true;
                self.tryit.result = None;
                self.tryit.result_scroll = 0;
                self.say(format!("running {} on {}…", run.probe, run.agent));
                self.emit(vec![Request::Probe(run)])
            }
            Err(e) => {
                self.complain(format!("cannot run: {e}"));
                Vec::new()
            }
        }
    }

    fn view_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let c = match key.code {
            KeyCode::Enter => return self.enter(),
            KeyCode::Left => 'h',
            KeyCode::Right => 'l',
            KeyCode::Char(c) => c,
            _ => return Vec::new(),
        };
        match self.view {
            View::Fleet => {
                let Some(a) = self.selected_agent() else {
                    return Vec::new();
                };
                let name = a.name.clone();
                let tags = a.tags.join(", ");
                match c {
                    'x' => self.confirm(
                        format!(
                            "Revoke agent {}? Its certificate stops working for good.",
                            crate::text::clip(&name, 64)
                        ),
                        Request::RevokeAgent(name),
                    ),
                    't' => self.open(Modal::Tags {
                        agent: name,
                        input: tags,
                    }),
                    _ => {}
                }
                Vec::new()
            }
            View::Enrollments => {
                let Some(e) = self.visible_enrollments().get(self.selection()).copied() else {
                    return Vec::new();
                };
                let name = e.name.clone();
                match c {
                    'a' => {
                        self.say(format!("approving {name}…"));
                        self.emit(vec![Request::ApproveEnrollment(name)])
                    }
                    'd' => {
                        self.confirm(
                            format!("Deny the enrollment of {}?", crate::text::clip(&name, 64)),
                            Request::DenyEnrollment(name),
                        );
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
            View::Permissions => {
                let Some(p) = self.visible_permissions().get(self.selection()).copied() else {
                    return Vec::new();
                };
                let (agent, pack) = (p.agent_name.clone(), p.pack.clone());
                let what = format!(
                    "pack {} on {}",
                    crate::text::clip(&pack, 64),
                    crate::text::clip(&agent, 64)
                );
                match c {
                    'a' => {
                        self.say(format!("approving {what}…"));
                        self.emit(vec![Request::DecidePack(agent, pack, "approve".into())])
                    }
                    'd' => {
                        self.confirm(
                            format!("Deny {what}?"),
                            Request::DecidePack(agent, pack, "deny".into()),
                        );
                        Vec::new()
                    }
                    'x' => {
                        self.confirm(
                            format!("Revoke {what}? Its probes stop working."),
                            Request::DecidePack(agent, pack, "revoke".into()),
                        );
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
            View::Attestation => {
                if c == 'H' {
                    self.drift_history = !self.drift_history;
                    self.drift.clear();
                    self.set_selection(0);
                    self.say(if self.drift_history {
                        "showing every drift event, with its decision (H hides closed ones)"
                    } else {
                        "showing open drift events only"
                    });
                    return self.emit_inner(vec![Request::Drift(self.drift_history)], true);
                }
                let Some(d) = self.visible_drift().get(self.selection()).copied() else {
                    return Vec::new();
                };
                if d.status != DriftStatus::Open && matches!(c, 'a' | 'n' | 'x') {
                    let by = d.resolved_by.clone().unwrap_or_default();
                    self.say(format!(
                        "this drift event is already closed ({:?} by {})",
                        d.status,
                        crate::text::clip(&by, 48)
                    ));
                    return Vec::new();
                }
                let name = d.agent_name.clone();
                let shown = crate::text::clip(&name, 64);
                match c {
                    'a' => self.confirm(
                        format!("Accept the new attestation of {shown} as its baseline and end the quarantine?"),
                        Request::AcceptBaseline(name),
                    ),
                    'x' => self.confirm(
                        format!("Revoke agent {shown}? Its certificate stops working for good."),
                        Request::RevokeAgent(name),
                    ),
                    'n' => return self.emit(vec![Request::KeepQuarantined(name)]),
                    _ => {}
                }
                Vec::new()
            }
            View::Audit => match c {
                'v' => {
                    self.open(Modal::Verify(None));
                    self.emit(vec![Request::AuditVerify])
                }
                ']' | 'n' => {
                    let n = self.row_count();
                    self.set_selection(n.saturating_sub(1));
                    self.move_by(1)
                }
                '[' | 'p' => {
                    self.set_selection(0);
                    self.move_by(-1)
                }
                _ => Vec::new(),
            },
            View::Keys => {
                match c {
                    'h' => self.keys_pane = KeysPane::Keys,
                    'l' => self.keys_pane = KeysPane::Tokens,
                    'c' => match self.keys_pane {
                        KeysPane::Keys => self.open(Modal::KeyForm(form::key_form())),
                        KeysPane::Tokens => self.open(Modal::TokenForm(form::token_form())),
                    },
                    'x' => match self.keys_pane {
                        KeysPane::Keys => {
                            if let Some(k) = self.visible_keys().get(self.selection()).copied() {
                                let (id, name) = (k.id.clone(), k.name.clone());
                                self.confirm(
                                    format!(
                                        "Revoke API key {}? Clients using it are refused at once.",
                                        crate::text::clip(&name, 64)
                                    ),
                                    Request::RevokeKey(id),
                                );
                            }
                        }
                        KeysPane::Tokens => {
                            if let Some(t) = self.visible_tokens().get(self.selection()).copied() {
                                let (id, label) = (t.id.clone(), t.label.clone());
                                self.confirm(
                                    format!(
                                        "Revoke enrollment token {}?",
                                        crate::text::clip(&label, 64)
                                    ),
                                    Request::RevokeToken(id),
                                );
                            }
                        }
                    },
                    _ => {}
                }
                Vec::new()
            }
            View::TryIt => match (c, self.tryit.focus) {
                ('h', TryFocus::Probes) => {
                    self.tryit.focus = TryFocus::Agents;
                    Vec::new()
                }
                ('l', TryFocus::Agents) => self.enter(),
                ('l', TryFocus::Probes) => self.enter(),
                _ => Vec::new(),
            },
        }
    }

    fn enter(&mut self) -> Vec<Request> {
        match self.view {
            View::Fleet => {
                self.detail_open = !self.detail_open;
                self.after_move()
            }
            View::Audit => {
                let Some(e) = self.audit.entries.get(self.selection()) else {
                    return Vec::new();
                };
                let seq = e.seq;
                self.open(Modal::AuditEntry { seq, detail: None });
                self.emit(vec![Request::AuditEntry(seq)])
            }
            View::TryIt => match self.tryit.focus {
                TryFocus::Agents => {
                    let Some(a) = self.tryit_agents().get(self.selection()).copied() else {
                        return Vec::new();
                    };
                    let name = a.name.clone();
                    if self.tryit.agent.as_ref() != Some(&name) {
                        self.tryit.probe_sel = 0;
                        self.tryit.probe = None;
                        self.tryit.form = None;
                        self.tryit.result = None;
                    }
                    self.tryit.agent = Some(name.clone());
                    self.tryit.focus = TryFocus::Probes;
                    self.emit(vec![Request::Agent(name)])
                }
                TryFocus::Probes => {
                    let Some(p) = self.tryit_probes().get(self.selection()).copied() else {
                        return Vec::new();
                    };
                    let p = p.clone();
                    if self.tryit.probe.as_ref().map(|x| &x.name) != Some(&p.name) {
                        self.tryit.form = Some(Form::new(p.params.clone()));
                        self.tryit.result = None;
                    }
                    self.tryit.probe = Some(p);
                    self.tryit.focus = TryFocus::Form;
                    Vec::new()
                }
                TryFocus::Form => self.run_probe(),
            },
            _ => {
                self.detail_open = !self.detail_open;
                Vec::new()
            }
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
            Ok(reply) => {
                self.hub_error = None;
                reply
            }
            Err(f) => {
                if f.unreachable {
                    self.hub_error = Some(f.message.clone());
                }
                match &response.request {
                    Request::Probe(_) => {
                        self.tryit.running = false;
                        self.tryit.result = Some(Err(f.message.clone()));
                    }
                    Request::AuditVerify => {
                        self.audit.last_verify = Some(Err(f.message.clone()));
                        if let Some(Modal::Verify(v)) = &mut self.modal {
                            *v = Some(Err(f.message.clone()));
                        }
                    }
                    Request::Audit(_, g)
                        if *g == self.audit.generation
                            && self.audit.page() > 0
                            && !f.unreachable =>
                    {
                        // Stay on the page we have.
                        self.audit.cursors.pop();
                    }
                    _ => {}
                }
                if !f.unreachable || response.request.is_action() {
                    self.complain(format!("{label}: {}", f.message));
                }
                return Vec::new();
            }
        };
        self.loaded.insert(label, true);
        match reply {
            Reply::Status(s) => self.status = Some(s),
            Reply::Agents(a) => self.agents = a,
            Reply::Agent(d) => self.agent_detail = Some(*d),
            Reply::Enrollments(e) => self.enrollments = e,
            Reply::Permissions(p) => self.permissions = p,
            Reply::Drift(d) => self.drift = d,
            Reply::Audit(page, generation) => {
                if generation == self.audit.generation {
                    self.take_audit_page(page);
                }
            }
            Reply::AuditEntry(d) => {
                if let Some(Modal::AuditEntry { seq, detail }) = &mut self.modal
                    && *seq == d.entry.seq
                {
                    *detail = Some(d);
                }
            }
            Reply::AuditVerify(report) => {
                self.say(verify_line(&Ok(report.clone())));
                self.audit.last_verify = Some(Ok(report.clone()));
                if let Some(Modal::Verify(v)) = &mut self.modal {
                    *v = Some(Ok(report));
                }
            }
            Reply::Keys(k) => self.keys = k,
            Reply::Tokens(t) => self.tokens = t,
            Reply::Done(text) => {
                self.say(text);
                return self.refresh_after_action();
            }
            Reply::KeyCreated(k) => {
                let mut lines = vec![
                    format!("API key {} (prefix {})", k.info.name, k.info.prefix),
                    String::new(),
                    k.key.clone(),
                    String::new(),
                ];
                match &k.claude_command {
                    Some(cmd) => {
                        lines.push("Add it to Claude Code:".into());
                        lines.push(cmd.clone());
                    }
                    None => lines
                        .push("The hub's MCP endpoint is off; enable it to use this key.".into()),
                }
                self.open(Modal::Secret {
                    title: "New API key — shown once, copy it now".into(),
                    lines,
                });
                self.say(format!("created API key {}", k.info.name));
                return self.refresh_after_action();
            }
            Reply::TokenCreated(t) => {
                self.open(Modal::Secret {
                    title: "New enrollment token — shown once, copy it now".into(),
                    lines: vec![
                        format!(
                            "Token {} (expires {})",
                            t.info.label,
                            crate::text::utc(t.info.expires_at_ms)
                        ),
                        String::new(),
                        t.token.clone(),
                        String::new(),
                        "Run on the machine to enroll:".into(),
                        t.enroll_command.clone(),
                    ],
                });
                self.say("created enrollment token");
                return self.refresh_after_action();
            }
            Reply::Probe(r) => {
                self.tryit.running = false;
                self.say(format!(
                    "{} on {}: {} in {} ms (audit #{})",
                    r.probe,
                    r.agent,
                    if r.ok { "ok" } else { "failed" },
                    r.duration_ms,
                    r.audit_seq
                ));
                self.tryit.result = Some(Ok(*r));
            }
        }
        Vec::new()
    }

    fn take_audit_page(&mut self, page: AuditPage) {
        let i = View::Audit.index();
        let previous = self.audit.entries.get(self.selected[i]).map(|e| e.seq);
        self.audit.entries = page.entries;
        self.audit.next_before = page.next_before_seq;
        self.audit.head = Some(page.head);
        if self.audit.select_last {
            self.selected[i] = self.audit.entries.len().saturating_sub(1);
            self.audit.select_last = false;
        } else if let Some(seq) = previous
            && let Some(pos) = self.audit.entries.iter().position(|e| e.seq == seq)
        {
            // A live refresh keeps the same entry selected.
            self.selected[i] = pos;
        }
    }
}

/// What a key did to a form.
enum FormKey {
    Edited,
    Submit,
    Cancel,
}

fn edit_form(form: &mut Form, key: KeyEvent) -> FormKey {
    match key.code {
        KeyCode::Esc => return FormKey::Cancel,
        KeyCode::Enter => return FormKey::Submit,
        KeyCode::Down | KeyCode::Tab => form.next(),
        KeyCode::Up | KeyCode::BackTab => form.prev(),
        KeyCode::Backspace => form.backspace(),
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => form.clear_field(),
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => form.type_char(c),
        _ => {}
    }
    FormKey::Edited
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn key_create(v: &serde_json::Map<String, Value>) -> KeyCreate {
    KeyCreate {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        agents: strings(v.get("agents")),
        probes: strings(v.get("probes")),
        tools: strings(v.get("tools")),
        max_capability: v
            .get("max_capability")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        expires_in_s: v
            .get("expires_in_days")
            .and_then(Value::as_u64)
            .map(|d| d.saturating_mul(86_400)),
    }
}

fn token_create(v: &serde_json::Map<String, Value>) -> TokenCreate {
    TokenCreate {
        ttl_s: v
            .get("ttl_minutes")
            .and_then(Value::as_u64)
            .map(|m| m.saturating_mul(60)),
        label: v.get("label").and_then(Value::as_str).map(str::to_owned),
        auto_approve: v
            .get("auto_approve")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// One line about a verification.
pub fn verify_line(v: &Result<AuditVerifyReport, String>) -> String {
    match v {
        Ok(r) if r.ok => {
            let cp = match &r.last_checkpoint {
                Some(c) => format!("last checkpoint #{}", c.seq),
                None => "no checkpoint yet".into(),
            };
            format!(
                "Audit chain OK: {} entries, {} checkpoints verified, {cp} ({} ms)",
                r.entries, r.checkpoints_verified, r.duration_ms
            )
        }
        Ok(r) => match &r.broken {
            Some(b) => format!(
                "Audit chain BROKEN at entry #{}: {} — {}",
                b.seq,
                b.kind,
                crate::text::clip(&b.message, 300)
            ),
            None => "Audit chain NOT OK (no detail)".into(),
        },
        Err(e) => format!("verify failed: {}", crate::text::clip(e, 300)),
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
