//! The agent configuration: `/etc/sonde/agent.toml` by default.
//!
//! Every key is optional (see `assets/agent.toml` for all of them with their
//! defaults). Unknown keys and bad values are errors naming the key and the
//! line, and so are settings of a pack that does not exist or that the pack
//! rejects.

use serde::{Deserialize, Deserializer, Serialize};
use sonde_protocol::{Capability, Digest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default config file.
pub const DEFAULT_CONFIG: &str = "/etc/sonde/agent.toml";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Hub address `HOST:PORT`; set by `enroll` in the data dir, this
    /// overrides it (e.g. after the hub moved).
    #[serde(default)]
    pub hub: Option<String>,
    /// Keys, certificates, grants and the local audit chain.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Highest capability any probe may have on this machine.
    #[serde(default)]
    pub max_capability: Capability,
    /// Load third-party packs without a trusted signature or hub approval.
    #[serde(default)]
    pub allow_unsigned_packs: bool,
    /// Where third-party declarative packs live (`<dir>/<pack>/pack.toml`).
    #[serde(default = "default_packs_dir")]
    pub packs_dir: PathBuf,
    /// Publisher keys (`ed25519:…`) trusted to sign third-party packs.
    #[serde(default)]
    pub publisher_keys: Vec<PublisherKey>,
    /// Where probes look for programs (`:`-separated).
    #[serde(default = "default_command_path")]
    pub command_path: String,
    /// Probes running at once; more are answered `busy`.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_probes: usize,
    /// Renew the client certificate over the link when it has fewer days left.
    #[serde(default = "default_renew_days")]
    pub renew_cert_days_before_expiry: u32,
    #[serde(default)]
    pub scrub: ScrubConfig,
    /// Refuse to start unless the kernel enforces the whole probe sandbox
    /// (Landlock ABI 6 or newer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_sandbox: bool,
    /// More paths no probe may ever read (besides the agent's data dir and
    /// config file), e.g. `["/etc/ssl/private"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hide_paths: Vec<PathBuf>,
    /// Per-pack settings, e.g. `[packs.zfs] datasets = ["tank/home"]`.
    #[serde(default)]
    pub packs: BTreeMap<String, toml::Value>,
    /// Packs that serve sample data rather than this machine's, with what
    /// that data is (`[sample_data] zfs = "…"`; `sonde-hub demo` sets it
    /// for its generated ZFS pool). Reported with the pack, so the hub,
    /// its MCP clients and the console label it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sample_data: BTreeMap<String, String>,
    /// The file this was read from (hidden from every probe).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/sonde-agent")
}
fn default_packs_dir() -> PathBuf {
    PathBuf::from("/etc/sonde/packs.d")
}
fn default_command_path() -> String {
    sonde_packs::exec::DEFAULT_SEARCH_PATH.to_owned()
}
fn default_concurrency() -> usize {
    8
}
fn default_renew_days() -> u32 {
    30
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {
    /// Extra rules, applied after the defaults.
    #[serde(default)]
    pub rules: Vec<ScrubRuleConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubRuleConfig {
    pub name: String,
    pub pattern: RegexText,
    /// Words every match contains (any case): the rule runs only near them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// A regex checked while the file is parsed (so errors carry the line).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RegexText(pub String);

impl<'de> Deserialize<'de> for RegexText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // Compiled exactly as the scrubber will (bytes, Unicode off).
        sonde_packs::scrub::compile_rule("", &text)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex: {e}")))?;
        Ok(RegexText(text))
    }
}

/// A trusted publisher key.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct PublisherKey(pub String);

impl<'de> Deserialize<'de> for PublisherKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        sonde_protocol::keys::decode_public_key(&text).map_err(serde::de::Error::custom)?;
        Ok(PublisherKey(text))
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            hub: None,
            data_dir: default_data_dir(),
            max_capability: Capability::Observe,
            allow_unsigned_packs: false,
            packs_dir: default_packs_dir(),
            publisher_keys: Vec::new(),
            command_path: default_command_path(),
            max_concurrent_probes: default_concurrency(),
            renew_cert_days_before_expiry: default_renew_days(),
            scrub: ScrubConfig::default(),
            require_sandbox: false,
            hide_paths: Vec::new(),
            packs: BTreeMap::new(),
            sample_data: BTreeMap::new(),
            source: None,
        }
    }
}

/// A config error, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl AgentConfig {
    /// Loads `path`. A missing file is an error unless `missing_ok`, in which
    /// case the defaults are used.
    pub fn load(path: &Path, missing_ok: bool) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => {
                return Ok(AgentConfig::default());
            }
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
        };
        let mut config = Self::parse(&text).map_err(err)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and checks a config text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.max_concurrent_probes == 0 || config.max_concurrent_probes > 256 {
            return Err(format!(
                "max_concurrent_probes must be 1..=256 (line {})",
                line_of(text, "max_concurrent_probes")
            ));
        }
        if let Some(p) = config.hide_paths.iter().find(|p| !p.is_absolute()) {
            return Err(format!(
                "hide_paths: {} is not an absolute path (line {})",
                p.display(),
                line_of(text, "hide_paths")
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for rule in &config.scrub.rules {
            if !names.insert(rule.name.as_str()) || rule.name.is_empty() {
                return Err(format!(
                    "scrub rule name {:?} is empty or used twice",
                    rule.name
                ));
            }
        }
        let packs =
            crate::pack_states::builtin_defs().map_err(|e| format!("built-in packs: {e}"))?;
        for (name, settings) in &config.packs {
            let line = line_of(text, &format!("[packs.{name}]"));
            let Some(pack) = packs.iter().find(|p| &p.manifest.name == name) else {
                let known: Vec<&str> = packs.iter().map(|p| p.manifest.name.as_str()).collect();
                return Err(format!(
                    "[packs.{name}] (line {line}): no built-in pack is called {name:?} (packs: {})",
                    known.join(", ")
                ));
            };
            if let Some(check) = pack.settings_check {
                let json = serde_json::to_value(settings).map_err(|e| e.to_string())?;
                check(&json).map_err(|e| format!("[packs.{name}] (line {line}): {e}"))?;
            }
        }
        for (name, what) in &config.sample_data {
            let line = line_of(text, "[sample_data]");
            if !packs.iter().any(|p| &p.manifest.name == name) {
                let known: Vec<&str> = packs.iter().map(|p| p.manifest.name.as_str()).collect();
                return Err(format!(
                    "[sample_data] (line {line}): no built-in pack is called {name:?} (packs: {})",
                    known.join(", ")
                ));
            }
            if what.trim().is_empty() || what.len() > 200 || what.chars().any(char::is_control) {
                return Err(format!(
                    "[sample_data] {name} (line {line}): say in one line of 1 to 200 characters what the sample is"
                ));
            }
        }
        Ok(config)
    }

    /// SHA-256 of the canonical form of the settings (comments and layout
    /// don't count; the config holds no secrets). Part of the attestation.
    pub fn sha256(&self) -> Digest {
        Digest::of_json(&serde_json::to_value(self).unwrap_or_default())
    }

    /// The settings key by key for the attestation, so that drift can say
    /// which keys changed: plain settings with their value (compact JSON),
    /// each pack's settings and the list-valued settings (scrub rules,
    /// publisher keys, hidden paths, sample data) as `sha256:` and a digest
    /// (long, and pack settings are the operator's business).
    pub fn attested_settings(&self) -> BTreeMap<String, String> {
        const DIGESTED: &[&str] = &["scrub", "publisher_keys", "hide_paths", "sample_data"];
        let digest = |v: &serde_json::Value| format!("sha256:{}", Digest::of_json(v).to_hex());
        let mut out = BTreeMap::new();
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) else {
            return out;
        };
        for (key, value) in &map {
            match (key.as_str(), value) {
                ("packs", serde_json::Value::Object(packs)) => {
                    for (pack, settings) in packs {
                        out.insert(format!("packs.{pack}"), digest(settings));
                    }
                }
                (k, v) if DIGESTED.contains(&k) => {
                    out.insert(key.clone(), digest(v));
                }
                (_, v) => {
                    out.insert(key.clone(), v.to_string());
                }
            }
        }
        out
    }

    pub fn pack_settings(&self, pack: &str) -> serde_json::Value {
        self.packs
            .get(pack)
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// The 1-based line where `needle` first appears (0 if nowhere).
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(0, |i| i + 1)
}

/// The commented example shipped in `assets/agent.toml`.
pub const EXAMPLE: &str = include_str!("../../assets/agent.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attested_settings_name_each_key_and_digest_the_long_ones() {
        let a =
            AgentConfig::parse("max_capability = \"manage\"\n[packs.zfs]\ndatasets = [\"tank\"]\n")
                .unwrap();
        let b = AgentConfig::parse(
            "max_capability = \"observe\"\n[packs.zfs]\ndatasets = [\"tank\", \"backup\"]\n",
        )
        .unwrap();
        let (sa, sb) = (a.attested_settings(), b.attested_settings());
        assert_eq!(sa["max_capability"], "\"manage\"");
        assert_eq!(sb["max_capability"], "\"observe\"");
        assert!(sa["packs.zfs"].starts_with("sha256:"), "{sa:?}");
        assert_ne!(sa["packs.zfs"], sb["packs.zfs"]);
        assert!(
            !sa["packs.zfs"].contains("tank"),
            "pack settings are digested"
        );
        assert!(sa["scrub"].starts_with("sha256:"), "{sa:?}");
        assert_eq!(sa["data_dir"], sb["data_dir"]);
    }

    #[test]
    fn defaults_and_the_example_parse() {
        let c = AgentConfig::parse("").unwrap();
        assert_eq!(c.max_capability, Capability::Observe);
        assert!(!c.allow_unsigned_packs);
        AgentConfig::parse(EXAMPLE).unwrap();
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = AgentConfig::parse("data_dir = \"/x\"\nmax_capabilty = \"manage\"\n").unwrap_err();
        assert!(e.contains("max_capabilty") && e.contains("line 2"), "{e}");
        let e = AgentConfig::parse("\nmax_capability = \"root\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("root"), "{e}");
        let e = AgentConfig::parse("[[scrub.rules]]\nname = \"x\"\npattern = \"(\"\n").unwrap_err();
        assert!(e.contains("invalid regex") && e.contains("line 3"), "{e}");
        let e = AgentConfig::parse("publisher_keys = [\"nope\"]").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = AgentConfig::parse("\n[packs.nosuch]\nx = 1\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("nosuch"), "{e}");
    }

    #[test]
    fn sample_data_names_a_pack_and_says_what_it_is() {
        let c = AgentConfig::parse("[sample_data]\nzfs = \"generated sample pool\"\n").unwrap();
        assert_eq!(c.sample_data["zfs"], "generated sample pool");
        let e = AgentConfig::parse("\n[sample_data]\nnosuch = \"x\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("nosuch"), "{e}");
        let e = AgentConfig::parse("[sample_data]\nzfs = \" \"\n").unwrap_err();
        assert!(e.contains("1 to 200"), "{e}");
        let e = AgentConfig::parse("[sample_data]\nzfs = \"a\\nb\"\n").unwrap_err();
        assert!(e.contains("one line"), "{e}");
        // Without it, the canonical form (and so the attestation) is unchanged.
        let plain = AgentConfig::parse("").unwrap();
        let v = serde_json::to_value(&plain).unwrap();
        assert!(v.get("sample_data").is_none(), "{v}");
    }

    #[test]
    fn hash_ignores_layout() {
        let a = AgentConfig::parse("max_capability = \"observe\"\n# comment\n").unwrap();
        let b = AgentConfig::parse("max_capability=\"observe\"").unwrap();
        assert_eq!(a.sha256(), b.sha256());
        let c = AgentConfig::parse("max_capability = \"interact\"").unwrap();
        assert_ne!(a.sha256(), c.sha256());
    }
}
