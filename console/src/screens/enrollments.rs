//! Enrollments: machines asking to join. Approving says exactly which
//! machine it is and what it gets, and asks for `y`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::EnrollmentInfo;

use super::{Ctx, Effect, Screen, View, empty_lines, kv, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::keymap::Scope;
use crate::list::ListState;
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{ago, clip, utc};
use crate::worker::Request;

const SORTS: &[&str] = &["age", "name", "from"];

const COLUMNS: [Column; 7] = [
    Column::new("NAME", 8, 32, 0),
    Column::new("HOSTNAME", 8, 32, 3),
    Column::whole("FROM", 1),
    Column::new("KEY SHA256", 10, 17, 4),
    Column::new("ATTESTATION", 12, 60, 2),
    Column::new("TOKEN", 6, 20, 5),
    Column::whole("AGE", 1),
];

#[derive(Debug, Clone, Default)]
pub struct Enrollments {
    pub list: ListState,
}

impl Enrollments {
    pub fn rows<'a>(&self, data: &'a HubData) -> Vec<&'a EnrollmentInfo> {
        let mut rows: Vec<&EnrollmentInfo> = data
            .enrollments
            .iter()
            .filter(|e| {
                matches_filter(
                    &self.list.filter,
                    &[&e.name, &e.hostname, &e.remote_addr, &e.token_label, &e.id],
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.list.sort.column {
                1 => a.name.cmp(&b.name),
                2 => a.remote_addr.cmp(&b.remote_addr),
                _ => a.requested_at_ms.cmp(&b.requested_at_ms),
            }
            .then_with(|| a.id.cmp(&b.id));
            if self.list.sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    fn ids(rows: &[&EnrollmentInfo]) -> Vec<String> {
        rows.iter().map(|e| e.id.clone()).collect()
    }

    pub fn selected<'a>(&self, data: &'a HubData) -> Option<&'a EnrollmentInfo> {
        let rows = self.rows(data);
        rows.get(self.list.selection.cursor(&Enrollments::ids(&rows))?)
            .copied()
    }
}

/// What approving gives the machine, for the confirmation.
fn approval(e: &EnrollmentInfo) -> Confirm {
    let a = &e.attestation;
    let packs = a
        .packs
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(", ");
    Confirm {
        title: format!(
            "Approve the enrollment of {} ({})?",
            clip(&e.name, 64),
            clip(&e.hostname, 64)
        ),
        lines: vec![
            (
                format!("from {} · requested {} · token {} ({})", e.remote_addr, utc(e.requested_at_ms), e.token_label, e.token_id),
                Tone::Normal,
            ),
            (format!("{} · kernel {} · {}", a.os_release, a.kernel, a.arch), Tone::Normal),
            (format!("agent key sha256 {}", e.key_fingerprint), Tone::Dim),
            (format!("machine id {}", a.machine_id), Tone::Dim),
            (
                "It gets a client certificate from the hub CA and joins the fleet; its attestation becomes the baseline."
                    .into(),
                Tone::Warn,
            ),
            (
                format!(
                    "Packs it reports ({}) still need your approval each, except those approved automatically (system).",
                    if packs.is_empty() { "none".into() } else { packs }
                ),
                Tone::Normal,
            ),
        ],
        request: Request::ApproveEnrollment(e.name.clone()),
    }
}

impl Screen for Enrollments {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Enrollments), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        vec![Request::Enrollments]
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let ids = Enrollments::ids(&self.rows(ctx.data));
        if self.list.navigate(action, &ids) {
            return Vec::new();
        }
        match action {
            Action::Approve => {
                if let Some(e) = self.selected(ctx.data) {
                    return vec![Effect::Open(Modal::Confirm(approval(e)))];
                }
            }
            Action::Deny => {
                if let Some(e) = self.selected(ctx.data) {
                    return vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!(
                            "Deny the enrollment of {} ({})?",
                            clip(&e.name, 64),
                            clip(&e.hostname, 64)
                        ),
                        lines: vec![(
                            format!(
                                "from {} · token {}; it can ask again only with a new token",
                                e.remote_addr, e.token_label
                            ),
                            Tone::Dim,
                        )],
                        request: Request::DenyEnrollment(e.name.clone()),
                    }))];
                }
            }
            Action::Copy => {
                if let Some(e) = self.selected(ctx.data) {
                    return vec![Effect::Copy {
                        what: format!("the key fingerprint of {}", clip(&e.name, 40)),
                        text: e.key_fingerprint.clone(),
                    }];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    list_screen!(Enrollments, SORTS);

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let rows = self.rows(ctx.data);
        let ids = Enrollments::ids(&rows);
        let [list, detail] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Length(if self.list.detail_open { 14 } else { 0 }),
        ])
        .areas(area);
        let table_rows = rows
            .iter()
            .map(|e| {
                vec![
                    plain(e.name.clone()),
                    plain(e.hostname.clone()),
                    plain(e.remote_addr.clone()),
                    cell(e.key_fingerprint.clone(), t.dim()),
                    plain(e.attestation_summary.clone()),
                    plain(e.token_label.clone()),
                    plain(ago(ctx.now_ms, e.requested_at_ms)),
                ]
            })
            .collect();
        let sorted = match self.list.sort.column {
            1 => 0,
            2 => 2,
            _ => 6,
        };
        table::render(
            f,
            list,
            &table::Table {
                title: list_title(
                    "Pending enrollments",
                    rows.len(),
                    ctx.data.enrollments.len(),
                    &self.list.filter,
                ),
                columns: &COLUMNS,
                rows: table_rows,
                selected: self.list.selection.cursor(&ids),
                sorted: Some((sorted, self.list.sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("enrollments"),
                    ctx.data.enrollments.len(),
                    &self.list.filter,
                    "enrollment",
                    vec![
                        Line::raw("No pending enrollments."),
                        Line::styled(
                            "Machines asking to join show up here (a token without auto-approve).",
                            t.dim(),
                        ),
                    ],
                ),
                focused: false,
            },
            t,
        );
        if self.list.detail_open
            && let Some(e) = self.selected(ctx.data)
        {
            let a = &e.attestation;
            let lines = vec![
                kv(t, "enrollment id", e.id.clone()),
                kv(t, "hostname", e.hostname.clone()),
                kv(t, "from", e.remote_addr.clone()),
                kv(t, "key sha256", e.key_fingerprint.clone()),
                kv(t, "tls key sha256", e.tls_key_fingerprint.clone()),
                kv(t, "os", a.os_release.clone()),
                kv(t, "kernel / arch", format!("{} / {}", a.kernel, a.arch)),
                kv(t, "binary sha256", a.binary_sha256.to_hex()),
                kv(t, "machine id", a.machine_id.clone()),
                kv(
                    t,
                    "packs",
                    a.packs
                        .iter()
                        .map(|p| format!("{} {}", p.name, p.version))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                kv(t, "requested", utc(e.requested_at_ms)),
                kv(t, "token", format!("{} ({})", e.token_label, e.token_id)),
            ];
            f.render_widget(
                Paragraph::new(lines)
                    .block(table::block(
                        &format!("Request from {}", clip(&e.name, 40)),
                        detail,
                        Style::new(),
                    ))
                    .wrap(Wrap { trim: false }),
                detail,
            );
        }
    }
}
