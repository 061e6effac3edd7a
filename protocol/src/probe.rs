//! Probe names and probe descriptors: the only thing an agent can be asked to run.
//!
//! A descriptor is data — a probe name from a pack and a JSON object of
//! parameters — never a command line. The agent looks the name up in its
//! executor table and validates the parameters against the probe's schema.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Longest probe name.
pub const MAX_PROBE_NAME_LEN: usize = 128;

/// A validated probe name `pack.probe`, e.g. `zfs.list_pools` or
/// `system.disk.usage`: two or more dot-separated segments of `[a-z][a-z0-9_]*`.
/// The first segment names the pack.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProbeName(String);

/// Why a text is not a probe name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid probe name {name:?}: {why}")]
pub struct ProbeNameError {
    pub name: String,
    pub why: &'static str,
}

impl ProbeName {
    pub fn parse(name: &str) -> Result<Self, ProbeNameError> {
        let err = |why| ProbeNameError {
            name: name.chars().take(MAX_PROBE_NAME_LEN).collect(),
            why,
        };
        if name.len() > MAX_PROBE_NAME_LEN {
            return Err(err("longer than 128 bytes"));
        }
        let mut segments = 0;
        for segment in name.split('.') {
            segments += 1;
            let mut bytes = segment.bytes();
            match bytes.next() {
                Some(b'a'..=b'z') => {}
                Some(_) => return Err(err("each segment must start with a lowercase letter")),
                None => return Err(err("empty segment")),
            }
            if bytes.any(|b| !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')) {
                return Err(err("segments may only hold a-z, 0-9 and _"));
            }
        }
        if segments < 2 {
            return Err(err("expected `pack.probe`"));
        }
        Ok(ProbeName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pack part (first segment).
    pub fn pack(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// The probe part within its pack (everything after the first dot).
    pub fn local(&self) -> &str {
        self.0
            .split_once('.')
            .map(|(_, rest)| rest)
            .unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for ProbeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ProbeName::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for ProbeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProbeName({})", self.0)
    }
}

impl fmt::Display for ProbeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{ "probe": "pack.probe", "params": { … } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDescriptor {
    pub probe: ProbeName,
    #[serde(default)]
    pub params: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        let n = ProbeName::parse("system.disk.usage").unwrap();
        assert_eq!(n.pack(), "system");
        assert_eq!(n.local(), "disk.usage");
        assert!(ProbeName::parse("zfs.list_pools").is_ok());
    }

    #[test]
    fn invalid_names_say_why() {
        for (name, why) in [
            ("zfs", "expected `pack.probe`"),
            ("zfs.", "empty segment"),
            (
                "Zfs.list",
                "each segment must start with a lowercase letter",
            ),
            ("zfs.list-pools", "segments may only hold a-z, 0-9 and _"),
            (
                "zfs.list pools; rm -rf /",
                "segments may only hold a-z, 0-9 and _",
            ),
        ] {
            assert_eq!(ProbeName::parse(name).unwrap_err().why, why, "{name}");
        }
        assert!(ProbeName::parse(&format!("a.{}", "b".repeat(200))).is_err());
    }

    #[test]
    fn descriptor_rejects_unknown_fields_and_bad_names() {
        let ok: ProbeDescriptor =
            serde_json::from_str(r#"{"probe":"zfs.list_pools","params":{"x":1}}"#).unwrap();
        assert_eq!(ok.params["x"], 1);
        assert!(
            serde_json::from_str::<ProbeDescriptor>(r#"{"probe":"zfs.x","cmd":"sh"}"#).is_err()
        );
        assert!(serde_json::from_str::<ProbeDescriptor>(r#"{"probe":"sh -c x"}"#).is_err());
    }
}
