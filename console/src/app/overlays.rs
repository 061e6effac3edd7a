//! How the open overlay takes a key (confirmations, prompts, the palette,
//! the create forms, a secret, the readers), what the palette's commands do,
//! and the secrets shown once after creating a key or a token.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use sonde_admin::api::*;

use super::{App, PALETTE_SUGGESTIONS};
use crate::action::Action;
use crate::form::Form;
use crate::keymap;
use crate::modal::{Modal, Prompt, PromptFor, Secret, SecretItem, edit_line};
use crate::palette::{self, Command, Known};
use crate::screens::keys::KeysPane;
use crate::screens::{Ctx, Effect, Screen, View};
use crate::text::utc;
use crate::theme::Theme;
use crate::worker::Request;

impl App {
    pub(super) fn modal_key(&mut self, modal: Modal, key: KeyEvent) -> Vec<Effect> {
        let action = keymap::resolve(&[modal.scope()], &key);
        match modal {
            Modal::Confirm(c) => {
                if action == Some(Action::Confirm) {
                    vec![
                        Effect::Say(format!("{}…", c.request.label())),
                        Effect::Send(c.request),
                    ]
                } else {
                    vec![Effect::Say("cancelled: nothing was changed".into())]
                }
            }
            Modal::Prompt(mut p) => match action {
                Some(Action::Enter) => match self.apply_prompt(&p) {
                    Ok(effects) => effects,
                    Err(e) => {
                        // The text stays, with what is wrong with it.
                        p.error = Some(e);
                        self.modal = Some(Modal::Prompt(p));
                        Vec::new()
                    }
                },
                Some(Action::Back) => Vec::new(),
                Some(Action::Quit) => {
                    self.quit = true;
                    Vec::new()
                }
                _ => {
                    if p.edit(&key) {
                        p.error = None;
                    }
                    self.modal = Some(Modal::Prompt(p));
                    Vec::new()
                }
            },
            Modal::Palette(mut p) => {
                let known = self.known();
                let suggestions = palette::suggestions(&p.input, &known, PALETTE_SUGGESTIONS);
                match action {
                    Some(Action::Down) => {
                        p.selected = (p.selected + 1).min(suggestions.len().saturating_sub(1))
                    }
                    Some(Action::Up) => p.selected = p.selected.saturating_sub(1),
                    Some(Action::Complete) => {
                        if let Some(s) = suggestions.get(p.selected) {
                            p.input = format!("{} ", s.text);
                            p.selected = 0;
                        }
                    }
                    Some(Action::Back) => return Vec::new(),
                    Some(Action::Quit) => {
                        self.quit = true;
                        return Vec::new();
                    }
                    Some(Action::Enter) => {
                        // What is typed, or else the suggestion picked (typed
                        // a prefix of it, or moved onto it).
                        let picked = !p.input.trim().is_empty() || p.selected > 0;
                        let parsed =
                            palette::parse(&p.input, &known).or_else(|e| {
                                match suggestions.get(p.selected) {
                                    Some(s) if picked => palette::parse(&s.text, &known),
                                    _ => Err(e),
                                }
                            });
                        match parsed.and_then(|cmd| self.run_command(cmd)) {
                            Ok(effects) => return effects,
                            Err(e) => p.error = Some(e),
                        }
                    }
                    _ => {
                        if edit_line(&mut p.input, &key, 200) {
                            p.selected = 0;
                            p.error = None;
                        }
                    }
                }
                self.modal = Some(Modal::Palette(p));
                Vec::new()
            }
            Modal::OAuthForm { request, mut form } => {
                match self.form_key(&mut form, action, &key, FormFor::OAuth(&request)) {
                    Some(effects) => effects,
                    None => {
                        self.modal = Some(Modal::OAuthForm { request, form });
                        Vec::new()
                    }
                }
            }
            Modal::KeyForm(mut f) => match self.form_key(&mut f, action, &key, FormFor::Key) {
                Some(effects) => effects,
                None => {
                    self.modal = Some(Modal::KeyForm(f));
                    Vec::new()
                }
            },
            Modal::TokenForm(mut f) => match self.form_key(&mut f, action, &key, FormFor::Token) {
                Some(effects) => effects,
                None => {
                    self.modal = Some(Modal::TokenForm(f));
                    Vec::new()
                }
            },
            Modal::IntegrationForm(mut a) => {
                let effects = match action {
                    Some(Action::Back) => {
                        return vec![Effect::Say("cancelled: nothing was added".into())];
                    }
                    Some(Action::Quit) => {
                        self.quit = true;
                        return Vec::new();
                    }
                    Some(Action::Down) => {
                        a.form.next();
                        Vec::new()
                    }
                    Some(Action::Up) => {
                        a.form.prev();
                        Vec::new()
                    }
                    // One attempt at a time: the answer comes to this form.
                    Some(Action::Enter) if a.sending => Vec::new(),
                    Some(Action::Enter) => match crate::screens::integrations::add_request(&a.form)
                    {
                        Ok(request) => {
                            a.sending = true;
                            a.error = None;
                            vec![Effect::Send(Request::AddIntegration(Box::new(request)))]
                        }
                        Err(e) => vec![Effect::Complain(e)],
                    },
                    _ => {
                        if !a.sending && type_in_form(&mut a.form, &key) {
                            a.error = None;
                        }
                        Vec::new()
                    }
                };
                self.modal = Some(Modal::IntegrationForm(a));
                effects
            }
            Modal::Credential(mut c) => {
                let effects = match action {
                    Some(Action::Back) => {
                        // Dropping the input zeroes it.
                        return vec![Effect::Say(
                            "cancelled: the credential was not changed".into(),
                        )];
                    }
                    Some(Action::Quit) => {
                        self.quit = true;
                        return Vec::new();
                    }
                    Some(Action::Enter) if c.sending => Vec::new(),
                    Some(Action::Enter) => match c.take_request() {
                        Ok(request) => {
                            c.sending = true;
                            c.error = None;
                            vec![Effect::Send(request)]
                        }
                        Err(e) => {
                            c.error = Some(e);
                            Vec::new()
                        }
                    },
                    _ if c.sending => Vec::new(),
                    _ => {
                        match key.code {
                            KeyCode::Backspace => c.backspace(),
                            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                                c.clear()
                            }
                            KeyCode::Char(ch) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                                c.push(ch);
                            }
                            _ => {}
                        }
                        Vec::new()
                    }
                };
                self.modal = Some(Modal::Credential(c));
                effects
            }
            Modal::Secret(mut s) => {
                let mut effects = Vec::new();
                match action {
                    Some(Action::Down) => {
                        s.selected = (s.selected + 1).min(s.items.len().saturating_sub(1))
                    }
                    Some(Action::Up) => s.selected = s.selected.saturating_sub(1),
                    Some(Action::Copy) => {
                        if let Some(item) = s.items.get(s.selected) {
                            effects.push(Effect::Copy {
                                what: item.label.to_lowercase(),
                                text: item.value.clone(),
                            });
                        }
                    }
                    Some(Action::PrintPlain) => {
                        let mut lines = vec![s.title.clone(), String::new()];
                        for item in &s.items {
                            lines.push(format!("{}:", item.label));
                            lines.push(item.value.clone());
                            lines.push(String::new());
                        }
                        effects.push(Effect::Plain(lines));
                    }
                    Some(Action::Back) => {
                        return vec![Effect::Say("closed; the secret is not shown again".into())];
                    }
                    _ => {}
                }
                self.modal = Some(Modal::Secret(s));
                effects
            }
            mut reader => {
                let mut effects = Vec::new();
                let mut keep = true;
                match action {
                    Some(Action::Back) => keep = false,
                    Some(Action::Copy) => {
                        if let Modal::AuditEntry {
                            detail: Some(d), ..
                        } = &reader
                        {
                            effects.push(Effect::Copy {
                                what: format!("the hash of audit entry #{}", d.entry.seq),
                                text: d.entry.hash.to_hex(),
                            });
                        }
                    }
                    Some(a) => {
                        if let Some(s) = reader.scroll_mut() {
                            match a {
                                Action::Down => s.by(1),
                                Action::Up => s.by(-1),
                                Action::PageDown => s.by(10),
                                Action::PageUp => s.by(-10),
                                Action::Top => s.top(),
                                Action::Bottom => s.bottom(),
                                _ => {}
                            }
                        }
                    }
                    None => {}
                }
                if keep {
                    self.modal = Some(reader);
                }
                effects
            }
        }
    }

    /// A key in a create form: `Some(effects)` when the form closes.
    fn form_key(
        &mut self,
        f: &mut Form,
        action: Option<Action>,
        key: &KeyEvent,
        what: FormFor<'_>,
    ) -> Option<Vec<Effect>> {
        match action {
            Some(Action::Back) => Some(Vec::new()),
            Some(Action::Quit) => {
                self.quit = true;
                Some(Vec::new())
            }
            Some(Action::Down) => {
                f.next();
                None
            }
            Some(Action::Up) => {
                f.prev();
                None
            }
            Some(Action::Enter) => match f.values() {
                Ok(v) => Some(vec![match what {
                    FormFor::Key => Effect::Send(Request::CreateKey(key_create(&v))),
                    FormFor::Token => Effect::Send(Request::CreateToken(token_create(&v))),
                    // Granting access: shown whole, then `y`.
                    FormFor::OAuth(r) => Effect::Open(Modal::Confirm(
                        crate::screens::oauth::approval(r, oauth_approve(&v)),
                    )),
                }]),
                Err(e) => {
                    self.complain(e, None);
                    None
                }
            },
            _ => {
                type_in_form(f, key);
                None
            }
        }
    }

    fn apply_prompt(&mut self, p: &Prompt) -> Result<Vec<Effect>, String> {
        let text = p.input.trim();
        match &p.purpose {
            PromptFor::Filter(view) => self.set_filter(*view, text),
            PromptFor::Tags { agent } => {
                let tags: Vec<String> = text
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(vec![Effect::Send(Request::SetTags(agent.clone(), tags))])
            }
            PromptFor::SavePath => {
                if text.is_empty() {
                    return Err("a file name is needed".into());
                }
                match self.tryit.save_contents() {
                    Some(contents) => Ok(vec![Effect::Send(Request::SaveFile {
                        path: text.to_owned(),
                        contents,
                    })]),
                    None => Err("there is no result to save".into()),
                }
            }
            PromptFor::Search => Ok(self.tryit.set_search(text)),
        }
    }

    /// What the palette completes from.
    pub fn known(&self) -> Known {
        let mut agents: Vec<String> = self
            .data
            .agents
            .iter()
            .filter(|a| a.state != AgentState::Revoked)
            .map(|a| a.name.clone())
            .collect();
        agents.sort();
        agents.dedup();
        Known {
            agents,
            sorts: self.screen().sort_names().to_vec(),
            probes: self
                .data
                .details
                .iter()
                .map(|(name, d)| {
                    (
                        name.clone(),
                        crate::screens::tryit::runnable_probes(d)
                            .iter()
                            .map(|p| p.name.clone())
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    fn run_command(&mut self, cmd: Command) -> Result<Vec<Effect>, String> {
        Ok(match cmd {
            Command::GoTo(v) => vec![Effect::GoTo(v)],
            Command::Tokens => {
                self.keys.pane = KeysPane::Tokens;
                vec![Effect::GoTo(View::Keys)]
            }
            Command::Audit(filter) => {
                let mut out = vec![Effect::GoTo(View::Audit)];
                if !filter.is_empty() {
                    out.extend(self.set_filter(View::Audit, &filter)?);
                }
                out
            }
            Command::Try(agent, probe) => {
                let mut out = vec![Effect::GoTo(View::TryIt)];
                if let Some(a) = agent {
                    out.extend(self.tryit.start(&a, probe));
                    // The probe opens now if its list is already here.
                    self.sync_all();
                }
                out
            }
            Command::Agent(name) => {
                if !self.fleet.select_name(&self.data, &name) {
                    return Err(format!("no agent named {name:?}"));
                }
                self.fleet.list.detail_open = true;
                vec![
                    Effect::GoTo(View::Fleet),
                    Effect::Send(Request::Agent(name)),
                ]
            }
            Command::Filter(text) => self.set_filter(self.view, &text)?,
            Command::Sort(name) => {
                let names = self.screen().sort_names();
                let Some(sort) = screen!(self, self.view).sort_mut() else {
                    return Err("this screen keeps the hub's order".into());
                };
                sort.by_name(names, &name)?;
                self.sync_all();
                vec![Effect::Say(format!("sorted by {name}"))]
            }
            Command::Theme(name) => {
                self.theme = Theme::new(name, self.options.no_color);
                let note = if self.options.no_color {
                    " (NO_COLOR is set: drawn without colour)"
                } else {
                    ""
                };
                vec![Effect::Say(format!("theme {}{note}", name.as_str()))]
            }
            Command::Verify => {
                let mut out = vec![Effect::GoTo(View::Audit)];
                out.extend(self.with_audit(Action::Verify));
                out
            }
            Command::Follow => {
                let mut out = vec![Effect::GoTo(View::Audit)];
                out.extend(self.with_audit(Action::Follow));
                out
            }
            Command::Refresh => self.act(Action::Refresh),
            Command::Help => vec![Effect::Open(Modal::Help(Default::default()))],
            Command::Quit => {
                self.quit = true;
                Vec::new()
            }
        })
    }

    fn with_audit(&mut self, action: Action) -> Vec<Effect> {
        let ctx = Ctx {
            data: &self.data,
            now_ms: self.now_ms,
            theme: self.theme,
            frame: self.frame,
        };
        self.audit.update(action, &ctx)
    }

    /// The new key, the `claude mcp add` line and, when the endpoint uses
    /// the hub's own CA, the line that makes Claude Code trust it.
    pub(super) fn key_secret(&self, k: &KeyCreated) -> Secret {
        let mut items = vec![SecretItem {
            label: "API key (shown once)".into(),
            value: k.key.clone(),
        }];
        let mut notes = vec![format!(
            "API key {} (prefix {}): agents {}, probes {}, tools {}, up to {}",
            k.info.name,
            k.info.prefix,
            or_all(&k.info.agents),
            or_all(&k.info.probes),
            or_all(&k.info.tools),
            k.info.max_capability
        )];
        match &k.claude_command {
            Some(cmd) => items.push(SecretItem {
                label: "Add it to Claude Code".into(),
                value: cmd.clone(),
            }),
            None => notes.push("The hub's MCP endpoint is off; enable it to use this key.".into()),
        }
        let https = k
            .mcp_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let status = self.data.status.as_ref();
        if https {
            let path = status
                .and_then(|s| s.ca_cert_path.clone())
                .unwrap_or_else(|| "<hub data dir>/ca.crt".into());
            items.push(SecretItem {
                label: "Trust the hub's CA where Claude Code runs (set before starting claude)"
                    .into(),
                value: format!("export NODE_EXTRA_CA_CERTS={path}"),
            });
            notes.push(format!(
                "The MCP endpoint uses the hub's own CA: copy {path} to the client machine if Claude Code runs elsewhere{}.",
                status.map(|s| format!(" (CA sha256 {})", s.ca_sha256)).unwrap_or_default()
            ));
        }
        Secret {
            title: "New API key — shown once".into(),
            items,
            selected: 0,
            notes,
        }
    }
}

/// Backspace, Ctrl-U and printable characters in a form's focused field;
/// `true` when the key edited it.
fn type_in_form(f: &mut Form, key: &KeyEvent) -> bool {
    match key.code {
        KeyCode::Backspace => f.backspace(),
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => f.clear_field(),
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => f.type_char(c),
        _ => return false,
    }
    true
}

fn or_all(v: &[String]) -> String {
    if v.is_empty() {
        "*".into()
    } else {
        v.join(",")
    }
}

pub(super) fn token_secret(t: &TokenCreated) -> Secret {
    Secret {
        title: "New enrollment token — shown once".into(),
        items: vec![
            SecretItem {
                label: "Run on the machine to enroll".into(),
                value: t.enroll_command.clone(),
            },
            SecretItem {
                label: "Enrollment token (shown once)".into(),
                value: t.token.clone(),
            },
        ],
        selected: 0,
        notes: vec![format!(
            "Token {} expires {}{}; the command pins the hub CA (sha256 {}).",
            if t.info.label.is_empty() {
                t.info.id.clone()
            } else {
                t.info.label.clone()
            },
            utc(t.info.expires_at_ms),
            if t.info.auto_approve {
                ", enrolls without approval"
            } else {
                ""
            },
            t.ca_sha256
        )],
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn key_create(v: &serde_json::Map<String, Value>) -> KeyCreate {
    KeyCreate {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        agents: strings(v.get("agents")),
        probes: strings(v.get("probes")),
        tools: strings(v.get("tools")),
        max_capability: v
            .get("max_capability")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        expires_in_s: v
            .get("expires_in_days")
            .and_then(Value::as_u64)
            .map(|d| d.saturating_mul(86_400)),
    }
}

/// Which create form is open.
#[derive(Debug, Clone, Copy)]
pub(super) enum FormFor<'a> {
    Key,
    Token,
    OAuth(&'a OAuthRequestInfo),
}

fn oauth_approve(v: &serde_json::Map<String, Value>) -> OAuthApprove {
    let k = key_create(v);
    OAuthApprove {
        agents: k.agents,
        probes: k.probes,
        tools: k.tools,
        max_capability: k.max_capability,
        expires_in_s: k.expires_in_s,
    }
}

fn token_create(v: &serde_json::Map<String, Value>) -> TokenCreate {
    TokenCreate {
        ttl_s: v
            .get("ttl_minutes")
            .and_then(Value::as_u64)
            .map(|m| m.saturating_mul(60)),
        label: v.get("label").and_then(Value::as_str).map(str::to_owned),
        auto_approve: v
            .get("auto_approve")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}
