//! Attestation: open drift and every quarantined agent, kept ones too, so
//! nothing quarantined is out of reach: each row can be accepted (the new
//! attestation becomes the baseline) or revoked until it is resolved. The
//! detail says what changed in words (OS, kernel, agent version, which
//! pack, old → new), then shows both attestations side by side.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::{AgentSummary, DriftEvent, DriftStatus, VersionChange};
use sonde_protocol::attestation::{Attestation, AttestedPack};

use super::{Ctx, Effect, Screen, View, empty_lines, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::{ListState, Selection};
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{ago, clip};
use crate::theme::Theme;
use crate::worker::{Reply, Request};

const SORTS: &[&str] = &["detected", "agent"];

const COLUMNS: [Column; 5] = [
    Column::new("AGENT", 8, 32, 0),
    Column::new("STATE", 8, 34, 0),
    Column::whole("DETECTED", 1),
    Column::new("WHAT CHANGED", 10, 80, 2),
    Column::whole("AGENT ID", 4),
];

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Drift waiting for a decision.
    Open,
    /// Drift closed as "kept": the agent stays quarantined.
    Kept,
    /// Quarantined with no open or kept drift record.
    Quarantined,
    /// A closed event (history view).
    Closed(DriftStatus),
}

/// One row: an agent needing a decision, or (history) one drift event.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub key: String,
    pub agent_id: String,
    pub agent_name: String,
    pub kind: RowKind,
    pub event: Option<&'a DriftEvent>,
    /// Set when the agent is quarantined now.
    pub quarantined: Option<&'a AgentSummary>,
}

/// The Attestation screen.
#[derive(Debug, Clone, Default)]
pub struct AttestationScreen {
    pub list: ListState,
    /// Closed events too.
    pub history: bool,
    /// Every drift event (read while `history` is on).
    pub all_events: Vec<DriftEvent>,
    pub history_loaded: bool,
    /// Both attestations scroll together (`J`/`K`).
    pub detail_scroll: crate::list::Scroll,
}

fn short(hex: &str) -> String {
    if hex.len() > 12 {
        format!("{}…", &hex[..12])
    } else {
        hex.to_owned()
    }
}

/// The attested sandbox level; empty from an agent too old to report it.
fn sandbox_text(s: &str) -> String {
    if s.is_empty() {
        "not reported".to_owned()
    } else {
        clip(s, 40)
    }
}

fn pack_text(p: &AttestedPack) -> String {
    format!(
        "{} (manifest {})",
        p.version,
        short(&p.manifest_sha256.to_hex())
    )
}

/// What changed from the baseline to the current attestation, in words,
/// old → new; the riskiest changes are marked.
pub fn what_changed(e: &DriftEvent) -> Vec<(String, Tone)> {
    let (b, c) = (&e.baseline, &e.current);
    let mut out = Vec::new();
    if b.os_release != c.os_release {
        out.push((
            format!(
                "OS: {} → {}",
                clip(&b.os_release, 80),
                clip(&c.os_release, 80)
            ),
            Tone::Warn,
        ));
    }
    if b.kernel != c.kernel {
        out.push((
            format!("kernel: {} → {}", clip(&b.kernel, 80), clip(&c.kernel, 80)),
            Tone::Warn,
        ));
    }
    if b.arch != c.arch {
        out.push((
            format!(
                "architecture: {} → {}",
                clip(&b.arch, 40),
                clip(&c.arch, 40)
            ),
            Tone::Bad,
        ));
    }
    if b.binary_sha256 != c.binary_sha256 {
        let hashes = format!(
            "binary sha256 {} → {}",
            short(&b.binary_sha256.to_hex()),
            short(&c.binary_sha256.to_hex())
        );
        out.push(match &e.agent_version {
            Some(VersionChange { before: Some(x), after: Some(y) }) if x != y => (
                format!("agent version: {} → {} ({hashes})", clip(x, 40), clip(y, 40)),
                Tone::Warn,
            ),
            Some(VersionChange { after: Some(y), .. }) => (
                format!(
                    "agent binary changed, version still {} ({hashes}): a rebuild — or a binary that is not what it says",
                    clip(y, 40)
                ),
                Tone::Bad,
            ),
            _ => (format!("agent binary changed ({hashes}); its version is not known"), Tone::Warn),
        });
    }
    let keyed = !b.config.is_empty() && !c.config.is_empty();
    if keyed {
        for ch in c.changes_from(b) {
            let Some(key) = ch.field.strip_prefix("config:") else {
                continue;
            };
            let value = |v: &str| match v.strip_prefix("sha256:") {
                Some(hex) => format!("sha256 {}", short(hex)),
                None => clip(v, 60),
            };
            let risky = matches!(
                key,
                "max_capability" | "allow_unsigned_packs" | "require_sandbox" | "publisher_keys"
            );
            out.push((
                format!(
                    "config {}: {} → {}",
                    clip(key, 60),
                    value(&ch.baseline),
                    value(&ch.current)
                ),
                if risky { Tone::Bad } else { Tone::Warn },
            ));
        }
    }
    if b.config_sha256 != c.config_sha256 && !keyed {
        out.push((
            format!(
                "agent config changed (sha256 {} → {}); the agent attests only a digest of its settings — compare agent.toml on the machine",
                short(&b.config_sha256.to_hex()),
                short(&c.config_sha256.to_hex())
            ),
            Tone::Warn,
        ));
    }
    if b.machine_id != c.machine_id {
        out.push((
            format!(
                "machine id: {} → {} — another machine (or a reinstalled one) presents this agent's identity",
                clip(&b.machine_id, 40),
                clip(&c.machine_id, 40)
            ),
            Tone::Bad,
        ));
    }
    if b.sandbox != c.sandbox {
        let weaker = c.sandbox == "none" || c.sandbox.ends_with("-partial");
        out.push((
            format!(
                "probe sandbox: {} → {}{}",
                sandbox_text(&b.sandbox),
                sandbox_text(&c.sandbox),
                if weaker {
                    " — probes are now less confined"
                } else {
                    ""
                }
            ),
            if weaker { Tone::Bad } else { Tone::Warn },
        ));
    }
    let mut names: Vec<&str> = b
        .packs
        .iter()
        .chain(&c.packs)
        .map(|p| p.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let old = b.packs.iter().find(|p| p.name == name);
        let new = c.packs.iter().find(|p| p.name == name);
        let name = clip(name, 40);
        match (old, new) {
            (None, Some(n)) => {
                out.push((format!("pack {name} added: {}", pack_text(n)), Tone::Warn))
            }
            (Some(o), None) => out.push((
                format!("pack {name} removed (was {})", pack_text(o)),
                Tone::Normal,
            )),
            (Some(o), Some(n)) if o != n => {
                let text = if o.version != n.version {
                    format!(
                        "pack {name}: {} → {} (manifest {} → {})",
                        clip(&o.version, 20),
                        clip(&n.version, 20),
                        short(&o.manifest_sha256.to_hex()),
                        short(&n.manifest_sha256.to_hex())
                    )
                } else {
                    format!(
                        "pack {name}: same version {}, but its manifest changed ({} → {})",
                        clip(&o.version, 20),
                        short(&o.manifest_sha256.to_hex()),
                        short(&n.manifest_sha256.to_hex())
                    )
                };
                out.push((text, Tone::Warn));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.push((
            "nothing differs field by field (the fingerprints differ)".into(),
            Tone::Dim,
        ));
    }
    out
}

/// A few words per change, for the list.
pub fn summary(e: &DriftEvent) -> String {
    let (b, c) = (&e.baseline, &e.current);
    let mut parts = Vec::new();
    if b.os_release != c.os_release {
        parts.push("OS".to_owned());
    }
    if b.kernel != c.kernel {
        parts.push("kernel".to_owned());
    }
    if b.arch != c.arch {
        parts.push("arch".to_owned());
    }
    if b.binary_sha256 != c.binary_sha256 {
        parts.push(match &e.agent_version {
            Some(VersionChange {
                before: Some(x),
                after: Some(y),
            }) if x != y => format!("agent {x}→{y}"),
            _ => "agent binary".to_owned(),
        });
    }
    if b.config_sha256 != c.config_sha256 {
        let keys: Vec<String> = c
            .changes_from(b)
            .into_iter()
            .filter_map(|ch| ch.field.strip_prefix("config:").map(str::to_owned))
            .collect();
        parts.push(if keys.is_empty() {
            "config".to_owned()
        } else {
            format!("config {}", keys.join(" "))
        });
    }
    if b.machine_id != c.machine_id {
        parts.push("MACHINE ID".to_owned());
    }
    if b.sandbox != c.sandbox {
        parts.push("sandbox".to_owned());
    }
    for ch in c.changes_from(b) {
        if let Some(p) = ch.field.strip_prefix("pack:") {
            parts.push(format!("pack {p}"));
        }
    }
    parts.join(", ")
}

impl AttestationScreen {
    pub fn rows<'a>(&'a self, data: &'a HubData) -> Vec<Row<'a>> {
        let quarantined = |id: &str| {
            data.quarantined
                .iter()
                .find(|q| q.agent.id == id)
                .map(|q| &q.agent)
        };
        let mut rows: Vec<Row> = Vec::new();
        if self.history {
            for e in &self.all_events {
                rows.push(Row {
                    key: e.id.to_string(),
                    agent_id: e.agent_id.clone(),
                    agent_name: e.agent_name.clone(),
                    kind: match e.status {
                        DriftStatus::Open => RowKind::Open,
                        s => RowKind::Closed(s),
                    },
                    event: Some(e),
                    quarantined: quarantined(&e.agent_id),
                });
            }
        } else {
            for e in &data.drift {
                if rows.iter().any(|r| r.agent_id == e.agent_id) {
                    continue;
                }
                rows.push(Row {
                    key: e.agent_id.clone(),
                    agent_id: e.agent_id.clone(),
                    agent_name: e.agent_name.clone(),
                    kind: RowKind::Open,
                    event: Some(e),
                    quarantined: quarantined(&e.agent_id),
                });
            }
            for q in &data.quarantined {
                if rows.iter().any(|r| r.agent_id == q.agent.id) {
                    continue;
                }
                rows.push(Row {
                    key: q.agent.id.clone(),
                    agent_id: q.agent.id.clone(),
                    agent_name: q.agent.name.clone(),
                    kind: match q.drift.as_ref().map(|d| d.status) {
                        Some(DriftStatus::Kept) => RowKind::Kept,
                        Some(DriftStatus::Open) => RowKind::Open,
                        _ => RowKind::Quarantined,
                    },
                    event: q.drift.as_ref(),
                    quarantined: Some(&q.agent),
                });
            }
        }
        rows.retain(|r| {
            let changes = r.event.map(summary).unwrap_or_default();
            matches_filter(
                &self.list.filter,
                &[&r.agent_name, &r.agent_id, &changes, state_text(r).as_str()],
            )
        });
        rows.sort_by(|a, b| {
            let at = |r: &Row| r.event.map(|e| e.detected_at_ms).unwrap_or(0);
            let ord = match self.list.sort.column {
                1 => a.agent_name.cmp(&b.agent_name),
                _ => at(b).cmp(&at(a)),
            }
            .then_with(|| a.key.cmp(&b.key));
            if self.list.sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    fn ids(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| r.key.clone()).collect()
    }

    pub fn selected<'a>(&'a self, data: &'a HubData) -> Option<Row<'a>> {
        let rows = self.rows(data);
        let i = self.list.selection.cursor(&AttestationScreen::ids(&rows))?;
        rows.into_iter().nth(i)
    }

    fn total(&self, data: &HubData) -> usize {
        if self.history {
            self.all_events.len()
        } else {
            let mut ids: Vec<&str> = data.drift.iter().map(|d| d.agent_id.as_str()).collect();
            ids.extend(data.quarantined.iter().map(|q| q.agent.id.as_str()));
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        }
    }
}

/// `OPEN drift`, `KEPT quarantined by …`, `accepted by …`.
pub fn state_text(r: &Row) -> String {
    let by = r
        .event
        .and_then(|e| e.resolved_by.as_deref())
        .map(|b| format!(" by {}", clip(b, 28)))
        .unwrap_or_default();
    match r.kind {
        RowKind::Open => "OPEN drift".into(),
        RowKind::Kept => format!("KEPT quarantined{by}"),
        RowKind::Quarantined => "QUARANTINED".into(),
        RowKind::Closed(DriftStatus::Kept) => format!("kept{by}"),
        RowKind::Closed(DriftStatus::Accepted) => format!("accepted{by}"),
        RowKind::Closed(DriftStatus::Revoked) => format!("revoked{by}"),
        RowKind::Closed(DriftStatus::Open) => "open".into(),
    }
}

fn state_style(r: &Row, t: &Theme) -> Style {
    match r.kind {
        RowKind::Open | RowKind::Kept | RowKind::Quarantined => t.warn(),
        RowKind::Closed(DriftStatus::Revoked) => t.revoked(),
        RowKind::Closed(_) => t.dim(),
    }
}

impl Screen for AttestationScreen {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Attestation), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        let mut r = vec![Request::Drift(false), Request::Quarantined];
        if self.history {
            r.push(Request::Drift(true));
        }
        r
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let ids = AttestationScreen::ids(&self.rows(ctx.data));
        if self.list.navigate(action, &ids) {
            return Vec::new();
        }
        match action {
            Action::DetailDown => self.detail_scroll.by(3),
            Action::DetailUp => self.detail_scroll.by(-3),
            Action::History => {
                self.history = !self.history;
                self.all_events.clear();
                self.history_loaded = false;
                self.list.selection = Selection::default();
                if self.history {
                    return vec![
                        Effect::Say("showing every drift event, with its decision (H: back to what needs you)".into()),
                        Effect::Read(Request::Drift(true)),
                    ];
                }
                return vec![
                    Effect::Say("showing open drift and quarantined agents".into()),
                    Effect::Read(Request::Drift(false)),
                    Effect::Read(Request::Quarantined),
                ];
            }
            Action::Approve | Action::Keep | Action::Revoke | Action::Copy => {
                let Some(row) = self.selected(ctx.data) else {
                    return Vec::new();
                };
                return decide(action, &row);
            }
            _ => {}
        }
        Vec::new()
    }

    list_screen!(AttestationScreen, SORTS);

    fn on_reply(&mut self, request: &Request, reply: &Reply, ctx: &Ctx) -> Vec<Effect> {
        if let (Request::Drift(true), Reply::Drift(events)) = (request, reply)
            && self.history
        {
            self.all_events = events.clone();
            self.history_loaded = true;
            self.sync(ctx);
        }
        Vec::new()
    }

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let rows = self.rows(ctx.data);
        let ids = AttestationScreen::ids(&rows);
        let list_h = if self.list.detail_open {
            5
        } else {
            (rows.len() as u16)
                .saturating_add(4)
                .min((area.height.saturating_mul(2) / 5).max(5))
        };
        let [list, detail] =
            Layout::vertical([Constraint::Length(list_h), Constraint::Min(0)]).areas(area);
        let table_rows = rows
            .iter()
            .map(|r| {
                vec![
                    plain(r.agent_name.clone()),
                    cell(state_text(r), state_style(r, t)),
                    plain(
                        r.event
                            .map(|e| ago(ctx.now_ms, e.detected_at_ms))
                            .unwrap_or_else(|| "-".into()),
                    ),
                    plain(
                        r.event
                            .map(summary)
                            .unwrap_or_else(|| "(no drift record)".into()),
                    ),
                    cell(r.agent_id.clone(), t.dim()),
                ]
            })
            .collect();
        let loaded = if self.history {
            self.history_loaded
        } else {
            ctx.data.is_loaded("drift") && ctx.data.is_loaded("quarantined")
        };
        let none = if self.history {
            vec![Line::raw("No drift was ever detected.")]
        } else {
            vec![
                Line::raw("Nothing needs you: no open drift and no quarantined agent."),
                Line::styled("H shows past drift events and who decided what.", t.dim()),
            ]
        };
        let name = if self.history {
            "Attestation: every drift event"
        } else {
            "Attestation: drift and quarantine"
        };
        table::render(
            f,
            list,
            &table::Table {
                title: list_title(name, rows.len(), self.total(ctx.data), &self.list.filter),
                columns: &COLUMNS,
                rows: table_rows,
                selected: self.list.selection.cursor(&ids),
                sorted: Some((
                    if self.list.sort.column == 1 { 0 } else { 2 },
                    self.list.sort.reverse,
                )),
                empty: empty_lines(
                    t,
                    loaded,
                    self.total(ctx.data),
                    &self.list.filter,
                    "agent",
                    none,
                ),
                focused: false,
            },
            t,
        );
        let Some(r) = self.selected(ctx.data) else {
            return;
        };
        render_detail(f, detail, &r, &self.detail_scroll, ctx);
    }
}

/// What `a` / `n` / `x` / `y` do on a row.
fn decide(action: Action, row: &Row) -> Vec<Effect> {
    let name = clip(&row.agent_name, 64);
    let quarantined_now = row.quarantined.is_some();
    let open = row.event.is_some_and(|e| e.status == DriftStatus::Open);
    if action == Action::Copy {
        return match row.event {
            Some(e) => vec![Effect::Copy {
                what: format!("the current attestation fingerprint of {name}"),
                text: e.current_fingerprint.clone(),
            }],
            None => vec![Effect::Copy {
                what: format!("the id of {name}"),
                text: row.agent_id.clone(),
            }],
        };
    }
    if !open && !quarantined_now {
        return vec![Effect::Say(format!(
            "this drift event is already closed ({}) and {name} is not quarantined; nothing to decide",
            state_text(row)
        ))];
    }
    match action {
        Action::Approve => {
            let mut lines = match row.event {
                Some(e) => what_changed(e),
                None => vec![("No drift record: the agent's current attestation becomes its baseline.".into(), Tone::Normal)],
            };
            lines.push(("Its probes answer again at once.".into(), Tone::Dim));
            vec![Effect::Open(Modal::Confirm(Confirm {
                title: format!("Accept the current attestation of {name} as its baseline and end the quarantine?"),
                lines,
                request: Request::AcceptBaseline(row.agent_name.clone()),
            }))]
        }
        Action::Keep if open => vec![Effect::Send(Request::KeepQuarantined(row.agent_name.clone()))],
        Action::Keep => vec![Effect::Say(format!(
            "{name} is already kept quarantined; a accepts its attestation, x revokes it"
        ))],
        Action::Revoke => vec![Effect::Open(Modal::Confirm(Confirm {
            title: format!("Revoke agent {name}?"),
            lines: vec![(
                "Its certificate stops working for good; the machine must enroll again to come back.".into(),
                Tone::Bad,
            )],
            request: Request::RevokeAgent(row.agent_name.clone()),
        }))],
        _ => Vec::new(),
    }
}

/// (field, value) pairs of an attestation, in a fixed order.
pub fn fields(a: &Attestation) -> Vec<(String, String)> {
    let mut out = vec![
        ("os_release".to_owned(), a.os_release.clone()),
        ("kernel".to_owned(), a.kernel.clone()),
        ("arch".to_owned(), a.arch.clone()),
        ("binary_sha256".to_owned(), a.binary_sha256.to_hex()),
        ("config_sha256".to_owned(), a.config_sha256.to_hex()),
        ("machine_id".to_owned(), a.machine_id.clone()),
        ("sandbox".to_owned(), sandbox_text(&a.sandbox)),
    ];
    for (k, v) in &a.config {
        out.push((format!("config {k}"), v.clone()));
    }
    for p in &a.packs {
        out.push((
            format!("pack {}", p.name),
            format!("{} {}", p.version, p.manifest_sha256.to_hex()),
        ));
    }
    out
}

fn side(
    title: &str,
    mine: &[(String, String)],
    other: &[(String, String)],
    t: &Theme,
) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(title.to_owned(), t.header())];
    // Every field of either side, so a pack present on one side only shows.
    let mut names: Vec<&String> = mine.iter().map(|(k, _)| k).collect();
    for (k, _) in other {
        if !names.contains(&k) {
            names.push(k);
        }
    }
    for name in names {
        let value = mine
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let theirs = other
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let changed = value != theirs;
        let shown = value
            .map(crate::text::clean)
            .unwrap_or_else(|| "(absent)".into());
        lines.push(Line::from(vec![
            Span::styled(
                format!(
                    "{} {:<16} ",
                    if changed { "*" } else { " " },
                    clip(name, 16)
                ),
                t.dim(),
            ),
            Span::styled(shown, if changed { t.changed() } else { t.text() }),
        ]));
    }
    lines
}

fn render_detail(f: &mut Frame, area: Rect, r: &Row, scroll: &crate::list::Scroll, ctx: &Ctx) {
    let t = &ctx.theme;
    if area.height < 3 {
        return;
    }
    let Some(e) = r.event else {
        let reason = r
            .quarantined
            .and_then(|a| a.quarantine_reason.clone())
            .unwrap_or_else(|| "no reason recorded".into());
        f.render_widget(
            Paragraph::new(vec![
                Line::styled(format!("Quarantined: {}", clip(&reason, 400)), t.warn()),
                Line::raw("a accepts its current attestation as the baseline; x revokes it."),
            ])
            .block(table::block(
                &format!("{} — no drift record", clip(&r.agent_name, 40)),
                area,
                Style::new(),
            ))
            .wrap(Wrap { trim: false }),
            area,
        );
        return;
    };
    let changes = what_changed(e);
    let what_h = (changes.len() as u16)
        .saturating_add(3)
        .min(area.height / 2);
    let [what, sides] =
        Layout::vertical([Constraint::Length(what_h), Constraint::Min(0)]).areas(area);
    let mut lines: Vec<Line> = changes
        .into_iter()
        .map(|(text, tone)| Line::styled(text, tone.style(t)))
        .collect();
    let decided = match (e.status, &e.resolved_by, e.resolved_at_ms) {
        (DriftStatus::Open, _, _) => {
            "waiting for you: a accept, n keep quarantined, x revoke".to_owned()
        }
        (s, by, at) => format!(
            "{} by {} {}{}",
            match s {
                DriftStatus::Kept => "kept quarantined",
                DriftStatus::Accepted => "accepted",
                _ => "revoked",
            },
            by.as_deref()
                .map(|b| clip(b, 40))
                .unwrap_or_else(|| "?".into()),
            at.map(|a| ago(ctx.now_ms, a)).unwrap_or_default(),
            if r.quarantined.is_some() {
                " — still quarantined: a accepts, x revokes"
            } else {
                ""
            }
        ),
    };
    lines.push(Line::styled(decided, t.dim()));
    f.render_widget(
        Paragraph::new(lines)
            .block(table::block(
                &format!(
                    "What changed on {} — Enter {}",
                    clip(&r.agent_name, 40),
                    "enlarges / shrinks"
                ),
                what,
                Style::new(),
            ))
            .wrap(Wrap { trim: false }),
        what,
    );
    if sides.height < 3 {
        return;
    }
    let base = fields(&e.baseline);
    let cur = fields(&e.current);
    let [l, rr] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(sides);
    let left = side(
        &format!("fingerprint {}", e.baseline_fingerprint),
        &base,
        &cur,
        t,
    );
    let right = side(
        &format!("fingerprint {}", e.current_fingerprint),
        &cur,
        &base,
        t,
    );
    let inner_w = l.width.saturating_sub(2);
    let rows =
        super::fleet::wrapped_rows(&left, inner_w).max(super::fleet::wrapped_rows(&right, inner_w));
    let offset = scroll.fit(rows, sides.height.saturating_sub(2));
    let title = |name: &str| {
        if scroll.max() > 0 {
            format!("{name} — J/K scroll")
        } else {
            name.to_owned()
        }
    };
    f.render_widget(
        Paragraph::new(left)
            .block(table::block(&title("Baseline (approved)"), l, Style::new()))
            .wrap(Wrap { trim: false })
            .scroll((offset, 0)),
        l,
    );
    f.render_widget(
        Paragraph::new(right)
            .block(table::block(&title("Current (now)"), rr, Style::new()))
            .wrap(Wrap { trim: false })
            .scroll((offset, 0)),
        rr,
    );
}
