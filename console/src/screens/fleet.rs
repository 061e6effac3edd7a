//! Fleet: every agent, what needs attention first (quarantined, offline),
//! probe traffic per minute, per-agent latency, and a detail pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::{AgentState, AgentSummary, FleetMetrics};

use super::{Ctx, Effect, Screen, View, empty_lines, kv, kv_styled, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::{ListState, Scroll};
use crate::modal::{Confirm, Modal, Prompt, PromptFor, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{ago, clip, sparkline, utc};
use crate::theme::Theme;
use crate::worker::Request;

/// Minutes of latency in a row's sparkline.
const ROW_MINUTES: usize = 8;

const SORTS: &[&str] = &["attention", "name", "status", "last seen", "os", "version"];

const COLUMNS: [Column; 9] = [
    Column::new("NAME", 8, 32, 0),
    Column::whole("STATUS", 0),
    Column::whole("LAST SEEN", 1),
    Column::new("LATENCY", 9, 16, 3),
    Column::whole("PACKS a/p/u", 2),
    Column::new("OS", 6, 30, 4),
    Column::whole("VERSION", 5),
    Column::new("TAGS", 4, 30, 6),
    Column::whole("ID", 7),
];

/// Offline first among live agents; revoked last (present, but quiet).
fn attention(state: AgentState) -> u8 {
    match state {
        AgentState::Quarantined => 0,
        AgentState::Offline => 1,
        AgentState::Online => 2,
        AgentState::Revoked => 3,
    }
}

/// The status word and its style: the louder, the more it needs you.
pub fn state_span(a: &AgentSummary, theme: &Theme) -> (&'static str, Style) {
    match a.state {
        AgentState::Online => ("online", theme.good()),
        AgentState::Offline => ("OFFLINE", theme.bad()),
        AgentState::Quarantined => ("QUARANTINED", theme.warn()),
        AgentState::Revoked => ("revoked", theme.revoked()),
    }
}

/// The Fleet screen.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub list: ListState,
    pub detail_scroll: Scroll,
}

impl Fleet {
    /// The agents as listed: filtered, sorted.
    pub fn rows<'a>(&self, data: &'a HubData) -> Vec<&'a AgentSummary> {
        let mut rows: Vec<&AgentSummary> = data
            .agents
            .iter()
            .filter(|a| {
                let tags = a.tags.join(" ");
                matches_filter(
                    &self.list.filter,
                    &[&a.name, &a.hostname, &a.os, a.state.as_str(), &tags, &a.id],
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.list.sort.column {
                1 => a.name.cmp(&b.name),
                2 => a.state.as_str().cmp(b.state.as_str()),
                3 => b.last_seen_ms.cmp(&a.last_seen_ms),
                4 => a.os.cmp(&b.os),
                5 => a.agent_version.cmp(&b.agent_version),
                _ => attention(a.state).cmp(&attention(b.state)),
            };
            let ord = ord
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.id.cmp(&b.id));
            if self.list.sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    fn ids(rows: &[&AgentSummary]) -> Vec<String> {
        rows.iter().map(|a| a.id.clone()).collect()
    }

    pub fn selected<'a>(&self, data: &'a HubData) -> Option<&'a AgentSummary> {
        let rows = self.rows(data);
        let i = self.list.selection.cursor(&Fleet::ids(&rows))?;
        rows.get(i).copied()
    }

    /// Selects an agent by name (the palette), clearing a filter that
    /// would hide it. `false` when there is no such agent.
    pub fn select_name(&mut self, data: &HubData, name: &str) -> bool {
        let Some(a) = data
            .agents
            .iter()
            .filter(|a| a.name == name)
            .min_by_key(|a| attention(a.state))
        else {
            return false;
        };
        if !self.rows(data).iter().any(|r| r.id == a.id) {
            self.list.filter.clear();
        }
        self.list.selection.select_id(a.id.clone());
        true
    }

    fn detail_read(&self, data: &HubData) -> Vec<Effect> {
        match (self.list.detail_open, self.selected(data)) {
            (true, Some(a)) => vec![Effect::Send(Request::Agent(a.name.clone()))],
            _ => Vec::new(),
        }
    }
}

impl Screen for Fleet {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Fleet), Scope::Global]
    }

    fn reads(&self, ctx: &Ctx) -> Vec<Request> {
        let mut r = vec![Request::Agents, Request::Metrics(60)];
        if self.list.detail_open
            && let Some(a) = self.selected(ctx.data)
        {
            r.push(Request::Agent(a.name.clone()));
        }
        r
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let data = ctx.data;
        let ids = Fleet::ids(&self.rows(data));
        if self.list.navigate(action, &ids) {
            // A new row or the detail toggled: its scroll starts at the top
            // and its details are read.
            self.detail_scroll.top();
            return self.detail_read(data);
        }
        match action {
            Action::DetailDown => {
                self.detail_scroll.by(3);
                Vec::new()
            }
            Action::DetailUp => {
                self.detail_scroll.by(-3);
                Vec::new()
            }
            Action::Revoke => {
                let Some(a) = self.selected(data) else {
                    return Vec::new();
                };
                if a.state == AgentState::Revoked {
                    return vec![Effect::Say(format!(
                        "{} is already revoked; nothing to do",
                        clip(&a.name, 64)
                    ))];
                }
                vec![Effect::Open(Modal::Confirm(Confirm {
                    title: format!("Revoke agent {}?", clip(&a.name, 64)),
                    lines: vec![
                        (format!("id {}  host {}  {}", a.id, a.hostname, a.os), Tone::Dim),
                        (
                            "Its certificate stops working for good; the machine must enroll again to come back."
                                .into(),
                            Tone::Bad,
                        ),
                    ],
                    request: Request::RevokeAgent(a.name.clone()),
                }))]
            }
            Action::Tags => {
                let Some(a) = self.selected(data) else {
                    return Vec::new();
                };
                vec![Effect::Open(Modal::Prompt(Prompt::new(
                    PromptFor::Tags {
                        agent: a.name.clone(),
                    },
                    a.tags.join(", "),
                )))]
            }
            Action::Copy => match self.selected(data) {
                Some(a) => vec![Effect::Copy {
                    what: format!("the id of {}", clip(&a.name, 40)),
                    text: a.id.clone(),
                }],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    list_screen!(Fleet, SORTS);

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let (traffic, body) = if area.height >= 12 {
            let [a, b] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
            (Some(a), b)
        } else {
            (None, area)
        };
        if let Some(a) = traffic {
            f.render_widget(Paragraph::new(traffic_line(ctx, a.width)), a);
        }
        let (list_area, detail_area) = if self.list.detail_open {
            if body.width >= 120 {
                let [l, r] =
                    Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                        .areas(body);
                (l, Some(r))
            } else {
                let [l, r] =
                    Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)])
                        .areas(body);
                (l, Some(r))
            }
        } else {
            (body, None)
        };
        let rows = self.rows(ctx.data);
        let ids = Fleet::ids(&rows);
        let metrics = ctx.data.metrics.as_ref();
        let table_rows = rows
            .iter()
            .map(|a| {
                let (state, style) = state_span(a, t);
                let name_style = if a.state == AgentState::Revoked {
                    t.revoked()
                } else {
                    Style::new()
                };
                vec![
                    cell(a.name.clone(), name_style),
                    cell(state, style),
                    plain(
                        a.last_seen_ms
                            .map(|s| ago(ctx.now_ms, s))
                            .unwrap_or_else(|| "never".into()),
                    ),
                    cell(latency_cell(metrics, &a.id, ROW_MINUTES), t.text()),
                    plain(format!(
                        "{}/{}/{}",
                        a.packs_active, a.packs_pending, a.packs_unavailable
                    )),
                    plain(a.os.clone()),
                    plain(a.agent_version.clone()),
                    plain(a.tags.join(",")),
                    cell(a.id.clone(), t.dim()),
                ]
            })
            .collect();
        let pending = ctx
            .data
            .status
            .as_ref()
            .map(|s| s.pending_enrollments)
            .unwrap_or(0);
        let none = if pending > 0 {
            vec![
                Line::styled(
                    format!("No agents yet — {pending} enrollment request(s) are waiting for you."),
                    t.warn(),
                ),
                Line::raw("Press 2 (Enrollments) to review and approve them."),
            ]
        } else {
            vec![
                Line::raw("No agents yet."),
                Line::styled(
                    "Create an enrollment token (6 Keys & tokens, → then c) and run the enroll line it shows on the machine.",
                    t.dim(),
                ),
            ]
        };
        let sorted = match self.list.sort.column {
            1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(5),
            5 => Some(6),
            _ => None,
        };
        table::render(
            f,
            list_area,
            &table::Table {
                title: format!(
                    "{}{}",
                    list_title(
                        "Fleet",
                        rows.len(),
                        ctx.data.agents.len(),
                        &self.list.filter
                    ),
                    if self.list.sort.column == 0 {
                        " · attention first"
                    } else {
                        ""
                    }
                ),
                columns: &COLUMNS,
                rows: table_rows,
                selected: self.list.selection.cursor(&ids),
                sorted: sorted.map(|c| (c, self.list.sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("agents"),
                    ctx.data.agents.len(),
                    &self.list.filter,
                    "agent",
                    none,
                ),
                focused: false,
            },
            t,
        );
        if let Some(area) = detail_area {
            self.render_detail(f, area, ctx);
        }
    }
}

/// `▁▂▅ 42ms`: the agent's mean latency per minute over the last minutes,
/// and the latest value; `-` without answered calls.
pub fn latency_cell(metrics: Option<&FleetMetrics>, agent_id: &str, minutes: usize) -> String {
    let Some(m) = metrics.and_then(|m| m.agents.iter().find(|a| a.agent_id == agent_id)) else {
        return "-".into();
    };
    let tail = &m.latency_ms[m.latency_ms.len().saturating_sub(minutes)..];
    match m.latency_ms.iter().rev().flatten().next() {
        Some(last) => format!("{} {last}ms", sparkline(tail)),
        None => "-".into(),
    }
}

/// `calls/min ▁▂▅█ 123 in 60m · 4 now   refusals/min ▁▁▅ 2`.
fn traffic_line(ctx: &Ctx, width: u16) -> Line<'static> {
    let t = &ctx.theme;
    let Some(m) = &ctx.data.metrics else {
        return Line::styled(" probe traffic: loading…", t.dim());
    };
    let minutes = m.calls.len();
    let calls: u64 = m.calls.iter().sum();
    let refusals: u64 = m.refusals.iter().sum();
    let now = m.calls.last().copied().unwrap_or(0);
    let calls_text = format!(" {calls} in {minutes}m · {now} this min");
    let refusals_text = format!(" {refusals} in {minutes}m");
    let fixed = 12 + calls_text.len() + 3 + 15 + refusals_text.len();
    let spark = (width as usize).saturating_sub(fixed) / 2;
    let tail = |v: &[u64]| -> String {
        let v: Vec<Option<u64>> = v[v.len().saturating_sub(spark)..]
            .iter()
            .map(|x| Some(*x))
            .collect();
        sparkline(&v)
    };
    Line::from(vec![
        Span::styled(" calls/min ", t.dim()),
        Span::styled(tail(&m.calls), t.good()),
        Span::raw(calls_text),
        Span::raw("   "),
        Span::styled("refusals/min ", t.dim()),
        Span::styled(
            tail(&m.refusals),
            if refusals > 0 { t.bad() } else { t.dim() },
        ),
        Span::styled(refusals_text, if refusals > 0 { t.bad() } else { t.text() }),
    ])
}

impl Fleet {
    fn render_detail(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let Some(a) = self.selected(ctx.data) else {
            f.render_widget(
                Paragraph::new("No agent selected").block(table::block(
                    "Agent",
                    area,
                    Style::new(),
                )),
                area,
            );
            return;
        };
        let (state, style) = state_span(a, t);
        let mut lines = vec![
            kv(t, "name", a.name.clone()),
            kv(t, "id", a.id.clone()),
            kv_styled(t, "status", state, style),
            kv(t, "connected", if a.connected { "yes" } else { "no" }),
            kv(
                t,
                "last seen",
                a.last_seen_ms
                    .map(|s| format!("{} ({})", utc(s), ago(ctx.now_ms, s)))
                    .unwrap_or_else(|| "never".into()),
            ),
            kv(t, "hostname", a.hostname.clone()),
            kv(t, "os", a.os.clone()),
            kv(t, "agent version", a.agent_version.clone()),
            kv(
                t,
                "address",
                a.remote_addr.clone().unwrap_or_else(|| "-".into()),
            ),
            kv(t, "max capability", a.max_capability.as_str()),
            sandbox_line(t, &a.sandbox),
            kv(t, "enrolled", utc(a.enrolled_at_ms)),
            kv(t, "cert expires", utc(a.cert_expires_ms)),
            kv(t, "tags", a.tags.join(", ")),
        ];
        if let Some(r) = &a.quarantine_reason {
            lines.push(kv_styled(t, "quarantined", r.clone(), t.warn()));
            lines.push(Line::styled(
                "  4 (Attestation) shows what changed and releases it.",
                t.dim(),
            ));
        }
        if let Some(m) = ctx
            .data
            .metrics
            .as_ref()
            .and_then(|m| m.agents.iter().find(|x| x.agent_id == a.id))
        {
            let calls: u64 = m.calls.iter().sum();
            lines.push(kv(
                t,
                "calls",
                format!("{calls} in the last {}m", m.calls.len()),
            ));
            lines.push(kv(
                t,
                "calls/min",
                sparkline(&m.calls.iter().map(|c| Some(*c)).collect::<Vec<_>>()),
            ));
            lines.push(kv(
                t,
                "latency/min",
                latency_cell(ctx.data.metrics.as_ref(), &a.id, m.latency_ms.len()),
            ));
        }
        match ctx.data.details.get(&a.name) {
            Some(d) if d.summary.id == a.id => {
                lines.push(kv(t, "baseline", d.baseline_fingerprint.clone()));
                lines.push(kv(t, "cert sha256", d.cert_sha256.clone()));
                lines.push(kv(t, "signing key", d.signing_key_fingerprint.clone()));
                if let Some(h) = &d.agent_audit_head {
                    lines.push(kv(
                        t,
                        "agent audit head",
                        format!("#{} {}", h.seq, h.hash.to_hex()),
                    ));
                }
                lines.push(Line::raw(""));
                lines.push(Line::styled("Packs", t.header()));
                if d.packs.is_empty() {
                    lines.push(Line::styled("  none reported", t.dim()));
                }
                for p in &d.packs {
                    lines.push(Line::raw(format!(
                        "  {} {} · {} · {}",
                        clip(&p.name, 40),
                        clip(&p.version, 20),
                        p.state.as_str(),
                        p.capability
                    )));
                    for m in &p.missing {
                        lines.push(Line::styled(
                            format!("      missing: {}", clip(m, 300)),
                            t.warn(),
                        ));
                    }
                    if let Some(sample) = &p.sample_data {
                        lines.push(Line::styled(
                            format!("      SAMPLE DATA: {}", clip(sample, 200)),
                            t.warn(),
                        ));
                    }
                }
            }
            _ => lines.push(Line::styled("loading detail…", t.dim())),
        }
        let block = table::block(
            &format!("Agent {} — J/K scroll, Esc closes", clip(&a.name, 40)),
            area,
            Style::new(),
        );
        let inner = block.inner(area);
        let rows = wrapped_rows(&lines, inner.width);
        let offset = self.detail_scroll.fit(rows, inner.height);
        f.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((offset, 0)),
            area,
        );
    }
}

/// How the agent's kernel confines its probes; no confinement is a warning.
fn sandbox_line(t: &Theme, sandbox: &str) -> Line<'static> {
    match sandbox {
        "" => kv_styled(t, "sandbox", "not reported (an older agent)", t.dim()),
        "none" => kv_styled(
            t,
            "sandbox",
            "none: this kernel cannot confine probes (no Landlock)",
            t.warn(),
        ),
        s => kv(t, "sandbox", clip(s, 60)),
    }
}

/// Rows `lines` take when wrapped at `width` (an estimate by characters,
/// for bounding the scroll).
pub fn wrapped_rows(lines: &[Line], width: u16) -> usize {
    let w = width.max(1) as usize;
    lines.iter().map(|l| l.width().div_ceil(w).max(1)).sum()
}
