//! Attestation: what an agent says it is, on enrollment and on every connect.
//!
//! The hub keeps the fingerprint recorded at enrollment as the baseline and
//! compares each new hello with it. A different fingerprint is *drift*: the
//! binary, the packs, the config or the OS changed. The hub quarantines a
//! drifted agent until the operator accepts the new baseline or revokes it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::Digest;
use crate::canonical;

/// One pack as attested: identity only (its approval state may change
/// without being drift).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedPack {
    pub name: String,
    pub version: String,
    pub manifest_sha256: Digest,
}

/// The facts an agent attests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// `PRETTY_NAME` from os-release.
    pub os_release: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    pub arch: String,
    /// SHA-256 of the running agent binary.
    pub binary_sha256: Digest,
    /// Packs loaded, sorted by name.
    pub packs: Vec<AttestedPack>,
    /// SHA-256 of the agent configuration with secrets removed.
    pub config_sha256: Digest,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// How the kernel confines probes: `landlock-v7`, `landlock-v3-partial`
    /// or `none` (older agents: empty).
    #[serde(default)]
    pub sandbox: String,
    /// The agent's settings key by key (`max_capability`,
    /// `packs.zfs`, …), so that drift can say *which* keys changed, old →
    /// new. Plain settings carry their value; pack settings, scrub rules,
    /// publisher keys, hidden paths and sample data carry `sha256:` and a
    /// digest of their value (they may be long, and pack settings are the
    /// operator's). Empty from older agents (and then not serialized, so
    /// their fingerprints are unchanged).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// One field that differs between two attestations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationChange {
    pub field: String,
    pub baseline: String,
    pub current: String,
}

impl Attestation {
    /// SHA-256 over `"sonde/attestation/v1\0"` and the canonical JSON form.
    pub fn fingerprint(&self) -> Digest {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut input = b"sonde/attestation/v1\0".to_vec();
        canonical::write(&value, &mut input);
        Digest::of(&input)
    }

    /// What changed from `baseline` to `self`, field by field (packs by name).
    pub fn changes_from(&self, baseline: &Attestation) -> Vec<AttestationChange> {
        let mut out = Vec::new();
        let mut field = |name: &str, old: &str, new: &str| {
            if old != new {
                out.push(AttestationChange {
                    field: name.into(),
                    baseline: old.into(),
                    current: new.into(),
                });
            }
        };
        field("os_release", &baseline.os_release, &self.os_release);
        field("kernel", &baseline.kernel, &self.kernel);
        field("arch", &baseline.arch, &self.arch);
        field(
            "binary_sha256",
            &baseline.binary_sha256.to_hex(),
            &self.binary_sha256.to_hex(),
        );
        field(
            "config_sha256",
            &baseline.config_sha256.to_hex(),
            &self.config_sha256.to_hex(),
        );
        field("machine_id", &baseline.machine_id, &self.machine_id);
        field("sandbox", &baseline.sandbox, &self.sandbox);
        // Key by key, when both sides report their settings (an older
        // agent's baseline has none: the digest above still tells).
        if !baseline.config.is_empty() && !self.config.is_empty() {
            let keys: std::collections::BTreeSet<&String> =
                baseline.config.keys().chain(self.config.keys()).collect();
            for key in keys {
                let old = baseline.config.get(key).map_or("(absent)", |v| v.as_str());
                let new = self.config.get(key).map_or("(absent)", |v| v.as_str());
                field(&format!("config:{key}"), old, new);
            }
        }
        let describe = |p: Option<&AttestedPack>| match p {
            Some(p) => format!("{} {}", p.version, p.manifest_sha256.short()),
            None => "(absent)".to_owned(),
        };
        let mut names: Vec<&str> = baseline
            .packs
            .iter()
            .chain(self.packs.iter())
            .map(|p| p.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let old = baseline.packs.iter().find(|p| p.name == name);
            let new = self.packs.iter().find(|p| p.name == name);
            if old != new {
                field(&format!("pack:{name}"), &describe(old), &describe(new));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Attestation {
        Attestation {
            os_release: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0".into(),
            arch: "x86_64".into(),
            binary_sha256: Digest::of(b"bin"),
            packs: vec![AttestedPack {
                name: "zfs".into(),
                version: "1.0.0".into(),
                manifest_sha256: Digest::of(b"m"),
            }],
            config_sha256: Digest::of(b"cfg"),
            machine_id: "abc".into(),
            sandbox: "landlock-v7".into(),
            config: BTreeMap::new(),
        }
    }

    #[test]
    fn config_changes_are_listed_key_by_key_old_to_new() {
        let mut base = sample();
        base.config = BTreeMap::from([
            ("max_capability".to_owned(), "\"observe\"".to_owned()),
            ("packs.zfs".to_owned(), "sha256:aa".to_owned()),
        ]);
        let mut now = base.clone();
        now.config
            .insert("max_capability".into(), "\"operate\"".into());
        now.config.remove("packs.zfs");
        now.config.insert("hide_paths".into(), "sha256:bb".into());
        assert_ne!(base.fingerprint(), now.fingerprint());
        let changes = now.changes_from(&base);
        let find = |f: &str| changes.iter().find(|c| c.field == f).cloned();
        let cap = find("config:max_capability").expect("max_capability listed");
        assert_eq!(
            (cap.baseline.as_str(), cap.current.as_str()),
            ("\"observe\"", "\"operate\"")
        );
        assert_eq!(
            find("config:packs.zfs").map(|c| c.current),
            Some("(absent)".into())
        );
        assert_eq!(
            find("config:hide_paths").map(|c| c.baseline),
            Some("(absent)".into())
        );
        assert_eq!(changes.len(), 3, "{changes:?}");
        // A baseline from an agent that did not report its settings: no
        // key-by-key noise, and an empty map keeps the old fingerprint.
        let old = sample();
        assert!(
            now.changes_from(&old)
                .iter()
                .all(|c| !c.field.starts_with("config:"))
        );
        let json = serde_json::to_string(&old).expect("json");
        assert!(!json.contains("\"config\""), "{json}");
    }

    #[test]
    fn fingerprint_changes_with_any_field_and_changes_are_listed() {
        let base = sample();
        assert_eq!(base.fingerprint(), sample().fingerprint());
        let mut changed = sample();
        changed.packs[0].manifest_sha256 = Digest::of(b"m2");
        changed.kernel = "6.2.0".into();
        assert_ne!(changed.fingerprint(), base.fingerprint());
        let changes = changed.changes_from(&base);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["kernel", "pack:zfs"]);
        let mut added = sample();
        added.packs.push(AttestedPack {
            name: "docker".into(),
            version: "1".into(),
            manifest_sha256: Digest::of(b"d"),
        });
        assert_eq!(added.changes_from(&base)[0].baseline, "(absent)");
    }
}
