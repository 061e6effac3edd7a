//! The MCP endpoint driven by clients nobody here wrote (the official
//! TypeScript SDK's client, the MCP Inspector's CLI), and the protocol
//! features they exercise: output schemas and structured content,
//! annotations, progress, prompts, completion; cancellation and
//! disconnection (every accepted call audited exactly once, the probe's
//! process killed).
#![allow(clippy::unwrap_used)]

use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, ClientRequest, CompleteRequestParams, CompletionContext,
    Reference,
};
use rmcp::service::PeerRequestOptions;
use serde_json::{Value, json};
use sonde_tests::*;
use std::path::PathBuf;
use std::process::Stdio;
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

/// `tests/node`, if `npm ci` was run there and `node` is on the PATH.
fn node_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    let has_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_node || !dir.join("node_modules/@modelcontextprotocol/sdk").is_dir() {
        skip_unless_ci(
            "node or tests/node/node_modules is missing (run `cd tests/node && npm ci`)",
        );
        return None;
    }
    Some(dir)
}

/// Runs a Node program with a bounded time; (success, stdout, stderr).
async fn node(
    dir: &PathBuf,
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(dir)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the node client did not finish within 120 s")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ca_file(hub: &Hub) -> String {
    hub.data.join("ca.crt").to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_client_sees_schemas_annotations_progress_prompts_and_completion() {
    let Some(dir) = node_dir() else { return };
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "typescript"]);
    let (ok, stdout, stderr) = node(
        &dir,
        "apikey_client.mjs",
        &[],
        &[
            ("SONDE_MCP_URL", hub.run.mcp_url.clone().unwrap()),
            ("SONDE_API_KEY", key),
            ("SONDE_AGENT", "nas".into()),
            ("NODE_EXTRA_CA_CERTS", ca_file(&hub)),
        ],
    )
    .await;
    assert!(ok, "the TypeScript client failed:\n{stderr}\n{stdout}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["tools"][0], "list_agents");
    assert_eq!(summary["annotations"]["list_agents"]["readOnlyHint"], true);
    // An observe-only key (the default) cannot change anything with probe.
    assert_eq!(summary["annotations"]["probe"]["readOnlyHint"], true);
    assert_eq!(summary["annotations"]["probe"]["destructiveHint"], false);
    assert_eq!(summary["progress"].as_array().unwrap().len(), 2);
    // The calls it made are in the hub's chain, which verifies.
    let probes: Vec<Value> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["actor"].as_str().unwrap_or("").starts_with("api-key:"))
        .collect();
    assert!(probes.len() >= 3, "{probes:?}");
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_cli_lists_tools_and_calls_a_probe() {
    let Some(dir) = node_dir() else { return };
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "inspector"]);
    let url = hub.run.mcp_url.clone().unwrap();
    let auth = format!("Authorization: Bearer {key}");
    // Run from node_modules: the CLI looks for `../package.json` relative to
    // the working directory to pick its own package.json (a quirk of
    // inspector-cli 0.17.5 outside the inspector's repository).
    let dir = dir.join("node_modules");
    let cli = ".bin/mcp-inspector-cli";
    let env = [("NODE_EXTRA_CA_CERTS", ca_file(&hub))];
    let (ok, stdout, stderr) = node(
        &dir,
        cli,
        &[
            "--cli",
            &url,
            "--transport",
            "http",
            "--header",
            &auth,
            "--method",
            "tools/list",
        ],
        &env,
    )
    .await;
    assert!(ok, "inspector tools/list failed:\n{stderr}\n{stdout}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let tools = listed["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 9, "{listed}");
    assert!(tools.iter().all(|t| t["outputSchema"]["type"] == "object"));
    let (ok, stdout, stderr) = node(
        &dir,
        cli,
        &[
            "--cli",
            &url,
            "--transport",
            "http",
            "--header",
            &auth,
            "--method",
            "tools/call",
            "--tool-name",
            "probe",
            "--tool-arg",
            "agent=nas",
            "--tool-arg",
            "probe=e2e.echo",
            "--tool-arg",
            r#"params={"text":"from the inspector"}"#,
        ],
        &env,
    )
    .await;
    assert!(ok, "inspector tools/call failed:\n{stderr}\n{stdout}");
    let called: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(called["isError"], false, "{called}");
    assert_eq!(
        called["structuredContent"]["data"]["text"],
        "from the inspector\n"
    );
    // Without the key, the inspector gets nothing.
    let (ok, stdout, _) = node(
        &dir,
        cli,
        &[
            "--cli",
            &url,
            "--transport",
            "http",
            "--method",
            "tools/list",
        ],
        &env,
    )
    .await;
    assert!(!ok, "{stdout}");
}

/// Is a process named `comm` running as a child of `parent`?
fn child_running(parent: u32, comm: &str) -> bool {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten().any(|e| {
                let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                    return false;
                };
                let Some((name, rest)) =
                    stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
                else {
                    return false;
                };
                let ppid = rest.split_whitespace().nth(1);
                name == comm && ppid == Some(parent.to_string().as_str())
            })
        })
        .unwrap_or(false)
}

/// The hub's `probe` entries for `e2e.sleep`.
fn sleep_entries(hub: &Hub) -> Vec<Value> {
    hub.audit_actions("probe")
        .into_iter()
        .filter(|e| e["probe"] == "e2e.sleep")
        .collect()
}

fn sleep_call() -> CallToolRequestParams {
    CallToolRequestParams::new("probe").with_arguments(
        json!({"agent": "nas", "probe": "e2e.sleep", "params": {"seconds": 25}})
            .as_object()
            .cloned()
            .unwrap(),
    )
}

/// After the caller gave up: one `cancelled` entry for the call, the
/// agent's `sleep` killed, and the kill recorded on both sides.
async fn assert_cancelled_once(hub: &Hub, agent: &Agent) {
    let pid = agent.pid().unwrap();
    assert!(
        wait_until(T, || !child_running(pid, "sleep")),
        "the probe's process is still running"
    );
    assert!(
        wait_until(T, || !hub.audit_actions("probe.stopped").is_empty()),
        "the hub never recorded that the agent stopped the probe"
    );
    // Give a late reply every chance to (wrongly) add a second entry.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let entries = sleep_entries(hub);
    assert_eq!(entries.len(), 1, "exactly one entry per call: {entries:?}");
    assert_eq!(entries[0]["outcome"], "cancelled", "{entries:?}");
    assert_eq!(entries[0]["detail"]["cancel_sent_to_agent"], true);
    let out = agent.output(&["audit", "list", "--limit", "200"]);
    let agent_audit = String::from_utf8_lossy(&out.stdout);
    assert!(agent_audit.contains("probe.cancel"), "{agent_audit}");
    assert!(agent_audit.contains("cancelled"), "{agent_audit}");
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_audited_exactly_once_and_its_process_is_killed() {
    let scratch = Scratch::new();
    let (hub, agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "canceller"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let handle = client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(sleep_call())),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let pid = agent.pid().unwrap();
    assert!(
        wait_until(T, || child_running(pid, "sleep")),
        "the probe never started"
    );
    handle
        .cancel(Some("the user pressed stop".into()))
        .await
        .unwrap();
    assert_cancelled_once(&hub, &agent).await;
    // The session is still usable after a cancellation.
    let (err, v) = call_tool(&client, "list_agents", json!({})).await;
    assert!(!err, "{v}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_call_is_audited_exactly_once() {
    let scratch = Scratch::new();
    let (hub, agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "leaver"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let peer = client.peer().clone();
    let call = tokio::spawn(async move { peer.call_tool(sleep_call()).await });
    let pid = agent.pid().unwrap();
    assert!(
        wait_until(T, || child_running(pid, "sleep")),
        "the probe never started"
    );
    // Closing the session (DELETE, then the connection) mid-call.
    client.cancel().await.unwrap();
    let _ = call.await;
    assert_cancelled_once(&hub, &agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_and_prompts_never_offer_what_the_key_cannot_see() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let mut other = Agent::new(&scratch, "secret-box", "");
    other.add_pack("e2e", TEST_PACK);
    other.enroll_auto(&hub);
    other.run();
    assert!(other.wait_state(&hub, "online", T).await);
    hub.approve_pack("secret-box", "e2e").await;

    let complete = |client: &McpClient, arg: &str, value: &str, agent: Option<&str>| {
        let mut params = CompleteRequestParams::new(
            Reference::for_prompt("explain-probe"),
            ArgumentInfo::new(arg, value),
        );
        if let Some(a) = agent {
            params.context = Some(CompletionContext::with_arguments(
                [("agent".to_owned(), a.to_owned())].into(),
            ));
        }
        let peer = client.peer().clone();
        async move { peer.complete(params).await.unwrap().completion.values }
    };

    let all = hub.api_key(&["--name", "all", "--max-capability", "interact"]);
    let client = mcp_client(&hub, &all).await.unwrap();
    // Annotations true for this key: with `interact`, probe may change things.
    let tools = client.list_all_tools().await.unwrap();
    let probe = tools.iter().find(|t| t.name == "probe").unwrap();
    let hints = probe.annotations.as_ref().unwrap();
    assert_eq!(hints.read_only_hint, Some(false));
    assert_eq!(hints.destructive_hint, Some(true));
    assert_eq!(
        complete(&client, "agent", "", None).await,
        ["nas", "secret-box"]
    );
    assert_eq!(complete(&client, "agent", "s", None).await, ["secret-box"]);
    let probes = complete(&client, "probe", "e2e.", Some("nas")).await;
    assert!(probes.contains(&"e2e.echo".to_owned()), "{probes:?}");
    assert!(
        !probes.contains(&"e2e.restart".to_owned()),
        "above the agent's ceiling: {probes:?}"
    );
    client.cancel().await.unwrap();

    let narrow = hub.api_key(&[
        "--name", "narrow", "--agents", "nas", "--probes", "e2e.echo",
    ]);
    let client = mcp_client(&hub, &narrow).await.unwrap();
    assert_eq!(complete(&client, "agent", "", None).await, ["nas"]);
    assert_eq!(
        complete(&client, "probe", "", Some("nas")).await,
        ["e2e.echo"]
    );
    assert!(
        complete(&client, "probe", "", Some("secret-box"))
            .await
            .is_empty(),
        "an agent outside the key's scope completes to nothing"
    );
    assert!(
        complete(&client, "dataset", "", Some("nas"))
            .await
            .is_empty(),
        "no zfs probe in scope, no datasets"
    );
    // Prompts: a per-category prompt needs a runbook step the key may run
    // (e2e's runbook runs e2e.echo); getting a prompt for an agent outside
    // the scope is refused.
    let prompts = client.peer().list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"investigate-zfs-pool"), "{names:?}");
    assert!(names.contains(&"diagnose-e2e"), "{names:?}");
    let refused = client
        .peer()
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("service-failing").with_arguments(
                json!({"agent": "secret-box", "service": "x"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    client.cancel().await.unwrap();
}

/// The hub CA's SHA-256 (what `--hub-ca-sha256` pins).
fn ca_fingerprint(hub: &Hub) -> String {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(hub.ca_pem().as_bytes()).unwrap();
    sonde_protocol::Digest::of(&der).to_hex()
}

/// A key file only its owner may read.
fn key_file(scratch: &Scratch, key: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.path().join("bridge.key");
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `sonde-mcp-bridge` with `args`, stdin/stdout piped, stderr captured.
fn bridge(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(bin_dir().join("sonde-mcp-bridge"));
    cmd.args(args)
        .env_remove("SONDE_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// An rmcp client over the bridge's stdio.
async fn stdio_client(child: &mut tokio::process::Child) -> anyhow::Result<McpClient> {
    use rmcp::ServiceExt;
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    Ok(().serve((stdout, stdin)).await?)
}

async fn stderr_of(mut child: tokio::process::Child) -> (Option<i32>, String) {
    use tokio::io::AsyncReadExt;
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    (status.code(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_bridge_relays_tools_progress_and_a_probe_with_the_hub_ca_pinned() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "desktop"]);
    let file = key_file(&scratch, &key);
    let url = hub.run.mcp_url.clone().unwrap();
    let pin = ca_fingerprint(&hub);
    let mut child = bridge(
        &[
            "--hub-url",
            &url,
            "--hub-ca-sha256",
            &pin,
            "--key-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let client = stdio_client(&mut child).await.unwrap();
    assert_eq!(
        client
            .peer_info()
            .unwrap()
            .server_info
            .as_ref()
            .unwrap()
            .name,
        "sonde-hub"
    );
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 9);
    assert!(tools.iter().all(|t| t.output_schema.is_some()));
    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "e2e.echo", "params": {"text": "over stdio"}}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["data"]["text"], "over stdio\n");
    // A streamed answer (progress, then the result) passes through whole.
    let (err, v) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "nas", "category": "e2e"}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["succeeded"], 2);
    let prompts = client.peer().list_all_prompts().await.unwrap();
    assert!(prompts.iter().any(|p| p.name == "service-failing"));
    // The client goes away: the bridge ends the session and exits cleanly.
    client.cancel().await.unwrap();
    let (code, stderr) = stderr_of(child).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(&key), "the key never reaches the log");
    let entries = hub.audit_actions("probe");
    assert!(
        entries
            .iter()
            .any(|e| e["probe"] == "e2e.echo" && e["outcome"] == "ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_fails_closed_on_a_wrong_ca_fingerprint_and_never_takes_the_key_from_argv() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "desktop"]);
    let url = hub.run.mcp_url.clone().unwrap();
    // A wrong pin: the handshake fails, nothing is sent, the client gets
    // an error that says why.
    let wrong = "00".repeat(32);
    let mut child = bridge(
        &["--hub-url", &url, "--hub-ca-sha256", &wrong],
        &[("SONDE_API_KEY", &key)],
    );
    assert!(
        stdio_client(&mut child).await.is_err(),
        "initialize must fail"
    );
    drop(child.stdin.take());
    let (_, stderr) = stderr_of(child).await;
    assert!(
        stderr.contains("does not match --hub-ca-sha256"),
        "{stderr}"
    );
    assert!(
        hub.audit_actions("mcp.auth_failed").is_empty(),
        "the key was never presented to anyone"
    );
    // No pin at all for https: refused before connecting.
    let child = bridge(&["--hub-url", &url], &[("SONDE_API_KEY", &key)]);
    let (code, stderr) = stderr_of(child).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--hub-ca-sha256 is required"), "{stderr}");
    // The key on the command line: refused, and not echoed.
    let pin = ca_fingerprint(&hub);
    for args in [
        vec![
            "--hub-url",
            url.as_str(),
            "--hub-ca-sha256",
            pin.as_str(),
            key.as_str(),
        ],
        vec![
            "--hub-url",
            url.as_str(),
            "--hub-ca-sha256",
            pin.as_str(),
            "--key",
            key.as_str(),
        ],
    ] {
        let child = bridge(&args, &[]);
        let (code, stderr) = stderr_of(child).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(!stderr.contains(&key[10..]), "the key was echoed: {stderr}");
        assert!(stderr.contains("SONDE_API_KEY"), "{stderr}");
    }
    // A key file others can read is refused.
    let file = key_file(&scratch, &key);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let child = bridge(
        &[
            "--hub-url",
            &url,
            "--hub-ca-sha256",
            &pin,
            "--key-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let (code, stderr) = stderr_of(child).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // The environment works; a bad key gets the hub's own 401 message.
    let mut child = bridge(
        &["--hub-url", &url, "--hub-ca-sha256", &pin],
        &[(
            "SONDE_API_KEY",
            "sonde_sk_00000000_0000000000000000000000000000000000000000",
        )],
    );
    let err = stdio_client(&mut child).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("not valid") || format!("{err:?}").contains("not valid"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_cli_drives_the_stdio_bridge() {
    let Some(dir) = node_dir() else { return };
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let key = hub.api_key(&["--name", "inspector-stdio"]);
    let file = key_file(&scratch, &key);
    let url = hub.run.mcp_url.clone().unwrap();
    let pin = ca_fingerprint(&hub);
    let bridge = bin_dir().join("sonde-mcp-bridge");
    let bridge = bridge.to_str().unwrap();
    // The inspector's stdio mode starts the bridge itself; the bridge's own
    // options go after `--` (see the cwd note in the HTTP test).
    let dir = dir.join("node_modules");
    let cli = "@modelcontextprotocol/inspector-cli/build/index.js";
    let run = |method: Vec<&'static str>| {
        let mut args = vec![bridge];
        args.extend(method);
        args.extend([
            "--",
            "--hub-url",
            url.as_str(),
            "--hub-ca-sha256",
            pin.as_str(),
            "--key-file",
            file.to_str().unwrap(),
        ]);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let dir = dir.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            node(&dir, cli, &args, &[]).await
        }
    };
    let (ok, stdout, stderr) = run(vec!["--method", "tools/list"]).await;
    assert!(ok, "inspector over the bridge failed:\n{stderr}\n{stdout}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["tools"].as_array().unwrap().len(), 9, "{listed}");
    let (ok, stdout, stderr) = run(vec![
        "--method",
        "tools/call",
        "--tool-name",
        "probe",
        "--tool-arg",
        "agent=nas",
        "--tool-arg",
        "probe=e2e.echo",
        "--tool-arg",
        r#"params={"text":"inspector over stdio"}"#,
    ])
    .await;
    assert!(ok, "{stderr}\n{stdout}");
    let called: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        called["structuredContent"]["data"]["text"], "inspector over stdio\n",
        "{called}"
    );
}
