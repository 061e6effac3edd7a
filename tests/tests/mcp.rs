//! The MCP endpoint with a real MCP client (rmcp) against a real hub and agent.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sonde_tests::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn setup(scratch: &Scratch, hub_toml: &str) -> (Hub, Agent) {
    let hub = Hub::start_with(scratch, hub_toml);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_answers_valid_and_invalid_arguments() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch, "").await;
    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "sonde-hub");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "list_agents",
            "agent_overview",
            "list_capabilities",
            "probe",
            "diagnose",
            "health_check",
            "query_logs",
            "check_critical_path",
            "trending"
        ]
    );

    let (err, v) = call_tool(&client, "list_agents", json!({})).await;
    assert!(!err);
    assert_eq!(v["agents"][0]["name"], "nas");
    assert_eq!(v["agents"][0]["status"], "online");
    assert!(
        call_tool(&client, "list_agents", json!({"bogus": 1}))
            .await
            .0
    );

    let (err, v) = call_tool(&client, "agent_overview", json!({"agent": "nas"})).await;
    assert!(!err, "{v}");
    assert!(
        v["diagnose_categories"]
            .as_array()
            .unwrap()
            .contains(&json!("e2e"))
    );
    let (err, v) = call_tool(&client, "agent_overview", json!({"agent": "nope"})).await;
    assert!(err && v["error"] == "not_found", "{v}");
    assert!(call_tool(&client, "agent_overview", json!({})).await.0);

    let (err, v) = call_tool(&client, "list_capabilities", json!({})).await;
    assert!(!err);
    let probes = v["agents"][0]["probes"].as_array().unwrap();
    let echo = probes.iter().find(|p| p["name"] == "e2e.echo").unwrap();
    assert_eq!(echo["params"]["properties"]["text"]["maxLength"], 200);
    assert!(
        !probes.iter().any(|p| p["name"] == "e2e.restart"),
        "interact probe is above the ceiling"
    );
    assert!(
        call_tool(&client, "list_capabilities", json!({"agent": 5}))
            .await
            .0
    );

    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "e2e.echo", "params": {"text": "hi"}}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["data"]["text"], "hi\n");
    assert!(v["audit_seq"].as_u64().unwrap() > 0);
    assert_eq!(v["redactions"], 0);
    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "e2e.echo", "params": {"text": 5}}),
    )
    .await;
    assert!(err);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parameter `text`"),
        "{v}"
    );
    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "e2e.nope"}),
    )
    .await;
    assert!(err && v["error"]["code"] == "unknown_probe", "{v}");
    let (err, _) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "not a probe"}),
    )
    .await;
    assert!(err);
    let (err, _) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "e2e.echo", "timeout_s": 0}),
    )
    .await;
    assert!(err);

    let (err, v) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "nas", "category": "e2e"}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["run"], 2);
    assert_eq!(v["summary"]["succeeded"], 2);
    let (err, v) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "nas", "category": "nope"}),
    )
    .await;
    assert!(
        err && v["message"].as_str().unwrap().contains("it has: ")
            && v["message"].as_str().unwrap().contains("e2e"),
        "{v}"
    );

    let (err, v) = call_tool(&client, "health_check", json!({})).await;
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["checked"], 1);
    assert!(
        call_tool(&client, "health_check", json!({"agent": "ghost"}))
            .await
            .0
    );

    let (err, v) = call_tool(
        &client,
        "query_logs",
        json!({"source": "audit", "agent": "nas", "probe": "e2e.*", "limit": 5}),
    )
    .await;
    assert!(!err, "{v}");
    assert!(!v["entries"].as_array().unwrap().is_empty());
    assert!(
        call_tool(&client, "query_logs", json!({"source": "tea-leaves"}))
            .await
            .0
    );
    assert!(
        call_tool(&client, "query_logs", json!({"source": "journal"}))
            .await
            .0,
        "journal needs an agent"
    );

    let unknown = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("rm_rf").with_arguments(Default::default()),
        )
        .await;
    assert!(unknown.is_err(), "an unknown tool is a JSON-RPC error");
    // The hub is unharmed and every probe call is in a chain that verifies.
    assert!(hub.admin().status().await.is_ok());
    hub.assert_audit_ok();
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_get_401_and_no_tool_output() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch, "").await;
    let init = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).unwrap();
    let (status, body) = mcp_raw(&hub, &[], init.clone()).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("missing_api_key") && !body.contains("jsonrpc"),
        "{body}"
    );
    let (status, body) = mcp_raw(
        &hub,
        &[(
            "authorization",
            "Bearer sonde_sk_00000000_0000000000000000000000000000000000000000",
        )],
        init.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("invalid_api_key"));
    let revoked = hub.api_key(&["--name", "old"]);
    let id = hub
        .admin()
        .keys()
        .await
        .unwrap()
        .iter()
        .find(|k| k.name == "old")
        .unwrap()
        .id
        .clone();
    hub.cli_ok(&["keys", "revoke", &id]);
    let (status, body) = mcp_raw(
        &hub,
        &[("authorization", &format!("Bearer {revoked}"))],
        init.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("revoked"));
    // Expired keys: `sonde-hub::mcp::tests::an_api_key_expires_by_the_hubs_clock`
    // moves the hub's clock instead of sleeping here.
    assert!(mcp_client(&hub, &revoked).await.is_err());
    let good = hub.api_key(&["--name", "good"]);
    let (status, _) = mcp_raw(&hub, &[("authorization", &format!("Bearer {good}"))], init)
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_scope_is_enforced_and_denials_audited() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch, "").await;
    let key = hub.api_key(&[
        "--name",
        "narrow",
        "--agents",
        "web*",
        "--probes",
        "e2e.echo",
        "--tools",
        "probe,list_agents",
    ]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2, "only the key's tools are listed");
    let (err, v) = call_tool(&client, "list_agents", json!({})).await;
    assert!(
        !err && v["agents"].as_array().unwrap().is_empty(),
        "nas is outside web*: {v}"
    );
    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "e2e.echo", "params": {"text": "x"}}),
    )
    .await;
    assert!(err);
    assert!(
        v["message"].as_str().unwrap().contains("agents: web*"),
        "{v}"
    );
    let (err, v) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "nas", "category": "e2e"}),
    )
    .await;
    assert!(err && v["error"] == "denied", "{v}");
    let prefix = hub
        .admin()
        .keys()
        .await
        .unwrap()
        .iter()
        .find(|k| k.name == "narrow")
        .unwrap()
        .prefix
        .clone();
    assert!(
        hub.audit_actions("tool.denied")
            .iter()
            .any(|e| e["actor"] == format!("api-key:{prefix}"))
    );

    // In scope for the agent, but not for the probe: denied at the probe, audited as a probe call.
    let key2 = hub.api_key(&[
        "--name",
        "echo-only",
        "--agents",
        "nas",
        "--probes",
        "e2e.echo",
    ]);
    let client2 = mcp_client(&hub, &key2).await.unwrap();
    let (err, v) = call_tool(
        &client2,
        "probe",
        json!({"agent": "nas", "probe": "e2e.secrets"}),
    )
    .await;
    assert!(err && v["error"]["code"] == "denied", "{v}");
    let (err, v) = call_tool(
        &client2,
        "diagnose",
        json!({"agent": "nas", "category": "e2e"}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["skipped_by_key_policy"], 1);
    let denied: Vec<_> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert!(
        denied.iter().any(|e| e["probe"] == "e2e.secrets"),
        "{denied:?}"
    );
    // A key limited to observe never gets an interact probe, even on an interact agent.
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_origin_host_body_and_json_rpc_are_refused_cleanly() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(
        &scratch,
        "[mcp]\nmax_body_bytes = 4096\nallowed_origins = [\"https://ok.example\"]\n",
    )
    .await;
    let key = hub.api_key(&["--name", "k"]);
    let auth = format!("Bearer {key}");
    let init = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).unwrap();
    let (status, body) = mcp_raw(
        &hub,
        &[("authorization", &auth), ("origin", "https://evil.example")],
        init.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("forbidden_origin"));
    let (status, _) = mcp_raw(
        &hub,
        &[("authorization", &auth), ("origin", "https://ok.example")],
        init.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let (status, body) = mcp_raw(
        &hub,
        &[("authorization", &auth), ("host", "attacker.example")],
        init.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, _) = mcp_raw(&hub, &[("authorization", &auth)], vec![b' '; 10_000])
        .await
        .unwrap();
    assert_eq!(status, 413);
    let (status, body) = mcp_raw(&hub, &[("authorization", &auth)], b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{body}");
    let (status, body) = mcp_raw(
        &hub,
        &[("authorization", &auth)],
        br#"{"id": 3, "method": "tools/list"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32600
    );
    let (status, body) = mcp_raw(
        &hub,
        &[("authorization", &auth)],
        br#"{"jsonrpc":"2.0","id":7,"method":"no/such"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert!(status >= 400 || body.contains("error"), "{status} {body}");
    assert!(hub.admin().status().await.is_ok(), "the hub is unharmed");
    assert!(mcp_client(&hub, &key).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_a_clear_error() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch, "[mcp]\nrate_limit_per_minute = 3\n").await;
    let key = hub.api_key(&["--name", "slow"]);
    let auth = format!("Bearer {key}");
    let init = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).unwrap();
    let mut statuses = Vec::new();
    let mut last = String::new();
    for _ in 0..5 {
        let (s, b) = mcp_raw(&hub, &[("authorization", &auth)], init.clone())
            .await
            .unwrap();
        statuses.push(s);
        last = b;
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(last.contains("3 requests per minute"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_times_500_probe_calls_are_all_answered_and_audited() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch, "[mcp]\nrate_limit_per_minute = 1000000\n").await;
    let key = hub.api_key(&["--name", "load"]);
    let prefix = hub.admin().keys().await.unwrap()[0].prefix.clone();
    let before = hub
        .admin()
        .audit(&Default::default())
        .await
        .unwrap()
        .head
        .seq;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let client = mcp_client(&hub, &key).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..500 {
                let (err, v) = call_tool(&client, "probe", json!({"agent": "nas", "probe": "e2e.echo", "params": {"text": format!("{c}-{i}")}})).await;
                assert!(!err, "call {c}-{i}: {v}");
                assert_eq!(v["data"]["text"], format!("{c}-{i}\n"));
                ok += 1;
            }
            client.cancel().await.unwrap();
            ok
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += t.await.unwrap();
    }
    assert_eq!(answered, 4000);
    let probes: Vec<Value> = {
        let mut all = Vec::new();
        let mut before_seq = None;
        loop {
            let page = hub
                .admin()
                .audit(&sonde_admin::api::AuditQuery {
                    before_seq,
                    limit: Some(1000),
                    action: Some("probe".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            all.extend(
                page.entries
                    .iter()
                    .filter(|e| e.seq > before)
                    .map(|e| serde_json::to_value(e).unwrap()),
            );
            match page.next_before_seq {
                Some(s) if s > before => before_seq = Some(s),
                _ => break,
            }
        }
        all
    };
    assert_eq!(probes.len(), 4000);
    assert!(
        probes
            .iter()
            .all(|e| e["actor"] == format!("api-key:{prefix}") && e["outcome"] == "ok")
    );
    hub.assert_audit_ok();
}
