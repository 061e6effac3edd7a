//! The hostile sweep of the ops packs' guarantee tests: every probe × every
//! manifest example × hostile values for each parameter, run through a
//! recording runner, so a test can check every argv a pack could build.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Map, Value, json};
use sonde_packs::PackDef;
use sonde_packs::exec::{Argv, CommandRunner};
use sonde_packs::handler::ProbeContext;
use sonde_protocol::schema::{ParamKind, ParamSpec, validate};
use std::time::{Duration, Instant};

/// Values meant to smuggle an option, a second command, a path or a
/// mutating word into an argv.
pub const HOSTILE: &[&str] = &[
    "",
    "-t",
    "--test=long",
    "-s off",
    "--set=standby,now",
    "/dev/sda; reboot",
    "$(reboot)",
    "`id`",
    "../../etc/shadow",
    "/dev/../etc/passwd",
    "/dev/sda\n-t",
    "myups@evil.example:1",
    "myups -c",
    "-L",
    "upscmd",
    "upsrw",
    "%2e%2e",
    "*",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "sat,12 -t",
    "FSD",
];

pub fn hostile_values(spec: &ParamSpec) -> Vec<Value> {
    match &spec.kind {
        ParamKind::Integer { min, max } => [*min, *max, 0, -1, 1]
            .into_iter()
            .map(|n| json!(n))
            .collect(),
        ParamKind::Boolean => vec![json!(true), json!(false)],
        ParamKind::String {
            values: Some(values),
            ..
        } => values
            .iter()
            .map(|v| json!(v))
            .chain(HOSTILE.iter().map(|h| json!(h)))
            .collect(),
        _ => HOSTILE.iter().map(|h| json!(h)).collect(),
    }
}

/// Runs every probe of `def` with every example and every hostile variant
/// the schema accepts (refused values never reach a handler); errors are
/// fine, a panic fails the test. Returns the number of handler runs.
pub fn sweep(def: &PackDef, runner: &dyn CommandRunner, settings: &Value) -> usize {
    let mut runs = 0;
    for probe in &def.manifest.probes {
        let mut sets: Vec<Map<String, Value>> = probe.examples.clone();
        for base in &probe.examples {
            for p in &probe.params {
                for v in hostile_values(p) {
                    let mut m = base.clone();
                    m.insert(p.name.clone(), v);
                    sets.push(m);
                }
            }
        }
        for params in sets {
            let Ok(validated) = validate(&probe.params, &params) else {
                continue;
            };
            let ctx = ProbeContext {
                deadline: Instant::now() + Duration::from_secs(10),
                runner,
                settings,
                secrets: &sonde_packs::SecretGuard::standard(),
            };
            let _ = def.handlers[&probe.name].run(&ctx, &validated);
            runs += 1;
        }
    }
    runs
}

pub fn args_of(argv: &Argv) -> Vec<String> {
    argv.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
