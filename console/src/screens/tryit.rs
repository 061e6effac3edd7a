//! Try it: pick an online agent, one of its probes, fill the parameters
//! (validated as you type) and run it through the hub. The result reads
//! for people (sizes, times and durations in human units beside the raw
//! values), toggles to raw JSON, can be searched, copied and saved.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::{AgentDetail, AgentState, AgentSummary, ProbeRun, ProbeRunResult};
use sonde_protocol::messages::{PackState, ProbeSummary};
use std::cell::Cell;

use super::{Ctx, Effect, Screen, View, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::form::Form;
use crate::human::{self, ResultLine};
use crate::keymap::Scope;
use crate::list::{Scroll, Selection};
use crate::modal::{Modal, Prompt, PromptFor};
use crate::table::{self, Column, plain};
use crate::text::{clean, clip, duration_ms, fit};
use crate::theme::Theme;
use crate::worker::{Reply, Request};

/// Where the focus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TryFocus {
    #[default]
    Agents,
    Probes,
    Form,
    Result,
}

const AGENT_COLUMNS: [Column; 2] = [Column::new("AGENT", 8, 40, 0), Column::new("OS", 6, 40, 1)];
const PROBE_COLUMNS: [Column; 2] = [
    Column::new("PROBE", 10, 32, 0),
    Column::new("DESCRIPTION", 8, 200, 1),
];

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

#[derive(Debug, Clone, Default)]
pub struct TryIt {
    pub focus: TryFocus,
    pub agents_selection: Selection,
    pub probes_selection: Selection,
    /// The agent whose probes are listed.
    pub agent: Option<String>,
    /// The probe the form is for, and the form.
    pub probe: Option<ProbeSummary>,
    pub form: Option<Form>,
    pub result: Option<Result<ProbeRunResult, String>>,
    pub running: bool,
    /// Raw JSON instead of the human outline.
    pub raw: bool,
    pub search: String,
    /// Which match `n`/`N` is on.
    pub match_at: usize,
    pub scroll: Scroll,
    /// Rows of the result viewport (set when drawn).
    view_rows: Cell<u16>,
    pub filter: String,
    /// A probe to open when the agent's probes arrive (`:try AGENT PROBE`).
    pub pending_probe: Option<String>,
}

impl TryIt {
    pub fn agents<'a>(&self, data: &'a HubData) -> Vec<&'a AgentSummary> {
        data.agents
            .iter()
            .filter(|a| a.state == AgentState::Online && a.connected)
            .filter(|a| {
                matches_filter(&self.filter, &[&a.name, &a.os])
                    || self.agent.as_ref() == Some(&a.name)
            })
            .collect()
    }

    pub fn probes<'a>(&self, data: &'a HubData) -> Vec<&'a ProbeSummary> {
        match self.agent.as_ref().and_then(|n| data.details.get(n)) {
            Some(d) => runnable_probes(d)
                .into_iter()
                .filter(|p| matches_filter(&self.filter, &[&p.name, &p.description]))
                .collect(),
            None => Vec::new(),
        }
    }

    fn agent_ids(rows: &[&AgentSummary]) -> Vec<String> {
        rows.iter().map(|a| a.name.clone()).collect()
    }

    fn probe_ids(rows: &[&ProbeSummary]) -> Vec<String> {
        rows.iter().map(|p| p.name.clone()).collect()
    }

    /// Starts on an agent (and a probe when its list arrives): the palette.
    pub fn start(&mut self, agent: &str, probe: Option<String>) -> Vec<Effect> {
        self.agents_selection.select_id(agent);
        self.pick_agent(agent.to_owned());
        self.pending_probe = probe;
        vec![Effect::Send(Request::Agent(agent.to_owned()))]
    }

    fn pick_agent(&mut self, name: String) {
        if self.agent.as_ref() != Some(&name) {
            self.probe = None;
            self.form = None;
            self.result = None;
            self.probes_selection = Selection::default();
        }
        self.agent = Some(name);
        self.focus = TryFocus::Probes;
    }

    fn pick_probe(&mut self, p: ProbeSummary) {
        if self.probe.as_ref().map(|x| &x.name) != Some(&p.name) {
            self.form = Some(Form::new(p.params.clone()));
            self.result = None;
        }
        self.probes_selection.select_id(p.name.clone());
        self.probe = Some(p);
        self.focus = TryFocus::Form;
    }

    fn run(&mut self) -> Vec<Effect> {
        let (Some(agent), Some(probe), Some(form)) = (&self.agent, &self.probe, &self.form) else {
            return Vec::new();
        };
        if self.running {
            return vec![Effect::Say("a probe is already running".into())];
        }
        match form.values() {
            Ok(params) => {
                let run = ProbeRun {
                    agent: agent.clone(),
                    probe: probe.name.clone(),
                    params,
                };
                self.running = true;
                self.result = None;
                self.scroll = Scroll::default();
                self.match_at = 0;
                vec![
                    Effect::Say(format!("running {} on {}…", run.probe, run.agent)),
                    Effect::Send(Request::Probe(run)),
                ]
            }
            Err(e) => vec![Effect::Complain(format!("cannot run: {e}"))],
        }
    }

    /// The result as rows: a header, then the data (human outline or raw).
    pub fn result_lines(&self, t: &Theme) -> Vec<(String, Style)> {
        let mut out = Vec::new();
        match &self.result {
            None => {}
            Some(Err(e)) => out.push((clean(e), t.bad())),
            Some(Ok(r)) => {
                out.push((
                    format!("{:<14}{}", "outcome", if r.ok { "ok" } else { "failed" }),
                    if r.ok { t.good() } else { t.bad() },
                ));
                out.push((
                    format!(
                        "{:<14}{} ms ({})",
                        "duration",
                        r.duration_ms,
                        duration_ms(r.duration_ms)
                    ),
                    t.text(),
                ));
                out.push((
                    format!(
                        "{:<14}{}",
                        "truncated",
                        if r.truncated { "yes" } else { "no" }
                    ),
                    t.text(),
                ));
                let redactions: u64 = r.redactions.values().sum();
                let by_rule = r
                    .redactions
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push((
                    format!(
                        "{:<14}{}",
                        "redactions",
                        if redactions == 0 {
                            "0".into()
                        } else {
                            format!("{redactions} ({by_rule})")
                        }
                    ),
                    t.text(),
                ));
                out.push((format!("{:<14}#{}", "audit entry", r.audit_seq), t.text()));
                if let Some(code) = &r.error_code {
                    out.push((
                        clean(&format!(
                            "{:<14}{code}: {}",
                            "error",
                            r.error.as_deref().unwrap_or("")
                        )),
                        t.bad(),
                    ));
                }
                if let Some(data) = &r.data {
                    out.push((
                        if self.raw {
                            "data (raw JSON; J: human units)"
                        } else {
                            "data (human units beside raw values; J: raw JSON)"
                        }
                        .into(),
                        t.header(),
                    ));
                    for l in human::lines(data, self.raw) {
                        out.push((clean(&l.full()), t.text()));
                    }
                }
            }
        }
        out
    }

    /// Rows matching the search.
    pub fn matches(&self) -> Vec<usize> {
        let lines: Vec<ResultLine> = self
            .result_lines(&Theme::default())
            .into_iter()
            .map(|(text, _)| ResultLine { text, human: None })
            .collect();
        human::search(&lines, &self.search)
    }

    /// Sets the search and jumps to the first match.
    pub fn set_search(&mut self, text: &str) -> Vec<Effect> {
        self.search = text.to_owned();
        self.match_at = 0;
        self.jump()
    }

    fn jump(&mut self) -> Vec<Effect> {
        if self.search.is_empty() {
            return Vec::new();
        }
        let m = self.matches();
        if m.is_empty() {
            return vec![Effect::Say(format!(
                "no match for \"{}\"",
                clip(&self.search, 60)
            ))];
        }
        self.match_at %= m.len();
        self.scroll.show(m[self.match_at], self.view_rows.get());
        vec![Effect::Say(format!(
            "match {} of {}",
            self.match_at + 1,
            m.len()
        ))]
    }

    fn save_prompt(&self, now_ms: i64) -> Vec<Effect> {
        let Some(Ok(r)) = &self.result else {
            return vec![Effect::Say("no result to save yet".into())];
        };
        let stamp: String = crate::text::utc(now_ms)
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let path = format!("sonde-{}-{}-{}.json", safe(&r.agent), safe(&r.probe), stamp);
        vec![Effect::Open(Modal::Prompt(Prompt::new(
            PromptFor::SavePath,
            path,
        )))]
    }

    /// The file contents for a save: the whole result, pretty JSON.
    pub fn save_contents(&self) -> Option<String> {
        match &self.result {
            Some(Ok(r)) => serde_json::to_string_pretty(r).ok(),
            _ => None,
        }
    }
}

impl Screen for TryIt {
    fn scopes(&self) -> Vec<Scope> {
        match self.focus {
            TryFocus::Form => vec![Scope::Form],
            TryFocus::Result => vec![Scope::Result, Scope::Global],
            _ => vec![Scope::Screen(View::TryIt), Scope::Global],
        }
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        let mut r = vec![Request::Agents];
        if let Some(a) = &self.agent
            && self.focus != TryFocus::Agents
        {
            r.push(Request::Agent(a.clone()));
        }
        r
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let data = ctx.data;
        match self.focus {
            TryFocus::Agents => {
                let ids = TryIt::agent_ids(&self.agents(data));
                match action {
                    Action::Down | Action::ScrollDown => self.agents_selection.move_by(&ids, 1),
                    Action::Up | Action::ScrollUp => self.agents_selection.move_by(&ids, -1),
                    Action::PageDown => self.agents_selection.move_by(&ids, 10),
                    Action::PageUp => self.agents_selection.move_by(&ids, -10),
                    Action::Top => self.agents_selection.select(&ids, 0),
                    Action::Bottom => self.agents_selection.select(&ids, usize::MAX),
                    Action::Enter | Action::Right => {
                        let Some(i) = self.agents_selection.cursor(&ids) else {
                            return Vec::new();
                        };
                        let name = ids[i].clone();
                        self.pick_agent(name.clone());
                        return vec![Effect::Send(Request::Agent(name))];
                    }
                    _ => {}
                }
            }
            TryFocus::Probes => {
                let probes = self.probes(data);
                let ids = TryIt::probe_ids(&probes);
                match action {
                    Action::Down | Action::ScrollDown => self.probes_selection.move_by(&ids, 1),
                    Action::Up | Action::ScrollUp => self.probes_selection.move_by(&ids, -1),
                    Action::PageDown => self.probes_selection.move_by(&ids, 10),
                    Action::PageUp => self.probes_selection.move_by(&ids, -10),
                    Action::Top => self.probes_selection.select(&ids, 0),
                    Action::Bottom => self.probes_selection.select(&ids, usize::MAX),
                    Action::Left => self.focus = TryFocus::Agents,
                    Action::Enter | Action::Right => {
                        let Some(i) = self.probes_selection.cursor(&ids) else {
                            return Vec::new();
                        };
                        let p = probes[i].clone();
                        self.pick_probe(p);
                    }
                    _ => {}
                }
            }
            TryFocus::Form => match action {
                Action::Enter => return self.run(),
                Action::Down => {
                    if let Some(f) = &mut self.form {
                        f.next();
                    }
                }
                Action::Up => {
                    if let Some(f) = &mut self.form {
                        f.prev();
                    }
                }
                Action::PageDown => self.scroll.by(10),
                Action::PageUp => self.scroll.by(-10),
                Action::ScrollDown => self.scroll.by(3),
                Action::ScrollUp => self.scroll.by(-3),
                _ => {}
            },
            TryFocus::Result => match action {
                Action::Enter => return self.run(),
                Action::EditParams => self.focus = TryFocus::Form,
                Action::RawJson => {
                    self.raw = !self.raw;
                    self.scroll = Scroll::default();
                    self.match_at = 0;
                }
                Action::SearchNext => {
                    self.match_at = self.match_at.wrapping_add(1);
                    return self.jump();
                }
                Action::SearchPrev => {
                    let n = self.matches().len().max(1);
                    self.match_at = (self.match_at + n - 1) % n;
                    return self.jump();
                }
                Action::Save => return self.save_prompt(ctx.now_ms),
                Action::Copy => {
                    return match &self.result {
                        Some(Ok(r)) => vec![Effect::Copy {
                            what: format!("the result of {}", r.probe),
                            text: r
                                .data
                                .as_ref()
                                .map(|d| serde_json::to_string_pretty(d).unwrap_or_default())
                                .unwrap_or_default(),
                        }],
                        _ => Vec::new(),
                    };
                }
                Action::Down | Action::ScrollDown => self.scroll.by(1),
                Action::Up | Action::ScrollUp => self.scroll.by(-1),
                Action::PageDown => self.scroll.by(i32::from(self.view_rows.get().max(2)) - 1),
                Action::PageUp => self
                    .scroll
                    .by(-(i32::from(self.view_rows.get().max(2)) - 1)),
                Action::Top => self.scroll.top(),
                Action::Bottom => self.scroll.bottom(),
                _ => {}
            },
        }
        Vec::new()
    }

    fn back(&mut self) -> bool {
        self.focus = match self.focus {
            TryFocus::Agents => return false,
            TryFocus::Probes => TryFocus::Agents,
            TryFocus::Form => TryFocus::Probes,
            TryFocus::Result => TryFocus::Form,
        };
        true
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn set_filter(&mut self, text: &str, ctx: &Ctx) -> Result<Vec<Effect>, String> {
        self.filter = text.to_owned();
        self.sync(ctx);
        Ok(Vec::new())
    }

    fn sync(&mut self, ctx: &Ctx) {
        let ids = TryIt::agent_ids(&self.agents(ctx.data));
        self.agents_selection.sync(&ids);
        let probes = self.probes(ctx.data);
        if let Some(wanted) = self.pending_probe.clone()
            && let Some(p) = probes.iter().find(|p| p.name == wanted)
        {
            let p = (*p).clone();
            self.pending_probe = None;
            self.pick_probe(p);
            return;
        }
        let ids = TryIt::probe_ids(&probes);
        self.probes_selection.sync(&ids);
    }

    fn on_reply(&mut self, request: &Request, reply: &Reply, _ctx: &Ctx) -> Vec<Effect> {
        if let (Request::Probe(_), Reply::Probe(r)) = (request, reply) {
            self.running = false;
            self.result = Some(Ok((**r).clone()));
            self.focus = TryFocus::Result;
            self.scroll = Scroll::default();
            return vec![Effect::Say(format!(
                "{} on {}: {} in {} (audit #{}) — J raw JSON, / search, w save",
                r.probe,
                r.agent,
                if r.ok { "ok" } else { "failed" },
                duration_ms(r.duration_ms),
                r.audit_seq
            ))];
        }
        Vec::new()
    }

    fn on_failure(&mut self, request: &Request, message: &str, _unreachable: bool) {
        if let Request::Probe(_) = request {
            self.running = false;
            self.result = Some(Err(message.to_owned()));
            self.focus = TryFocus::Result;
            self.scroll = Scroll::default();
        }
    }

    fn type_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(form) = self.form.as_mut() else {
            self.focus = TryFocus::Probes;
            return Vec::new();
        };
        match key.code {
            KeyCode::Backspace => form.backspace(),
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                form.clear_field()
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => form.type_char(c),
            _ => {}
        }
        Vec::new()
    }

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let data = ctx.data;
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(38), Constraint::Percentage(62)])
                .areas(area);
        let [agents_area, probes_area] =
            Layout::vertical([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(left);
        let marker = |focus: bool| if focus { "▶ " } else { "" };
        let agents = self.agents(data);
        let agent_ids = TryIt::agent_ids(&agents);
        let rows = agents
            .iter()
            .map(|a| {
                let mark = if self.agent.as_ref() == Some(&a.name) {
                    "● "
                } else {
                    "  "
                };
                vec![plain(format!("{mark}{}", a.name)), plain(a.os.clone())]
            })
            .collect();
        let filter_note = if self.filter.is_empty() {
            String::new()
        } else {
            format!(" · filter \"{}\"", clip(&self.filter, 30))
        };
        table::render(
            f,
            agents_area,
            &table::Table {
                title: format!(
                    "{}Online agents ({}){filter_note}",
                    marker(self.focus == TryFocus::Agents),
                    agents.len()
                ),
                columns: &AGENT_COLUMNS,
                rows,
                selected: (self.focus == TryFocus::Agents)
                    .then(|| self.agents_selection.cursor(&agent_ids))
                    .flatten(),
                sorted: None,
                empty: if !data.is_loaded("agents") {
                    vec![Line::styled("Loading…", t.dim())]
                } else if !self.filter.is_empty()
                    && data.agents.iter().any(|a| a.state == AgentState::Online)
                {
                    vec![Line::styled(
                        format!(
                            "No online agent matches the filter \"{}\".",
                            clip(&self.filter, 60)
                        ),
                        t.warn(),
                    )]
                } else {
                    vec![
                        Line::raw("No agent is online."),
                        Line::styled("1 (Fleet) shows which are offline.", t.dim()),
                    ]
                },
                focused: self.focus == TryFocus::Agents,
            },
            t,
        );
        let probes = self.probes(data);
        let probe_ids = TryIt::probe_ids(&probes);
        let rows = probes
            .iter()
            .map(|p| vec![plain(p.name.clone()), plain(p.description.clone())])
            .collect();
        let empty = match &self.agent {
            None => vec![Line::styled("Pick an agent first (Enter).", t.dim())],
            Some(name) => match data.details.get(name) {
                Some(d) if !self.filter.is_empty() && !runnable_probes(d).is_empty() => {
                    vec![Line::styled(
                        format!(
                            "No probe matches the filter \"{}\".",
                            clip(&self.filter, 60)
                        ),
                        t.warn(),
                    )]
                }
                Some(_) => vec![
                    Line::raw("No runnable probes: no pack of this agent is active."),
                    Line::styled("3 (Permissions) approves packs.", t.dim()),
                ],
                None => vec![Line::styled("Loading probes…", t.dim())],
            },
        };
        table::render(
            f,
            probes_area,
            &table::Table {
                title: format!(
                    "{}Probes of active packs ({}){filter_note}",
                    marker(self.focus == TryFocus::Probes),
                    probes.len()
                ),
                columns: &PROBE_COLUMNS,
                rows,
                selected: (self.focus != TryFocus::Agents)
                    .then(|| self.probes_selection.cursor(&probe_ids))
                    .flatten(),
                sorted: None,
                empty,
                focused: self.focus == TryFocus::Probes,
            },
            t,
        );
        let [form_area, result_area] =
            Layout::vertical([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(right);
        let mut lines = Vec::new();
        match (&self.probe, &self.form) {
            (Some(p), Some(form)) => {
                lines.push(Line::raw(clip(&p.description, 300)));
                lines.push(Line::styled(
                    format!(
                        "capability {} · timeout {} · returns: {}",
                        p.capability,
                        duration_ms(p.timeout_ms),
                        clip(&p.output, 120)
                    ),
                    t.dim(),
                ));
                lines.push(Line::raw(""));
                lines.extend(form_lines(form, self.focus == TryFocus::Form, t));
                lines.push(Line::raw(""));
                lines.push(match form.values() {
                    Ok(_) if self.running => Line::styled("running…", t.warn()),
                    Ok(_) => {
                        Line::styled("Enter runs it through the hub (audited as you).", t.good())
                    }
                    Err(e) => Line::styled(format!("cannot run yet: {}", clip(&e, 200)), t.bad()),
                });
            }
            _ => lines.push(Line::styled(
                "Pick a probe to fill its parameters.",
                t.dim(),
            )),
        }
        let title = match &self.probe {
            Some(p) => format!("{}{}", marker(self.focus == TryFocus::Form), p.name),
            None => "Parameters".into(),
        };
        f.render_widget(
            Paragraph::new(lines)
                .block(table::block(
                    &title,
                    form_area,
                    if self.focus == TryFocus::Form {
                        t.key()
                    } else {
                        Style::new()
                    },
                ))
                .wrap(Wrap { trim: false }),
            form_area,
        );
        self.render_result(f, result_area, ctx);
    }
}

impl TryIt {
    fn render_result(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let focused = self.focus == TryFocus::Result;
        let title = if focused {
            "▶ Result — J raw/human, / search, n N, w save, y copy, e edit, Enter again"
        } else {
            "Result"
        };
        let block = table::block(title, area, if focused { t.key() } else { Style::new() });
        let inner = block.inner(area);
        f.render_widget(block, area);
        self.view_rows.set(inner.height);
        let rows: Vec<(String, Style)> = match &self.result {
            None if self.running => vec![(
                format!("{} waiting for the agent…", super::spinner(ctx.frame)),
                t.warn(),
            )],
            None => vec![("No result yet.".into(), t.dim())],
            Some(_) => self.result_lines(t),
        };
        let offset = self.scroll.fit(rows.len(), inner.height) as usize;
        let needle = self.search.to_lowercase();
        let lines: Vec<Line> = rows
            .iter()
            .skip(offset)
            .take(inner.height as usize)
            .map(|(text, style)| {
                let shown = fit(text, inner.width as usize);
                if !needle.is_empty() && text.to_lowercase().contains(&needle) {
                    Line::from(Span::styled(shown, t.found()))
                } else {
                    Line::from(Span::styled(shown, *style))
                }
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
    }
}

/// A form as lines: label, input (with a cursor on the focused field when
/// `editing`), type hint, and the validation message.
pub fn form_lines(form: &Form, editing: bool, t: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if form.is_empty() {
        lines.push(Line::styled("This probe takes no parameters.", t.dim()));
    }
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let marker = if focused && editing { "▶ " } else { "  " };
        let required = if field.spec.required { "*" } else { "" };
        let mut spans = vec![
            Span::styled(
                format!("{marker}{}{required}", field.spec.name),
                if focused { t.key() } else { t.text() },
            ),
            Span::raw(": "),
        ];
        if field.input.is_empty() {
            let placeholder = match &field.spec.default {
                Some(d) => format!("(default {d})"),
                None => String::new(),
            };
            spans.push(Span::styled(clip(&placeholder, 60), t.dim()));
        } else {
            // The end of long input, where the typing happens.
            let n = field.input.chars().count();
            let tail: String = field.input.chars().skip(n.saturating_sub(80)).collect();
            spans.push(Span::raw(clean(&tail)));
        }
        if focused && editing {
            spans.push(Span::styled("_", t.key()));
        }
        lines.push(Line::from(spans));
        let mut hint = vec![Span::styled(format!("    {}", field.kind_hint()), t.dim())];
        if !field.spec.description.is_empty() {
            hint.push(Span::styled(
                format!(" — {}", clip(&field.spec.description, 100)),
                t.dim(),
            ));
        }
        lines.push(Line::from(hint));
        if let Some(e) = &field.error {
            lines.push(Line::styled(format!("    ✗ {}", clip(e, 200)), t.bad()));
        }
    }
    lines
}
