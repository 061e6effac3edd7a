//! Optional hub settings: `<data dir>/hub.toml`. Every key is optional;
//! unknown keys and bad values are errors that name the key and line.
//! Command-line flags override the file.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// Default agent endpoint: every interface, port 7443 (agents connect in).
pub const DEFAULT_AGENT_LISTEN: &str = "0.0.0.0:7443";
/// Default MCP endpoint: loopback only, port 7444.
pub const DEFAULT_MCP_LISTEN: &str = "127.0.0.1:7444";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Where agents connect (WSS, mutual TLS).
    pub agent_listen: SocketAddr,
    /// Where MCP clients connect (HTTPS with the hub certificate).
    pub mcp_listen: SocketAddr,
    /// The host name agents should use to reach this hub (printed in
    /// `sonde-agent enroll …` lines). Default: the first `--hostname` given
    /// to `init`, else the listen address.
    pub public_host: Option<String>,
    pub mcp: McpConfig,
    pub agents: AgentLinkConfig,
    pub integrations: IntegrationsConfig,
}

/// Hub-side integrations (`[integrations]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    /// Publisher keys (`ed25519:…`) whose signatures make a third-party
    /// integration manifest acceptable to `integrations add --manifest`.
    pub publisher_keys: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Serve MCP over plain HTTP instead of HTTPS (for a reverse proxy on the
    /// same machine). Refused unless `mcp_listen` is a loopback address.
    pub plain_http: bool,
    /// Browser origins allowed to call `/mcp` (requests without `Origin`,
    /// like those of CLI clients, are always allowed).
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header (DNS-rebinding protection).
    /// Loopback names and the hub's certificate names are always accepted.
    pub allowed_hosts: Vec<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests per minute per API key.
    pub rate_limit_per_minute: u32,
    /// Default probe timeout when the caller does not give one (seconds).
    pub probe_timeout_s: u64,
    /// The public origin MCP clients reach this hub at, e.g.
    /// `https://sonde.example.com` behind a reverse proxy: the OAuth issuer,
    /// and `<public_url>/mcp` is the protected resource every OAuth token is
    /// bound to. Default: the MCP listener's URL (`https://<public_host or
    /// first certificate name>:<port>`).
    pub public_url: Option<String>,
    /// How long an OAuth authorization request waits for the operator
    /// before it lapses (seconds).
    pub oauth_approval_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentLinkConfig {
    pub heartbeat_interval_s: u64,
    /// An agent silent for this long is disconnected and shown offline.
    pub offline_after_s: u64,
    /// Quarantine an agent whose attestation changed (recommended).
    pub quarantine_on_drift: bool,
    /// Allowed clock difference between hub and agent.
    pub max_clock_skew_s: i64,
    /// Largest frame on the agent link (results up to 4 MiB fit).
    pub max_frame_bytes: usize,
    /// Most agent connections at once.
    pub max_connections: usize,
    /// Least time between two certificate renewals of one agent.
    pub min_cert_renewal_interval_s: u64,
    /// Most connections at once that have not (yet) shown an agent
    /// certificate: enrollments, status polls, anything else.
    pub max_unauthenticated: usize,
    /// Most such connections at once from one address.
    pub max_unauthenticated_per_ip: usize,
    /// Time allowed for a TLS handshake on the agent port.
    pub handshake_timeout_s: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            agent_listen: DEFAULT_AGENT_LISTEN
                .parse()
                .unwrap_or_else(|_| unreachable!("constant address")),
            mcp_listen: DEFAULT_MCP_LISTEN
                .parse()
                .unwrap_or_else(|_| unreachable!("constant address")),
            public_host: None,
            mcp: McpConfig::default(),
            agents: AgentLinkConfig::default(),
            integrations: IntegrationsConfig::default(),
        }
    }
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            plain_http: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 1 << 20,
            rate_limit_per_minute: 600,
            probe_timeout_s: 60,
            public_url: None,
            oauth_approval_timeout_s: 300,
        }
    }
}

impl Default for AgentLinkConfig {
    fn default() -> Self {
        AgentLinkConfig {
            heartbeat_interval_s: 15,
            offline_after_s: 45,
            quarantine_on_drift: true,
            max_clock_skew_s: 60,
            max_frame_bytes: 16 << 20,
            max_connections: 1024,
            min_cert_renewal_interval_s: 3600,
            max_unauthenticated: 256,
            max_unauthenticated_per_ip: 16,
            handshake_timeout_s: 5,
        }
    }
}

impl HubConfig {
    /// Reads `path` if it exists; defaults otherwise.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HubConfig::default()),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: HubConfig = toml::from_str(text)?;
        if config.mcp.plain_http && !config.mcp_listen.ip().is_loopback() {
            anyhow::bail!(
                "mcp.plain_http is only allowed on a loopback mcp_listen address (got {}); put a TLS reverse proxy in front instead",
                config.mcp_listen
            );
        }
        if !(1..=86_400).contains(&config.mcp.oauth_approval_timeout_s) {
            anyhow::bail!("mcp.oauth_approval_timeout_s must be between 1 and 86400 seconds");
        }
        if let Some(url) = &config.mcp.public_url {
            check_public_url(url)?;
        }
        if config.agents.heartbeat_interval_s == 0
            || config.agents.offline_after_s <= config.agents.heartbeat_interval_s
        {
            anyhow::bail!(
                "agents.offline_after_s must be greater than agents.heartbeat_interval_s (> 0)"
            );
        }
        Ok(config)
    }
}

/// `mcp.public_url` must be an origin: `https://host[:port]` (or `http://`
/// for a loopback host), no path, query, fragment or user info.
fn check_public_url(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| anyhow::anyhow!("mcp.public_url {url:?} must start with https://"))?;
    let ok_chars = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok_chars {
        anyhow::bail!(
            "mcp.public_url {url:?} must be an origin like https://sonde.example.com[:port], without a path, trailing slash, query or user"
        );
    }
    if url.starts_with("http://") {
        let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            anyhow::bail!("mcp.public_url {url:?}: plain http is only allowed for a loopback host");
        }
    }
    Ok(())
}

/// The commented default `hub.toml` written by `init`.
pub const DEFAULT_FILE: &str = include_str!("../../assets/hub.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_shipped_example_parse() {
        assert_eq!(HubConfig::parse("").unwrap(), HubConfig::default());
        assert_eq!(
            HubConfig::parse(DEFAULT_FILE).unwrap(),
            HubConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_key_and_line() {
        let err = HubConfig::parse("agent_listen = \"0.0.0.0:7443\"\nmcp_lissten = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mcp_lissten") && err.contains("line 2"),
            "{err}"
        );
        let err = HubConfig::parse("[agents]\nheartbeat_interval_s = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("heartbeat_interval_s") || err.contains("line 2"),
            "{err}"
        );
        let err = HubConfig::parse("mcp_listen = \"0.0.0.0:7444\"\n[mcp]\nplain_http = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
    }

    #[test]
    fn public_url_must_be_an_origin() {
        for ok in [
            "https://sonde.example.com",
            "https://sonde.example.com:8443",
            "http://127.0.0.1:7444",
        ] {
            let c = HubConfig::parse(&format!("[mcp]\npublic_url = {ok:?}")).unwrap();
            assert_eq!(c.mcp.public_url.as_deref(), Some(ok));
        }
        for bad in [
            "sonde.example.com",
            "https://sonde.example.com/",
            "https://sonde.example.com/mcp",
            "https://user@sonde.example.com",
            "https://sonde.example.com?x",
            "http://sonde.example.com",
            "ftp://sonde.example.com",
        ] {
            assert!(
                HubConfig::parse(&format!("[mcp]\npublic_url = {bad:?}")).is_err(),
                "{bad}"
            );
        }
        assert!(HubConfig::parse("[mcp]\noauth_approval_timeout_s = 0").is_err());
    }
}
