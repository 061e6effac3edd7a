//! The packs this agent knows, and the state of each on this machine.
//!
//! A pack is **active** only if it is trusted (built in; or signed by a
//! publisher key from the config; or approved by the hub, whose grant signs
//! the exact manifest hash; or `allow_unsigned_packs`), its requirements
//! are met for the agent's user, and it is approved (a hub grant for this
//! exact manifest hash, or `approval = "auto"`). A revocation wins over
//! everything. A changed manifest is a new hash: old grants no longer apply.

use ed25519_dalek::VerifyingKey;
use sonde_packs::PackDef;
use sonde_packs::declarative;
use sonde_packs::exec::CommandRunner;
use sonde_packs::manifest::{Approval, ManifestError};
use sonde_packs::requirements::{self, Identity};
use sonde_packs::signing::SignatureError;
use sonde_protocol::Capability;
use sonde_protocol::Digest;
use sonde_protocol::attestation::AttestedPack;
use sonde_protocol::messages::{GrantDecision, PackGrant, PackReport, PackState};

use crate::config::AgentConfig;

/// Every built-in pack: system, systemd, docker and zfs.
pub fn builtin_defs() -> Result<Vec<PackDef>, ManifestError> {
    let mut defs = sonde_packs::builtin::packs()?;
    defs.push(sonde_pack_zfs::pack()?);
    Ok(defs)
}

/// The README's table of packs and probes, generated from the manifests.
pub fn markdown_table() -> Result<String, ManifestError> {
    let mut out = String::new();
    for def in builtin_defs()? {
        let m = &def.manifest;
        let approval = match m.approval {
            Approval::Auto => "Active once its requirements are met",
            Approval::Operator => "Needs the operator's approval",
        };
        out.push_str(&format!(
            "### `{}` {} — {}

{}.",
            m.name, m.version, m.description, approval
        ));
        let mut needs: Vec<String> = Vec::new();
        needs.extend(m.requires.groups.iter().map(|g| format!("group `{g}`")));
        needs.extend(m.requires.commands.iter().map(|c| format!("command `{c}`")));
        needs.extend(
            m.requires
                .files
                .iter()
                .chain(&m.requires.sockets)
                .map(|f| format!("`{f}`")),
        );
        if !needs.is_empty() {
            out.push_str(&format!(" Needs: {}.", needs.join(", ")));
        }
        out.push_str(
            "

| probe | capability | what it answers |
|---|---|---|
",
        );
        for p in &m.probes {
            let description = p.description.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| `{}` | {} | {} |
",
                m.full_name(&p.name),
                p.capability,
                description
            ));
        }
        if !m.runbooks.is_empty() {
            let cats: Vec<String> = m
                .runbooks
                .iter()
                .map(|r| format!("`{}`", r.category))
                .collect();
            out.push_str(&format!(
                "
Diagnose categories: {}.
",
                cats.join(", ")
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

/// One pack and its state here.
#[derive(Debug, Clone)]
pub struct LoadedPack {
    /// `None` when the pack's files could not even be loaded.
    pub def: Option<PackDef>,
    pub name: String,
    pub version: String,
    pub description: String,
    pub manifest_sha256: Digest,
    pub state: PackState,
    pub missing: Vec<String>,
    pub requires: Vec<String>,
    pub detected: bool,
    /// What this pack serves instead of the machine's data, when the
    /// config's `sample_data` names it.
    pub sample_data: Option<String>,
}

impl LoadedPack {
    pub fn report(&self, ceiling: Capability) -> PackReport {
        let registered = |probe_capability: Capability| {
            self.state == PackState::Active && probe_capability <= ceiling
        };
        let (probes, runbooks, capability) = match &self.def {
            Some(def) => (
                def.manifest.probe_summaries(|local| {
                    def.manifest
                        .probe(local)
                        .is_some_and(|p| registered(p.capability))
                }),
                def.manifest.runbook_summaries(),
                def.manifest.max_capability(),
            ),
            None => (Vec::new(), Vec::new(), Capability::Observe),
        };
        PackReport {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            manifest_sha256: self.manifest_sha256,
            state: self.state,
            missing: self.missing.clone(),
            requires: self.requires.clone(),
            detected: self.detected,
            capability,
            probes,
            runbooks,
            sample_data: self.sample_data.clone(),
        }
    }
}

/// Inputs that decide pack states.
pub struct PackInputs<'a> {
    pub config: &'a AgentConfig,
    /// Grants already verified against the hub key and this agent's id.
    pub grants: &'a [PackGrant],
    pub runner: &'a dyn CommandRunner,
    pub identity: &'a Identity,
}

impl std::fmt::Debug for PackInputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackInputs")
            .field("grants", &self.grants.len())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// How far a pack's manifest is trusted before any grant.
#[derive(Debug, Clone, PartialEq)]
enum Trust {
    Trusted,
    NeedsHubApproval(String),
    Refused(String),
}

/// Loads built-in and third-party packs and decides each one's state.
pub fn load(inputs: &PackInputs<'_>) -> Vec<LoadedPack> {
    let mut out = Vec::new();
    let builtins = match builtin_defs() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "built-in pack manifests are invalid");
            Vec::new()
        }
    };
    let builtin_names: Vec<String> = builtins.iter().map(|d| d.manifest.name.clone()).collect();
    for def in builtins {
        out.push(decide(def, Trust::Trusted, inputs));
    }
    let publishers: Vec<VerifyingKey> = inputs
        .config
        .publisher_keys
        .iter()
        .filter_map(|k| sonde_protocol::keys::decode_public_key(&k.0).ok())
        .collect();
    for file in declarative::load_dir(&inputs.config.packs_dir) {
        let dir_name = file
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match file.result {
            Err(e) => out.push(broken(&dir_name, e)),
            Ok((def, _)) if builtin_names.contains(&def.manifest.name) => out.push(broken(
                &def.manifest.name.clone(),
                format!(
                    "{}: the name {:?} belongs to a built-in pack",
                    file.dir.display(),
                    def.manifest.name
                ),
            )),
            Ok((def, signature)) => {
                let hash = def.manifest.sha256();
                let trust = match signature.map(|s| s.verify(&hash, &publishers)) {
                    Some(Ok(())) => Trust::Trusted,
                    Some(Err(SignatureError::BadSignature)) => {
                        Trust::Refused("pack.sig does not match pack.toml: the pack was modified after it was signed".into())
                    }
                    Some(Err(SignatureError::Format(e))) => Trust::Refused(format!("pack.sig is invalid: {e}")),
                    Some(Err(e @ SignatureError::UntrustedKey { .. })) if !inputs.config.allow_unsigned_packs => Trust::NeedsHubApproval(e.to_string()),
                    None if !inputs.config.allow_unsigned_packs => Trust::NeedsHubApproval(
                        "unsigned: approve it on the hub (which signs this exact manifest) or sign it with a key in publisher_keys".into(),
                    ),
                    _ => Trust::Trusted,
                };
                out.push(decide(def, trust, inputs));
            }
        }
    }
    out
}

fn broken(name: &str, error: String) -> LoadedPack {
    LoadedPack {
        def: None,
        name: name.to_owned(),
        version: "?".into(),
        description: "could not be loaded".into(),
        manifest_sha256: Digest::of(error.as_bytes()),
        state: PackState::Refused,
        missing: vec![error],
        requires: Vec::new(),
        detected: false,
        sample_data: None,
    }
}

fn decide(def: PackDef, trust: Trust, inputs: &PackInputs<'_>) -> LoadedPack {
    let m = &def.manifest;
    let hash = m.sha256();
    let settings = inputs.config.pack_settings(&m.name);
    let requires = def.requirements(&settings);
    let check = requirements::check(&requires, inputs.identity, inputs.runner);
    // What the kernel sandbox lets its programs do beyond reading is part
    // of what the operator grants, so it is listed with the rest.
    let mut grants = check.grants.clone();
    grants.extend(def.sandbox(&settings).grants());
    let detected = requirements::detect(&m.detect, inputs.runner);
    let grant = inputs
        .grants
        .iter()
        .rev()
        .find(|g| g.pack == m.name && g.manifest_sha256 == hash)
        .map(|g| g.decision);
    let mut missing = check.missing.clone();
    let state = match (&trust, grant) {
        (Trust::Refused(why), _) => {
            missing.insert(0, why.clone());
            PackState::Refused
        }
        (_, Some(GrantDecision::Revoked)) => PackState::Revoked,
        _ if !check.satisfied() => PackState::Unavailable,
        (_, Some(GrantDecision::Approved)) => PackState::Active,
        (Trust::Trusted, None) if m.approval == Approval::Auto => PackState::Active,
        (Trust::NeedsHubApproval(why), None) => {
            missing.insert(0, why.clone());
            PackState::Pending
        }
        _ => PackState::Pending,
    };
    LoadedPack {
        name: m.name.clone(),
        version: m.version.clone(),
        description: m.description.clone(),
        manifest_sha256: hash,
        state,
        missing,
        requires: grants,
        detected,
        sample_data: inputs.config.sample_data.get(&m.name).cloned(),
        def: Some(def),
    }
}

/// The identity part of each pack, for the attestation.
pub fn attested(packs: &[LoadedPack]) -> Vec<AttestedPack> {
    packs
        .iter()
        .map(|p| AttestedPack {
            name: p.name.clone(),
            version: p.version.clone(),
            manifest_sha256: p.manifest_sha256,
        })
        .collect()
}

/// Keeps the grants that verify with the hub key and name this agent.
pub fn verified_grants(
    grants: Vec<PackGrant>,
    hub_key: &VerifyingKey,
    agent_id: &str,
) -> (Vec<PackGrant>, usize) {
    let total = grants.len();
    let good: Vec<PackGrant> = grants
        .into_iter()
        .filter(|g| g.agent_id == agent_id && g.verify(hub_key))
        .collect();
    let bad = total - good.len();
    (good, bad)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sonde_packs::exec::SystemRunner;

    #[test]
    fn a_pack_named_in_sample_data_reports_what_its_data_is() {
        let config = AgentConfig::parse(
            "packs_dir = \"/nonexistent\"\n[sample_data]\nzfs = \"generated sample pool\"\n",
        )
        .unwrap();
        let runner = SystemRunner::new(&config.command_path);
        let identity = Identity::current();
        let packs = load(&PackInputs {
            config: &config,
            grants: &[],
            runner: &runner,
            identity: &identity,
        });
        let reports: Vec<PackReport> = packs
            .iter()
            .map(|p| p.report(Capability::Observe))
            .collect();
        let zfs = reports.iter().find(|r| r.name == "zfs").unwrap();
        assert_eq!(zfs.sample_data.as_deref(), Some("generated sample pool"));
        assert!(
            reports
                .iter()
                .filter(|r| r.name != "zfs")
                .all(|r| r.sample_data.is_none())
        );
        // On the wire only where set: other reports keep their byte form.
        let system = reports.iter().find(|r| r.name == "system").unwrap();
        assert!(
            !serde_json::to_string(system)
                .unwrap()
                .contains("sample_data")
        );
    }
}
