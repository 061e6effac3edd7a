//! Integrations: the hub-side integrations (Prometheus, Alertmanager,
//! Proxmox VE, UniFi, signed third-party ones). Approve a pending one
//! (shows what it reaches and asks `y`), test it (its test probe, audited
//! with the operator as actor), remove it (asks `y`), rotate the
//! credential key (asks `y`). Credentials are never shown: only whether
//! one is set, its keyed fingerprint and when. Adding one and setting its
//! credential take a secret or a file, so they are CLI commands, which the
//! empty screen and the detail name.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::IntegrationInfo;

use super::{Ctx, Effect, Screen, View, empty_lines, kv, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::{Selection, Sort};
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{clip, utc};
use crate::worker::Request;

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
    pub selection: Selection,
    pub filter: String,
    pub sort: Sort,
    pub detail_open: bool,
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
            .filter(|i| matches_filter(&self.filter, &[&i.name, &i.kind, &i.state, &i.base_url]))
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.sort.column {
                1 => a.kind.cmp(&b.kind),
                2 => a.state.cmp(&b.state),
                _ => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.name.cmp(&b.name));
            if self.sort.reverse {
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
        rows.get(self.selection.cursor(&Integrations::ids(&rows))?)
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
        request: Request::IntegrationAction(i.name.clone(), "approve".into()),
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
        match action {
            Action::Down | Action::ScrollDown => self.selection.move_by(&ids, 1),
            Action::Up | Action::ScrollUp => self.selection.move_by(&ids, -1),
            Action::PageDown => self.selection.move_by(&ids, 10),
            Action::PageUp => self.selection.move_by(&ids, -10),
            Action::Top => self.selection.select(&ids, 0),
            Action::Bottom => self.selection.select(&ids, usize::MAX),
            Action::Enter => self.detail_open = !self.detail_open,
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
                    return vec![Effect::Send(Request::IntegrationAction(
                        i.name.clone(),
                        "test".into(),
                    ))];
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
                        request: Request::IntegrationAction(i.name.clone(), "remove".into()),
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

    fn back(&mut self) -> bool {
        std::mem::take(&mut self.detail_open)
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn set_filter(&mut self, text: &str, ctx: &Ctx) -> Result<Vec<Effect>, String> {
        self.filter = text.to_owned();
        self.sync(ctx);
        Ok(Vec::new())
    }

    fn sort_names(&self) -> &'static [&'static str] {
        SORTS
    }

    fn sort_mut(&mut self) -> Option<&mut Sort> {
        Some(&mut self.sort)
    }

    fn sync(&mut self, ctx: &Ctx) {
        let ids = Integrations::ids(&self.rows(ctx.data));
        self.selection.sync(&ids);
    }

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let rows = self.rows(ctx.data);
        let ids = Integrations::ids(&rows);
        let [list, detail] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Length(if self.detail_open { 13 } else { 0 }),
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
        let sorted = match self.sort.column {
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
                    &self.filter,
                ),
                columns: &COLUMNS,
                rows: table_rows,
                selected: self.selection.cursor(&ids),
                sorted: Some((sorted, self.sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("integrations"),
                    ctx.data.integrations.len(),
                    &self.filter,
                    "integration",
                    vec![
                        Line::raw("No integrations."),
                        Line::styled(
                            "Add one: sonde-hub integrations add NAME --kind prometheus|alertmanager|proxmox|unifi --url URL",
                            t.dim(),
                        ),
                    ],
                ),
                focused: false,
            },
            t,
        );
        if self.detail_open
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
                        Some(c) => {
                            format!("{} set {} by {}", c.fingerprint, utc(c.set_at_ms), c.set_by)
                        }
                        None => format!(
                            "none (sonde-hub integrations set-credential {} < FILE)",
                            i.name
                        ),
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
                    Request::IntegrationAction("pve".into(), "approve".into())
                );
            }
            other => panic!("{other:?}"),
        }
        let effects = s.update(Action::Test, &ctx);
        assert!(
            matches!(&effects[..], [Effect::Send(Request::IntegrationAction(n, a))] if n == "pve" && a == "test")
        );
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
                assert!(text.contains("set-credential"), "{text}");
            }
        }
    }
}
