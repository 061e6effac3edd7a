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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::app::App;
    use crate::fixtures::*;
    use crate::worker::Reply;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use sonde_admin::api::OAuthRequestStatus;
    use sonde_protocol::Capability;

    fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ch(app: &mut App, c: char) -> Vec<Request> {
        key(app, KeyCode::Char(c))
    }

    fn request(name: &str) -> OAuthRequestInfo {
        OAuthRequestInfo {
            id: "oag-0a1b2c3d4e5f".into(),
            client_id: "oac-00112233445566778899aabbccddeeff".into(),
            client_name: name.into(),
            redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
            redirect_host: "claude.ai".into(),
            user_code: "BCDF-GH23".into(),
            status: OAuthRequestStatus::Pending,
            resource: "https://hub.lan:7444/mcp".into(),
            remote_addr: "10.0.0.7".into(),
            requested_at_ms: NOW - 20_000,
            decided_at_ms: None,
            decided_by: None,
            agents: vec![],
            probes: vec![],
            tools: vec![],
            max_capability: Capability::Observe,
            expires_at_ms: None,
        }
    }

    fn client(name: &str) -> OAuthClientInfo {
        OAuthClientInfo {
            client_id: "oac-00112233445566778899aabbccddeeff".into(),
            name: name.into(),
            redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
            registered_at_ms: NOW - 60_000,
            remote_addr: "10.0.0.7".into(),
            revoked_at_ms: None,
            active_grants: 1,
        }
    }

    fn app_on_oauth(name: &str) -> App {
        let mut app = loaded_app();
        ch(&mut app, '8');
        assert_eq!(app.view, View::OAuth);
        answer(
            &mut app,
            Request::OAuthRequests,
            Reply::OAuthRequests(vec![request(name)]),
        );
        answer(
            &mut app,
            Request::OAuthClients,
            Reply::OAuthClients(vec![client(name)]),
        );
        app
    }

    #[test]
    fn oauth_requests_show_client_code_and_host_escaped() {
        let app = app_on_oauth("Claude\u{1b}[2J <evil>");
        let s = render(&app, 140, 30);
        assert!(s.contains("MCP clients asking for access (1)"), "{s}");
        assert!(s.contains("BCDF-GH23") && s.contains("claude.ai"), "{s}");
        assert!(s.contains("Registered OAuth clients (1)"), "{s}");
        assert!(!s.contains('\u{1b}'), "terminal escapes are never drawn");
        // Narrow terminals: nothing panics.
        for (w, h) in [(20, 5), (40, 10), (80, 24)] {
            render(&app, w, h);
        }
    }

    #[test]
    fn oauth_approval_chooses_a_policy_shows_it_and_needs_y() {
        let mut app = app_on_oauth("Claude");
        assert!(ch(&mut app, 'a').is_empty(), "approving is never one key");
        assert!(matches!(app.modal, Some(Modal::OAuthForm { .. })));
        let s = render(&app, 140, 34);
        assert!(s.contains("BCDF-GH23"), "the form shows the code: {s}");
        for c in "nas*".chars() {
            assert!(ch(&mut app, c).is_empty());
        }
        assert!(key(&mut app, KeyCode::Enter).is_empty(), "Enter reviews");
        let Some(Modal::Confirm(c)) = &app.modal else {
            panic!("no confirmation: {:?}", app.modal);
        };
        let all: Vec<&str> = c.lines.iter().map(|(l, _)| l.as_str()).collect();
        let all = all.join("\n");
        assert!(
            all.contains("BCDF-GH23") && all.contains("claude.ai"),
            "{all}"
        );
        assert!(
            all.contains("agents: nas*") && all.contains("up to observe"),
            "{all}"
        );
        let sent = ch(&mut app, 'y');
        assert_eq!(
            sent,
            [Request::ApproveOAuth(
                "oag-0a1b2c3d4e5f".into(),
                OAuthApprove {
                    agents: vec!["nas*".into()],
                    ..OAuthApprove::default()
                }
            )]
        );
        // Anything but y cancels a denial; y denies.
        ch(&mut app, 'd');
        assert!(ch(&mut app, 'n').is_empty());
        ch(&mut app, 'd');
        assert_eq!(
            ch(&mut app, 'y'),
            [Request::DenyOAuth("oag-0a1b2c3d4e5f".into())]
        );
    }

    #[test]
    fn oauth_clients_are_revoked_with_y_only_on_their_pane() {
        let mut app = app_on_oauth("Claude");
        assert!(ch(&mut app, 'x').is_empty());
        assert!(app.modal.is_none(), "x does nothing on the requests pane");
        key(&mut app, KeyCode::Right);
        assert!(ch(&mut app, 'a').is_empty());
        assert!(app.modal.is_none(), "a does nothing on the clients pane");
        ch(&mut app, 'x');
        assert_eq!(
            ch(&mut app, 'y'),
            [Request::RevokeOAuthClient(
                "oac-00112233445566778899aabbccddeeff".into()
            )]
        );
    }
}
