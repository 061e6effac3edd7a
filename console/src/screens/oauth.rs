//! OAuth clients: MCP clients asking for access through the MCP
//! authorization flow (a pending item, like enrollments), and the clients
//! registered so far. Approving asks for the policy the client gets (the
//! scopes of an API key), shows the client, its code and what it gets, and
//! asks for `y`; the browser that waits is then sent back to the client.
//! Names and URIs come from the clients: they are cleaned before drawing.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use sonde_admin::api::{OAuthApprove, OAuthClientInfo, OAuthRequestInfo};

use super::{Ctx, Effect, Screen, View, empty_lines, list_title, matches_filter};
use crate::action::Action;
use crate::keymap::Scope;
use crate::list::Selection;
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{ago, clip, utc};
use crate::worker::Request;

const REQUEST_COLUMNS: [Column; 6] = [
    Column::new("CLIENT", 8, 40, 0),
    Column::whole("CODE", 0),
    Column::new("SENT BACK TO", 10, 48, 1),
    Column::whole("ID", 2),
    Column::whole("FROM", 3),
    Column::whole("AGE", 1),
];

const CLIENT_COLUMNS: [Column; 5] = [
    Column::new("NAME", 8, 40, 0),
    Column::whole("CLIENT ID", 1),
    Column::new("REDIRECT URIS", 10, 60, 3),
    Column::whole("GRANTS", 2),
    Column::whole("STATE", 0),
];

/// Which list keys act on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OAuthPane {
    #[default]
    Requests,
    Clients,
}

#[derive(Debug, Clone, Default)]
pub struct OAuthScreen {
    pub pane: OAuthPane,
    pub requests: Selection,
    pub clients: Selection,
    pub filter: String,
}

/// What approving grants, for the confirmation.
pub fn approval(r: &OAuthRequestInfo, p: OAuthApprove) -> Confirm {
    let all = |v: &[String]| {
        if v.is_empty() {
            "all".to_owned()
        } else {
            v.join(", ")
        }
    };
    Confirm {
        title: format!(
            "Give {} access to this hub's MCP tools?",
            clip(&r.client_name, 60)
        ),
        lines: vec![
            (
                format!(
                    "code {} · the browser is sent back to {} · asked from {} at {}",
                    r.user_code,
                    r.redirect_host,
                    r.remote_addr,
                    utc(r.requested_at_ms)
                ),
                Tone::Normal,
            ),
            (
                "Check that the code is the one its browser page shows.".into(),
                Tone::Warn,
            ),
            (
                format!(
                    "agents: {} · probes: {} · tools: {} · up to {}",
                    all(&p.agents),
                    all(&p.probes),
                    all(&p.tools),
                    p.max_capability
                ),
                Tone::Normal,
            ),
            (
                match p.expires_in_s {
                    Some(s) => format!(
                        "until revoked or for {} days; access tokens last an hour and are refreshed",
                        s / 86_400
                    ),
                    None => "until revoked; access tokens last an hour and are refreshed".into(),
                },
                Tone::Dim,
            ),
        ],
        request: Request::ApproveOAuth(r.id.clone(), p),
    }
}

impl OAuthScreen {
    pub fn request_rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a OAuthRequestInfo> {
        let mut rows: Vec<&OAuthRequestInfo> = ctx
            .data
            .oauth_requests
            .iter()
            .filter(|r| {
                matches_filter(
                    &self.filter,
                    &[&r.client_name, &r.redirect_host, &r.user_code, &r.id],
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            a.requested_at_ms
                .cmp(&b.requested_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        rows
    }

    pub fn client_rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a OAuthClientInfo> {
        ctx.data
            .oauth_clients
            .iter()
            .filter(|c| matches_filter(&self.filter, &[&c.name, &c.client_id]))
            .collect()
    }

    fn request_ids(rows: &[&OAuthRequestInfo]) -> Vec<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    }

    fn client_ids(rows: &[&OAuthClientInfo]) -> Vec<String> {
        rows.iter().map(|c| c.client_id.clone()).collect()
    }

    pub fn selected_request<'a>(&self, ctx: &Ctx<'a>) -> Option<&'a OAuthRequestInfo> {
        let rows = self.request_rows(ctx);
        rows.get(self.requests.cursor(&Self::request_ids(&rows))?)
            .copied()
    }

    pub fn selected_client<'a>(&self, ctx: &Ctx<'a>) -> Option<&'a OAuthClientInfo> {
        let rows = self.client_rows(ctx);
        rows.get(self.clients.cursor(&Self::client_ids(&rows))?)
            .copied()
    }
}

impl Screen for OAuthScreen {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::OAuth), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        vec![Request::OAuthRequests, Request::OAuthClients]
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        let ids = match self.pane {
            OAuthPane::Requests => Self::request_ids(&self.request_rows(ctx)),
            OAuthPane::Clients => Self::client_ids(&self.client_rows(ctx)),
        };
        let sel = match self.pane {
            OAuthPane::Requests => &mut self.requests,
            OAuthPane::Clients => &mut self.clients,
        };
        match action {
            Action::Down | Action::ScrollDown => sel.move_by(&ids, 1),
            Action::Up | Action::ScrollUp => sel.move_by(&ids, -1),
            Action::PageDown => sel.move_by(&ids, 10),
            Action::PageUp => sel.move_by(&ids, -10),
            Action::Top => sel.select(&ids, 0),
            Action::Bottom => sel.select(&ids, usize::MAX),
            Action::Left => self.pane = OAuthPane::Requests,
            Action::Right => self.pane = OAuthPane::Clients,
            Action::Approve if self.pane == OAuthPane::Requests => {
                if let Some(r) = self.selected_request(ctx) {
                    return vec![Effect::Open(Modal::OAuthForm {
                        request: Box::new(r.clone()),
                        form: crate::form::oauth_form(),
                    })];
                }
            }
            Action::Deny if self.pane == OAuthPane::Requests => {
                if let Some(r) = self.selected_request(ctx) {
                    return vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Deny {} access?", clip(&r.client_name, 60)),
                        lines: vec![(
                            format!(
                                "code {} · its browser is told and sent back to {} with access_denied",
                                r.user_code, r.redirect_host
                            ),
                            Tone::Dim,
                        )],
                        request: Request::DenyOAuth(r.id.clone()),
                    }))];
                }
            }
            Action::Revoke if self.pane == OAuthPane::Clients => {
                if let Some(c) = self.selected_client(ctx)
                    && c.revoked_at_ms.is_none()
                {
                    return vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Revoke the OAuth client {}?", clip(&c.name, 60)),
                        lines: vec![(
                            format!(
                                "{} · {} active grant(s): its tokens stop working at once and it cannot ask again",
                                c.client_id, c.active_grants
                            ),
                            Tone::Warn,
                        )],
                        request: Request::RevokeOAuthClient(c.client_id.clone()),
                    }))];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn back(&mut self) -> bool {
        false
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
        self.requests
            .sync(&Self::request_ids(&self.request_rows(ctx)));
        self.clients.sync(&Self::client_ids(&self.client_rows(ctx)));
    }

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
        let requests = self.request_rows(ctx);
        let ids = Self::request_ids(&requests);
        let rows = requests
            .iter()
            .map(|r| {
                vec![
                    plain(r.client_name.clone()),
                    cell(r.user_code.clone(), t.warn()),
                    plain(r.redirect_host.clone()),
                    cell(r.id.clone(), t.dim()),
                    plain(r.remote_addr.clone()),
                    plain(ago(ctx.now_ms, r.requested_at_ms)),
                ]
            })
            .collect();
        table::render(
            f,
            top,
            &table::Table {
                title: list_title(
                    "MCP clients asking for access",
                    requests.len(),
                    ctx.data.oauth_requests.len(),
                    &self.filter,
                ),
                columns: &REQUEST_COLUMNS,
                rows,
                selected: self.requests.cursor(&ids),
                sorted: Some((5, false)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("oauth requests"),
                    ctx.data.oauth_requests.len(),
                    &self.filter,
                    "request",
                    vec![
                        Line::raw("No MCP client is waiting for approval."),
                        Line::styled(
                            "Clients that connect with OAuth (claude.ai, ChatGPT, …) show up here while their browser page waits.",
                            t.dim(),
                        ),
                    ],
                ),
                focused: self.pane == OAuthPane::Requests,
            },
            t,
        );
        let clients = self.client_rows(ctx);
        let ids = Self::client_ids(&clients);
        let rows = clients
            .iter()
            .map(|c| {
                vec![
                    plain(c.name.clone()),
                    cell(c.client_id.clone(), t.dim()),
                    plain(c.redirect_uris.join(", ")),
                    plain(c.active_grants.to_string()),
                    if c.revoked_at_ms.is_some() {
                        cell("revoked", t.bad())
                    } else {
                        plain("active")
                    },
                ]
            })
            .collect();
        table::render(
            f,
            bottom,
            &table::Table {
                title: list_title(
                    "Registered OAuth clients",
                    clients.len(),
                    ctx.data.oauth_clients.len(),
                    &self.filter,
                ),
                columns: &CLIENT_COLUMNS,
                rows,
                selected: self.clients.cursor(&ids),
                sorted: None,
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("oauth clients"),
                    ctx.data.oauth_clients.len(),
                    &self.filter,
                    "client",
                    vec![Line::raw("No OAuth client has registered.")],
                ),
                focused: self.pane == OAuthPane::Clients,
            },
            t,
        );
    }
}
