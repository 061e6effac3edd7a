//! Critical paths: the operator's paths and what each one's last run
//! found (where it broke). `e` runs the selected path now (as the operator;
//! audited), `x` removes it after `y`. Paths are defined with
//! `sonde-hub paths add FILE` (docs/critical-paths.md).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use serde_json::Value;
use sonde_admin::api::{ExpectationDef, PathInfo};

use super::{Ctx, Effect, Screen, View, empty_lines, kv, kv_styled, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::ListState;
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{ago, clip, utc};
use crate::worker::Request;

const SORTS: &[&str] = &["name", "last run", "result"];

const COLUMNS: [Column; 6] = [
    Column::new("NAME", 8, 40, 0),
    Column::whole("STEPS", 3),
    Column::whole("CHECKS", 4),
    Column::new("LAST RUN", 8, 16, 2),
    Column::new("RESULT", 6, 16, 1),
    Column::new("SUMMARY", 10, 200, 5),
];

#[derive(Debug, Clone, Default)]
pub struct Paths {
    pub list: ListState,
}

/// `pass`, `broken at N`, or `never run`.
pub fn result_text(p: &PathInfo) -> String {
    match &p.last_run {
        None => "never run".into(),
        Some(r) if r.ok => "pass".into(),
        Some(r) => match r.breaks_at {
            Some(i) => format!("broken at {i}"),
            None => "broken".into(),
        },
    }
}

fn expectation(e: &ExpectationDef) -> String {
    match e {
        ExpectationDef::Text(t) => t.clone(),
        ExpectationDef::Parts { at, op, value } => match value {
            Some(v) => format!("{at} {op} {v}"),
            None => format!("{at} {op}"),
        },
    }
}

impl Paths {
    pub fn rows<'a>(&self, data: &'a HubData) -> Vec<&'a PathInfo> {
        let mut rows: Vec<&PathInfo> = data
            .paths
            .iter()
            .filter(|p| {
                let d = &p.definition;
                let summary = p.last_run.as_ref().map_or("", |r| r.summary.as_str());
                matches_filter(&self.list.filter, &[&d.name, &d.description, summary])
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.list.sort.column {
                1 => {
                    let at = |p: &PathInfo| p.last_run.as_ref().map(|r| r.at_ms);
                    at(b).cmp(&at(a))
                }
                2 => {
                    let rank = |p: &PathInfo| match &p.last_run {
                        Some(r) if !r.ok => 0,
                        None => 1,
                        Some(_) => 2,
                    };
                    rank(a).cmp(&rank(b))
                }
                _ => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.definition.name.cmp(&b.definition.name));
            if self.list.sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    fn ids(rows: &[&PathInfo]) -> Vec<String> {
        rows.iter().map(|p| p.definition.name.clone()).collect()
    }

    pub fn selected<'a>(&self, data: &'a HubData) -> Option<&'a PathInfo> {
        let rows = self.rows(data);
        rows.get(self.list.selection.cursor(&Paths::ids(&rows))?)
            .copied()
    }

    fn detail_lines(&self, p: &PathInfo, ctx: &Ctx) -> Vec<Line<'static>> {
        let t = &ctx.theme;
        let d = &p.definition;
        let mut lines = vec![
            kv(t, "description", d.description.clone()),
            kv(
                t,
                "defined",
                format!("{} by {}", utc(p.updated_at_ms), p.defined_by),
            ),
            kv(
                t,
                "on failure",
                format!("{:?}", d.on_failure).to_lowercase(),
            ),
        ];
        match &p.last_run {
            Some(r) => lines.push(kv_styled(
                t,
                "last run",
                format!("{} by {}: {}", ago(ctx.now_ms, r.at_ms), r.by, r.summary),
                if r.ok { t.good() } else { t.bad() },
            )),
            None => lines.push(kv(t, "last run", "never (e runs it now)")),
        }
        for (i, s) in d.steps.iter().enumerate() {
            let broken = p
                .last_run
                .as_ref()
                .and_then(|r| r.breaks_at)
                .is_some_and(|b| b as usize == i + 1);
            lines.push(Line::styled(
                format!(
                    "{}. {}{}",
                    i + 1,
                    s.name,
                    if broken { "  ← breaks here" } else { "" }
                ),
                if broken { t.bad() } else { t.text() },
            ));
            for c in &s.checks {
                let params = if c.params.is_empty() {
                    String::new()
                } else {
                    format!(" {}", Value::Object(c.params.clone()))
                };
                lines.push(Line::raw(crate::text::clean(&format!(
                    "   {} {}{params}",
                    c.target, c.probe
                ))));
                for e in &c.expect {
                    lines.push(Line::styled(
                        crate::text::clean(&format!("      expect {}", expectation(e))),
                        t.dim(),
                    ));
                }
            }
        }
        lines
    }
}

impl Screen for Paths {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Paths), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        vec![Request::Paths]
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let ids = Paths::ids(&self.rows(ctx.data));
        if self.list.navigate(action, &ids) {
            return Vec::new();
        }
        match action {
            Action::Run => {
                if let Some(p) = self.selected(ctx.data) {
                    let name = p.definition.name.clone();
                    return vec![
                        Effect::Say(format!("running critical path {}…", clip(&name, 64))),
                        Effect::Send(Request::RunPath(name)),
                    ];
                }
            }
            Action::Revoke => {
                if let Some(p) = self.selected(ctx.data) {
                    let d = &p.definition;
                    return vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Remove the critical path {}?", clip(&d.name, 64)),
                        lines: vec![
                            (
                                format!(
                                    "{} steps, {} checks; MCP clients can no longer run it",
                                    d.steps.len(),
                                    d.steps.iter().map(|s| s.checks.len()).sum::<usize>()
                                ),
                                Tone::Warn,
                            ),
                            (
                                "The removal is audited; its runs stay in the audit chain.".into(),
                                Tone::Dim,
                            ),
                        ],
                        request: Request::RemovePath(d.name.clone()),
                    }))];
                }
            }
            Action::Copy => {
                if let Some(p) = self.selected(ctx.data) {
                    return vec![Effect::Copy {
                        what: "the path name".into(),
                        text: p.definition.name.clone(),
                    }];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    list_screen!(Paths, SORTS);

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let rows = self.rows(ctx.data);
        let ids = Paths::ids(&rows);
        let [list, detail] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Percentage(if self.list.detail_open { 60 } else { 0 }),
        ])
        .areas(area);
        let table_rows = rows
            .iter()
            .map(|p| {
                let d = &p.definition;
                let result = result_text(p);
                let style = match &p.last_run {
                    Some(r) if r.ok => t.good(),
                    Some(_) => t.bad(),
                    None => t.dim(),
                };
                vec![
                    plain(d.name.clone()),
                    plain(d.steps.len().to_string()),
                    plain(
                        d.steps
                            .iter()
                            .map(|s| s.checks.len())
                            .sum::<usize>()
                            .to_string(),
                    ),
                    plain(
                        p.last_run
                            .as_ref()
                            .map_or_else(|| "never".into(), |r| ago(ctx.now_ms, r.at_ms)),
                    ),
                    cell(result, style),
                    plain(
                        p.last_run
                            .as_ref()
                            .map_or_else(|| d.description.clone(), |r| r.summary.clone()),
                    ),
                ]
            })
            .collect();
        let sorted = match self.list.sort.column {
            1 => 3,
            2 => 4,
            _ => 0,
        };
        table::render(
            f,
            list,
            &table::Table {
                title: list_title(
                    "Critical paths",
                    rows.len(),
                    ctx.data.paths.len(),
                    &self.list.filter,
                ),
                columns: &COLUMNS,
                rows: table_rows,
                selected: self.list.selection.cursor(&ids),
                sorted: Some((sorted, self.list.sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("paths"),
                    ctx.data.paths.len(),
                    &self.list.filter,
                    "path",
                    vec![
                        Line::raw("No critical paths."),
                        Line::styled(
                            "Define one with `sonde-hub paths add FILE.toml` (docs/critical-paths.md).",
                            t.dim(),
                        ),
                    ],
                ),
                focused: false,
            },
            t,
        );
        if self.list.detail_open
            && let Some(p) = self.selected(ctx.data)
        {
            f.render_widget(
                Paragraph::new(self.detail_lines(p, ctx))
                    .block(table::block(
                        &format!("Path {}", clip(&p.definition.name, 40)),
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
    use crate::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use sonde_admin::api::{PathDefinition, PathRunSummary};

    fn info(name: &str, last: Option<(bool, Option<u32>)>) -> PathInfo {
        let definition: PathDefinition = serde_json::from_value(serde_json::json!({
            "name": name,
            "description": format!("{name} end to end"),
            "steps": [
                {"name": "router", "checks": [{"target": "gw", "probe": "system.uptime", "expect": ["/uptime_seconds > 60"]}]},
                {"name": "web", "checks": [{"target": "web1", "probe": "systemd.service.status", "params": {"unit": "nginx"}, "expect": ["/active_state == \"active\""]}]}
            ]
        }))
        .unwrap();
        PathInfo {
            definition,
            created_at_ms: 1_000,
            updated_at_ms: 1_000,
            defined_by: "operator:alice".into(),
            last_run: last.map(|(ok, breaks_at)| PathRunSummary {
                at_ms: 50_000,
                by: "api-key:sk_12345678".into(),
                ok,
                breaks_at,
                breaks_at_step: breaks_at.map(|_| "web".into()),
                summary: if ok {
                    "all 2 steps pass (2 checks)".into()
                } else {
                    "breaks at step 2 (web): web1 systemd.service.status: failed".into()
                },
                duration_ms: 12,
            }),
        }
    }

    fn data() -> HubData {
        let mut d = HubData::new("/x/admin.sock");
        d.paths = vec![
            info("nextcloud", Some((false, Some(2)))),
            info("backup", Some((true, None))),
            info("zzz\u{1b}[2Jevil", None),
        ];
        d.loaded.insert("paths");
        d
    }

    fn ctx(d: &HubData) -> Ctx<'_> {
        Ctx {
            data: d,
            now_ms: 110_000,
            theme: Theme::default(),
            frame: 0,
        }
    }

    fn draw(s: &Paths, d: &HubData, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| s.view(f, f.area(), &ctx(d))).unwrap();
        let buf = term.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..h {
            for x in 0..w {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn the_list_shows_each_path_with_its_last_result_and_the_detail_where_it_broke() {
        let d = data();
        let mut s = Paths::default();
        let text = draw(&s, &d, 140, 30);
        assert!(text.contains("Critical paths (3)"), "{text}");
        assert!(text.contains("broken at 2"), "{text}");
        assert!(text.contains("pass"), "{text}");
        assert!(text.contains("never run"), "{text}");
        assert!(!text.contains('\u{1b}'), "hub text is escaped");
        // Sorted by name: backup first; down to nextcloud, open the detail.
        s.update(Action::Down, &ctx(&d));
        assert_eq!(s.selected(&d).unwrap().definition.name, "nextcloud");
        s.update(Action::Enter, &ctx(&d));
        let text = draw(&s, &d, 140, 40);
        assert!(text.contains("2. web  ← breaks here"), "{text}");
        assert!(
            text.contains("expect /active_state == \"active\""),
            "{text}"
        );
        assert!(s.back());
    }

    #[test]
    fn run_sends_the_request_and_remove_asks_first() {
        let d = data();
        let mut s = Paths::default();
        let fx = s.update(Action::Run, &ctx(&d));
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Send(Request::RunPath(n)) if n == "backup")),
            "{fx:?}"
        );
        let fx = s.update(Action::Revoke, &ctx(&d));
        match &fx[..] {
            [Effect::Open(Modal::Confirm(c))] => {
                assert_eq!(c.request, Request::RemovePath("backup".into()));
                assert!(c.title.contains("Remove the critical path backup"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sorting_by_result_puts_broken_paths_first_and_nothing_panics_at_any_size() {
        let d = data();
        let mut s = Paths::default();
        s.list.sort.column = 2;
        let names: Vec<&str> = s
            .rows(&d)
            .iter()
            .map(|p| p.definition.name.as_str())
            .collect();
        assert_eq!(names[0], "nextcloud");
        s.list.detail_open = true;
        for (w, h) in [(1, 1), (20, 5), (60, 12), (200, 60)] {
            draw(&s, &d, w, h);
        }
        let empty = HubData::new("/x");
        let text = draw(&Paths::default(), &empty, 100, 10);
        assert!(text.contains("Loading"), "{text}");
    }
}
