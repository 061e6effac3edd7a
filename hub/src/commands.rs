//! What each `sonde-hub` subcommand does. Mutations go through the running
//! hub's admin socket; `list`, `show` and `verify` fall back to reading the
//! database directly (read-only) when the hub is not running.

use anyhow::{Context, bail};
use serde::Serialize;
use sonde_admin::AdminClient;
use sonde_admin::api::*;
use sonde_protocol::time::now_ms;
use std::fmt::Write as _;

use crate::cli::*;
use crate::datadir::DataDir;
use crate::durations::{human_duration_ms, parse_duration};
use crate::store::HubStore;
use sonde_protocol::display::{terminal_field, terminal_json, terminal_text};
use sonde_protocol::time::format_utc_ms;

/// One peer-supplied value inside a line (names, OS strings): controls and
/// newlines escaped, so it can neither drive the terminal nor fake a line.
fn field(text: &str) -> std::borrow::Cow<'_, str> {
    terminal_field(text)
}

/// Output mode.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    pub(crate) fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        // Everything printed may hold text from agents or MCP clients:
        // nothing reaches the terminal unescaped.
        if self.json {
            println!("{}", terminal_json(&serde_json::to_string_pretty(value)?));
        } else {
            print!("{}", terminal_text(&human(value)));
        }
        Ok(())
    }
}

pub(crate) fn client(data: &DataDir) -> AdminClient {
    AdminClient::for_data_dir(data.root())
}

/// Runs a mutation through the admin socket, explaining what to do if the
/// hub is down.
pub(crate) async fn require_hub<T>(
    data: &DataDir,
    f: impl AsyncFnOnce(AdminClient) -> Result<T, sonde_admin::AdminError>,
) -> anyhow::Result<T> {
    match f(client(data)).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_unreachable() => bail!(
            "{e}\nThis command needs the running hub: start it with `sonde-hub serve --data {}`.",
            data.root().display()
        ),
        Err(e) => Err(e.into()),
    }
}

fn offline_store(data: &DataDir) -> anyhow::Result<HubStore> {
    HubStore::open_read_only(&data.db())
        .context("the hub is not running and its database cannot be opened")
}

pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| field(c).into_owned()).collect())
        .collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect(), &mut out);
    if rows.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for r in rows {
        line(r, &mut out);
    }
    out
}

pub(crate) fn ago(ms: Option<i64>) -> String {
    ms.map(|t| format!("{} ago", human_duration_ms(now_ms() - t)))
        .unwrap_or_else(|| "never".into())
}

pub async fn token(data: &DataDir, out: Out, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            ttl,
            label,
            auto_approve,
        } => {
            let ttl_s = parse_duration(&ttl)
                .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?
                .as_secs();
            let created = require_hub(data, async |c| {
                c.create_token(&TokenCreate {
                    ttl_s: Some(ttl_s),
                    label,
                    auto_approve,
                })
                .await
            })
            .await?;
            out.print(&created, |t| {
                format!(
                    "Enrollment token (shown once, single use, expires in {}{}):\n\n  {}\n\nHub CA SHA-256: {}\n\nOn the machine to enroll, as the sonde user, run:\n\n  {}\n",
                    human_duration_ms(t.info.expires_at_ms - now_ms()),
                    if t.info.auto_approve { ", auto-approved" } else { "" },
                    t.token,
                    t.ca_sha256,
                    t.enroll_command
                )
            })
        }
        TokenCommand::List => {
            let tokens = match client(data).tokens().await {
                Ok(t) => t,
                Err(e) if e.is_unreachable() => {
                    let now = now_ms();
                    offline_store(data)?
                        .tokens()
                        .await?
                        .iter()
                        .map(|t| crate::fleet::token_info(t, now))
                        .collect()
                }
                Err(e) => return Err(e.into()),
            };
            out.print(&tokens, |ts| {
                table(
                    &["ID", "STATE", "LABEL", "AUTO", "CREATED", "EXPIRES"],
                    ts.iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                format!("{:?}", t.state).to_lowercase(),
                                t.label.clone(),
                                if t.auto_approve {
                                    "yes".into()
                                } else {
                                    "no".into()
                                },
                                format_utc_ms(t.created_at_ms),
                                format_utc_ms(t.expires_at_ms),
                            ]
                        })
                        .collect(),
                )
            })
        }
        TokenCommand::Revoke { id } => {
            let t = require_hub(data, async |c| c.revoke_token(&id).await).await?;
            out.print(&t, |t| format!("token {} revoked\n", t.id))
        }
    }
}

pub async fn enrollments(data: &DataDir, out: Out, cmd: EnrollmentCommand) -> anyhow::Result<()> {
    match cmd {
        EnrollmentCommand::List { all } => {
            let list = match client(data).enrollments(all).await {
                Ok(l) => l,
                Err(e) if e.is_unreachable() => offline_store(data)?
                    .enrollments(all)
                    .await?
                    .iter()
                    .map(crate::enroll::enrollment_info)
                    .collect(),
                Err(e) => return Err(e.into()),
            };
            out.print(&list, |l| {
                table(
                    &[
                        "NAME",
                        "ID",
                        "STATUS",
                        "FROM",
                        "KEY",
                        "TOKEN",
                        "REQUESTED",
                        "ATTESTATION",
                    ],
                    l.iter()
                        .map(|e| {
                            vec![
                                e.name.clone(),
                                e.id.clone(),
                                format!("{:?}", e.status).to_lowercase(),
                                e.remote_addr.clone(),
                                e.key_fingerprint.chars().take(16).collect(),
                                e.token_label.clone(),
                                ago(Some(e.requested_at_ms)),
                                e.attestation_summary.clone(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        EnrollmentCommand::Approve { name } => {
            let e = require_hub(data, async |c| c.approve_enrollment(&name).await).await?;
            out.print(&e, |e| {
                format!(
                    "approved {} ({}); it will connect on its next poll\n",
                    field(&e.name),
                    e.id
                )
            })
        }
        EnrollmentCommand::Deny { name } => {
            let e = require_hub(data, async |c| c.deny_enrollment(&name).await).await?;
            out.print(&e, |e| format!("denied {} ({})\n", field(&e.name), e.id))
        }
    }
}

fn agent_rows(agents: &[AgentSummary]) -> String {
    table(
        &[
            "NAME",
            "STATE",
            "LAST SEEN",
            "OS",
            "VERSION",
            "PACKS A/P/U",
            "TAGS",
        ],
        agents
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.state.as_str().into(),
                    if a.connected {
                        "now".into()
                    } else {
                        ago(a.last_seen_ms)
                    },
                    a.os.clone(),
                    a.agent_version.clone(),
                    format!(
                        "{}/{}/{}",
                        a.packs_active, a.packs_pending, a.packs_unavailable
                    ),
                    a.tags.join(","),
                ]
            })
            .collect(),
    )
}

pub async fn agents(data: &DataDir, out: Out, cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::List => match client(data).agents().await {
            Ok(list) => out.print(&list, |l| agent_rows(l)),
            Err(e) if e.is_unreachable() => {
                // The same summary as the admin API's, with nothing connected.
                let list: Vec<AgentSummary> = offline_store(data)?
                    .agents()
                    .await?
                    .iter()
                    .map(|a| crate::fleet::summary(a, &a.liveness, false))
                    .collect();
                eprintln!("(the hub is not running: states are from the database)");
                out.print(&list, |l| agent_rows(l))
            }
            Err(e) => Err(e.into()),
        },
        AgentCommand::Show { name } => {
            let d = require_hub(data, async |c| c.agent(&name).await).await?;
            out.print(&d, |d| {
                let s = &d.summary;
                let mut o = String::new();
                let _ = writeln!(o, "{} ({})  {}", field(&s.name), s.id, s.state.as_str());
                let _ = writeln!(
                    o,
                    "  host:         {} {}",
                    field(&s.hostname),
                    s.remote_addr.clone().unwrap_or_default()
                );
                let _ = writeln!(o, "  os:           {}", field(&s.os));
                let _ = writeln!(o, "  version:      {}", field(&s.agent_version));
                let _ = writeln!(o, "  ceiling:      {}", s.max_capability);
                let _ = writeln!(
                    o,
                    "  last seen:    {}",
                    if s.connected {
                        "now".into()
                    } else {
                        ago(s.last_seen_ms)
                    }
                );
                let _ = writeln!(
                    o,
                    "  certificate:  {} (expires {})",
                    &d.cert_sha256[..16.min(d.cert_sha256.len())],
                    format_utc_ms(s.cert_expires_ms)
                );
                let _ = writeln!(o, "  baseline:     {}", d.baseline_fingerprint);
                if let Some(r) = &s.quarantine_reason {
                    let _ = writeln!(o, "  QUARANTINED:  {}", field(r));
                }
                if let Some(h) = &d.agent_audit_head {
                    let _ = writeln!(o, "  agent audit:  {h}");
                }
                let _ = writeln!(o, "  packs:");
                for p in &d.packs {
                    let probes = p.probes.iter().filter(|x| x.registered).count();
                    let _ = writeln!(
                        o,
                        "    {:<10} {:<8} {:<11} {} probes  {}",
                        field(&p.name),
                        field(&p.version),
                        p.state.as_str(),
                        probes,
                        field(&p.missing.join("; "))
                    );
                }
                o
            })
        }
        AgentCommand::Revoke { name } => {
            let a = require_hub(data, async |c| c.revoke_agent(&name).await).await?;
            out.print(&a, |a| {
                format!(
                    "agent {} revoked; its connections are refused from now on\n",
                    field(&a.name)
                )
            })
        }
        AgentCommand::Accept { name } => {
            let a = require_hub(data, async |c| c.accept_baseline(&name).await).await?;
            out.print(&a, |a| {
                format!(
                    "accepted the current attestation of {} as its baseline\n",
                    field(&a.name)
                )
            })
        }
        AgentCommand::KeepQuarantined { name } => {
            let a = require_hub(data, async |c| c.keep_quarantined(&name).await).await?;
            out.print(&a, |a| {
                format!(
                    "{} stays quarantined; accept its baseline or revoke it later\n",
                    field(&a.name)
                )
            })
        }
    }
}

pub async fn packs(data: &DataDir, out: Out, cmd: PackCommand) -> anyhow::Result<()> {
    let (agent, pack, action) = match cmd {
        PackCommand::List { all } => {
            let list = require_hub(data, async |c| c.permissions(all).await).await?;
            return out.print(&list, |l| {
                table(
                    &[
                        "AGENT", "PACK", "VERSION", "STATE", "DECISION", "GRANTS", "MISSING",
                    ],
                    l.iter()
                        .map(|p| {
                            vec![
                                p.agent_name.clone(),
                                p.pack.clone(),
                                p.version.clone(),
                                p.state.as_str().into(),
                                p.decision
                                    .map(|d| format!("{d:?}").to_lowercase())
                                    .unwrap_or_default(),
                                p.requires.join("; "),
                                p.missing.join("; "),
                            ]
                        })
                        .collect(),
                )
            });
        }
        PackCommand::Approve { agent, pack } => (agent, pack, PackAction::Approve),
        PackCommand::Deny { agent, pack } => (agent, pack, PackAction::Deny),
        PackCommand::Revoke { agent, pack } => (agent, pack, PackAction::Revoke),
    };
    let p = require_hub(data, async |c| c.decide_pack(&agent, &pack, action).await).await?;
    out.print(&p, |p| {
        format!(
            "{action}: pack {} on {}\n",
            field(&p.pack),
            field(&p.agent_name)
        )
    })
}

async fn verify_offline(data: &DataDir) -> anyhow::Result<AuditVerifyReport> {
    let store = offline_store(data)?;
    let key =
        sonde_protocol::keys::decode_secret_key(&data.read(&data.signing_key())?)?.verifying_key();
    let started = std::time::Instant::now();
    let result = store.verify_audit(key).await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    Ok(crate::audit::verify_report(result, duration_ms))
}

fn entry_line(e: &sonde_protocol::audit::AuditEntry) -> Vec<String> {
    vec![
        e.seq.to_string(),
        format_utc_ms(e.timestamp_ms),
        e.actor.clone(),
        e.agent.clone().unwrap_or_default(),
        e.action.clone(),
        e.probe.clone().unwrap_or_default(),
        e.outcome.clone(),
    ]
}

/// Returns the process exit code (1 when verification fails).
pub async fn audit(data: &DataDir, out: Out, cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::List(f) => {
            let since_ms = f
                .since
                .as_deref()
                .map(|s| parse_duration(s).map(|d| now_ms() - d.as_millis() as i64))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            if let Some(action) = &f.action {
                sonde_protocol::audit_action::check_filter(action)
                    .map_err(|e| anyhow::anyhow!("--action: {e}"))?;
            }
            let q = AuditQuery {
                limit: Some(f.limit.clamp(1, 1000)),
                agent: f.agent,
                actor: f.actor,
                probe: f.probe,
                outcome: f.outcome,
                action: f.action,
                since_ms,
                ..AuditQuery::default()
            };
            let entries = match client(data).audit(&q).await {
                Ok(p) => p.entries,
                Err(e) if e.is_unreachable() => {
                    offline_store(data)?.console_audit_page(q.clone()).await?.0
                }
                Err(e) => return Err(e.into()),
            };
            out.print(&entries, |es| {
                table(
                    &[
                        "SEQ", "TIME", "ACTOR", "AGENT", "ACTION", "PROBE", "OUTCOME",
                    ],
                    es.iter().map(entry_line).collect(),
                )
            })?;
            Ok(0)
        }
        AuditCommand::Show { seq } => {
            let entry = match client(data).audit_entry(seq).await {
                Ok(d) => d.entry,
                Err(e) if e.is_unreachable() => offline_store(data)?
                    .audit_entry(seq)
                    .await?
                    .0
                    .ok_or_else(|| anyhow::anyhow!("no audit entry {seq}"))?,
                Err(e) => return Err(e.into()),
            };
            println!("{}", terminal_json(&serde_json::to_string_pretty(&entry)?));
            Ok(0)
        }
        AuditCommand::Verify => {
            let report = match client(data).audit_verify().await {
                Ok(r) => r,
                Err(e) if e.is_unreachable() => verify_offline(data).await?,
                Err(e) => return Err(e.into()),
            };
            out.print(&report, |r| match &r.broken {
                None => format!(
                    "OK: {} entries, head {}, {} signed checkpoint(s) verified{} ({} ms)\n",
                    r.entries,
                    r.head.map(|h| h.to_string()).unwrap_or_default(),
                    r.checkpoints_verified,
                    r.last_checkpoint
                        .as_ref()
                        .map(|c| format!(", last at entry {}", c.seq))
                        .unwrap_or_default(),
                    r.duration_ms
                ),
                Some(b) => format!(
                    "BROKEN at entry {} ({}): {}\n",
                    b.seq,
                    b.kind,
                    field(&b.message)
                ),
            })?;
            Ok(if report.ok { 0 } else { 1 })
        }
    }
}

/// `--expires` in seconds, by the one duration grammar.
pub(crate) fn expires_in_s(policy: &PolicyArgs) -> anyhow::Result<Option<u64>> {
    Ok(policy
        .expires
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--expires: {e}"))?
        .map(|d| d.as_secs()))
}

pub async fn keys(data: &DataDir, out: Out, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create { name, policy } => {
            let expires_in_s = expires_in_s(&policy)?;
            let req = KeyCreate {
                name,
                agents: policy.agents,
                probes: policy.probes,
                tools: policy.tools,
                max_capability: policy.max_capability,
                expires_in_s,
            };
            let created = require_hub(data, async |c| c.create_key(&req).await).await?;
            out.print(&created, |k| {
                let mut o = format!(
                    "API key {} ({}), shown once:\n\n  {}\n\n",
                    k.info.name, k.info.prefix, k.key
                );
                if let Some(cmd) = &k.claude_command {
                    let _ = write!(o, "Connect Claude Code:\n\n  {cmd}\n\n");
                }
                o
            })
        }
        KeyCommand::List => {
            let keys = match client(data).keys().await {
                Ok(k) => k,
                Err(e) if e.is_unreachable() => offline_store(data)?
                    .keys()
                    .await?
                    .iter()
                    .map(crate::fleet::key_info)
                    .collect(),
                Err(e) => return Err(e.into()),
            };
            out.print(&keys, |ks| {
                table(
                    &[
                        "ID",
                        "NAME",
                        "PREFIX",
                        "AGENTS",
                        "PROBES",
                        "TOOLS",
                        "MAX",
                        "LAST USED",
                        "STATE",
                    ],
                    ks.iter()
                        .map(|k| {
                            let all = |v: &Vec<String>| {
                                if v.is_empty() {
                                    "*".to_owned()
                                } else {
                                    v.join(",")
                                }
                            };
                            let state = if k.revoked_at_ms.is_some() {
                                "revoked"
                            } else if k.expires_at_ms.is_some_and(|e| e <= now_ms()) {
                                "expired"
                            } else {
                                "active"
                            };
                            vec![
                                k.id.clone(),
                                k.name.clone(),
                                k.prefix.clone(),
                                all(&k.agents),
                                all(&k.probes),
                                all(&k.tools),
                                k.max_capability.to_string(),
                                ago(k.last_used_at_ms),
                                state.into(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        KeyCommand::Revoke { id } => {
            let k = require_hub(data, async |c| c.revoke_key(&id).await).await?;
            out.print(&k, |k| {
                format!("API key {} ({}) revoked\n", k.name, k.prefix)
            })
        }
    }
}

fn oauth_request_rows(list: &[OAuthRequestInfo]) -> String {
    table(
        &[
            "ID",
            "CLIENT",
            "CODE",
            "REDIRECT HOST",
            "STATUS",
            "FROM",
            "REQUESTED",
        ],
        list.iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.client_name.clone(),
                    r.user_code.clone(),
                    r.redirect_host.clone(),
                    format!("{:?}", r.status).to_lowercase(),
                    r.remote_addr.clone(),
                    ago(Some(r.requested_at_ms)),
                ]
            })
            .collect(),
    )
}

pub async fn oauth(data: &DataDir, out: Out, cmd: OauthCommand) -> anyhow::Result<()> {
    match cmd {
        OauthCommand::Pending { all } => {
            let list = match client(data).oauth_requests(all).await {
                Ok(l) => l,
                Err(e) if e.is_unreachable() => {
                    let config = crate::config::HubConfig::load(&data.config())?;
                    crate::oauth::pending::requests(
                        &offline_store(data)?,
                        all,
                        crate::oauth::request_ttl_ms(&config),
                        now_ms(),
                    )
                    .await?
                }
                Err(e) => return Err(e.into()),
            };
            out.print(&list, |l| oauth_request_rows(l))
        }
        OauthCommand::Approve { id, policy } => {
            let expires_in_s = expires_in_s(&policy)?;
            let req = OAuthApprove {
                agents: policy.agents,
                probes: policy.probes,
                tools: policy.tools,
                max_capability: policy.max_capability,
                expires_in_s,
            };
            let r = require_hub(data, async |c| c.approve_oauth(&id, &req).await).await?;
            out.print(&r, |r| {
                format!(
                    "approved {} for {} (code {}); its browser is sent back to {} now\n",
                    r.id,
                    field(&r.client_name),
                    r.user_code,
                    field(&r.redirect_host)
                )
            })
        }
        OauthCommand::Deny { id } => {
            let r = require_hub(data, async |c| c.deny_oauth(&id).await).await?;
            out.print(&r, |r| {
                format!("denied {} for {}\n", r.id, field(&r.client_name))
            })
        }
        OauthCommand::Clients(OauthClientsCommand::List) => {
            let list = match client(data).oauth_clients().await {
                Ok(l) => l,
                Err(e) if e.is_unreachable() => {
                    crate::oauth::pending::clients(&offline_store(data)?, now_ms()).await?
                }
                Err(e) => return Err(e.into()),
            };
            out.print(&list, |l| {
                table(
                    &[
                        "ID",
                        "NAME",
                        "REDIRECT URIS",
                        "GRANTS",
                        "REGISTERED",
                        "STATE",
                    ],
                    l.iter()
                        .map(|c| {
                            vec![
                                c.client_id.clone(),
                                c.name.clone(),
                                c.redirect_uris.join(","),
                                c.active_grants.to_string(),
                                ago(Some(c.registered_at_ms)),
                                if c.revoked_at_ms.is_some() {
                                    "revoked".into()
                                } else {
                                    "active".into()
                                },
                            ]
                        })
                        .collect(),
                )
            })
        }
        OauthCommand::Clients(OauthClientsCommand::Revoke { id }) => {
            let c = require_hub(data, async |c| c.revoke_oauth_client(&id).await).await?;
            out.print(&c, |c| {
                format!(
                    "OAuth client {} ({}) revoked; its tokens no longer work\n",
                    field(&c.name),
                    c.client_id
                )
            })
        }
    }
}
