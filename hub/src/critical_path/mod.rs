//! Critical paths: named, ordered steps of checks an operator defines
//! ("internet → router → nginx → nextcloud → its database"), run on demand
//! by the MCP tool `check_critical_path`, the CLI (`sonde-hub paths run`)
//! or the console.
//!
//! - A **check** is one probe on one target with expectations over its
//!   JSON result ([`expect`]); it passes when the probe answers and every
//!   expectation holds.
//! - A **step** is a set of checks run in parallel; it passes when all do.
//! - Steps run in order; the first step that does not pass is where the
//!   path **breaks** (`breaks_at`). By default later steps are skipped
//!   (`on_failure = "stop"`); `"continue"` runs them all.
//!
//! Definitions are validated completely when they are stored (names,
//! probe names, parameter shapes, every expectation), with the place of
//! each error (`steps[2].checks[0].expect[1]: …`). What can only be known
//! when the path runs (the agent exists, has the probe, accepts the
//! parameters) is reported as warnings at definition time and as the
//! check's error at run time.
//!
//! Every check goes through [`run::probe_target`] — the caller's key
//! policy, then [`crate::probe::run`] — so it is policy-checked and audited
//! exactly like the `probe` tool; a run is audited as `path.ran`.

pub mod command;
pub mod expect;
pub mod run;

use serde_json::{Map, Value};
use sonde_admin::api::{
    ExpectationDef, OnFailure, PathCheck, PathDefinition, PathInfo, PathRunSummary, PathStep,
};
use sonde_protocol::{ProbeDescriptor, ProbeName};
use std::time::Duration;

use crate::error::HubError;
use crate::hub::Hub;
use crate::store::paths::StoredPath;
pub use expect::{ExpectError, Expectation};
pub use run::{Caller, list, run};

/// Most steps in a path.
pub const MAX_STEPS: usize = 32;
/// Most checks in one step.
pub const MAX_CHECKS_PER_STEP: usize = 32;
/// Most checks in a path.
pub const MAX_CHECKS: usize = 128;
/// Most expectations on one check.
pub const MAX_EXPECTATIONS: usize = 32;
/// Longest parameter object (bytes of JSON).
const MAX_PARAMS: usize = 64 * 1024;

/// A definition that cannot be stored: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct DefinitionError {
    /// `name`, `steps[1].checks[0].probe`, …
    pub at: String,
    pub problem: String,
}

fn err(at: impl Into<String>, problem: impl Into<String>) -> DefinitionError {
    DefinitionError {
        at: at.into(),
        problem: problem.into(),
    }
}

/// A validated path.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    pub name: String,
    pub description: String,
    pub on_failure: OnFailure,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub target: String,
    pub descriptor: ProbeDescriptor,
    pub expect: Vec<Expectation>,
    pub timeout: Option<Duration>,
}

/// A path name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), DefinitionError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(err(
            "name",
            format!(
                "{name:?} is not a path name (1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)"
            ),
        ))
    }
}

/// Free text of at most `max` characters without control characters.
fn text(at: &str, value: &str, max: usize, required: bool) -> Result<(), DefinitionError> {
    if required && value.trim().is_empty() {
        return Err(err(at, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(err(at, format!("longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(err(at, "holds control characters"));
    }
    Ok(())
}

impl CriticalPath {
    /// Checks a definition completely.
    pub fn validate(def: &PathDefinition) -> Result<CriticalPath, DefinitionError> {
        validate_name(&def.name)?;
        text("description", &def.description, 1024, false)?;
        if def.steps.is_empty() {
            return Err(err("steps", "a path needs at least one step"));
        }
        if def.steps.len() > MAX_STEPS {
            return Err(err("steps", format!("more than {MAX_STEPS} steps")));
        }
        let total: usize = def.steps.iter().map(|s| s.checks.len()).sum();
        if total > MAX_CHECKS {
            return Err(err(
                "steps",
                format!("{total} checks in all, more than {MAX_CHECKS}"),
            ));
        }
        let mut steps = Vec::with_capacity(def.steps.len());
        for (i, s) in def.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            text(&format!("{at}.name"), &s.name, 64, true)?;
            if s.checks.is_empty() {
                return Err(err(
                    format!("{at}.checks"),
                    "a step needs at least one check",
                ));
            }
            if s.checks.len() > MAX_CHECKS_PER_STEP {
                return Err(err(
                    format!("{at}.checks"),
                    format!("more than {MAX_CHECKS_PER_STEP} checks in one step"),
                ));
            }
            let mut checks = Vec::with_capacity(s.checks.len());
            for (j, c) in s.checks.iter().enumerate() {
                checks.push(Check::validate(&format!("{at}.checks[{j}]"), c)?);
            }
            steps.push(Step {
                name: s.name.clone(),
                checks,
            });
        }
        Ok(CriticalPath {
            name: def.name.clone(),
            description: def.description.clone(),
            on_failure: def.on_failure,
            steps,
        })
    }

    /// The definition in canonical form (expectations as canonical text):
    /// what is stored and shown.
    pub fn to_definition(&self) -> PathDefinition {
        PathDefinition {
            name: self.name.clone(),
            description: self.description.clone(),
            on_failure: self.on_failure,
            steps: self
                .steps
                .iter()
                .map(|s| PathStep {
                    name: s.name.clone(),
                    checks: s
                        .checks
                        .iter()
                        .map(|c| PathCheck {
                            target: c.target.clone(),
                            probe: c.descriptor.probe.as_str().to_owned(),
                            params: c.descriptor.params.clone(),
                            expect: c
                                .expect
                                .iter()
                                .map(|e| ExpectationDef::Text(e.render()))
                                .collect(),
                            timeout_s: c.timeout.map(|t| t.as_secs()),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn check_count(&self) -> usize {
        self.steps.iter().map(|s| s.checks.len()).sum()
    }
}

impl Check {
    fn validate(at: &str, c: &PathCheck) -> Result<Check, DefinitionError> {
        text(&format!("{at}.target"), &c.target, 253, true)?;
        let probe =
            ProbeName::parse(&c.probe).map_err(|e| err(format!("{at}.probe"), e.to_string()))?;
        let size = serde_json::to_string(&c.params).map_or(usize::MAX, |s| s.len());
        if size > MAX_PARAMS {
            return Err(err(
                format!("{at}.params"),
                format!("more than {MAX_PARAMS} bytes of JSON"),
            ));
        }
        if c.expect.len() > MAX_EXPECTATIONS {
            return Err(err(
                format!("{at}.expect"),
                format!("more than {MAX_EXPECTATIONS} expectations"),
            ));
        }
        let expect = c
            .expect
            .iter()
            .enumerate()
            .map(|(k, e)| {
                Expectation::from_def(e)
                    .map_err(|x| err(format!("{at}.expect[{k}]"), x.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = match c.timeout_s {
            None => None,
            Some(s @ 1..=600) => Some(Duration::from_secs(s)),
            Some(s) => {
                return Err(err(
                    format!("{at}.timeout_s"),
                    format!("{s} is not from 1 to 600 seconds"),
                ));
            }
        };
        Ok(Check {
            target: c.target.clone(),
            descriptor: ProbeDescriptor {
                probe,
                params: c.params.clone(),
            },
            expect,
            timeout,
        })
    }
}

/// What will fail when the path runs, as far as the hub knows now: the
/// target is unknown, the probe is not registered there, or its schema
/// refuses the parameters.
pub fn warnings(hub: &Hub, path: &CriticalPath) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in path.steps.iter().enumerate() {
        for (j, c) in s.checks.iter().enumerate() {
            let at = format!("steps[{i}].checks[{j}]");
            let Some(agent) = hub.fleet.find(&c.target).map(|l| l.agent()) else {
                out.push(format!(
                    "{at}: no agent named {:?} is enrolled (yet)",
                    c.target
                ));
                continue;
            };
            let probe = c.descriptor.probe.as_str();
            match agent.catalog.probe(probe) {
                None => out.push(format!(
                    "{at}: agent {} has no probe {probe:?} registered (pack not installed, not active, or above its ceiling)",
                    agent.name
                )),
                Some(summary) => {
                    if let Err(e) =
                        sonde_protocol::schema::validate(&summary.params, &c.descriptor.params)
                    {
                        out.push(format!("{at}.params: {e}"));
                    }
                }
            }
        }
    }
    out
}

/// Validates and stores a definition (create or replace).
pub async fn define(
    hub: &Hub,
    def: &PathDefinition,
    by: &str,
) -> Result<sonde_admin::api::PathDefined, HubError> {
    let path = CriticalPath::validate(def).map_err(|e| HubError::BadRequest(e.to_string()))?;
    let canonical = serde_json::to_value(path.to_definition())
        .map_err(|e| HubError::Internal(format!("encoding a path: {e}")))?;
    let warnings = warnings(hub, &path);
    let (stored, replaced) = hub
        .store
        .define_path(path.name.clone(), canonical, by)
        .await?;
    Ok(sonde_admin::api::PathDefined {
        info: info(&stored)?,
        replaced,
        warnings,
    })
}

/// Removes a path.
pub async fn remove(hub: &Hub, name: &str, by: &str) -> Result<PathInfo, HubError> {
    let old = hub.store.remove_path(name, by).await?;
    info(&old)
}

/// One stored path for the admin API.
pub fn info(p: &StoredPath) -> Result<PathInfo, HubError> {
    let definition: PathDefinition = serde_json::from_value(p.definition.clone()).map_err(|e| {
        HubError::Internal(format!(
            "stored critical path {:?} does not decode: {e}",
            p.name
        ))
    })?;
    let last_run = match &p.last_run {
        None => None,
        Some(v) => Some(
            serde_json::from_value::<PathRunSummary>(v.clone()).map_err(|e| {
                HubError::Internal(format!(
                    "stored last run of critical path {:?} does not decode: {e}",
                    p.name
                ))
            })?,
        ),
    };
    Ok(PathInfo {
        definition,
        created_at_ms: p.created_at_ms,
        updated_at_ms: p.updated_at_ms,
        defined_by: p.defined_by.clone(),
        last_run,
    })
}

pub async fn infos(hub: &Hub) -> Result<Vec<PathInfo>, HubError> {
    hub.store.critical_paths().await?.iter().map(info).collect()
}

pub async fn get(hub: &Hub, name: &str) -> Result<PathInfo, HubError> {
    match hub.store.critical_path(name).await? {
        Some(p) => info(&p),
        None => Err(HubError::NotFound(format!(
            "no critical path {name:?}; see `sonde-hub paths list`"
        ))),
    }
}

/// Parameters as a JSON object (for reports).
fn params_value(params: &Map<String, Value>) -> Value {
    Value::Object(params.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> PathDefinition {
        serde_json::from_value(v).unwrap()
    }

    fn good() -> Value {
        json!({
            "name": "nextcloud",
            "description": "from the internet to Nextcloud",
            "steps": [
                {"name": "router", "checks": [{"target": "gw", "probe": "system.uptime", "expect": ["/uptime_s > 60"]}]},
                {"name": "web", "checks": [
                    {"target": "web1", "probe": "systemd.unit_status", "params": {"unit": "nginx.service"}, "expect": [{"at": "/active", "op": "==", "value": true}], "timeout_s": 10},
                    {"target": "web1", "probe": "system.disk_usage"}
                ]}
            ]
        })
    }

    #[test]
    fn a_good_definition_validates_and_its_canonical_form_is_stable() {
        let p = CriticalPath::validate(&def(good())).unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.check_count(), 3);
        assert_eq!(p.on_failure, OnFailure::Stop);
        let canonical = p.to_definition();
        assert_eq!(
            canonical.steps[1].checks[0].expect,
            [ExpectationDef::Text("/active == true".into())]
        );
        let again = CriticalPath::validate(&canonical).unwrap();
        assert_eq!(again, p);
        assert_eq!(again.to_definition(), canonical);
    }

    #[test]
    fn each_kind_of_bad_definition_names_its_place() {
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|v| v["name"] = json!("Bad Name")), "name:"),
            (Box::new(|v| v["name"] = json!("")), "name:"),
            (Box::new(|v| v["steps"] = json!([])), "steps: a path needs"),
            (
                Box::new(|v| v["steps"][0]["checks"] = json!([])),
                "steps[0].checks: a step needs",
            ),
            (
                Box::new(|v| v["steps"][1]["name"] = json!(" ")),
                "steps[1].name: must not be empty",
            ),
            (
                Box::new(|v| v["steps"][1]["checks"][1]["probe"] = json!("nodot")),
                "steps[1].checks[1].probe:",
            ),
            (
                Box::new(|v| v["steps"][1]["checks"][0]["expect"][0]["op"] = json!("~=")),
                "steps[1].checks[0].expect[0]: unknown operator",
            ),
            (
                Box::new(|v| v["steps"][0]["checks"][0]["expect"] = json!(["/x < \"y\""])),
                "steps[0].checks[0].expect[0]: operator `<` compares numbers",
            ),
            (
                Box::new(|v| v["steps"][1]["checks"][0]["timeout_s"] = json!(0)),
                "steps[1].checks[0].timeout_s",
            ),
            (
                Box::new(|v| v["steps"][0]["checks"][0]["target"] = json!("a\u{1b}[2J")),
                "steps[0].checks[0].target: holds control",
            ),
            (
                Box::new(|v| {
                    v["steps"] = json!((0..33).map(|i| json!({"name": format!("s{i}"), "checks": [{"target": "a", "probe": "system.uptime"}]})).collect::<Vec<_>>())
                }),
                "more than 32 steps",
            ),
            (
                Box::new(|v| {
                    v["steps"][0]["checks"] = json!(
                        (0..33)
                            .map(|_| json!({"target": "a", "probe": "system.uptime"}))
                            .collect::<Vec<_>>()
                    )
                }),
                "steps[0].checks: more than 32",
            ),
        ];
        for (edit, want) in cases {
            let mut v = good();
            edit(&mut v);
            let e = CriticalPath::validate(&def(v)).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?}, got {e}");
        }
        // Unknown fields are refused when the definition is read.
        let mut v = good();
        v["steps"][0]["checks"][0]["command"] = json!("rm -rf /");
        assert!(serde_json::from_value::<PathDefinition>(v).is_err());
    }
}
