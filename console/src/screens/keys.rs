//! Keys & tokens: API keys (for MCP clients) and enrollment tokens. A token
//! that was used stays "used" (revoking it afterwards changes nothing, so
//! the console does not offer it), and nothing already revoked or expired
//! is offered for revocation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use sonde_admin::api::{KeyInfo, TokenInfo};

use super::{Ctx, Effect, Screen, View, empty_lines, kv, list_title, matches_filter};
use crate::action::Action;
use crate::data::HubData;
use crate::form;
use crate::keymap::Scope;
use crate::list::{Selection, Sort};
use crate::modal::{Confirm, Modal, Tone};
use crate::table::{self, Column, cell, plain};
use crate::text::{ago, clip, utc, utc_short};
use crate::theme::Theme;
use crate::worker::Request;

/// Which list has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeysPane {
    #[default]
    Keys,
    Tokens,
}

const KEY_SORTS: &[&str] = &["created", "name", "last used"];
const TOKEN_SORTS: &[&str] = &["created", "label", "state"];

const KEY_COLUMNS: [Column; 10] = [
    Column::new("NAME", 8, 30, 0),
    Column::whole("PREFIX", 0),
    Column::whole("STATE", 0),
    Column::whole("MAX CAP", 3),
    Column::new("AGENTS", 6, 40, 4),
    Column::new("PROBES", 6, 40, 2),
    Column::new("TOOLS", 5, 40, 5),
    Column::whole("EXPIRES (UTC)", 3),
    Column::whole("LAST USED", 2),
    Column::whole("ID", 6),
];

const TOKEN_COLUMNS: [Column; 7] = [
    Column::new("LABEL", 8, 30, 0),
    Column::whole("ID", 0),
    Column::whole("STATE", 0),
    Column::whole("AUTO-APPROVE", 2),
    Column::whole("CREATED", 3),
    Column::whole("EXPIRES (UTC)", 1),
    Column::whole("USED", 4),
];

/// A key's state: revoked, expired or active.
pub fn key_state(k: &KeyInfo, now_ms: i64, t: &Theme) -> (&'static str, Style) {
    if k.revoked_at_ms.is_some() {
        ("revoked", t.revoked())
    } else if k.expires_at_ms.is_some_and(|e| e <= now_ms) {
        ("expired", t.dim())
    } else {
        ("active", t.good())
    }
}

/// A token's state as the operator knows it: one that enrolled a machine
/// stays "used", even if it was revoked afterwards.
pub fn token_state(tok: &TokenInfo, now_ms: i64, t: &Theme) -> (&'static str, Style) {
    match (tok.used_at_ms, tok.revoked_at_ms) {
        (Some(used), Some(revoked)) if used <= revoked => ("used", t.text()),
        (Some(_), None) => ("used", t.text()),
        (_, Some(_)) => ("revoked", t.revoked()),
        (None, None) if tok.expires_at_ms <= now_ms => ("expired", t.dim()),
        (None, None) => ("active", t.good()),
    }
}

fn list_or_all(v: &[String]) -> String {
    if v.is_empty() {
        "*".into()
    } else {
        v.join(",")
    }
}

#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub pane: KeysPane,
    pub keys_selection: Selection,
    pub tokens_selection: Selection,
    pub filter: String,
    pub key_sort: Sort,
    pub token_sort: Sort,
    pub detail_open: bool,
}

impl Keys {
    pub fn keys<'a>(&self, data: &'a HubData) -> Vec<&'a KeyInfo> {
        let mut rows: Vec<&KeyInfo> = data
            .keys
            .iter()
            .filter(|k| matches_filter(&self.filter, &[&k.name, &k.prefix, &k.id]))
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.key_sort.column {
                1 => a.name.cmp(&b.name),
                2 => b.last_used_at_ms.cmp(&a.last_used_at_ms),
                _ => b.created_at_ms.cmp(&a.created_at_ms),
            }
            .then_with(|| a.id.cmp(&b.id));
            if self.key_sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    pub fn tokens<'a>(&self, data: &'a HubData) -> Vec<&'a TokenInfo> {
        let mut rows: Vec<&TokenInfo> = data
            .tokens
            .iter()
            .filter(|t| matches_filter(&self.filter, &[&t.label, &t.id]))
            .collect();
        rows.sort_by(|a, b| {
            let ord = match self.token_sort.column {
                1 => a.label.cmp(&b.label),
                2 => a.state.cmp_key().cmp(&b.state.cmp_key()),
                _ => b.created_at_ms.cmp(&a.created_at_ms),
            }
            .then_with(|| a.id.cmp(&b.id));
            if self.token_sort.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
        rows
    }

    pub fn selected_key<'a>(&self, data: &'a HubData) -> Option<&'a KeyInfo> {
        let rows = self.keys(data);
        let ids: Vec<&str> = rows.iter().map(|k| k.id.as_str()).collect();
        rows.get(self.keys_selection.cursor(&ids)?).copied()
    }

    pub fn selected_token<'a>(&self, data: &'a HubData) -> Option<&'a TokenInfo> {
        let rows = self.tokens(data);
        let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
        rows.get(self.tokens_selection.cursor(&ids)?).copied()
    }

    fn move_by(&mut self, data: &HubData, delta: isize) {
        match self.pane {
            KeysPane::Keys => {
                let ids: Vec<String> = self.keys(data).iter().map(|k| k.id.clone()).collect();
                self.keys_selection.move_by(&ids, delta);
            }
            KeysPane::Tokens => {
                let ids: Vec<String> = self.tokens(data).iter().map(|t| t.id.clone()).collect();
                self.tokens_selection.move_by(&ids, delta);
            }
        }
    }

    fn revoke(&self, ctx: &Ctx) -> Vec<Effect> {
        let now = ctx.now_ms;
        let t = ctx.theme;
        match self.pane {
            KeysPane::Keys => {
                let Some(k) = self.selected_key(ctx.data) else {
                    return Vec::new();
                };
                let name = clip(&k.name, 64);
                match key_state(k, now, &t).0 {
                    "revoked" => vec![Effect::Say(format!(
                        "API key {name} is already revoked; nothing to do"
                    ))],
                    "expired" => vec![Effect::Say(format!(
                        "API key {name} has expired and no longer works; nothing to revoke"
                    ))],
                    _ => vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Revoke API key {name} ({})?", k.prefix),
                        lines: vec![
                            (
                                format!(
                                    "agents {} · probes {} · tools {} · up to {}",
                                    list_or_all(&k.agents),
                                    list_or_all(&k.probes),
                                    list_or_all(&k.tools),
                                    k.max_capability
                                ),
                                Tone::Dim,
                            ),
                            ("Clients using it are refused at once.".into(), Tone::Warn),
                        ],
                        request: Request::RevokeKey(k.id.clone()),
                    }))],
                }
            }
            KeysPane::Tokens => {
                let Some(tok) = self.selected_token(ctx.data) else {
                    return Vec::new();
                };
                let label = if tok.label.is_empty() {
                    tok.id.clone()
                } else {
                    format!("{} ({})", clip(&tok.label, 40), tok.id)
                };
                match token_state(tok, now, &t).0 {
                    "used" => vec![Effect::Say(format!(
                        "token {label} was already used to enroll a machine; a token works once, so there is nothing to revoke"
                    ))],
                    "revoked" => vec![Effect::Say(format!(
                        "token {label} is already revoked; nothing to do"
                    ))],
                    "expired" => vec![Effect::Say(format!(
                        "token {label} has expired and no longer works; nothing to revoke"
                    ))],
                    _ => vec![Effect::Open(Modal::Confirm(Confirm {
                        title: format!("Revoke enrollment token {label}?"),
                        lines: vec![(
                            format!(
                                "expires {}; a machine enrolling with it is refused",
                                utc(tok.expires_at_ms)
                            ),
                            Tone::Dim,
                        )],
                        request: Request::RevokeToken(tok.id.clone()),
                    }))],
                }
            }
        }
    }
}

trait StateOrder {
    fn cmp_key(&self) -> u8;
}

impl StateOrder for sonde_admin::api::TokenState {
    fn cmp_key(&self) -> u8 {
        use sonde_admin::api::TokenState::*;
        match self {
            Active => 0,
            Used => 1,
            Expired => 2,
            Revoked => 3,
        }
    }
}

impl Screen for Keys {
    fn scopes(&self) -> Vec<Scope> {
        vec![Scope::Screen(View::Keys), Scope::Global]
    }

    fn reads(&self, _ctx: &Ctx) -> Vec<Request> {
        vec![Request::Keys, Request::Tokens]
    }

    fn update(&mut self, action: Action, ctx: &Ctx) -> Vec<Effect> {
        match action {
            Action::Down | Action::ScrollDown => self.move_by(ctx.data, 1),
            Action::Up | Action::ScrollUp => self.move_by(ctx.data, -1),
            Action::PageDown => self.move_by(ctx.data, 10),
            Action::PageUp => self.move_by(ctx.data, -10),
            Action::Top => self.move_by(ctx.data, isize::MIN / 2),
            Action::Bottom => self.move_by(ctx.data, isize::MAX / 2),
            Action::Left => self.pane = KeysPane::Keys,
            Action::Right => self.pane = KeysPane::Tokens,
            Action::Enter => self.detail_open = !self.detail_open,
            Action::Create => {
                return vec![Effect::Open(match self.pane {
                    KeysPane::Keys => Modal::KeyForm(form::key_form()),
                    KeysPane::Tokens => Modal::TokenForm(form::token_form()),
                })];
            }
            Action::Revoke => return self.revoke(ctx),
            Action::Copy => match self.pane {
                KeysPane::Keys => {
                    if let Some(k) = self.selected_key(ctx.data) {
                        return vec![Effect::Copy {
                            what: format!("the prefix of key {}", clip(&k.name, 40)),
                            text: k.prefix.clone(),
                        }];
                    }
                }
                KeysPane::Tokens => {
                    if let Some(t) = self.selected_token(ctx.data) {
                        return vec![Effect::Copy {
                            what: "the token id".into(),
                            text: t.id.clone(),
                        }];
                    }
                }
            },
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
        match self.pane {
            KeysPane::Keys => KEY_SORTS,
            KeysPane::Tokens => TOKEN_SORTS,
        }
    }

    fn sort_mut(&mut self) -> Option<&mut Sort> {
        Some(match self.pane {
            KeysPane::Keys => &mut self.key_sort,
            KeysPane::Tokens => &mut self.token_sort,
        })
    }

    fn sync(&mut self, ctx: &Ctx) {
        let ids: Vec<String> = self.keys(ctx.data).iter().map(|k| k.id.clone()).collect();
        self.keys_selection.sync(&ids);
        let ids: Vec<String> = self.tokens(ctx.data).iter().map(|t| t.id.clone()).collect();
        self.tokens_selection.sync(&ids);
    }

    fn view(&self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = &ctx.theme;
        let now = ctx.now_ms;
        let detail_h = if self.detail_open {
            9.min(area.height / 3)
        } else {
            0
        };
        let [top, bottom, detail] = Layout::vertical([
            Constraint::Percentage(55),
            Constraint::Percentage(45),
            Constraint::Length(detail_h),
        ])
        .areas(area);
        let focus = |p: KeysPane| if self.pane == p { "▶ " } else { "" };
        let keys = self.keys(ctx.data);
        let key_ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let rows = keys
            .iter()
            .map(|k| {
                let (state, style) = key_state(k, now, t);
                vec![
                    cell(
                        k.name.clone(),
                        if state == "revoked" {
                            t.revoked()
                        } else {
                            t.text()
                        },
                    ),
                    plain(k.prefix.clone()),
                    cell(state, style),
                    plain(k.max_capability.as_str()),
                    plain(list_or_all(&k.agents)),
                    plain(list_or_all(&k.probes)),
                    plain(list_or_all(&k.tools)),
                    plain(
                        k.expires_at_ms
                            .map(utc_short)
                            .unwrap_or_else(|| "never".into()),
                    ),
                    plain(
                        k.last_used_at_ms
                            .map(|u| ago(now, u))
                            .unwrap_or_else(|| "never".into()),
                    ),
                    cell(k.id.clone(), t.dim()),
                ]
            })
            .collect();
        let key_sorted = match self.key_sort.column {
            1 => 0,
            2 => 8,
            _ => 9,
        };
        table::render(
            f,
            top,
            &table::Table {
                title: format!(
                    "{}{}",
                    focus(KeysPane::Keys),
                    list_title("API keys", keys.len(), ctx.data.keys.len(), &self.filter)
                ),
                columns: &KEY_COLUMNS,
                rows,
                selected: (self.pane == KeysPane::Keys)
                    .then(|| self.keys_selection.cursor(&key_ids))
                    .flatten(),
                sorted: (self.key_sort.column != 0).then_some((key_sorted, self.key_sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("keys"),
                    ctx.data.keys.len(),
                    &self.filter,
                    "API key",
                    vec![Line::raw(
                        "No API keys. c creates one (the secret is shown once).",
                    )],
                ),
                focused: self.pane == KeysPane::Keys,
            },
            t,
        );
        let tokens = self.tokens(ctx.data);
        let token_ids: Vec<&str> = tokens.iter().map(|x| x.id.as_str()).collect();
        let rows = tokens
            .iter()
            .map(|tok| {
                let (state, style) = token_state(tok, now, t);
                vec![
                    plain(if tok.label.is_empty() {
                        "-".to_owned()
                    } else {
                        tok.label.clone()
                    }),
                    plain(tok.id.clone()),
                    cell(state, style),
                    plain(if tok.auto_approve { "yes" } else { "no" }),
                    plain(ago(now, tok.created_at_ms)),
                    plain(utc_short(tok.expires_at_ms)),
                    plain(
                        tok.used_at_ms
                            .map(|u| ago(now, u))
                            .unwrap_or_else(|| "-".into()),
                    ),
                ]
            })
            .collect();
        let token_sorted = match self.token_sort.column {
            1 => 0,
            2 => 2,
            _ => 4,
        };
        table::render(
            f,
            bottom,
            &table::Table {
                title: format!(
                    "{}{}",
                    focus(KeysPane::Tokens),
                    list_title(
                        "Enrollment tokens",
                        tokens.len(),
                        ctx.data.tokens.len(),
                        &self.filter
                    )
                ),
                columns: &TOKEN_COLUMNS,
                rows,
                selected: (self.pane == KeysPane::Tokens)
                    .then(|| self.tokens_selection.cursor(&token_ids))
                    .flatten(),
                sorted: (self.token_sort.column != 0)
                    .then_some((token_sorted, self.token_sort.reverse)),
                empty: empty_lines(
                    t,
                    ctx.data.is_loaded("tokens"),
                    ctx.data.tokens.len(),
                    &self.filter,
                    "token",
                    vec![Line::raw("No enrollment tokens. → then c creates one.")],
                ),
                focused: self.pane == KeysPane::Tokens,
            },
            t,
        );
        if detail_h > 0 {
            let lines = match self.pane {
                KeysPane::Keys => match self.selected_key(ctx.data) {
                    Some(k) => vec![
                        kv(t, "id", k.id.clone()),
                        kv(t, "agents", list_or_all(&k.agents)),
                        kv(t, "probes", list_or_all(&k.probes)),
                        kv(t, "tools", list_or_all(&k.tools)),
                        kv(t, "created", utc(k.created_at_ms)),
                        kv(
                            t,
                            "expires",
                            k.expires_at_ms.map(utc).unwrap_or_else(|| "never".into()),
                        ),
                        kv(
                            t,
                            "revoked",
                            k.revoked_at_ms.map(utc).unwrap_or_else(|| "-".into()),
                        ),
                    ],
                    None => vec![],
                },
                KeysPane::Tokens => match self.selected_token(ctx.data) {
                    Some(tok) => vec![
                        kv(t, "id", tok.id.clone()),
                        kv(t, "label", tok.label.clone()),
                        kv(t, "created", utc(tok.created_at_ms)),
                        kv(t, "expires", utc(tok.expires_at_ms)),
                        kv(
                            t,
                            "used",
                            tok.used_at_ms.map(utc).unwrap_or_else(|| "-".into()),
                        ),
                        kv(
                            t,
                            "revoked",
                            tok.revoked_at_ms.map(utc).unwrap_or_else(|| "-".into()),
                        ),
                    ],
                    None => vec![],
                },
            };
            f.render_widget(
                Paragraph::new(lines)
                    .block(table::block("Detail", detail, Style::new()))
                    .wrap(Wrap { trim: false }),
                detail,
            );
        }
    }
}
