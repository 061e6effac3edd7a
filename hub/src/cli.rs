//! Command-line interface of `sonde-hub` (argument definitions only).

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sonde-hub",
    version,
    about = "Sonde hub: lets AI assistants look into your machines without a shell"
)]
pub struct Cli {
    /// The hub's data directory.
    #[arg(
        long,
        global = true,
        env = "SONDE_HUB_DATA",
        default_value = "/var/lib/sonde-hub"
    )]
    pub data: PathBuf,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data dir: database, CA, TLS certificate, signing key.
    Init {
        /// A DNS name agents and clients use to reach the hub (repeatable).
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// An IP address agents and clients use to reach the hub (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
    },
    /// The hub's TLS server certificate.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Run the hub (agent endpoint, MCP endpoint, admin socket).
    Serve {
        /// Agent endpoint address (default from hub.toml, else 0.0.0.0:7443).
        #[arg(long)]
        agent_listen: Option<SocketAddr>,
        /// MCP endpoint address (default from hub.toml, else 127.0.0.1:7444).
        #[arg(long)]
        mcp_listen: Option<SocketAddr>,
    },
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Pending and past enrollment requests.
    #[command(subcommand)]
    Enrollments(EnrollmentCommand),
    /// Enrolled agents.
    #[command(subcommand)]
    Agents(AgentCommand),
    /// Pack permissions per agent.
    #[command(subcommand)]
    Packs(PackCommand),
    /// The audit chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API keys for MCP clients.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// MCP clients that connect with OAuth: approve or deny their requests,
    /// list and revoke them.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Hub-side integrations (Prometheus, Alertmanager, Proxmox VE, UniFi, signed third-party).
    #[command(subcommand)]
    Integrations(crate::integrations::commands::IntegrationCommand),
    /// Try Sonde on this machine: a hub with a local agent, ready for an MCP client.
    Demo(DemoArgs),
    /// Critical paths: named, ordered steps of checks (MCP tool `check_critical_path`).
    #[command(subcommand)]
    Paths(PathCommand),
    /// Probe calls, failures and latency by target and probe over a window,
    /// biggest changes versus the window before first (MCP tool `trending`).
    Trending {
        /// Window length, e.g. 24h, 7d (at most 90d).
        #[arg(long, default_value = "24h")]
        window: String,
        /// Only this target (agent name).
        #[arg(long)]
        target: Option<String>,
        /// Only probes matching this pattern (`zfs.*`).
        #[arg(long)]
        probe: Option<String>,
        /// At most this many groups per list.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum PathCommand {
    /// Define or replace a path from a TOML file (`.json`: JSON; `-`: TOML
    /// on stdin). See docs/critical-paths.md for the format.
    Add {
        file: PathBuf,
    },
    List,
    Show {
        name: String,
    },
    Remove {
        name: String,
    },
    /// Run a path now (as the operator); exit status 1 when it breaks.
    Run {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a single-use enrollment token (printed once).
    Create {
        /// How long the token stays valid (e.g. 15m, 2h).
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// A note shown next to the enrollment it is used for.
        #[arg(long)]
        label: Option<String>,
        /// Approve the enrollment without an operator (for scripted installs;
        /// anyone holding the token gets an agent certificate).
        #[arg(long)]
        auto_approve: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke an unused token.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum EnrollmentCommand {
    /// Pending enrollments (`--all` for decided ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending enrollment (by agent name or enrollment id).
    Approve { name: String },
    /// Deny a pending enrollment.
    Deny { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    List,
    Show {
        name: String,
    },
    /// Revoke: refuse its connections from now on and drop the live one.
    Revoke {
        name: String,
    },
    /// Accept an agent's changed attestation as its new baseline (ends a drift quarantine).
    Accept {
        name: String,
    },
    /// Close an agent's attestation drift as reviewed and keep it quarantined.
    KeepQuarantined {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Packs waiting for a decision (`--all` for every pack of every agent).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Approve a pack on an agent.
    Approve { agent: String, pack: String },
    /// Deny a pending pack on an agent.
    Deny { agent: String, pack: String },
    /// Revoke an approved pack on an agent (takes effect at once).
    Revoke { agent: String, pack: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Entries, newest first.
    List(AuditFilter),
    /// One entry in full.
    Show { seq: u64 },
    /// Verify the whole chain and its signed checkpoints.
    Verify,
}

#[derive(Debug, Args)]
pub struct AuditFilter {
    /// An agent name (every agent that had it) or id; `prefix*` for several.
    #[arg(long)]
    pub agent: Option<String>,
    /// e.g. `api-key:sk_3f9a1c2e` or `operator:*`.
    #[arg(long)]
    pub actor: Option<String>,
    /// e.g. `zfs.*`.
    #[arg(long)]
    pub probe: Option<String>,
    #[arg(long)]
    pub outcome: Option<String>,
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries newer than this (e.g. 1h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// What an API key or an OAuth grant may reach (`keys create`, `oauth
/// approve`): one set of flags with one meaning.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Agent name patterns it may use (`*` wildcard); default all.
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
    /// Probe patterns (`zfs.*`); default all.
    #[arg(long, value_delimiter = ',')]
    pub probes: Vec<String>,
    /// MCP tools; default all.
    #[arg(long, value_delimiter = ',')]
    pub tools: Vec<String>,
    #[arg(long, default_value = "observe")]
    pub max_capability: sonde_protocol::Capability,
    /// When it ends, e.g. 90d (default: never). An OAuth grant's access
    /// tokens still last one hour and are refreshed until then.
    #[arg(long)]
    pub expires: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key (printed once) with its policy.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OauthCommand {
    /// Authorization requests waiting for a decision (all with --all).
    Pending {
        #[arg(long)]
        all: bool,
    },
    /// Approve a request (check that its code matches the one the browser
    /// shows) with the policy the client gets, as for `keys create`.
    Approve {
        /// The request id (`oag-…`).
        id: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Deny a request (the browser is told, and sent back to the client).
    Deny { id: String },
    /// Registered clients.
    #[command(subcommand)]
    Clients(OauthClientsCommand),
}

#[derive(Debug, Subcommand)]
pub enum OauthClientsCommand {
    List,
    /// Revoke a client: its grants and tokens stop working at once.
    Revoke {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its hub and agent (reused on the next run).
    #[arg(long = "dir", default_value = "./sonde-demo")]
    pub dir: PathBuf,
    /// Use the two ports from PORT on 127.0.0.1: agents on PORT, MCP on
    /// PORT+1 (default 7443, i.e. 7443 and 7444).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..=65534), conflicts_with_all = ["mcp_port", "agent_port"])]
    pub port_base: Option<u16>,
    /// MCP endpoint port on 127.0.0.1.
    #[arg(long, default_value_t = 7444)]
    pub mcp_port: u16,
    /// Agent endpoint port on 127.0.0.1.
    #[arg(long, default_value_t = 7443)]
    pub agent_port: u16,
    /// Serve the sample ZFS pool even if this machine has a pool (the zfs
    /// pack then shows the sample, labelled as such).
    #[arg(long, conflicts_with = "no_sample_zfs")]
    pub sample_zfs: bool,
    /// Never serve the sample ZFS pool (by default it is served when this
    /// machine has no pool).
    #[arg(long)]
    pub no_sample_zfs: bool,
}

impl DemoArgs {
    /// (agent port, MCP port).
    pub fn ports(&self) -> (u16, u16) {
        match self.port_base {
            Some(base) => (base, base.saturating_add(1)),
            None => (self.agent_port, self.mcp_port),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a new server certificate from the hub CA (new key, 825 days),
    /// for the given names or, without any, for the current certificate's.
    /// Agents and MCP clients keep working (same CA); restart the hub to
    /// serve it.
    Reissue {
        /// A DNS name agents and clients use to reach the hub (repeatable).
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// An IP address agents and clients use to reach the hub (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `keys create` and `oauth approve` take the same policy flags and
    /// read them the same way.
    #[test]
    fn keys_and_oauth_grants_share_one_policy_grammar() {
        let flags = [
            "--agents",
            "nas,web-*",
            "--probes",
            "zfs.*",
            "--tools",
            "probe",
            "--max-capability",
            "observe",
            "--expires",
            "2w",
        ];
        let key = Cli::try_parse_from(
            [&["sonde-hub", "keys", "create", "--name", "k"][..], &flags].concat(),
        )
        .unwrap();
        let grant =
            Cli::try_parse_from([&["sonde-hub", "oauth", "approve", "oag-1"][..], &flags].concat())
                .unwrap();
        let (
            Command::Keys(KeyCommand::Create { policy: a, .. }),
            Command::Oauth(OauthCommand::Approve { policy: b, .. }),
        ) = (key.command, grant.command)
        else {
            panic!("parsed into other commands");
        };
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.agents, ["nas", "web-*"]);
        assert_eq!(
            crate::commands::expires_in_s(&a).unwrap(),
            Some(14 * 86_400)
        );
        for cmd in [
            &["sonde-hub", "keys", "create", "--name", "k"][..],
            &["sonde-hub", "oauth", "approve", "x"],
        ] {
            let bad = Cli::try_parse_from([cmd, &["--expires", "soon"]].concat()).unwrap();
            let policy = match bad.command {
                Command::Keys(KeyCommand::Create { policy, .. })
                | Command::Oauth(OauthCommand::Approve { policy, .. }) => policy,
                _ => unreachable!(),
            };
            let err = crate::commands::expires_in_s(&policy)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--expires: "), "{err}");
        }
    }
}
