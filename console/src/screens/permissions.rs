//! Permissions: pack grants per agent, pending first. Approving shows what
//! the pack grants (capability, OS-level access) and asks for `y`; the
//! selection follows the pack, not the row, when the list re-sorts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::{PackAction, PermissionRequest};
use sonde_protocol::Capability;
use sonde_protocol::messages::{GrantDecision, PackState};

use super::{Ctx, Effect, Screen, View, empty_lines, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::ListState;
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::clip;
use crate::theme::Theme;
use crate::worker::Request;

const SORTS: &[&str] = &["pending first", "agent", "pack", "state"];

const COLUMNS: [Column; 7] = [
    Column::new("AGENT", 8, 32, 0),
    Column::new("PACK", 6, 24, 0),
    Column::whole("VERSION", 3),
    Column::whole("STATE", 1),
    Column::whole("DECISION", 2),
    Column::whole("CAPABILITY", 4),
    Column::new("NEEDS", 8, 80, 5),
];

pub fn state_span(p: &PermissionRequest, t: &Theme) -> (&'static str, Style) {
    match p.state {
        PackState::Pending => ("PENDING", t.warn()),
        PackState::Active => ("active", t.good()),
        PackState::Unavailable => ("unavailable", t.dim()),
        PackState::Revoked => ("revoked", t.revoked()),
        PackState::Refused => ("REFUSED", t.bad()),
    }
}

fn decision(p: &PermissionRequest) -> &'static str {
    match p.decision {
        Some(GrantDecision::Approved) => "approved",
        Some(GrantDecision::Revoked) => "revoked",
        None => "-",
    }
}

/// The list's id of a permission: agent id and pack.
pub fn key(p: &PermissionRequest) -> String {
    format!("{}/{}", p.agent_id, p.pack)
}

#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// Enter: the detail takes most of the screen.
    pub list: ListState,
}

impl Permissions {
    pub fn rows<'a>(&self, data: &'a HubData) -> Vec<&'a PermissionRequest> {
        let mut rows: Vec<&PermissionRequest> = data
            .permissions
            .iter()
            .filter(|p| {
                matches_filter(
                    &self.list.filter,
                    &[&p.agent_name, &p.pack, p.state.as_str(), decision(p)],
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.list.sort.column {
                1 => a.agent_name.cmp(&b.agent_name),
                2 => a.pack.cmp(&b.pack),
                3 => a.state.as_str().cmp(b.state.as_str()),
                _ => (a.state != PackState::Pending).cmp(&(b.state != PackState::Pending)),
            }
            .then_with(|| a.agent_name.cmp(&b.agent_name))
            .then_with(|| a.pack.cmp(&b.pack))
            .then_with(|| a.agent_id.cmp(&b.agent_id));
            if self.list.sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    fn ids(rows: &[&PermissionRequest]) -> Vec<String> {
        rows.iter().map(|p| key(p)).collect()
    }

    pub fn selected<'a>(&self, data: &'a HubData) -> Option<&'a PermissionRequest> {
        let rows = self.rows(data);
        rows.get(self.list.selection.cursor(&Permissions::ids(&rows))?)
            .copied()
    }
}

fn what(p: &PermissionRequest) -> String {
    format!(
        "pack {} {} on {}",
        clip(&p.pack, 40),
        clip(&p.version, 20),
        clip(&p.agent_name, 64)
    )
}

/// What approving grants, for the confirmation.
fn grant_lines(p: &PermissionRequest) -> Vec<(String, Tone)> {
    let mut lines = vec![(clip(&p.description, 300), Tone::Normal)];
    lines.push((
        format!(
            "capability {}{}",
            p.capability,
            match p.capability {
                Capability::Observe => " (read-only probes)",
                _ => " — beyond reading: its probes can change things",
            }
        ),
        if p.capability == Capability::Observe {
            Tone::Normal
        } else {
            Tone::Bad
        },
    ));
    if p.requires.is_empty() {
        lines.push((
            "At OS level: nothing beyond the agent's own user.".into(),
            Tone::Normal,
        ));
    } else {
        lines.push((
            "At OS level it needs (set up on the machine):".into(),
            Tone::Warn,
        ));
        for r in &p.requires {
            lines.push((format!("  • {}", clip(r, 300)), Tone::Warn));
        }
    }
    for m in &p.missing {
        lines.push((format!("  missing: {}", clip(m, 300)), Tone::Bad));
    }
    lines.push((
        format!(
            "manifest sha256 {} (a changed pack asks again)",
            p.manifest_sha256
        ),
        Tone::Dim,
    ));
    lines
}

impl Screen for Permissions {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Permissions), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        vec![Request::Permissions]
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let ids = Permissions::ids(&self.rows(ctx.data));
        let selected = self.selected(ctx.data);
        if self.list.navigate(action, &ids) {
            return Vec::new();
        }
        match action {
            Action::Approve => {
                let Some(p) = selected else { return Vec::new() };
                if p.decision == Some(GrantDecision::Approved) {
                    let note = match p.state {
                        PackState::Active => "it is active".to_owned(),
                        s => format!("the agent reports it {}", s.as_str()),
                    };
                    return vec![Effect::Say(format!(
                        "{} is already approved ({note}); nothing to do",
                        what(p)
                    ))];
                }
                return vec![Effect::Open(Modal::Confirm(Confirm {
                    title: format!("Approve {}?", what(p)),
                    lines: grant_lines(p),
                    request: Request::DecidePack(
                        p.agent_name.clone(),
                        p.pack.clone(),
                        PackAction::Approve,
                    ),
                }))];
            }
            Action::Deny => {
                let Some(p) = selected else { return Vec::new() };
                if p.decision == Some(GrantDecision::Approved) {
                    return vec![Effect::Say(format!(
                        "{} is approved; x revokes it",
                        what(p)
                    ))];
                }
                if p.state != PackState::Pending {
                    return vec![Effect::Say(format!(
                        "{} is not waiting for a decision",
                        what(p)
                    ))];
                }
                return vec![Effect::Open(Modal::Confirm(Confirm {
                    title: format!("Deny {}?", what(p)),
                    lines: vec![(
                        "Its probes stay unavailable; approving later is still possible.".into(),
                        Tone::Dim,
                    )],
                    request: Request::DecidePack(
                        p.agent_name.clone(),
                        p.pack.clone(),
                        PackAction::Deny,
                    ),
                }))];
            }
            Action::Revoke => {
                let Some(p) = selected else { return Vec::new() };
                if p.decision != Some(GrantDecision::Approved) {
                    return vec![Effect::Say(format!(
                        "{} is not approved; nothing to revoke",
                        what(p)
                    ))];
                }
                return vec![Effect::Open(Modal::Confirm(Confirm {
                    title: format!("Revoke {}?", what(p)),
                    lines: vec![(
                        "Its probes stop working at once on that agent.".into(),
                        Tone::Warn,
                    )],
                    request: Request::DecidePack(
                        p.agent_name.clone(),
                        p.pack.clone(),
                        PackAction::Revoke,
                    ),
                }))];
            }
            Action::Copy => {
                if let Some(p) = selected {
                    return vec![Effect::Copy {
                        what: format!("the manifest hash of {}", what(p)),
                        text: p.manifest_sha256.clone(),
                    }];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    list_screen!(Permissions, SORTS);

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let rows = self.rows(ctx.data);
        let ids = Permissions::ids(&rows);
        let detail_h = if self.list.detail_open {
            area.height.saturating_mul(2) / 3
        } else {
            10.min(area.height / 2)
        };
        let [list, detail] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(detail_h)]).areas(area);
        let table_rows = rows
            .iter()
            .map(|p| {
                let (state, style) = state_span(p, t);
                vec![
                    plain(p.agent_name.clone()),
                    plain(p.pack.clone()),
                    plain(p.version.clone()),
                    cell(state, style),
                    plain(decision(p)),
                    cell(
                        p.capability.as_str(),
                        if p.capability == Capability::Observe {
                            t.text()
                        } else {
                            t.warn()
                        },
                    ),
                    plain(p.requires.join("; ")),
                ]
            })
            .collect();
        let sorted = match self.list.sort.column {
            1 => Some(0),
            2 => Some(1),
            3 => Some(3),
            _ => None,
        };
        table::render(
            f,
            list,
            &table::Table {
                title: format!(
                    "{}{}",
                    list_title(
                        "Pack permissions",
                        rows.len(),
                        ctx.data.permissions.len(),
                        &self.list.filter
                    ),
                    if self.list.sort.column == 0 {
                        " · pending first"
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
                    ctx.data.is_loaded("permissions"),
                    ctx.data.permissions.len(),
                    &self.list.filter,
                    "pack",
                    vec![Line::raw("No packs reported by any agent yet.")],
                ),
                focused: false,
            },
            t,
        );
        let Some(p) = self.selected(ctx.data) else {
            return;
        };
        let mut lines: Vec<Line> = grant_lines(p)
            .into_iter()
            .map(|(text, tone)| Line::styled(text, tone.style(t)))
            .collect();
        lines.insert(
            1,
            Line::styled(
                format!("state {} · decision {}", p.state.as_str(), decision(p)),
                t.dim(),
            ),
        );
        f.render_widget(
            Paragraph::new(lines)
                .block(table::block(
                    &format!(
                        "{} — Enter {}",
                        what(p),
                        if self.list.detail_open {
                            "shrinks"
                        } else {
                            "enlarges"
                        }
                    ),
                    detail,
                    Style::new(),
                ))
                .wrap(Wrap { trim: false }),
            detail,
        );
    }
}
