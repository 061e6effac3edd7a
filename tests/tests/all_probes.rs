//! Every probe of every built-in pack through `sonde-agent probe`, with
//! valid parameters (each example in its manifest) and invalid ones (an
//! unknown parameter; a value of the wrong type for each parameter), on a
//! real enrolled agent whose operator packs the hub approved. The zfs pack
//! reads the fixture dataset (its fake `zfs`/`zpool` first on the agent's
//! command path), so every zfs probe must succeed.
#![allow(clippy::unwrap_used)]

use serde_json::{Map, Value, json};
use sonde_packs::handler::PackDef;
use sonde_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Probes that must succeed on any Linux machine (or, for zfs, on the fixture).
fn must_succeed(pack: &str, probe: &str) -> bool {
    pack == "zfs"
        || matches!(
            (pack, probe),
            (
                "system",
                "disk.usage" | "memory.usage" | "cpu.usage" | "uptime" | "network.interfaces"
            )
        )
}

fn builtin() -> Vec<PackDef> {
    let mut defs = sonde_packs::builtin::packs().unwrap();
    defs.push(sonde_pack_zfs::pack().unwrap());
    defs
}

fn pack_states(agent: &Agent) -> BTreeMap<String, String> {
    let out = agent.output(&["packs", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["state"]["state"]
                    .as_str()
                    .or(p["state"].as_str())
                    .unwrap_or("?")
                    .to_owned(),
            )
        })
        .collect()
}

struct Case {
    pack: String,
    probe: String,
    params: Value,
    valid: bool,
    /// For invalid cases: the parameter the error must name, if any.
    names: Option<String>,
}

fn cases(defs: &[PackDef]) -> Vec<Case> {
    let mut cases = Vec::new();
    for def in defs {
        let pack = &def.manifest.name;
        for probe in &def.manifest.probes {
            let mut valid: Vec<Map<String, Value>> = probe.examples.clone();
            if valid.is_empty() {
                assert!(
                    probe.params.iter().all(|p| !p.required),
                    "{pack}.{} has required parameters but no example to run",
                    probe.name
                );
                valid.push(Map::new());
            }
            for params in valid {
                cases.push(Case {
                    pack: pack.clone(),
                    probe: probe.name.clone(),
                    params: Value::Object(params),
                    valid: true,
                    names: None,
                });
            }
            let base = probe.examples.first().cloned().unwrap_or_default();
            let mut unknown = base.clone();
            unknown.insert("no_such_parameter".into(), json!(1));
            cases.push(Case {
                pack: pack.clone(),
                probe: probe.name.clone(),
                params: Value::Object(unknown),
                valid: false,
                names: Some("no_such_parameter".into()),
            });
            for param in &probe.params {
                let mut wrong = base.clone();
                // No parameter type accepts an object.
                wrong.insert(param.name.clone(), json!({"not": "a value"}));
                cases.push(Case {
                    pack: pack.clone(),
                    probe: probe.name.clone(),
                    params: Value::Object(wrong),
                    valid: false,
                    names: Some(param.name.clone()),
                });
            }
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_of_every_pack_answers_valid_and_invalid_params() {
    let scratch = Scratch::new();
    let (_fixture, extra) = zfs_fixture(&scratch);
    let hub = Hub::start(&scratch);
    let mut agent = online_agent(&scratch, &hub, "box", &extra).await;
    let admin = hub.admin();
    for pack in ["systemd", "docker", "zfs"] {
        admin
            .decide_pack("box", pack, sonde_admin::api::PackAction::Approve)
            .await
            .unwrap();
    }
    // The zfs pack's requirements are met by the fixture's tools, so the
    // approval makes it active; wait for the agent to store the grant.
    assert!(
        wait_until(Duration::from_secs(30), || pack_states(&agent)
            .get("zfs")
            .is_some_and(|s| s == "active")),
        "zfs did not become active: {:?}\n{}",
        pack_states(&agent),
        agent.log_text()
    );
    agent.stop();
    let states = pack_states(&agent);
    let defs = builtin();
    for def in &defs {
        assert!(
            states.contains_key(&def.manifest.name),
            "pack {} missing from `packs list`: {states:?}",
            def.manifest.name
        );
    }

    // `--list` shows every probe of every active pack.
    let out = agent.output(&["probe", "--list"]);
    assert!(out.status.success());
    let listed: BTreeSet<String> = serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    for def in &defs {
        if states[&def.manifest.name] != "active" {
            continue;
        }
        for probe in &def.manifest.probes {
            let name = format!("{}.{}", def.manifest.name, probe.name);
            assert!(listed.contains(&name), "{name} not in --list");
        }
    }

    // Every case through `--stdio`, one process, replies in order.
    let cases = cases(&defs);
    let requests: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"id": i, "probe": format!("{}.{}", c.pack, c.probe), "params": c.params})
                .to_string()
        })
        .collect();
    let (status, replies) = agent.probe_stdio(false, requests);
    assert!(status.success());
    assert_eq!(replies.len(), cases.len());

    let mut succeeded = 0;
    for (i, (case, reply)) in cases.iter().zip(&replies).enumerate() {
        assert_eq!(reply["id"], i);
        let what = format!("{}.{} {}: {reply}", case.pack, case.probe, case.params);
        let active = states[&case.pack] == "active";
        let code = reply["error"]["code"].as_str().unwrap_or("");
        let message = reply["error"]["message"].as_str().unwrap_or("");
        if case.valid {
            if !active {
                assert!(
                    code == "refused" || code == "unknown_probe",
                    "an inactive pack's probe must be refused, saying why: {what}"
                );
                assert!(!message.is_empty(), "{what}");
                continue;
            }
            assert!(
                !matches!(
                    code,
                    "invalid_params" | "invalid_request" | "no_such_probe" | "unknown_probe"
                ),
                "a manifest example must be accepted: {what}"
            );
            if must_succeed(&case.pack, &case.probe) {
                assert_eq!(reply["ok"], true, "{what}");
                assert!(reply["data"].is_object(), "{what}");
            }
            if reply["ok"] == true {
                succeeded += 1;
            } else {
                assert!(!message.is_empty(), "a failure says what failed: {what}");
            }
        } else if active {
            assert_eq!(code, "invalid_params", "{what}");
            let name = case.names.as_deref().unwrap();
            assert!(
                message.contains(name),
                "the error names the parameter `{name}`: {what}"
            );
        } else {
            assert!(
                matches!(code, "invalid_params" | "refused" | "unknown_probe"),
                "{what}"
            );
        }
    }
    let zfs_probes = defs
        .iter()
        .find(|d| d.manifest.name == "zfs")
        .unwrap()
        .manifest
        .probes
        .len();
    assert!(
        succeeded >= zfs_probes,
        "{succeeded} successes over {} cases",
        cases.len()
    );

    // And one probe by itself, exit status 0 with one JSON document.
    let out = agent.output(&[
        "probe",
        "zfs.list_snapshots",
        "--param",
        "dataset=tank/home",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let out = agent.output(&[
        "probe",
        "zfs.read_file",
        "--param",
        "dataset=tank/home",
        "--param",
        "path=../etc/passwd",
    ]);
    assert_eq!(out.status.code(), Some(2), "an escaping path is bad input");
}
