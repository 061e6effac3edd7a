//! `sonde-hub integrations …`: arguments and what each does. Changes go
//! through the running hub's admin socket; `list` falls back to the
//! database (read-only) when the hub is down.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use sonde_admin::AdminClient;
use sonde_admin::api::{CredentialSet, IntegrationAction, IntegrationAdd, IntegrationInfo};
use sonde_protocol::display::{terminal_json, terminal_text};
use std::io::Read as _;
use std::path::PathBuf;

use crate::datadir::DataDir;

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Add an integration (pending until `approve`).
    Add {
        /// Its name: what MCP clients pass as the target (`agent`).
        name: String,
        /// Built-in kind: prometheus, alertmanager, proxmox, unifi.
        #[arg(long, required_unless_present = "manifest")]
        kind: Option<String>,
        /// Base URL, e.g. https://pve1.lan:8006 or http://127.0.0.1:9090.
        #[arg(long)]
        url: String,
        /// Pin this CA certificate (PEM file) instead of the system roots.
        #[arg(long, conflicts_with = "fingerprint")]
        ca: Option<PathBuf>,
        /// Pin the server certificate's SHA-256 fingerprint.
        #[arg(long)]
        fingerprint: Option<String>,
        /// Prometheus: an approved named query, NAME=PROMQL (repeatable).
        #[arg(long = "query")]
        queries: Vec<String>,
        /// UniFi: the site id (default `default`).
        #[arg(long)]
        site: Option<String>,
        /// A third-party manifest (integration.toml) …
        #[arg(long, requires = "signature")]
        manifest: Option<PathBuf>,
        /// … and its publisher signature (integration.sig).
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// List integrations (credentials show only a fingerprint).
    List,
    /// Approve a pending integration.
    Approve { name: String },
    /// Run the integration's test probe (works before approval).
    Test { name: String },
    /// Set or replace the credential, read from stdin or a file (never
    /// from the command line, where other users could see it).
    SetCredential {
        name: String,
        /// Read the secret from this file instead of stdin.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Delete the credential (the integration stays, calling without one).
    ClearCredential { name: String },
    /// Remove an integration and its credential.
    Remove { name: String },
    /// Re-encrypt every credential under a new vault key.
    RotateKey,
    /// Sign a third-party manifest (DIR/integration.toml → DIR/integration.sig)
    /// with a publisher key (`sonde-agent packs keygen`). Needs no hub.
    Sign {
        dir: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

fn print<T: serde::Serialize>(
    json_out: bool,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json_out {
        println!("{}", terminal_json(&serde_json::to_string_pretty(value)?));
    } else {
        print!("{}", terminal_text(&human(value)));
    }
    Ok(())
}

fn line(i: &IntegrationInfo) -> String {
    format!(
        "{}  {}  {}  {}  {}  credential: {}\n",
        i.name,
        i.kind,
        i.state,
        i.base_url,
        i.trust,
        i.credential
            .as_ref()
            .map(|c| c.fingerprint.clone())
            .unwrap_or_else(|| "none".into())
    )
}

async fn hub<T>(
    data: &DataDir,
    f: impl AsyncFnOnce(AdminClient) -> Result<T, sonde_admin::AdminError>,
) -> anyhow::Result<T> {
    match f(AdminClient::for_data_dir(data.root())).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_unreachable() => bail!(
            "{e}\nThis command needs the running hub: start it with `sonde-hub serve --data {}`.",
            data.root().display()
        ),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(data: &DataDir, json_out: bool, cmd: IntegrationCommand) -> anyhow::Result<()> {
    match cmd {
        IntegrationCommand::Add {
            name,
            kind,
            url,
            ca,
            fingerprint,
            queries,
            site,
            manifest,
            signature,
        } => {
            let mut settings = Map::new();
            if !queries.is_empty() {
                let mut q = Map::new();
                for item in queries {
                    let (n, e) = item.split_once('=').context("--query takes NAME=PROMQL")?;
                    q.insert(n.trim().to_owned(), json!(e.trim()));
                }
                settings.insert("queries".into(), Value::Object(q));
            }
            if let Some(site) = site {
                settings.insert("site".into(), json!(site));
            }
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let req = IntegrationAdd {
                name,
                kind: kind.unwrap_or_default(),
                base_url: url,
                ca_pem: ca.as_ref().map(read).transpose()?,
                fingerprint,
                settings,
                manifest: manifest.as_ref().map(read).transpose()?,
                signature: signature.as_ref().map(read).transpose()?,
            };
            let added = hub(data, async |c| c.add_integration(&req).await).await?;
            print(json_out, &added, |i| {
                format!(
                    "Added (pending): {}Probes: {}\nApprove it with `sonde-hub integrations approve {}`{}\n",
                    line(i),
                    i.probes.join(", "),
                    i.name,
                    if i.kind == "prometheus" || i.kind == "alertmanager" {
                        String::new()
                    } else {
                        format!(
                            " and set its credential with `sonde-hub integrations set-credential {}`",
                            i.name
                        )
                    }
                )
            })
        }
        IntegrationCommand::List => {
            let list = match AdminClient::for_data_dir(data.root()).integrations().await {
                Ok(l) => l,
                Err(e) if e.is_unreachable() => {
                    let store = crate::store::HubStore::open_read_only(&data.db())
                        .context("the hub is not running and its database cannot be opened")?;
                    store
                        .integrations()
                        .await?
                        .into_iter()
                        .map(|r| IntegrationInfo {
                            name: r.name,
                            kind: r.kind,
                            base_url: r.base_url,
                            trust: r.trust,
                            settings: serde_json::from_str(&r.settings).unwrap_or_default(),
                            manifest_sha256: r.manifest_sha256,
                            signed: r.signature.is_some(),
                            builtin: false,
                            state: if r.approved { "approved" } else { "pending" }.into(),
                            created_at_ms: r.created_at_ms,
                            created_by: r.created_by,
                            approved_at_ms: r.approved_at_ms,
                            approved_by: r.approved_by,
                            credential: None,
                            probes: vec![],
                            diagnose_categories: vec![],
                        })
                        .collect()
                }
                Err(e) => return Err(e.into()),
            };
            print(json_out, &list, |l| {
                if l.is_empty() {
                    "(no integrations)\n".into()
                } else {
                    l.iter().map(line).collect()
                }
            })
        }
        IntegrationCommand::Approve { name } => {
            let i = hub(data, async |c| {
                c.integration_action(&name, IntegrationAction::Approve)
                    .await
            })
            .await?;
            print(json_out, &i, |i| format!("Approved: {}", line(i)))
        }
        IntegrationCommand::Remove { name } => {
            let i = hub(data, async |c| {
                c.integration_action(&name, IntegrationAction::Remove).await
            })
            .await?;
            print(json_out, &i, |i| format!("Removed: {}", line(i)))
        }
        IntegrationCommand::ClearCredential { name } => {
            let i = hub(data, async |c| {
                c.integration_action(&name, IntegrationAction::ClearCredential)
                    .await
            })
            .await?;
            print(json_out, &i, |i| format!("Credential cleared: {}", line(i)))
        }
        IntegrationCommand::Test { name } => {
            let r = hub(data, async |c| c.test_integration(&name).await).await?;
            print(json_out, &r, |r| {
                if r.ok {
                    format!(
                        "{} answered {} in {} ms:\n{}\n",
                        r.agent,
                        r.probe,
                        r.duration_ms,
                        serde_json::to_string_pretty(&r.data).unwrap_or_default()
                    )
                } else {
                    format!(
                        "{} failed ({}): {}\n",
                        r.probe,
                        r.error_code.clone().unwrap_or_default(),
                        r.error.clone().unwrap_or_default()
                    )
                }
            })
        }
        IntegrationCommand::SetCredential { name, from_file } => {
            let mut secret = String::new();
            match from_file {
                Some(p) => {
                    secret = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                }
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        eprintln!(
                            "Paste the secret and press Enter (input is not echoed back by sonde):"
                        );
                    }
                    std::io::stdin().take(8192).read_to_string(&mut secret)?;
                }
            }
            let req = CredentialSet {
                secret: secret.trim_end_matches(['\n', '\r']).to_owned(),
            };
            let i = hub(data, async |c| {
                c.set_integration_credential(&name, &req).await
            })
            .await?;
            print(json_out, &i, |i| format!("Credential set: {}", line(i)))
        }
        IntegrationCommand::Sign { dir, key } => {
            let key = sonde_protocol::keys::decode_secret_key(
                &std::fs::read_to_string(&key)
                    .with_context(|| format!("reading {}", key.display()))?,
            )?;
            let path = dir.join("integration.toml");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let manifest = super::manifest::Manifest::parse(&text)?;
            let sig = sonde_packs::signing::sign(&manifest.sha256, &key);
            std::fs::write(dir.join("integration.sig"), sig.to_toml())?;
            print(
                json_out,
                &json!({"integration": manifest.kind(), "sha256": manifest.sha256.to_hex(), "key": sig.key}),
                |_| {
                    format!(
                        "signed {} ({})\n",
                        manifest.kind(),
                        manifest.sha256.to_hex()
                    )
                },
            )
        }
        IntegrationCommand::RotateKey => {
            let r = hub(data, async |c| c.rotate_integration_key().await).await?;
            print(json_out, &r, |r| {
                format!(
                    "Re-encrypted {} credential(s) under the new key {}.\n",
                    r.credentials, r.key_id
                )
            })
        }
    }
}
