//! The interface between the agent's executor and the code of a probe.
//!
//! A handler is synchronous: the executor runs it on a blocking thread with a
//! deadline. Handlers that walk file systems check [`ProbeContext::time_left`]
//! and return partial results with `truncated: true` rather than overrun.

use serde::Serialize;
use serde_json::Value;
use sonde_protocol::messages::ProbeErrorCode;
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exec::CommandRunner;
use crate::manifest::{Manifest, ManifestError, Requirements, SandboxSpec};
use crate::secrets::SecretGuard;

/// Everything a probe may use while it runs.
pub struct ProbeContext<'a> {
    /// The probe must be done by then; commands are killed at it.
    pub deadline: Instant,
    /// The only way to run an external program.
    pub runner: &'a dyn CommandRunner,
    /// This pack's settings from the agent config (`[packs.<name>]`), or `null`.
    pub settings: &'a Value,
    /// The scrubber for parameters that filter, search or compare content,
    /// and the check that refuses the agent's own files.
    pub secrets: &'a SecretGuard,
}

impl fmt::Debug for ProbeContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeContext")
            .field("time_left", &self.time_left())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ProbeContext<'_> {
    /// Time until the deadline (zero once it has passed).
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// This pack's settings as a typed struct (`Default` when absent).
    pub fn settings_as<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, ProbeError> {
        if self.settings.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(self.settings.clone()).map_err(|e| {
            ProbeError::Failed(format!("invalid pack settings in the agent config: {e}"))
        })
    }
}

/// A probe's structured result.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutput {
    pub data: Value,
    /// A bound was hit: the result is partial.
    pub truncated: bool,
}

impl ProbeOutput {
    pub fn new(data: Value) -> Self {
        ProbeOutput {
            data,
            truncated: false,
        }
    }

    /// Serializes a typed result.
    pub fn from_serialize<T: Serialize>(value: &T, truncated: bool) -> Result<Self, ProbeError> {
        let data = serde_json::to_value(value)
            .map_err(|e| ProbeError::Failed(format!("result encoding: {e}")))?;
        Ok(ProbeOutput { data, truncated })
    }
}

/// Why a probe produced no result. Messages are shown to the caller: they
/// name what failed and, where there is one, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Parameters passed the schema but make no sense here (unknown
    /// snapshot, unparsable time expression, …).
    #[error("{0}")]
    InvalidInput(String),
    /// Refused by a rule (path escapes its root, dataset not allowed, …).
    #[error("{0}")]
    Denied(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The machine lacks a feature the probe needs.
    #[error("{0}")]
    Unsupported(String),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

impl ProbeError {
    /// The wire code for this error.
    pub fn code(&self) -> ProbeErrorCode {
        match self {
            ProbeError::InvalidInput(_) => ProbeErrorCode::InvalidParams,
            ProbeError::Denied(_) => ProbeErrorCode::Refused,
            ProbeError::Timeout => ProbeErrorCode::Timeout,
            ProbeError::NotFound(_) | ProbeError::Unsupported(_) | ProbeError::Failed(_) => {
                ProbeErrorCode::Failed
            }
        }
    }
}

/// The code of one probe.
pub trait ProbeHandler: Send + Sync {
    fn run(
        &self,
        ctx: &ProbeContext<'_>,
        params: &ValidatedParams,
    ) -> Result<ProbeOutput, ProbeError>;
}

impl<F> ProbeHandler for F
where
    F: Fn(&ProbeContext<'_>, &ValidatedParams) -> Result<ProbeOutput, ProbeError> + Send + Sync,
{
    fn run(
        &self,
        ctx: &ProbeContext<'_>,
        params: &ValidatedParams,
    ) -> Result<ProbeOutput, ProbeError> {
        self(ctx, params)
    }
}

/// Checks a pack's settings table from the agent config.
pub type SettingsCheck = fn(&Value) -> Result<(), String>;

/// Adjusts a pack's declared requirements to its settings (e.g. the
/// docker pack needs the socket its settings name, not the default one).
/// Only ever called with settings that passed the pack's [`SettingsCheck`].
pub type RequirementsHook = fn(&Requirements, &Value) -> Requirements;

/// Adjusts a pack's declared sandbox allowances to its settings (e.g. the
/// ups pack connects to the `upsd` port its settings name, not only the
/// default 3493). Only ever called with settings that passed the pack's
/// [`SettingsCheck`]; the result is what the operator is shown and what
/// the kernel enforces.
pub type SandboxHook = fn(&SandboxSpec, &Value) -> SandboxSpec;

/// A pack ready to load: its manifest and a handler for every probe.
#[derive(Clone)]
pub struct PackDef {
    pub manifest: Manifest,
    /// Compiled into the agent (trusted with the binary) rather than loaded
    /// from a packs directory.
    pub builtin: bool,
    pub handlers: BTreeMap<String, Arc<dyn ProbeHandler>>,
    pub settings_check: Option<SettingsCheck>,
    pub requirements_hook: Option<RequirementsHook>,
    pub sandbox_hook: Option<SandboxHook>,
}

impl fmt::Debug for PackDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackDef")
            .field("name", &self.manifest.name)
            .field("builtin", &self.builtin)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PackDef {
    /// A built-in pack from its embedded manifest and handlers. Fails if a
    /// probe has no handler or a handler has no probe.
    pub fn builtin(
        manifest_toml: &str,
        handlers: Vec<(&str, Arc<dyn ProbeHandler>)>,
        settings_check: Option<SettingsCheck>,
    ) -> Result<Self, ManifestError> {
        let manifest = Manifest::parse(manifest_toml)?;
        let handlers: BTreeMap<String, Arc<dyn ProbeHandler>> = handlers
            .into_iter()
            .map(|(name, h)| (name.to_owned(), h))
            .collect();
        for probe in &manifest.probes {
            if !handlers.contains_key(&probe.name) {
                return Err(ManifestError::Invalid(format!(
                    "pack {}: probe {} has no handler",
                    manifest.name, probe.name
                )));
            }
        }
        if let Some(extra) = handlers
            .keys()
            .find(|h| !manifest.probes.iter().any(|p| &p.name == *h))
        {
            return Err(ManifestError::Invalid(format!(
                "pack {}: handler {extra} has no probe in the manifest",
                manifest.name
            )));
        }
        Ok(PackDef {
            manifest,
            builtin: true,
            handlers,
            settings_check,
            requirements_hook: None,
            sandbox_hook: None,
        })
    }

    /// Sets the hook that adapts the manifest's requirements to settings.
    pub fn with_requirements_hook(mut self, hook: RequirementsHook) -> Self {
        self.requirements_hook = Some(hook);
        self
    }

    /// Sets the hook that adapts the manifest's sandbox allowances to settings.
    pub fn with_sandbox_hook(mut self, hook: SandboxHook) -> Self {
        self.sandbox_hook = Some(hook);
        self
    }

    /// The sandbox allowances of this pack's programs with these settings.
    pub fn sandbox(&self, settings: &Value) -> SandboxSpec {
        match self.sandbox_hook {
            Some(hook) => hook(&self.manifest.sandbox, settings),
            None => self.manifest.sandbox.clone(),
        }
    }

    /// The requirements to check on this machine with these settings.
    pub fn requirements(&self, settings: &Value) -> Requirements {
        match self.requirements_hook {
            Some(hook) => hook(&self.manifest.requires, settings),
            None => self.manifest.requires.clone(),
        }
    }
}
