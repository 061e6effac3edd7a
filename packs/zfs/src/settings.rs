//! The pack's settings: the `[packs.zfs]` table of the agent config.
//!
//! ```toml
//! [packs.zfs]
//! # Datasets the pack may look at, with their children and snapshots.
//! # Empty or absent: every dataset. Pools are shown when they hold an
//! # allowed dataset.
//! datasets = ["tank/home", "tank/media"]
//! # Whether file probes may read the live file system (default true).
//! # With false, only snapshots are read: a snapshot is what was there
//! # then, the live tree is what is there now.
//! live = true
//! ```
//!
//! Unknown keys are errors ([`Settings::check`]), so a typo never silently
//! widens what the pack reads.

use serde::Deserialize;
use serde_json::Value;
use sonde_packs::handler::ProbeError;

/// `[packs.zfs]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub datasets: Vec<String>,
    #[serde(default = "yes")]
    pub live: bool,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            datasets: Vec::new(),
            live: true,
        }
    }
}

fn dataset_of(name: &str) -> &str {
    name.split_once('@').map_or(name, |(d, _)| d)
}

fn is_within(dataset: &str, root: &str) -> bool {
    dataset == root
        || dataset
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Settings {
    /// The settings check the agent runs on its config (`null` is fine).
    pub fn check(value: &Value) -> Result<(), String> {
        if value.is_null() {
            return Ok(());
        }
        let s: Settings = serde_json::from_value(value.clone())
            .map_err(|e| format!("[packs.zfs]: {e} (known keys: datasets, live)"))?;
        for d in &s.datasets {
            sonde_protocol::schema::DATASET
                .validate(d)
                .map_err(|e| format!("[packs.zfs] datasets: {e}"))?;
        }
        Ok(())
    }

    /// True if `name` (a dataset or snapshot) is inside the allowlist.
    pub fn allows(&self, name: &str) -> bool {
        let dataset = dataset_of(name);
        self.datasets.is_empty() || self.datasets.iter().any(|d| is_within(dataset, d))
    }

    /// True if `name` is allowed or is an ancestor of an allowed dataset
    /// (listing below it shows only allowed datasets).
    pub fn allows_below(&self, name: &str) -> bool {
        self.allows(name) || self.datasets.iter().any(|d| is_within(d, name))
    }

    /// True if `pool` holds an allowed dataset.
    pub fn allows_pool(&self, pool: &str) -> bool {
        self.allows_below(pool)
    }

    /// Refuses names outside the allowlist, naming it.
    pub fn require(&self, name: &str) -> Result<(), ProbeError> {
        if self.allows(name) {
            Ok(())
        } else {
            Err(self.outside(name))
        }
    }

    pub fn outside(&self, name: &str) -> ProbeError {
        ProbeError::Denied(format!(
            "{name} is outside the datasets this agent may read ([packs.zfs] datasets = {:?} in the agent config); ask for one of those or have the operator widen the list",
            self.datasets
        ))
    }

    /// Refuses the live file system when `live = false`.
    pub fn require_live(&self) -> Result<(), ProbeError> {
        if self.live {
            Ok(())
        } else {
            Err(ProbeError::Denied(
                "reading the live file system is turned off on this agent ([packs.zfs] live = false); name a snapshot instead (e.g. latest)".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allowlist_covers_children_and_snapshots_only() {
        let s = Settings {
            datasets: vec!["tank/home".into()],
            live: true,
        };
        assert!(s.allows("tank/home"));
        assert!(s.allows("tank/home/alice"));
        assert!(s.allows("tank/home@daily"));
        assert!(s.allows("tank/home/alice@daily"));
        assert!(!s.allows("tank/homework"));
        assert!(!s.allows("tank/homework@x"));
        assert!(!s.allows("tank"));
        assert!(s.allows_below("tank"));
        assert!(s.allows_pool("tank"));
        assert!(!s.allows_pool("backup"));
        assert!(!s.allows_below("tank/media"));
        assert!(Settings::default().allows("anything"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::check(&Value::Null).is_ok());
        assert!(Settings::check(&json!({"datasets": ["tank/home"], "live": false})).is_ok());
        let bad = Settings::check(&json!({"datasets": ["bad name"]})).unwrap_err();
        assert!(bad.contains("datasets"), "{bad}");
        let typo = Settings::check(&json!({"dataset": ["tank"]})).unwrap_err();
        assert!(
            typo.contains("dataset") && typo.contains("known keys"),
            "{typo}"
        );
        assert!(Settings::check(&json!({"live": "yes"})).is_err());
        let s: Settings = serde_json::from_value(json!({})).unwrap();
        assert!(s.live);
    }
}
