//! Capability levels: what a probe may do to the machine it runs on.
//!
//! `observe` reads; `interact` changes runtime state in a reversible,
//! low-risk way (e.g. restart a service); `manage` changes configuration.
//! The order `observe < interact < manage` is what ceilings compare.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    #[default]
    Observe,
    Interact,
    Manage,
}

impl Capability {
    pub const ALL: [Capability; 3] = [
        Capability::Observe,
        Capability::Interact,
        Capability::Manage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Observe => "observe",
            Capability::Interact => "interact",
            Capability::Manage => "manage",
        }
    }

    /// True if something needing `self` is allowed under `ceiling`.
    pub fn within(self, ceiling: Capability) -> bool {
        self <= ceiling
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `"x" is not a capability; use observe, interact or manage`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a capability; use observe, interact or manage")]
pub struct CapabilityParseError(pub String);

impl FromStr for Capability {
    type Err = CapabilityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "observe" => Ok(Capability::Observe),
            "interact" => Ok(Capability::Interact),
            "manage" => Ok(Capability::Manage),
            other => Err(CapabilityParseError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_is_observe_interact_manage() {
        assert!(Capability::Observe < Capability::Interact);
        assert!(Capability::Interact < Capability::Manage);
        assert!(Capability::Observe.within(Capability::Observe));
        assert!(!Capability::Interact.within(Capability::Observe));
        assert!(Capability::Interact.within(Capability::Manage));
    }

    #[test]
    fn parses_and_prints() {
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        let err = "Observe".parse::<Capability>().unwrap_err();
        assert!(err.to_string().contains("use observe, interact or manage"));
    }
}
