//! The ups pack against a REAL NUT: `upsd` and the `dummy-ups` driver in
//! a temp dir on 127.0.0.1 as an unprivileged user (support/ops_servers.rs),
//! with the UPS's state written to the driver's `.dev` file: on line, on
//! battery, low battery. Probes run the real `upsc`, also inside the
//! agent's sandbox (which lets `upsc` connect only to the upsd port the
//! settings name).
#![allow(clippy::unwrap_used)]

#[path = "support/ops_servers.rs"]
mod ops_servers;
mod support;

use ops_servers::{Nut, ON_LINE};
use serde_json::{Value, json};
use sonde_packs::ProbeError;
use sonde_packs::exec::SystemRunner;
use std::time::{Duration, Instant};

fn run(nut: &Nut, probe: &str, params: Value) -> Result<Value, ProbeError> {
    let def = support::pack("ups");
    support::run_with(
        &def,
        probe,
        params.as_object().unwrap(),
        &nut.settings(),
        &SystemRunner::default(),
        Duration::from_secs(20),
    )
    .map(|o| o.data)
}

fn messages(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn on_line_on_battery_and_low_battery_from_a_real_upsd() {
    let Some(nut) = Nut::start(ON_LINE) else {
        return;
    };
    // On line: healthy, nothing to say.
    let v = run(&nut, "status", json!({})).unwrap();
    let ups = &v["upses"][0];
    assert_eq!(ups["name"], "myups");
    assert_eq!(ups["description"], "Rack UPS");
    assert_eq!(ups["status"], "OL");
    assert_eq!(
        ups["flags"][0],
        json!({"flag": "OL", "meaning": "on line power"})
    );
    assert_eq!(ups["on_battery"], false);
    assert_eq!(ups["battery"]["charge_percent"], 100);
    assert_eq!(ups["battery"]["runtime_s"], 1800);
    assert_eq!(ups["load_percent"], 23);
    assert_eq!(ups["self_test"]["result"], "Done and passed");
    assert_eq!(ups["device"]["model"], "Test 1500");
    assert_eq!(ups["driver"]["name"], "dummy-ups");
    assert!(messages(&v).is_empty(), "{:?}", messages(&v));

    // Mains out: on battery, discharging.
    nut.set(
        &ON_LINE
            .replace("ups.status: OL", "ups.status: OB DISCHRG")
            .replace("battery.charge: 100", "battery.charge: 64")
            .replace("battery.runtime: 1800", "battery.runtime: 840"),
        "OB DISCHRG",
    );
    let v = run(&nut, "status", json!({"ups": "myups"})).unwrap();
    assert_eq!(v["upses"][0]["on_battery"], true);
    assert_eq!(v["upses"][0]["flags"][1]["meaning"], "battery discharging");
    let m = messages(&v);
    assert!(
        m.iter().any(|(s, t)| s == "warning"
            && t.contains("ON BATTERY")
            && t.contains("64%")
            && t.contains("14 min")),
        "{m:?}"
    );

    // Battery nearly gone, and worn out.
    nut.set(
        &ON_LINE
            .replace("ups.status: OL", "ups.status: OB DISCHRG LB RB")
            .replace("battery.charge: 100", "battery.charge: 9")
            .replace("battery.runtime: 1800", "battery.runtime: 120")
            .replace("Done and passed", "Done and error"),
        "OB DISCHRG LB RB",
    );
    let v = run(&nut, "status", json!({})).unwrap();
    assert_eq!(v["upses"][0]["low_battery"], true);
    let m = messages(&v);
    for (severity, text) in [
        ("critical", "LOW BATTERY"),
        ("error", "replaced"),
        ("error", "self-test"),
        ("warning", "only about 2 min"),
    ] {
        assert!(
            m.iter().any(|(s, t)| s == severity && t.contains(text)),
            "no {severity} finding with {text:?}: {m:?}"
        );
    }

    // Every variable, raw.
    let all = run(&nut, "variables", json!({"ups": "myups"})).unwrap();
    assert_eq!(all["variables"]["ups.status"], "OB DISCHRG LB RB");
    assert_eq!(all["variables"]["driver.parameter.mode"], "dummy-once");
    assert!(all["count"].as_u64().unwrap() >= 15);

    // Nobody listens for the shutdown signal: a finding.
    let c = run(&nut, "clients", json!({})).unwrap();
    assert_eq!(c["upses"][0]["clients"], json!([]));
    assert!(messages(&c)[0].1.contains("no upsmon"), "{c}");
}

#[test]
fn unknown_ups_and_absent_upsd_are_clear_errors() {
    let Some(nut) = Nut::start(ON_LINE) else {
        return;
    };
    let err = run(&nut, "status", json!({"ups": "nosuch"})).unwrap_err();
    assert!(
        matches!(&err, ProbeError::NotFound(m) if m.contains("nosuch") && m.contains("without `ups`")),
        "{err:?}"
    );
    let err = run(&nut, "variables", json!({"ups": "nosuch"})).unwrap_err();
    assert!(matches!(err, ProbeError::NotFound(_)), "{err:?}");
    // Nothing listens on this port: an answer that says what to check.
    let def = support::pack("ups");
    let start = Instant::now();
    let err = support::run_with(
        &def,
        "status",
        json!({}).as_object().unwrap(),
        &json!({"port": ops_servers::free_port()}),
        &SystemRunner::default(),
        Duration::from_secs(20),
    )
    .unwrap_err();
    assert!(err.to_string().contains("upsd does not answer"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn upsc_runs_in_the_sandbox_and_reaches_only_the_configured_port() {
    let Some(nut) = Nut::start(ON_LINE) else {
        return;
    };
    let def = support::pack("ups");
    let params = json!({});
    // The sandbox follows the settings: the configured port is allowed.
    let ok = ops_servers::run_confined(
        &def,
        "status",
        params.as_object().unwrap(),
        &nut.settings(),
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(ok.data["upses"][0]["status"], "OL");
    // A sandbox that allows only the default port cannot reach this upsd.
    let sandbox = sonde_packs::sandbox::Sandbox::new(Vec::new());
    if !sandbox.level().is_full() {
        eprintln!("no full Landlock here: the port refusal is not checked");
        return;
    }
    let default_only = sonde_packs::exec::SystemRunner::default()
        .confined(sandbox, def.manifest.sandbox.to_pack_sandbox());
    let err = support::run_with(
        &def,
        "status",
        params.as_object().unwrap(),
        &nut.settings(),
        &default_only,
        Duration::from_secs(20),
    )
    .unwrap_err();
    assert!(err.to_string().contains("upsd does not answer"), "{err}");
}

#[path = "support/sweep.rs"]
mod sweep;

/// Every probe × example × hostile value: every argv the pack builds is one
/// of upsc's read forms, against the configured server only.
#[test]
fn no_mutating_upsc_argv_is_reachable() {
    use sonde_packs::exec::ExecOutput;
    use sonde_packs::testing::RecordingRunner;
    use sonde_packs::ups::upsc;
    let def = support::pack("ups");
    let runner = RecordingRunner::replying(|argv| {
        let a = sweep::args_of(argv);
        let out = match a.first().map(String::as_str) {
            Some("-L") => "myups: Dummy UPS\n",
            Some("-c") => "127.0.0.1\n",
            _ => "battery.charge: 100\nups.status: OL\n",
        };
        ExecOutput {
            code: Some(0),
            stdout: out.as_bytes().to_vec(),
            ..Default::default()
        }
    });
    let settings = json!({"host": "127.0.0.1", "port": 3493});
    let runs = sweep::sweep(&def, &runner, &settings);
    let calls = runner.calls();
    assert!(
        runs > 15 && calls.len() > 15,
        "the sweep ran {runs} probes, {} commands",
        calls.len()
    );
    for argv in &calls {
        assert_eq!(argv.program, "upsc");
        let a = sweep::args_of(argv);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        upsc::check_argv("upsc", &refs)
            .unwrap_or_else(|e| panic!("an argv outside the table was run: {e}"));
        for word in &a {
            assert!(
                !upsc::MUTATING.contains(&word.as_str()),
                "{} holds {word:?}",
                argv.display()
            );
            assert!(
                word.starts_with('-') || word.ends_with("127.0.0.1:3493"),
                "{} names another server",
                argv.display()
            );
        }
    }
}
