//! The pack manifest (`pack.toml`): format, validation and identity.
//!
//! ```toml
//! name = "docker"                 # [a-z][a-z0-9_]*, the probe prefix
//! version = "1.0.0"
//! description = "Containers, images and logs through the Docker Engine API (read-only)"
//! approval = "operator"           # or "auto": active without an operator decision
//!
//! [requires]                      # what the agent's user needs; checked on the machine
//! groups = ["docker"]
//! sockets = ["/var/run/docker.sock"]   # must be readable and writable
//! files = []                      # must be readable
//! commands = []                   # must be on the command path
//! hints = { "docker" = "…" }      # optional: better advice for one requirement
//!
//! [detect]                        # evidence that this machine runs the software
//! commands = ["docker", "dockerd"]
//! files = ["/var/run/docker.sock"]
//! units = ["docker.service"]
//!
//! [sandbox]                      # optional: what probes may touch beyond reading
//! devices = []                    # device nodes opened read-write for ioctls (/dev/…)
//! connect_tcp = []                # TCP ports the pack's programs may connect to
//!
//! [[probes]]
//! name = "containers.list"       # full name: docker.containers.list
//! description = "…"
//! capability = "observe"          # observe | interact | manage
//! timeout_ms = 30000
//! output = "…"                    # what the result looks like, for people and models
//! [[probes.params]]               # see sonde_protocol::schema
//! name = "all"
//! type = "boolean"
//! default = false
//!
//! [[runbooks]]
//! category = "docker"             # the `diagnose` category
//! description = "…"
//! parallel = true
//! steps = [{ probe = "daemon.info" }, { probe = "containers.list", params = { all = true } }]
//! ```
//!
//! Unknown keys are errors. The manifest's identity is the SHA-256 of its
//! canonical JSON form (defaults filled in), so two texts that mean the same
//! pack have the same hash and any change of meaning changes it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sonde_protocol::messages::{ProbeSummary, RunbookSummary};
use sonde_protocol::schema::ParamSpec;
use sonde_protocol::{Capability, Digest, ProbeDescriptor, ProbeName, canonical};
use std::collections::BTreeMap;

/// Default probe timeout: 30 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Longest allowed probe timeout: 10 minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    #[serde(default)]
    pub approval: Approval,
    #[serde(default)]
    pub requires: Requirements,
    #[serde(default)]
    pub detect: Detect,
    /// Allowances beyond the probe sandbox's defaults. Left out of the
    /// canonical form when empty, so packs without one keep their hash.
    #[serde(default, skip_serializing_if = "SandboxSpec::is_empty")]
    pub sandbox: SandboxSpec,
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    #[serde(default)]
    pub runbooks: Vec<Runbook>,
}

/// Whether a pack needs the operator's approval to become active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    #[default]
    Operator,
    /// Active as soon as its requirements are met (the operator can still
    /// revoke it). Only for packs whose probes are all `observe`.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub sockets: Vec<String>,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub hints: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub units: Vec<String>,
}

/// What a pack's probes may touch beyond reading (see
/// [`crate::sandbox`]): shown to the operator with the pack's permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Device nodes the pack's programs open read-write for ioctls
    /// (`/dev/zfs`); only paths under `/dev/`.
    #[serde(default)]
    pub devices: Vec<String>,
    /// TCP ports the pack's programs may connect to.
    #[serde(default)]
    pub connect_tcp: Vec<u16>,
    /// Device nodes the pack's programs may open **read-only** and issue
    /// ioctls on (`smartctl` on `/dev/sd*`): never opened for writing. An
    /// entry is a path under `/dev/`, or a pattern whose last component
    /// holds one `*` after a literal prefix of two characters or more
    /// (`/dev/sd*`, `/dev/nvme*`), matched against the character and block
    /// devices present each time a program starts. Left out of the
    /// canonical form when empty, so manifests without it keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_devices: Vec<String>,
}

impl SandboxSpec {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.connect_tcp.is_empty() && self.read_devices.is_empty()
    }

    /// The runtime form.
    pub fn to_pack_sandbox(&self) -> crate::sandbox::PackSandbox {
        crate::sandbox::PackSandbox {
            devices: self.devices.iter().map(std::path::PathBuf::from).collect(),
            connect_tcp: self.connect_tcp.clone(),
            read_devices: self
                .read_devices
                .iter()
                .map(std::path::PathBuf::from)
                .collect(),
        }
    }

    /// What these allowances grant, in the words the operator sees next
    /// to the pack's other permissions (empty when there is none).
    pub fn grants(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .devices
            .iter()
            .map(|d| format!("read/write and ioctl access to device `{d}` (sandbox)"))
            .collect();
        out.extend(self.read_devices.iter().map(|d| {
            format!(
                "read-only and ioctl access to device `{d}` (sandbox; never opened for writing)"
            )
        }));
        out.extend(
            self.connect_tcp
                .iter()
                .map(|p| format!("TCP connections to port {p} (sandbox)")),
        );
        out
    }
}

/// Checks one `read_devices` entry: a plain path under `/dev/`, or a
/// pattern with one `*` in its last component after a literal prefix of
/// at least two characters. `Err` says what is wrong.
pub fn check_device_pattern(entry: &str) -> Result<(), String> {
    let rest = entry
        .strip_prefix("/dev/")
        .ok_or_else(|| format!("{entry:?} is not under /dev/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(format!("{entry:?} has an empty, . or .. component"));
    }
    let (last, dirs) = parts
        .split_last()
        .ok_or_else(|| format!("{entry:?} names no device"))?;
    if dirs.iter().any(|c| c.contains(['*', '?', '['])) || last.contains(['?', '[']) {
        return Err(format!(
            "{entry:?}: only `*` is a wildcard, and only in the last component"
        ));
    }
    if let Some(star) = last.find('*')
        && (last.matches('*').count() > 1 || star < 2)
    {
        return Err(format!(
            "{entry:?}: a pattern holds one `*` after a literal prefix of two characters or more (e.g. /dev/sd*)"
        ));
    }
    Ok(())
}

/// How a declarative probe's standard output becomes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// `{"text": "…"}`
    #[default]
    Text,
    /// `{"lines": ["…", …]}`
    Lines,
    /// The output parsed as JSON.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Name within the pack (may contain dots: `disk.usage`).
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub capability: Capability,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// What the result holds.
    #[serde(default)]
    pub output: String,
    /// Example parameter sets (each must validate): shown to MCP clients and
    /// people, and run by the tests.
    #[serde(default)]
    pub examples: Vec<Map<String, Value>>,
    /// Declarative packs only: the argv template. Elements that are exactly
    /// `{param}` are replaced by that parameter's value, as one element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Declarative packs only: how to read standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse: Option<OutputFormat>,
}

impl PartialEq for ProbeSpec {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// The `diagnose` category, e.g. `zfs`.
    pub category: String,
    pub description: String,
    #[serde(default = "default_true")]
    pub parallel: bool,
    pub steps: Vec<RunbookStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookStep {
    /// Probe name within this pack.
    pub probe: String,
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The TOML did not parse or did not fit the format (the message names
    /// the key and line).
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Invalid(String),
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Full probe name of a local probe name.
    pub fn full_name(&self, local: &str) -> String {
        format!("{}.{local}", self.name)
    }

    pub fn probe(&self, local: &str) -> Option<&ProbeSpec> {
        self.probes.iter().find(|p| p.name == local)
    }

    /// SHA-256 over `"sonde/pack-manifest/v1\0"` and the canonical JSON form.
    pub fn sha256(&self) -> Digest {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut input = b"sonde/pack-manifest/v1\0".to_vec();
        canonical::write(&value, &mut input);
        Digest::of(&input)
    }

    /// Highest capability of any probe.
    pub fn max_capability(&self) -> Capability {
        self.probes
            .iter()
            .map(|p| p.capability)
            .max()
            .unwrap_or_default()
    }

    /// The wire description of every probe; `registered(local_name)` says
    /// whether the agent has it in its executor table.
    pub fn probe_summaries(&self, registered: impl Fn(&str) -> bool) -> Vec<ProbeSummary> {
        self.probes
            .iter()
            .map(|p| ProbeSummary {
                name: self.full_name(&p.name),
                description: p.description.clone(),
                capability: p.capability,
                timeout_ms: p.timeout_ms,
                params: p.params.clone(),
                output: p.output.clone(),
                examples: p.examples.clone(),
                registered: registered(&p.name),
            })
            .collect()
    }

    /// The wire description of every runbook (probe names made full).
    pub fn runbook_summaries(&self) -> Vec<RunbookSummary> {
        self.runbooks
            .iter()
            .filter_map(|r| {
                let steps = r
                    .steps
                    .iter()
                    .map(|s| {
                        Some(ProbeDescriptor {
                            probe: ProbeName::parse(&self.full_name(&s.probe)).ok()?,
                            params: s.params.clone(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(RunbookSummary {
                    category: r.category.clone(),
                    description: r.description.clone(),
                    parallel: r.parallel,
                    steps,
                })
            })
            .collect()
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let bad = |m: String| Err(ManifestError::Invalid(format!("pack {:?}: {m}", self.name)));
        let mut name_bytes = self.name.bytes();
        if !matches!(name_bytes.next(), Some(b'a'..=b'z'))
            || self.name.len() > 32
            || !name_bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        {
            return bad("name must be 1..=32 chars of [a-z0-9_], starting with a letter".into());
        }
        if self.version.is_empty() || self.version.len() > 32 {
            return bad("version must be 1..=32 chars".into());
        }
        for dev in &self.sandbox.devices {
            let rest = dev.strip_prefix("/dev/").unwrap_or("");
            if rest.is_empty()
                || rest
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return bad(format!(
                    "sandbox.devices: {dev:?} is not a device path under /dev/"
                ));
            }
        }
        for dev in &self.sandbox.read_devices {
            check_device_pattern(dev).map_err(|e| {
                ManifestError::Invalid(format!("pack {:?}: sandbox.read_devices: {e}", self.name))
            })?;
        }
        if self.sandbox.connect_tcp.contains(&0) {
            return bad("sandbox.connect_tcp: port 0 is not a port".into());
        }
        if self.approval == Approval::Auto && self.max_capability() > Capability::Observe {
            return bad("approval = \"auto\" is only allowed when every probe is `observe`".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for probe in &self.probes {
            ProbeName::parse(&self.full_name(&probe.name))
                .map_err(|e| ManifestError::Invalid(format!("pack {:?}: {e}", self.name)))?;
            if !seen.insert(probe.name.as_str()) {
                return bad(format!("probe {:?} is declared twice", probe.name));
            }
            if probe.timeout_ms == 0 || probe.timeout_ms > MAX_TIMEOUT_MS {
                return bad(format!(
                    "probe {:?}: timeout_ms must be 1..={MAX_TIMEOUT_MS}",
                    probe.name
                ));
            }
            let mut params = std::collections::BTreeSet::new();
            for p in &probe.params {
                if !params.insert(p.name.as_str()) {
                    return bad(format!(
                        "probe {:?}: parameter {:?} is declared twice",
                        probe.name, p.name
                    ));
                }
            }
            for example in &probe.examples {
                sonde_protocol::schema::validate(&probe.params, example).map_err(|e| {
                    ManifestError::Invalid(format!(
                        "pack {:?}: probe {:?}: example: {e}",
                        self.name, probe.name
                    ))
                })?;
            }
        }
        for runbook in &self.runbooks {
            for step in &runbook.steps {
                let Some(probe) = self.probe(&step.probe) else {
                    return bad(format!(
                        "runbook {:?} uses unknown probe {:?}",
                        runbook.category, step.probe
                    ));
                };
                sonde_protocol::schema::validate(&probe.params, &step.params).map_err(|e| {
                    ManifestError::Invalid(format!(
                        "pack {:?}: runbook {:?} step {:?}: {e}",
                        self.name, runbook.category, step.probe
                    ))
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
name = "demo"
version = "1.0.0"
description = "A demo pack"

[requires]
groups = ["adm"]

[[probes]]
name = "disk.usage"
description = "Disk usage"
[[probes.params]]
name = "mount"
type = "string"
max_len = 64

[[runbooks]]
category = "demo"
description = "Demo checks"
steps = [{ probe = "disk.usage" }]
"#;

    #[test]
    fn parses_with_defaults() {
        let m = Manifest::parse(SAMPLE).unwrap();
        assert_eq!(m.full_name("disk.usage"), "demo.disk.usage");
        assert_eq!(m.probes[0].timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(m.probes[0].capability, Capability::Observe);
        assert_eq!(m.approval, Approval::Operator);
        assert!(m.runbooks[0].parallel);
    }

    #[test]
    fn examples_must_validate() {
        let good = SAMPLE.replace(
            "max_len = 64",
            "max_len = 64\n[[probes.examples]]\nmount = \"/\"",
        );
        assert_eq!(Manifest::parse(&good).unwrap().probes[0].examples.len(), 1);
        let bad = SAMPLE.replace(
            "max_len = 64",
            "max_len = 64\n[[probes.examples]]\nmount = 5",
        );
        let err = Manifest::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("example") && err.contains("mount"), "{err}");
    }

    #[test]
    fn hash_ignores_formatting_but_not_meaning() {
        let a = Manifest::parse(SAMPLE).unwrap();
        let reformatted = SAMPLE
            .replace("name = \"demo\"", "name=\"demo\"   # same")
            .replace("\n\n", "\n");
        assert_eq!(Manifest::parse(&reformatted).unwrap().sha256(), a.sha256());
        let changed = SAMPLE.replace("max_len = 64", "max_len = 65");
        assert_ne!(Manifest::parse(&changed).unwrap().sha256(), a.sha256());
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| Manifest::parse(text).unwrap_err().to_string();
        assert!(err(&SAMPLE.replace("[requires]", "[requires]\nsudo = true")).contains("sudo"));
        assert!(err(&SAMPLE.replace("name = \"demo\"", "name = \"Demo\"")).contains("[a-z0-9_]"));
        assert!(
            err(&SAMPLE.replace("probe = \"disk.usage\"", "probe = \"nope\""))
                .contains("unknown probe")
        );
        assert!(
            err(&SAMPLE.replace(
                "description = \"Disk usage\"",
                "description = \"x\"\ncapability = \"root\""
            ))
            .contains("capability")
        );
        let auto_interact = SAMPLE
            .replace(
                "description = \"A demo pack\"",
                "description = \"x\"\napproval = \"auto\"",
            )
            .replace(
                "description = \"Disk usage\"",
                "description = \"x\"\ncapability = \"interact\"",
            );
        assert!(err(&auto_interact).contains("auto"));
        let line = err("name = \"x\"\nversion = 1\ndescription = \"d\"");
        assert!(line.contains("line 2"), "{line}");
    }

    #[test]
    fn read_device_patterns_are_checked_and_keep_old_hashes() {
        for good in [
            "/dev/sd*",
            "/dev/nvme*",
            "/dev/sda",
            "/dev/disk/by-id/ata-X",
            "/dev/hd*x",
        ] {
            assert!(check_device_pattern(good).is_ok(), "{good}");
        }
        for bad in [
            "/dev/*",
            "/dev/s*",
            "/dev/sd**",
            "/dev/sd*a*",
            "/dev/*/sda",
            "/dev/sd?",
            "/dev/sd[a-z]",
            "/dev/../etc/shadow",
            "/dev//sda",
            "/dev/",
            "/etc/sd*",
            "sd*",
        ] {
            assert!(check_device_pattern(bad).is_err(), "{bad}");
        }
        let with = SAMPLE.replace(
            "[requires]",
            "[sandbox]\nread_devices = [\"/dev/sd*\"]\nconnect_tcp = [3493]\n[requires]",
        );
        let m = Manifest::parse(&with).unwrap();
        assert_eq!(m.sandbox.read_devices, ["/dev/sd*"]);
        assert!(
            m.sandbox
                .grants()
                .iter()
                .any(|g| g.contains("/dev/sd*") && g.contains("read-only")),
            "{:?}",
            m.sandbox.grants()
        );
        let err = Manifest::parse(&SAMPLE.replace(
            "[requires]",
            "[sandbox]\nread_devices = [\"/dev/*\"]\n[requires]",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("read_devices"), "{err}");
        // A manifest without the key hashes as before it existed.
        let plain = Manifest::parse(SAMPLE).unwrap();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(
            !json.contains("read_devices") && !json.contains("sandbox"),
            "{json}"
        );
    }
}
