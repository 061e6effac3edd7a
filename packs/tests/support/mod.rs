//! Helpers shared by the pack tests: finding a built-in probe, running it
//! with a given runner and settings, and reading fixtures.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Map, Value};
use sonde_packs::PackDef;
use sonde_packs::exec::{CommandRunner, SystemRunner};
use sonde_packs::handler::{ProbeContext, ProbeError, ProbeOutput};
use sonde_packs::manifest::ProbeSpec;
use sonde_protocol::schema::validate;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn packs() -> Vec<PackDef> {
    sonde_packs::builtin::packs().unwrap()
}

pub fn pack(name: &str) -> PackDef {
    packs()
        .into_iter()
        .find(|p| p.manifest.name == name)
        .unwrap_or_else(|| panic!("no built-in pack {name}"))
}

pub fn spec<'a>(def: &'a PackDef, probe: &str) -> &'a ProbeSpec {
    def.manifest
        .probe(probe)
        .unwrap_or_else(|| panic!("no probe {}.{probe}", def.manifest.name))
}

/// Validates `params` against the probe's schema and runs it.
pub fn run_with(
    def: &PackDef,
    probe: &str,
    params: &Map<String, Value>,
    settings: &Value,
    runner: &dyn CommandRunner,
    timeout: Duration,
) -> Result<ProbeOutput, ProbeError> {
    let validated = validate(&spec(def, probe).params, params).unwrap_or_else(|e| {
        panic!(
            "{}.{probe}: parameters {params:?} do not validate: {e}",
            def.manifest.name
        )
    });
    let ctx = ProbeContext {
        deadline: Instant::now() + timeout,
        runner,
        settings,
        secrets: &sonde_packs::SecretGuard::standard(),
    };
    def.handlers[probe].run(&ctx, &validated)
}

/// Runs a probe on this machine, for real.
pub fn run_real(
    pack_name: &str,
    probe: &str,
    params: Value,
    settings: Value,
) -> Result<Value, ProbeError> {
    let def = pack(pack_name);
    run_with(
        &def,
        probe,
        params.as_object().unwrap(),
        &settings,
        &SystemRunner::default(),
        Duration::from_secs(20),
    )
    .map(|o| o.data)
}

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

pub fn fixture_text(rel: &str) -> String {
    String::from_utf8(fixture(rel)).unwrap()
}
