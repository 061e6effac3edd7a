//! Integration manifests: what the hub may ask one kind of remote API.
//!
//! An integration manifest (`integrations/<name>/integration.toml`) lists
//! probes, each a fixed `GET` request template, a JSON projection of the
//! answer, bounds and a timeout, plus `diagnose` runbooks. Parameters use
//! the same schema language as agent packs (`sonde_protocol::schema`), so
//! integration probes appear in `list_capabilities` exactly like agent
//! probes.
//!
//! ```toml
//! [integration]
//! name = "prometheus"           # probe names are prometheus.<probe>
//! version = "1.0.0"
//! description = "…"
//! auth = "bearer"               # none | bearer | header | pve_token
//! auth_header = "X-API-KEY"     # with auth = "header"
//! test_probe = "buildinfo"      # what `integrations test` runs
//!
//! [[probes]]
//! name = "targets"
//! description = "…"
//! output = "…"
//! path = "/api/v1/targets"      # `{value}` segments: one whole segment each
//! query = { state = "active" }  # fixed keys; values literal or "{value}"
//! select = "/data/activeTargets"   # JSON pointer to the part kept
//! fields = ["labels/job", "health", "lastError"]  # per item (see projection.rs)
//! max_items = 500
//! max_bytes = 4194304
//! timeout_ms = 10000
//! ```
//!
//! A manifest is data only: it can name paths under the integration's base
//! URL and nothing else (no host, scheme, port, method or header).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sonde_protocol::schema::ParamSpec;
use sonde_protocol::{Capability, Digest, ProbeDescriptor, ProbeName};
use std::collections::BTreeMap;

use super::projection::Projection;
use super::template::Template;

/// Largest answer body any probe may read.
pub const MAX_BODY_LIMIT: usize = 16 << 20;
/// Default answer body bound.
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;
/// Default and largest item counts.
pub const DEFAULT_MAX_ITEMS: usize = 500;
pub const MAX_ITEMS_LIMIT: usize = 10_000;
/// Default and longest request timeouts.
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
pub const MAX_TIMEOUT_MS: u64 = 120_000;

/// How the stored credential is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// No credential.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `<auth_header>: <secret>` (e.g. UniFi's `X-API-KEY`).
    Header,
    /// `Authorization: PVEAPIToken=<USER@REALM!ID=SECRET>` (Proxmox VE).
    PveToken,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub version: String,
    pub description: String,
    #[serde(default = "default_auth")]
    pub auth: AuthKind,
    #[serde(default)]
    pub auth_header: Option<String>,
    /// The probe `integrations test` runs (no parameters).
    pub test_probe: String,
}

fn default_auth() -> AuthKind {
    AuthKind::None
}

/// One probe as written in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub output: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub select: String,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub max_items: Option<usize>,
    #[serde(default)]
    pub max_bytes: Option<usize>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    #[serde(default)]
    pub examples: Vec<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRunbook {
    pub category: String,
    pub description: String,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub probe: String,
    #[serde(default)]
    pub params: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    integration: Header,
    probes: Vec<RawProbe>,
    #[serde(default)]
    runbooks: Vec<RawRunbook>,
}

/// A checked probe.
#[derive(Debug, Clone)]
pub struct ProbeDef {
    /// Full name, `<integration kind>.<probe>`.
    pub name: String,
    pub description: String,
    pub output: String,
    pub template: Template,
    pub projection: Projection,
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout_ms: u64,
    pub params: Vec<ParamSpec>,
    pub examples: Vec<Map<String, Value>>,
}

/// A checked runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub category: String,
    pub description: String,
    pub steps: Vec<ProbeDescriptor>,
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub header: Header,
    pub probes: Vec<ProbeDef>,
    pub runbooks: Vec<Runbook>,
    /// SHA-256 of the manifest text as stored (what approval and a
    /// signature bind to).
    pub sha256: Digest,
    pub text: String,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("integration manifest does not parse: {0}")]
    Parse(String),
    #[error("integration manifest: {0}")]
    Invalid(String),
}

fn invalid(m: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(m.into())
}

/// A lowercase word: integration kinds, probe names, categories.
pub fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        let h = raw.integration;
        if !is_word(&h.name) {
            return Err(invalid(format!(
                "name {:?} must be a lowercase word (a-z, 0-9, _)",
                h.name
            )));
        }
        match (h.auth, &h.auth_header) {
            (AuthKind::Header, Some(name))
                if name.is_empty()
                    || name.len() > 64
                    || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    || ["host", "content-length", "transfer-encoding", "connection"]
                        .iter()
                        .any(|h| name.eq_ignore_ascii_case(h)) =>
            {
                return Err(invalid(format!("auth_header {name:?} is not allowed")));
            }
            (AuthKind::Header, Some(_)) => {}
            (AuthKind::Header, None) => {
                return Err(invalid("auth = \"header\" needs auth_header"));
            }
            (_, Some(_)) => return Err(invalid("auth_header is only for auth = \"header\"")),
            _ => {}
        }
        if raw.probes.is_empty() {
            return Err(invalid("an integration needs at least one probe"));
        }
        let mut probes = Vec::new();
        for p in raw.probes {
            let full = format!("{}.{}", h.name, p.name);
            let bad = |m: String| invalid(format!("probe {full}: {m}"));
            if !p.name.split('.').all(is_word) {
                return Err(bad("name must be lowercase words joined by '.'".into()));
            }
            ProbeName::parse(&full).map_err(|e| bad(e.to_string()))?;
            if probes.iter().any(|q: &ProbeDef| q.name == full) {
                return Err(bad("declared twice".into()));
            }
            let template = Template::parse(&p.path, &p.query).map_err(|e| bad(e.to_string()))?;
            let projection =
                Projection::parse(&p.select, &p.fields).map_err(|e| bad(e.to_string()))?;
            let max_items = p.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
            let max_bytes = p.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
            let timeout_ms = p.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if max_items == 0 || max_items > MAX_ITEMS_LIMIT {
                return Err(bad(format!("max_items must be 1..={MAX_ITEMS_LIMIT}")));
            }
            if max_bytes == 0 || max_bytes > MAX_BODY_LIMIT {
                return Err(bad(format!("max_bytes must be 1..={MAX_BODY_LIMIT}")));
            }
            if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
                return Err(bad(format!("timeout_ms must be 1..={MAX_TIMEOUT_MS}")));
            }
            for name in template.placeholders() {
                if !p.params.iter().any(|s| s.name == name)
                    && !super::builtin::derives(&h.name, &name)
                {
                    return Err(bad(format!(
                        "template value {{{name}}} is neither a parameter nor a value the integration derives"
                    )));
                }
            }
            probes.push(ProbeDef {
                name: full,
                description: p.description,
                output: p.output,
                template,
                projection,
                max_items,
                max_bytes,
                timeout_ms,
                params: p.params,
                examples: p.examples,
            });
        }
        if !probes
            .iter()
            .any(|p| p.name == format!("{}.{}", h.name, h.test_probe))
        {
            return Err(invalid(format!(
                "test_probe {:?} is not a probe",
                h.test_probe
            )));
        }
        let mut runbooks = Vec::new();
        for r in raw.runbooks {
            if !is_word(&r.category) {
                return Err(invalid(format!("runbook category {:?}", r.category)));
            }
            let mut steps = Vec::new();
            for s in r.steps {
                let def = probes.iter().find(|p| p.name == s.probe).ok_or_else(|| {
                    invalid(format!(
                        "runbook {}: step {:?} is not a probe of this integration",
                        r.category, s.probe
                    ))
                })?;
                sonde_protocol::schema::validate(&def.params, &s.params).map_err(|e| {
                    invalid(format!("runbook {}: step {}: {e}", r.category, s.probe))
                })?;
                steps.push(ProbeDescriptor {
                    probe: ProbeName::parse(&s.probe)
                        .map_err(|e| invalid(format!("runbook {}: {e}", r.category)))?,
                    params: s.params,
                });
            }
            runbooks.push(Runbook {
                category: r.category,
                description: r.description,
                steps,
            });
        }
        Ok(Manifest {
            header: h,
            probes,
            runbooks,
            sha256: Digest::of(text.as_bytes()),
            text: text.to_owned(),
        })
    }

    pub fn kind(&self) -> &str {
        &self.header.name
    }

    pub fn probe(&self, name: &str) -> Option<&ProbeDef> {
        self.probes.iter().find(|p| p.name == name)
    }
}

/// Integration probes are read-only HTTP `GET`s: always `observe`.
pub const CAPABILITY: Capability = Capability::Observe;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_builtin_manifest_parses() {
        for (kind, text) in super::super::builtin::MANIFESTS {
            let m = Manifest::parse(text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(m.kind(), *kind);
            assert!(!m.runbooks.is_empty(), "{kind} has a diagnose runbook");
        }
    }

    #[test]
    fn manifests_that_could_reach_elsewhere_are_refused() {
        let base = |path: &str, extra: &str| {
            format!(
                "[integration]\nname = \"x\"\nversion = \"1\"\ndescription = \"d\"\ntest_probe = \"a\"\n{extra}\n[[probes]]\nname = \"a\"\ndescription = \"d\"\npath = \"{path}\"\n"
            )
        };
        assert!(Manifest::parse(&base("/api/v1/ok", "")).is_ok());
        for path in [
            "http://evil/x",
            "//evil/x",
            "/a/../b",
            "/a/./b",
            "/a?x=1",
            "/a#f",
            "/a/{nope}",
            "/a/%2e%2e",
            "/a/b{c}",
            "relative",
            "/a//b",
        ] {
            assert!(Manifest::parse(&base(path, "")).is_err(), "{path}");
        }
        assert!(Manifest::parse(&base("/a", "auth = \"header\"\nauth_header = \"Host\"")).is_err());
        assert!(Manifest::parse(&base("/a", "method = \"POST\"")).is_err());
    }
}
