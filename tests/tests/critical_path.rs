//! Critical paths and trending (issue 18) end to end: a real hub and agent,
//! paths defined with the CLI, run through MCP with rmcp's client.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sonde_tests::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn setup(scratch: &Scratch) -> (Hub, Agent) {
    let hub = Hub::start(scratch);
    let mut agent = Agent::new(scratch, "nas", "max_concurrent_probes = 16");
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(&hub);
    agent.run();
    assert!(
        agent.wait_state(&hub, "online", T).await,
        "{}",
        agent.log_text()
    );
    hub.approve_pack("nas", "e2e").await;
    (hub, agent)
}

/// Writes a path definition file and adds it with the CLI.
fn add_path(hub: &Hub, scratch: &Scratch, file: &str, toml: &str) -> Value {
    let path = scratch.path().join(file);
    std::fs::write(&path, toml).unwrap();
    hub.cli_json(&["paths", "add", path.to_str().unwrap()])
}

const PASSING: &str = r#"
name = "web"
description = "front to back"

[[steps]]
name = "front"
[[steps.checks]]
target = "nas"
probe = "e2e.echo"
params = { text = "front" }
expect = ["/text contains \"front\"", { at = "/text", op = "!empty" }]

[[steps]]
name = "back"
[[steps.checks]]
target = "nas"
probe = "e2e.echo"
params = { text = "back" }
expect = ["/text matches \"^back\""]
[[steps.checks]]
target = "nas"
probe = "e2e.secrets"
"#;

const BROKEN: &str = r#"
name = "broken"

[[steps]]
name = "first"
[[steps.checks]]
target = "nas"
probe = "e2e.echo"
params = { text = "one" }
expect = ["/text == \"one\\n\""]

[[steps]]
name = "second"
[[steps.checks]]
target = "nas"
probe = "e2e.echo"
params = { text = "two" }
expect = ["/text contains \"two\""]
[[steps.checks]]
target = "nas"
probe = "e2e.echo"
params = { text = "actual" }
expect = ["/text contains \"expected\""]

[[steps]]
name = "third"
[[steps.checks]]
target = "nas"
probe = "e2e.echo"
params = { text = "three" }
"#;

fn step(report: &Value, index: usize) -> &Value {
    &report["steps"][index - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_passes_and_one_breaking_at_step_two_names_the_failed_check_with_evidence() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let defined = add_path(&hub, &scratch, "web.toml", PASSING);
    assert_eq!(defined["replaced"], false, "{defined}");
    assert_eq!(defined["warnings"], json!([]), "{defined}");
    // The stored form is canonical text.
    assert_eq!(
        defined["info"]["definition"]["steps"][0]["checks"][0]["expect"][1],
        "/text !empty"
    );
    add_path(&hub, &scratch, "broken.toml", BROKEN);

    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();

    // Without a name: the list.
    let (err, v) = call_tool(&client, "check_critical_path", json!({})).await;
    assert!(!err, "{v}");
    let names: Vec<&str> = v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "web"]);

    let (err, v) = call_tool(&client, "check_critical_path", json!({"name": "web"})).await;
    assert!(!err, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["breaks_at"], Value::Null);
    assert_eq!(step(&v, 2)["checks"].as_array().unwrap().len(), 2);
    for s in v["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "pass", "{s}");
        for c in s["checks"].as_array().unwrap() {
            assert!(c["audit_seq"].as_u64().unwrap() > 0, "{c}");
        }
    }
    // Evidence for passing expectations too: where and what was found.
    let e = &step(&v, 1)["checks"][0]["expectations"][0];
    assert_eq!(
        (e["at"].as_str(), e["actual"].as_str()),
        (Some("/text"), Some("front\n"))
    );

    let (err, v) = call_tool(&client, "check_critical_path", json!({"name": "broken"})).await;
    assert!(!err, "a broken path is a finding, not a failed call: {v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["breaks_at"], json!({"index": 2, "step": "second"}));
    assert_eq!(step(&v, 1)["status"], "pass");
    let second = step(&v, 2);
    assert_eq!(second["status"], "fail");
    assert_eq!(second["checks"][0]["status"], "pass");
    let bad = &second["checks"][1];
    assert_eq!(bad["status"], "fail", "{bad}");
    let miss = &bad["expectations"][0];
    assert_eq!(miss["ok"], false);
    assert_eq!(miss["expect"], "/text contains \"expected\"");
    assert_eq!(miss["actual"], "actual\n");
    assert_eq!(bad["excerpt"]["text"], "actual\n");
    assert_eq!(step(&v, 3)["status"], "skipped", "on_failure = stop");
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("breaks at step 2 (second): nas e2e.echo"),
        "{summary}"
    );

    // The runs are audited, and the path's last run is kept.
    let ran = hub.audit_actions("path.ran");
    let outcomes: Vec<&str> = ran.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["ok", "failed"]);
    assert_eq!(ran[1]["detail"]["breaks_at"], 2);
    assert_eq!(ran[1]["actor"], ran[0]["actor"]);
    assert!(ran[1]["actor"].as_str().unwrap().starts_with("api-key:"));
    let probes: Vec<Value> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["detail"]["via"] == "mcp.check_critical_path")
        .collect();
    assert_eq!(
        probes.len(),
        3 + 3,
        "web runs 3 checks, broken 3 (step 3 skipped)"
    );
    assert_eq!(hub.audit_actions("path.defined").len(), 2);
    let list = hub.cli_json(&["paths", "list"]);
    let broken = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["definition"]["name"] == "broken")
        .unwrap();
    assert_eq!(broken["last_run"]["breaks_at"], 2, "{broken}");
    assert_eq!(broken["last_run"]["ok"], false);

    // The operator runs it too: exit status 1 when it breaks.
    let out = hub.cli(&["paths", "run", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("breaks at step 2"), "{text}");
    assert_eq!(hub.cli(&["paths", "run", "web"]).status.code(), Some(0));
    let ran = hub.audit_actions("path.ran");
    assert!(ran[3]["actor"].as_str().unwrap().starts_with("operator:"));

    // `on_failure = "continue"` runs every step and lists every broken one.
    let cont = BROKEN.replacen(
        "name = \"broken\"",
        "name = \"broken\"\non_failure = \"continue\"",
        1,
    );
    let redefined = add_path(&hub, &scratch, "broken2.toml", &cont);
    assert_eq!(redefined["replaced"], true);
    let (_, v) = call_tool(&client, "check_critical_path", json!({"name": "broken"})).await;
    assert_eq!(step(&v, 3)["status"], "pass", "{v}");
    assert_eq!(v["failed_steps"], json!([2]));
    assert_eq!(v["breaks_at"]["index"], 2);

    // Removal is audited; the name is then unknown.
    hub.cli_ok(&["paths", "remove", "broken"]);
    assert_eq!(hub.audit_actions("path.removed").len(), 1);
    let (err, v) = call_tool(&client, "check_critical_path", json!({"name": "broken"})).await;
    assert!(err && v["error"] == "not_found", "{v}");
    let (err, v) = call_tool(&client, "check_critical_path", json!({"name": 5})).await;
    assert!(err && v["error"] == "invalid_params", "{v}");
    let (err, _) = call_tool(&client, "check_critical_path", json!({"nme": "web"})).await;
    assert!(err);
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_refused_with_their_place_and_unknown_targets_warn() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let bad = PASSING.replace("\"/text matches \\\"^back\\\"\"", "\"/text < \\\"3\\\"\"");
    assert_ne!(bad, PASSING);
    let file = scratch.path().join("bad.toml");
    std::fs::write(&file, &bad).unwrap();
    let out = hub.cli(&["paths", "add", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("steps[1].checks[0].expect[0]: operator `<` compares numbers"),
        "{err}"
    );
    let unknown_field = PASSING.replace(
        "probe = \"e2e.secrets\"",
        "probe = \"e2e.secrets\"\ncommand = \"id\"",
    );
    std::fs::write(&file, &unknown_field).unwrap();
    assert!(
        !hub.cli(&["paths", "add", file.to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        hub.audit_actions("path.defined").is_empty(),
        "nothing stored"
    );

    let elsewhere = PASSING
        .replacen("target = \"nas\"", "target = \"router\"", 1)
        .replace("probe = \"e2e.secrets\"", "probe = \"e2e.missing\"");
    let defined = add_path(&hub, &scratch, "w.toml", &elsewhere);
    let warnings = defined["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{defined}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("no agent named \"router\"")
    );
    assert!(
        warnings[1]
            .as_str()
            .unwrap()
            .contains("no probe \"e2e.missing\"")
    );
    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (_, v) = call_tool(&client, "check_critical_path", json!({"name": "web"})).await;
    let c = &step(&v, 1)["checks"][0];
    assert_eq!(c["status"], "error", "{v}");
    assert_eq!(c["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_policy_excludes_a_probe_in_a_path_gets_that_check_denied_and_audited() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    add_path(&hub, &scratch, "web.toml", PASSING);
    let key = hub.api_key(&["--name", "echo-only", "--probes", "e2e.echo"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (err, v) = call_tool(&client, "check_critical_path", json!({"name": "web"})).await;
    assert!(!err, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["breaks_at"]["index"], 2);
    let checks = step(&v, 2)["checks"].as_array().unwrap();
    assert_eq!(checks[0]["status"], "pass");
    assert_eq!(checks[1]["status"], "denied", "{v}");
    assert_eq!(checks[1]["error"]["code"], "denied");
    let msg = checks[1]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("outside this key's scope"), "{msg}");
    let denied: Vec<Value> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["probe"], "e2e.secrets");
    assert_eq!(denied[0]["detail"]["via"], "mcp.check_critical_path");
    assert!(denied[0]["actor"].as_str().unwrap().starts_with("api-key:"));

    // An agent outside the key's scope: every check denied, nothing run.
    let key = hub.api_key(&["--name", "web-only", "--agents", "web*"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let before = hub.audit_actions("probe").len();
    let (_, v) = call_tool(&client, "check_critical_path", json!({"name": "web"})).await;
    assert_eq!(step(&v, 1)["checks"][0]["status"], "denied", "{v}");
    let after = hub.audit_actions("probe");
    assert_eq!(after.len(), before + 1, "step 2 skipped");
    assert_eq!(after.last().unwrap()["outcome"], "denied");

    // A key without the tool cannot run paths at all.
    let key = hub.api_key(&["--name", "no-paths", "--tools", "probe"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (err, v) = call_tool(&client, "check_critical_path", json!({"name": "web"})).await;
    assert!(err && v["error"] == "denied", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trending_after_a_batch_of_calls_counts_failures_and_ranks_the_worst_first() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let probe = |p: &str, params: Value| json!({"agent": "nas", "probe": p, "params": params});
    for i in 0..5 {
        let (err, v) = call_tool(
            &client,
            "probe",
            probe("e2e.echo", json!({"text": format!("n{i}")})),
        )
        .await;
        assert!(!err, "{v}");
    }
    // One echo with bad parameters (refused by the hub: outcome error).
    assert!(
        call_tool(&client, "probe", probe("e2e.echo", json!({"text": 5})))
            .await
            .0
    );
    // Four calls of a probe the agent does not have.
    for _ in 0..4 {
        assert!(
            call_tool(&client, "probe", probe("e2e.nope", json!({})))
                .await
                .0
        );
    }
    // Two calls a narrower key is denied, one it may make.
    let narrow = hub.api_key(&["--name", "narrow", "--probes", "e2e.echo,e2e.sleep"]);
    let narrow_client = mcp_client(&hub, &narrow).await.unwrap();
    for _ in 0..2 {
        assert!(
            call_tool(&narrow_client, "probe", probe("e2e.secrets", json!({})))
                .await
                .0
        );
    }
    let (err, _) = call_tool(
        &narrow_client,
        "probe",
        probe("e2e.sleep", json!({"seconds": 0})),
    )
    .await;
    assert!(!err);

    let (err, v) = call_tool(&client, "trending", json!({"window": "1h"})).await;
    assert!(!err, "{v}");
    assert_eq!(v["totals"]["current"]["calls"], 5 + 1 + 4 + 2 + 1, "{v}");
    assert_eq!(v["totals"]["current"]["failures"], 1 + 4 + 2);
    assert_eq!(v["totals"]["previous"]["calls"], 0);
    let changes = v["changes"].as_array().unwrap();
    let order: Vec<&str> = changes
        .iter()
        .map(|c| c["probe"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["e2e.nope", "e2e.secrets", "e2e.echo", "e2e.sleep"],
        "{v}"
    );
    assert!(changes.iter().all(|c| c["target"] == "nas"));
    assert_eq!(changes[0]["current"]["by_outcome"], json!({"error": 4}));
    assert_eq!(changes[1]["current"]["by_outcome"], json!({"denied": 2}));
    assert_eq!(
        changes[2]["current"]["by_outcome"],
        json!({"ok": 5, "error": 1})
    );
    assert_eq!(changes[0]["change"]["direction"], "new");
    // Answered calls have latency; refused ones do not.
    assert!(
        changes[2]["current"]["p95_ms"].is_number(),
        "{}",
        changes[2]
    );
    assert!(changes[0]["current"]["p95_ms"].is_null());
    let hours: u64 = v["by_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(hours, 13);
    assert_eq!(v["by_target"][0]["current"]["calls"], 13);

    // Filters.
    let (_, v) = call_tool(
        &client,
        "trending",
        json!({"window": "1h", "probe": "e2e.e*", "limit": 1}),
    )
    .await;
    assert_eq!(v["totals"]["current"]["calls"], 6, "{v}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 1);
    let (err, v) = call_tool(&client, "trending", json!({"target": "ghost"})).await;
    assert!(err && v["error"] == "not_found", "{v}");
    let (err, v) = call_tool(&client, "trending", json!({"window": "forever"})).await;
    assert!(err && v["error"] == "invalid_params", "{v}");

    // A key sees only its scope.
    let (_, v) = call_tool(&narrow_client, "trending", json!({"window": "1h"})).await;
    let probes: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["probe"].as_str().unwrap())
        .collect();
    assert_eq!(probes, ["e2e.echo", "e2e.sleep"], "{v}");
    assert_eq!(v["totals"]["current"]["calls"], 7);
    let elsewhere = hub.api_key(&["--name", "elsewhere", "--agents", "web*"]);
    let c = mcp_client(&hub, &elsewhere).await.unwrap();
    let (_, v) = call_tool(&c, "trending", json!({"window": "1h"})).await;
    assert_eq!(v["totals"]["current"]["calls"], 0, "{v}");
    assert_eq!(v["changes"], json!([]));
    let (err, _) = call_tool(&c, "trending", json!({"target": "nas"})).await;
    assert!(err, "an agent outside the scope is unknown");

    // The operator's view through the CLI agrees.
    let cli = hub.cli_json(&["trending", "--window", "1h"]);
    assert_eq!(cli["totals"]["current"]["calls"], 13, "{cli}");
}
