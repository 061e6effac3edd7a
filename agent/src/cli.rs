//! Command-line interface of `sonde-agent` (argument definitions only).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sonde-agent",
    version,
    about = "Sonde agent: answers a hub's signed probe requests, read-only by default, never as root"
)]
pub struct Cli {
    /// Agent configuration file.
    #[arg(long, global = true, env = "SONDE_AGENT_CONFIG", default_value = crate::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join a hub: make keys, send a signing request, wait for approval.
    Enroll {
        /// Hub address HOST:PORT.
        #[arg(long)]
        hub: String,
        /// The single-use enrollment token from `sonde-hub token create`.
        #[arg(long)]
        token: String,
        /// SHA-256 of the hub CA, printed by `sonde-hub token create`.
        #[arg(long = "ca-sha256")]
        ca_sha256: String,
        /// Name of this agent in the fleet (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Submit the request and exit; run again later to collect the certificate.
        #[arg(long)]
        no_wait: bool,
    },
    /// Run the agent (connects out to the hub; never listens).
    Run,
    /// Enrollment, connection, packs, ceiling and audit head.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Packs with their state and what each needs.
    #[command(subcommand)]
    Packs(PacksCommand),
    /// The local audit chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run a probe by hand, exactly as a hub request would run.
    Probe(ProbeArgs),
}

#[derive(Debug, Subcommand)]
pub enum PacksCommand {
    /// Every pack, its state, and what to do about it.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make an Ed25519 publisher key for signing packs.
    Keygen {
        /// Where to write the secret key (0600); the public key is printed.
        out: PathBuf,
    },
    /// Sign a declarative pack (writes DIR/pack.sig).
    Sign {
        dir: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the local chain and its checkpoints.
    Verify,
    /// The latest entries.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Json,
    Pretty,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Probe name, e.g. system.uptime.
    #[arg(required_unless_present_any = ["list", "stdio"])]
    pub name: Option<String>,
    /// Parameters as a JSON object.
    #[arg(long)]
    pub params: Option<String>,
    /// One parameter, key=value (repeatable; typed by the probe's schema).
    #[arg(long = "param")]
    pub param: Vec<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Run without being enrolled (only packs that need no approval are active).
    #[arg(long)]
    pub local: bool,
    /// List every registered probe with its description and parameters.
    #[arg(long, conflicts_with = "stdio")]
    pub list: bool,
    /// Read one JSON request per line on stdin, write one reply per line.
    #[arg(long)]
    pub stdio: bool,
}
