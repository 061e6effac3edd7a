//! Audit: the hub's chain, newest first, one page at a time. Agents are
//! shown by name (the id is in the entry's detail) and filters take names
//! or ids; each row says what the entry was about (which pack, which
//! machine). Follow mode keeps the newest entry selected as entries arrive;
//! otherwise the cursor stays on its entry and new ones are counted above.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use serde_json::Value;
use sonde_admin::api::{AuditEntryDetail, AuditPage, AuditQuery, AuditVerifyReport};
use sonde_protocol::audit::{AuditAction, AuditEntry, ChainHead};
use std::collections::BTreeMap;

use super::{Ctx, Effect, Screen, View, kv, kv_styled};
use crate::action::Action;
use crate::keymap::Scope;
use crate::list::{Scroll, Selection};
use crate::modal::{Modal, overlay};
use crate::table::{self, Column, cell, plain};
use crate::text::{clean, clip, utc, utc_short};
use crate::theme::Theme;
use crate::worker::{Reply, Request};

/// Entries per audit page.
pub const AUDIT_PAGE: u32 = 200;

const COLUMNS: [Column; 7] = [
    Column::whole("SEQ", 0),
    Column::whole("TIME (UTC)", 1),
    Column::new("ACTOR", 8, 30, 3),
    Column::new("ACTION", 10, 28, 0),
    Column::new("AGENT", 6, 24, 2),
    Column::new("SUBJECT", 8, 60, 4),
    Column::whole("OUTCOME", 1),
];

/// Parses the audit filter line: `agent:NAME-or-ID actor:KEY probe:NAME
/// outcome:ok action:ACTION since:WHEN until:WHEN`, where WHEN is a
/// duration ago in the hub CLI's grammar (`2h`, `2w`, `1h30m`) or a UTC
/// date (`2024-05-01`, `2024-05-01T12:00`).
pub fn parse_audit_filter(text: &str, now_ms: i64) -> Result<AuditQuery, String> {
    let mut q = AuditQuery::default();
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once(':') else {
            return Err(format!(
                "{word:?}: use key:value (agent:{word}?) with agent, actor, probe, outcome, action, since, until"
            ));
        };
        if value.is_empty() {
            return Err(format!("{key}: needs a value"));
        }
        let when =
            |v: &str| crate::text::parse_when(v, now_ms).map_err(|e| format!("{key}:{v}: {e}"));
        match key {
            "agent" => q.agent = Some(value.into()),
            "actor" => q.actor = Some(value.into()),
            "probe" => q.probe = Some(value.into()),
            "outcome" => q.outcome = Some(value.into()),
            // A name that no entry can carry is a typo: refused, with the
            // names of its family, instead of a filter that shows nothing.
            "action" => {
                sonde_protocol::audit_action::check_filter(value)
                    .map_err(|e| format!("action: {e}"))?;
                q.action = Some(value.into());
            }
            "since" => q.since_ms = Some(when(value)?),
            "until" => q.until_ms = Some(when(value)?),
            other => {
                return Err(format!(
                    "unknown filter {other:?} (agent, actor, probe, outcome, action, since, until)"
                ));
            }
        }
    }
    Ok(q)
}

fn detail_str<'a>(e: &'a AuditEntry, key: &str) -> Option<&'a str> {
    e.detail.get(key).and_then(Value::as_str)
}

/// What an entry was about, in a few words: which pack, which machine,
/// which key or token, which probe.
pub fn subject(e: &AuditEntry) -> String {
    let d = |k: &str| detail_str(e, k).unwrap_or("").to_owned();
    // Entries of other versions may carry names this one does not know:
    // they fall through to the generic summary.
    let action = AuditAction::from_name(&e.action);
    let family = action.map(AuditAction::family);
    if let Some(p) = &e.probe {
        match detail_str(e, "reason").or(detail_str(e, "error")) {
            Some(why) if e.outcome != "ok" => format!("{p}: {why}"),
            _ => p.clone(),
        }
    } else if family == Some("pack") {
        format!("pack {}", d("pack"))
    } else if family == Some("enrollment") {
        let mut s = format!("machine {}", d("name"));
        if let Some(a) = detail_str(e, "remote_addr") {
            s.push_str(&format!(" from {a}"));
        }
        if let Some(r) = detail_str(e, "reason") {
            s.push_str(&format!(": {r}"));
        }
        s
    } else if family == Some("token") {
        format!("token {} {}", d("token_id"), d("label"))
            .trim_end()
            .to_owned()
    } else if family == Some("key") {
        format!("key {} {}", d("name"), d("prefix"))
            .trim()
            .to_owned()
    } else if action == Some(AuditAction::AgentTags) {
        let tags = e
            .detail
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        format!("tags {tags}")
    } else if action == Some(AuditAction::AttestationDrift) {
        let fields = e
            .detail
            .get("changes")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|x| x.get("field").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!("changed: {fields}")
    } else if action == Some(AuditAction::ToolDenied) {
        format!("tool {}", d("tool"))
    } else if let Some(a) = detail_str(e, "remote_addr") {
        a.to_owned()
    } else {
        ["reason", "name", "error", "code"]
            .iter()
            .find_map(|k| detail_str(e, k))
            .unwrap_or("")
            .to_owned()
    }
}

/// The agent of an entry by name (the id when no name is known).
pub fn agent_name(e: &AuditEntry, names: &BTreeMap<String, String>) -> String {
    match &e.agent {
        Some(id) => names.get(id).cloned().unwrap_or_else(|| id.clone()),
        None => "-".into(),
    }
}

/// The actor, with an agent's id replaced by its name.
pub fn actor_name(e: &AuditEntry, names: &BTreeMap<String, String>) -> String {
    if let Some(id) = e.actor.strip_prefix("agent:")
        && let Some(name) = names.get(id)
    {
        return format!("agent:{name}");
    }
    e.actor.clone()
}

pub fn outcome_style(outcome: &str, t: &Theme) -> Style {
    match outcome {
        "ok" | "success" | "approved" => t.good(),
        "denied" | "refused" | "error" | "failed" | "rejected" | "timeout" | "quarantined" => {
            t.bad()
        }
        _ => t.text(),
    }
}

/// The Audit screen.
#[derive(Debug, Clone)]
pub struct Audit {
    pub entries: Vec<AuditEntry>,
    /// Agent names by id, for this page.
    pub names: BTreeMap<String, String>,
    /// `before_seq` of every page from the newest to the current one.
    pub cursors: Vec<Option<u64>>,
    pub next_before: Option<u64>,
    /// The filters (paging fields unset).
    pub query: AuditQuery,
    /// Answers to older queries are dropped.
    pub generation: u64,
    pub head: Option<ChainHead>,
    /// After a page loads, select its last row (paging upwards).
    pub select_last: bool,
    pub last_verify: Option<Result<AuditVerifyReport, String>>,
    pub filter: String,
    pub selection: Selection,
    /// New entries take the cursor with them.
    pub follow: bool,
    /// Entries that arrived above the cursor while not following.
    pub new_above: usize,
    pub loaded: bool,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            entries: Vec::new(),
            names: BTreeMap::new(),
            cursors: vec![None],
            next_before: None,
            query: AuditQuery::default(),
            generation: 0,
            head: None,
            select_last: false,
            last_verify: None,
            filter: String::new(),
            selection: Selection::default(),
            follow: true,
            new_above: 0,
            loaded: false,
        }
    }
}

impl Audit {
    pub fn page(&self) -> usize {
        self.cursors.len().saturating_sub(1)
    }

    pub fn request(&self) -> Request {
        let mut q = self.query.clone();
        q.before_seq = self.cursors.last().copied().flatten();
        q.limit = Some(AUDIT_PAGE);
        Request::Audit(q, self.generation)
    }

    fn ids(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.seq.to_string()).collect()
    }

    pub fn cursor(&self) -> Option<usize> {
        self.selection.cursor(&self.ids())
    }

    pub fn selected(&self) -> Option<&AuditEntry> {
        self.entries.get(self.cursor()?)
    }

    fn load(&mut self, cursors: Vec<Option<u64>>, select_last: bool) -> Vec<Effect> {
        self.cursors = cursors;
        self.generation += 1;
        self.select_last = select_last;
        self.selection = Selection::default();
        vec![Effect::Send(self.request())]
    }

    fn older(&mut self) -> Vec<Effect> {
        match self.next_before {
            Some(next) if !self.entries.is_empty() => {
                self.follow = false;
                let mut c = self.cursors.clone();
                c.push(Some(next));
                self.load(c, false)
            }
            _ => vec![Effect::Say("this is the oldest page".into())],
        }
    }

    fn newer(&mut self, select_last: bool) -> Vec<Effect> {
        if self.page() == 0 {
            return Vec::new();
        }
        let mut c = self.cursors.clone();
        c.pop();
        self.load(c, select_last)
    }

    fn move_by(&mut self, delta: isize) -> Vec<Effect> {
        let ids = self.ids();
        let n = ids.len();
        let cur = self.cursor();
        match cur {
            // Past the last row: the next (older) page.
            Some(c) if delta > 0 && c + 1 >= n => return self.older(),
            None if delta > 0 => return Vec::new(),
            // Above the first row: the newer page, on its last row.
            Some(0) if delta < 0 && self.page() > 0 => return self.newer(true),
            _ => {}
        }
        self.selection.move_by(&ids, delta);
        if self.cursor() != Some(0) {
            self.follow = false;
        }
        Vec::new()
    }

    fn take_page(&mut self, page: &AuditPage) {
        let previous_top = self.entries.first().map(|e| e.seq);
        self.entries = page.entries.clone();
        self.names = page.agent_names.clone();
        self.next_before = page.next_before_seq;
        self.head = Some(page.head);
        self.loaded = true;
        let ids = self.ids();
        if self.select_last {
            self.selection.select(&ids, usize::MAX);
            self.select_last = false;
        } else if self.follow && self.page() == 0 {
            self.selection.select(&ids, 0);
            self.new_above = 0;
        } else {
            if self.page() == 0
                && let Some(top) = previous_top
            {
                self.new_above += self.entries.iter().filter(|e| e.seq > top).count();
            }
            self.selection.sync(&ids);
        }
    }
}

impl Screen for Audit {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Audit), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        // The newest page is live; older pages do not change.
        if self.page() == 0 || !self.loaded {
            vec![self.request()]
        } else {
            Vec::new()
        }
    }

    fn update(&mut self, action: Action, _ctx: &Ctx) -> Vec<Effect> {
        match action {
            Action::Down | Action::ScrollDown => self.move_by(1),
            Action::Up | Action::ScrollUp => self.move_by(-1),
            Action::PageDown => self.move_by(20),
            Action::PageUp => self.move_by(-20),
            Action::Top => {
                self.follow = true;
                self.new_above = 0;
                if self.page() > 0 {
                    return self.load(vec![None], false);
                }
                let ids = self.ids();
                self.selection.select(&ids, 0);
                Vec::new()
            }
            Action::Bottom => {
                self.follow = false;
                let ids = self.ids();
                self.selection.select(&ids, usize::MAX);
                Vec::new()
            }
            Action::OlderPage => self.older(),
            Action::NewerPage => self.newer(false),
            Action::Follow => {
                self.follow = !self.follow;
                if !self.follow {
                    return vec![Effect::Say(
                        "not following: the cursor stays on its entry".into(),
                    )];
                }
                self.new_above = 0;
                let mut out = vec![Effect::Say(
                    "following: the newest entry stays selected".into(),
                )];
                if self.page() > 0 {
                    out.extend(self.load(vec![None], false));
                } else {
                    let ids = self.ids();
                    self.selection.select(&ids, 0);
                }
                out
            }
            Action::Enter => match self.selected() {
                Some(e) => vec![
                    Effect::Open(Modal::AuditEntry {
                        seq: e.seq,
                        detail: None,
                        names: self.names.clone(),
                        scroll: Scroll::default(),
                    }),
                    Effect::Send(Request::AuditEntry(e.seq)),
                ],
                None => Vec::new(),
            },
            Action::Verify => vec![
                Effect::Open(Modal::Verify(None, Scroll::default())),
                Effect::Send(Request::AuditVerify),
            ],
            Action::Copy => match self.selected() {
                Some(e) => vec![Effect::Copy {
                    what: format!("the hash of audit entry #{}", e.seq),
                    text: e.hash.to_hex(),
                }],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn back(&mut self) -> bool {
        false
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn set_filter(&mut self, text: &str, ctx: &Ctx) -> Result<Vec<Effect>, String> {
        let q = parse_audit_filter(text, ctx.now_ms)?;
        self.query = q;
        self.filter = text.to_owned();
        self.follow = true;
        self.new_above = 0;
        // The old rows do not match the new filter: none until it answers.
        self.loaded = false;
        self.entries.clear();
        self.names.clear();
        self.next_before = None;
        Ok(self.load(vec![None], false))
    }

    fn sync(&mut self, _ctx: &Ctx) {}

    fn on_reply(&mut self, request: &Request, reply: &Reply, _ctx: &Ctx) -> Vec<Effect> {
        match (request, reply) {
            (_, Reply::Audit(page, generation)) if *generation == self.generation => {
                self.take_page(page);
            }
            (_, Reply::AuditVerify(report)) => {
                self.last_verify = Some(Ok(report.clone()));
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_failure(&mut self, request: &Request, message: &str, unreachable: bool) {
        match request {
            Request::AuditVerify => self.last_verify = Some(Err(message.to_owned())),
            // Stay on the page we have.
            Request::Audit(_, g) if *g == self.generation && self.page() > 0 && !unreachable => {
                self.cursors.pop();
                self.generation += 1;
            }
            _ => {}
        }
    }

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let [info, list] =
            Layout::vertical([Constraint::Length(2), Constraint::Min(3)]).areas(area);
        let head = self
            .head
            .as_ref()
            .map(|h| format!("head #{} {}", h.seq, h.hash.short()))
            .unwrap_or_default();
        let more = if self.next_before.is_some() {
            "older: ] or ↓ past the end"
        } else {
            "oldest page"
        };
        let follow = if self.follow {
            Span::styled("FOLLOWING", t.good())
        } else if self.new_above > 0 {
            Span::styled(
                format!("paused: +{} new above (f follows)", self.new_above),
                t.warn(),
            )
        } else {
            Span::styled("paused (f follows)", t.dim())
        };
        let mut lines = vec![Line::from(vec![
            Span::raw(format!("page {}  ", self.page() + 1)),
            follow,
            Span::raw("  "),
            Span::styled(head, t.dim()),
            Span::raw(format!("  {more}")),
        ])];
        lines.push(match &self.last_verify {
            Some(v) => {
                let ok = matches!(v, Ok(r) if r.ok);
                Line::styled(verify_line(v), if ok { t.good() } else { t.bad() })
            }
            None => Line::styled("v verifies the chain", t.dim()),
        });
        f.render_widget(Paragraph::new(lines), info);
        let rows = self
            .entries
            .iter()
            .map(|e| {
                vec![
                    plain(e.seq.to_string()),
                    plain(utc_short(e.timestamp_ms)),
                    plain(actor_name(e, &self.names)),
                    plain(e.action.clone()),
                    plain(agent_name(e, &self.names)),
                    plain(subject(e)),
                    cell(e.outcome.clone(), outcome_style(&e.outcome, t)),
                ]
            })
            .collect();
        let empty = if !self.loaded {
            vec![Line::styled("Loading…", t.dim())]
        } else if self.filter.is_empty() {
            vec![Line::raw("The chain is empty.")]
        } else {
            vec![
                Line::styled(
                    format!(
                        "No entry matches the filter \"{}\".",
                        clip(&self.filter, 80)
                    ),
                    t.warn(),
                ),
                Line::styled("Esc clears the filter; / edits it.", t.dim()),
            ]
        };
        let filter = if self.filter.is_empty() {
            " · / filters".to_owned()
        } else {
            format!(" · filter \"{}\"", clip(&self.filter, 60))
        };
        table::render(
            f,
            list,
            &table::Table {
                title: format!(
                    "Audit, newest first ({} on this page){filter}",
                    self.entries.len()
                ),
                columns: &COLUMNS,
                rows,
                selected: self.cursor(),
                sorted: None,
                empty,
                focused: false,
            },
            t,
        );
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
                clip(&b.message, 300)
            ),
            None => "Audit chain NOT OK (no detail)".into(),
        },
        Err(e) => format!("verify failed: {}", clip(e, 300)),
    }
}

fn entry_lines(e: &AuditEntry, names: &BTreeMap<String, String>, t: &Theme) -> Vec<Line<'static>> {
    let agent = match &e.agent {
        Some(id) => match names.get(id) {
            Some(name) => format!("{name} ({id})"),
            None => id.clone(),
        },
        None => "-".into(),
    };
    let mut lines = vec![
        kv(t, "seq", e.seq.to_string()),
        kv(t, "time", utc(e.timestamp_ms)),
        kv(t, "actor", e.actor.clone()),
        kv(t, "action", e.action.clone()),
        kv(t, "agent", agent),
        kv(t, "subject", subject(e)),
        kv(t, "probe", e.probe.clone().unwrap_or_else(|| "-".into())),
        kv_styled(
            t,
            "outcome",
            e.outcome.clone(),
            outcome_style(&e.outcome, t),
        ),
        kv(
            t,
            "params digest",
            e.params_digest
                .map(|d| d.to_hex())
                .unwrap_or_else(|| "-".into()),
        ),
        kv(
            t,
            "result digest",
            e.result_digest
                .map(|d| d.to_hex())
                .unwrap_or_else(|| "-".into()),
        ),
        kv(t, "prev hash", e.prev_hash.to_hex()),
        kv(t, "hash", e.hash.to_hex()),
    ];
    match e.detail.get("agent_audit_head") {
        Some(h) => lines.push(kv_styled(
            t,
            "agent chain head",
            format!(
                "#{} {}",
                h.get("seq").map(|s| s.to_string()).unwrap_or_default(),
                clip(h.get("hash").and_then(|v| v.as_str()).unwrap_or("?"), 64)
            ),
            t.warn(),
        )),
        None => lines.push(kv(t, "agent chain head", "- (not a probe answer)")),
    }
    lines.push(Line::styled("detail", t.header()));
    for (k, v) in &e.detail {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        lines.push(kv(t, &format!("  {}", clip(k, 16)), clean(&text)));
    }
    lines
}

pub fn render_entry(
    f: &mut Frame,
    area: Rect,
    seq: u64,
    detail: Option<&AuditEntryDetail>,
    names: &BTreeMap<String, String>,
    scroll: &Scroll,
    t: &Theme,
) {
    let inner = overlay(
        f,
        area,
        120,
        34,
        &format!("Audit entry #{seq} — Esc closes, y copies its hash"),
        t,
    );
    let lines = match detail {
        None => vec![Line::styled("loading…", t.dim())],
        Some(d) => {
            let mut l = entry_lines(&d.entry, names, t);
            l.push(Line::raw(""));
            l.push(match &d.checkpoint {
                Some(c) => kv(
                    t,
                    "checkpoint",
                    format!(
                        "#{} signed {} {}",
                        c.seq,
                        utc(c.timestamp_ms),
                        c.hash.to_hex()
                    ),
                ),
                None => kv(t, "checkpoint", "none yet after this entry"),
            });
            l
        }
    };
    let rows = super::fleet::wrapped_rows(&lines, inner.width);
    let offset = scroll.fit(rows, inner.height);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((offset, 0)),
        inner,
    );
}

pub fn render_verify(
    f: &mut Frame,
    area: Rect,
    v: Option<&Result<AuditVerifyReport, String>>,
    frame: u64,
    t: &Theme,
) {
    let inner = overlay(f, area, 100, 12, "Verify the audit chain — Esc closes", t);
    let lines = match v {
        None => vec![Line::raw(format!(
            "{} verifying every entry and checkpoint…",
            super::spinner(frame)
        ))],
        Some(r) => {
            let ok = matches!(r, Ok(rep) if rep.ok);
            let mut l = vec![Line::styled(
                verify_line(r),
                if ok { t.good() } else { t.bad() },
            )];
            if let Ok(rep) = r {
                if let Some(h) = &rep.head {
                    l.push(kv(t, "head", format!("#{} {}", h.seq, h.hash.to_hex())));
                }
                if let Some(c) = &rep.last_checkpoint {
                    l.push(kv(
                        t,
                        "last checkpoint",
                        format!("#{} {} {}", c.seq, utc(c.timestamp_ms), c.hash.to_hex()),
                    ));
                }
                if let Some(b) = &rep.broken {
                    l.push(kv(t, "first broken", format!("#{}", b.seq)));
                    l.push(kv(t, "kind", b.kind.clone()));
                    l.push(kv(t, "why", b.message.clone()));
                }
            }
            l
        }
    };
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A typo in an action filter used to show an empty audit list; now it
    /// is refused with the names of the family it was probably meant for.
    #[test]
    fn an_action_filter_that_no_entry_can_match_is_refused_with_its_family() {
        let now = 1_700_000_000_000;
        let q = parse_audit_filter("action:key.created agent:nas", now).unwrap();
        assert_eq!(q.action.as_deref(), Some("key.created"));
        let q = parse_audit_filter("action:oauth.*", now).unwrap();
        assert_eq!(q.action.as_deref(), Some("oauth.*"));
        let e = parse_audit_filter("action:key.create", now).unwrap_err();
        assert!(
            e.contains("key.created") && e.contains("key.revoked"),
            "{e}"
        );
        assert!(parse_audit_filter("action:oath.*", now).is_err());
    }

    /// Every family the summary column knows by name is a real family.
    #[test]
    fn the_summary_column_knows_entries_by_their_typed_action() {
        let mut e: AuditEntry = serde_json::from_value(serde_json::json!({
            "seq": 1, "timestamp_ms": 0, "actor": "operator:a", "agent": null,
            "action": "key.created", "probe": null, "params_digest": null,
            "outcome": "ok", "result_digest": null,
            "detail": {"name": "claude", "prefix": "sk_1"},
            "prev_hash": sonde_protocol::audit::genesis_hash(),
            "hash": sonde_protocol::audit::genesis_hash(),
        }))
        .unwrap();
        assert_eq!(subject(&e), "key claude sk_1");
        e.action = "tool.denied".into();
        e.detail.insert("tool".into(), "probe".into());
        assert_eq!(subject(&e), "tool probe");
        // A name from another version falls through to the generic summary.
        e.action = "future.thing".into();
        assert!(!subject(&e).is_empty());
    }
}
