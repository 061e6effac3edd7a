//! What each `sonde-agent` subcommand does.

/// Prints one line that may hold text from packs, files or the hub, with
/// every terminal control escaped.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", terminal_text(&format!($($arg)*)))
    };
}

use serde::{Deserialize, Serialize};
use sonde_protocol::display::{terminal_json, terminal_text};
use sonde_protocol::keys;
use sonde_protocol::messages::PackState;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::audit::LocalAudit;
use crate::cli::{AuditCommand, Format, PacksCommand, ProbeArgs};
use crate::config::AgentConfig;
use crate::identity::{DataDir, read_json, replace_private, write_private};
use crate::local;
use crate::runtime::Runtime;

/// `<data dir>/status.json`, written by the running agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkStatus {
    pub pid: u32,
    pub connected: bool,
    pub since_ms: i64,
    pub hub: String,
    pub detail: String,
}

pub fn write_link_status(data: &DataDir, status: &LinkStatus) {
    if let Ok(text) = serde_json::to_vec_pretty(status) {
        let _ = replace_private(&data.root().join("status.json"), &text);
    }
}

/// The daemon: runs the link until SIGTERM/SIGINT.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let runtime = Arc::new(Runtime::open(config)?);
    if runtime.hub.is_none() {
        anyhow::bail!(
            "this agent is not enrolled; run `sonde-agent enroll --hub HOST:PORT --token … --ca-sha256 …` first"
        );
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping");
            shutdown.cancel();
        });
    }
    tracing::info!(agent = %runtime.agent_id(), ceiling = %runtime.config.max_capability, "sonde-agent starting");
    crate::connection::run(Arc::clone(&runtime), shutdown).await?;
    let _ = std::fs::remove_file(runtime.data.root().join("status.json"));
    tracing::info!("sonde-agent stopped");
    Ok(())
}

pub fn status(config: AgentConfig, json: bool) -> anyhow::Result<()> {
    let runtime = Runtime::open(config)?;
    let link: Option<LinkStatus> = read_json(&runtime.data.root().join("status.json"))?;
    let head = runtime.audit.head()?;
    let reports = runtime.pack_reports();
    let value = serde_json::json!({
        "enrolled": runtime.hub.as_ref().map(|h| serde_json::json!({"agent_id": h.agent_id, "name": h.name, "hub": h.address, "hub_ca_sha256": h.ca_sha256})),
        "pending_enrollment": runtime.data.pending_enrollment()?.map(|p| p.enrollment_id),
        "link": link,
        "max_capability": runtime.config.max_capability,
        "audit_head": head,
        "packs": reports.iter().map(|p| serde_json::json!({"name": p.name, "state": p.state, "missing": p.missing})).collect::<Vec<_>>(),
    });
    if json {
        println!("{}", terminal_json(&serde_json::to_string_pretty(&value)?));
        return Ok(());
    }
    match &runtime.hub {
        Some(h) => say!(
            "enrolled:    {} ({}) with hub {}",
            h.name,
            h.agent_id,
            h.address
        ),
        None => match runtime.data.pending_enrollment()? {
            Some(p) => say!(
                "enrolled:    no (enrollment {} pending approval)",
                p.enrollment_id
            ),
            None => say!("enrolled:    no (run `sonde-agent enroll`)"),
        },
    }
    match link {
        Some(l) if l.connected => say!("connection:  connected to {} (pid {})", l.hub, l.pid),
        Some(l) => say!("connection:  not connected: {} (pid {})", l.detail, l.pid),
        None => say!("connection:  agent not running"),
    }
    say!("ceiling:     {}", runtime.config.max_capability);
    say!("audit head:  {head}");
    say!("packs:");
    for p in &reports {
        let probes = p.probes.iter().filter(|x| x.registered).count();
        say!(
            "  {:<8} {:<11} {:>2} probes  {}",
            p.name,
            p.state.as_str(),
            probes,
            p.missing.join("; ")
        );
    }
    Ok(())
}

pub fn packs(config: AgentConfig, cmd: PacksCommand) -> anyhow::Result<()> {
    match cmd {
        PacksCommand::List { json } => {
            let runtime = Runtime::open(config)?;
            let reports = runtime.pack_reports();
            if json {
                println!(
                    "{}",
                    terminal_json(&serde_json::to_string_pretty(&reports)?)
                );
                return Ok(());
            }
            for p in &reports {
                say!(
                    "{} {} — {} [{}{}]",
                    p.name,
                    p.version,
                    p.description,
                    p.state.as_str(),
                    if p.detected { ", detected" } else { "" }
                );
                if !p.requires.is_empty() {
                    say!("    grants:  {}", p.requires.join("; "));
                }
                for m in &p.missing {
                    say!("    to do:   {m}");
                }
                if p.state == PackState::Pending {
                    say!(
                        "    approve: sonde-hub packs approve <this agent> {}",
                        p.name
                    );
                }
            }
            Ok(())
        }
        PacksCommand::Keygen { out } => {
            let key = keys::generate_signing_key()?;
            write_private(&out, keys::encode_secret_key(&key).as_bytes())?;
            say!("{}", keys::encode_public_key(&key.verifying_key()));
            eprintln!(
                "secret key written to {} (0600); add the public key above to publisher_keys on agents that should trust it",
                out.display()
            );
            Ok(())
        }
        PacksCommand::Sign { dir, key } => sign_pack(&dir, &key),
    }
}

fn sign_pack(dir: &Path, key: &Path) -> anyhow::Result<()> {
    let key = keys::decode_secret_key(&std::fs::read_to_string(key)?)?;
    let text = std::fs::read_to_string(dir.join("pack.toml"))?;
    let manifest = sonde_packs::Manifest::parse(&text)?;
    sonde_packs::declarative::pack_from_manifest(manifest.clone())?;
    let sig = sonde_packs::signing::sign(&manifest.sha256(), &key);
    std::fs::write(dir.join("pack.sig"), sig.to_toml())?;
    say!(
        "signed {} {} ({})",
        manifest.name,
        manifest.version,
        manifest.sha256()
    );
    Ok(())
}

pub fn audit(config: AgentConfig, cmd: AuditCommand) -> anyhow::Result<u8> {
    let data = DataDir::new(&config.data_dir);
    let key = keys::decode_secret_key(
        &std::fs::read_to_string(data.signing_key())
            .map_err(|e| anyhow::anyhow!("{}: {e}", data.signing_key().display()))?,
    )?;
    let audit = LocalAudit::open_read_only(&data.audit_db(), key)?;
    match cmd {
        AuditCommand::Verify => match audit.verify()? {
            Ok(r) => {
                say!(
                    "OK: {} entries, head {}, {} signed checkpoint(s) verified",
                    r.entries,
                    r.head,
                    r.checkpoints_verified
                );
                Ok(0)
            }
            Err(b) => {
                say!("BROKEN at entry {} ({}): {b}", b.seq(), b.kind());
                Ok(1)
            }
        },
        AuditCommand::List { limit } => {
            for e in audit.recent(limit.clamp(1, 1000))? {
                say!(
                    "{:>6} {} {:<22} {:<16} {:<24} {}",
                    e.seq,
                    e.timestamp_ms,
                    e.actor,
                    e.action,
                    e.probe.unwrap_or_default(),
                    e.outcome
                );
            }
            Ok(0)
        }
    }
}

fn print_result(result: &local::LocalResult, format: Format) -> anyhow::Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string(result)?,
        Format::Pretty => serde_json::to_string_pretty(result)?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", terminal_json(&text))?;
    Ok(())
}

/// `sonde-agent probe`. Returns the exit code.
pub async fn probe(config: AgentConfig, args: ProbeArgs) -> anyhow::Result<u8> {
    let runtime = Runtime::open(config)?;
    if runtime.hub.is_none() && !args.local && !args.list {
        eprintln!(
            "this agent is not enrolled: pass --local to run the packs that need no approval"
        );
        return Ok(local::EXIT_REFUSED);
    }
    let user = sonde_packs::requirements::Identity::current().user;
    let actor = format!("local:{user}");
    if args.list {
        let loaded = runtime.loaded();
        let mut probes: Vec<_> = loaded.table.values().map(|r| r.summary.clone()).collect();
        probes.sort_by(|a, b| a.name.cmp(&b.name));
        match args.format {
            Format::Json => println!("{}", terminal_json(&serde_json::to_string(&probes)?)),
            Format::Pretty => {
                for p in &probes {
                    say!("{} [{}] — {}", p.name, p.capability, p.description);
                    for param in &p.params {
                        say!(
                            "    {}{}: {}",
                            param.name,
                            if param.required { " (required)" } else { "" },
                            param.json_schema()
                        );
                    }
                }
            }
        }
        return Ok(0);
    }
    if args.stdio {
        let stdin = std::io::stdin();
        local::stdio(&runtime, &actor, stdin.lock(), std::io::stdout().lock()).await?;
        return Ok(0);
    }
    let name = args.name.unwrap_or_default();
    let params = match local::build_params(&runtime, &name, args.params.as_deref(), &args.param) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", terminal_text(&e.to_string()));
            return Ok(local::EXIT_BAD_INPUT);
        }
    };
    let result = local::run_one(&runtime, &actor, None, &name, params).await;
    print_result(&result, args.format)?;
    if let Some(e) = &result.error {
        eprintln!("error ({}): {}", e.code, terminal_text(&e.message));
    }
    Ok(result.exit_code())
}
