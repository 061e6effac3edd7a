//! Durability of the audit chains under load, with real processes: every
//! answer that left the agent or the hub had its audit entry committed
//! first, even when the process is killed (`kill -9`) in the middle of
//! concurrent calls (group commit must not answer before the commit); and a
//! graceful shutdown ends the hub's chain with its final checkpoint, after
//! every connection's close.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sonde_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
/// Concurrent callers.
const CLIENTS: usize = 8;
/// Answers to collect before the kill (the agent's `audit list` shows at
/// most 1,000 entries, so the whole run stays below that).
const BEFORE_KILL: usize = 250;

async fn loaded_agent(scratch: &Scratch, hub: &Hub) -> Agent {
    let mut agent = Agent::new(scratch, "busy", "max_concurrent_probes = 32");
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(hub);
    agent.run();
    assert!(
        agent.wait_state(hub, "online", T).await,
        "{}",
        agent.log_text()
    );
    hub.approve_pack("busy", "e2e").await;
    agent
}

/// Waits until `count` reaches `n` (bounded).
async fn wait_count(count: &AtomicUsize, n: usize) {
    let ok = wait_for(Duration::from_secs(120), || async {
        count.load(Ordering::SeqCst) >= n
    })
    .await;
    assert!(ok, "only {} answers in 120 s", count.load(Ordering::SeqCst));
}

fn verified_entries(agent: &Agent) -> u64 {
    let out = agent.output(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.starts_with("OK: "),
        "the agent's chain does not verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text["OK: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_under_load_keeps_every_answered_entry() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = loaded_agent(&scratch, &hub).await;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (admin, stop, answered) = (hub.admin(), Arc::clone(&stop), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            let mut cited = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                i += 1;
                let run = sonde_admin::api::ProbeRun {
                    agent: "busy".into(),
                    probe: "e2e.echo".into(),
                    params: json!({"text": format!("{c}-{i}")})
                        .as_object()
                        .cloned()
                        .unwrap(),
                };
                match admin.probe(&run).await {
                    Ok(r) if r.ok => {
                        cited.push(r.agent_audit_head.unwrap().seq);
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    // After the kill: disconnected / offline.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            cited
        }));
    }
    wait_count(&answered, BEFORE_KILL).await;
    agent.kill();
    stop.store(true, Ordering::SeqCst);
    let mut cited = Vec::new();
    for t in tasks {
        cited.extend(t.await.unwrap());
    }
    let entries = verified_entries(&agent);
    // Every answer cited the agent's chain head after its entry: that entry
    // survived the kill.
    let highest = cited.iter().copied().max().unwrap();
    assert!(
        highest <= entries,
        "an answer cited entry {highest} but only {entries} survived"
    );
    let mut distinct = cited.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), cited.len(), "one agent entry per call");
    let list = String::from_utf8_lossy(&agent.output(&["audit", "list", "--limit", "1000"]).stdout)
        .into_owned();
    assert!(
        list.matches("probe.ran").count() >= cited.len(),
        "{} answers, {} probe.ran entries",
        cited.len(),
        list.matches("probe.ran").count()
    );
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_hub_under_load_keeps_every_answered_entry() {
    let scratch = Scratch::new();
    let mut hub = Hub::start_with(&scratch, "[mcp]\nrate_limit_per_minute = 1000000\n");
    let _agent = loaded_agent(&scratch, &hub).await;
    let key = hub.api_key(&["--name", "load"]);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = mcp_client(&hub, &key).await.unwrap();
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                i += 1;
                let params = rmcp::model::CallToolRequestParams::new("probe").with_arguments(
                    json!({"agent": "busy", "probe": "e2e.echo", "params": {"text": format!("{c}-{i}")}})
                        .as_object()
                        .cloned()
                        .unwrap(),
                );
                // A call in flight when the hub dies may never be answered.
                match tokio::time::timeout(Duration::from_secs(5), client.call_tool(params)).await {
                    Ok(Ok(r)) if r.is_error != Some(true) => {
                        let v = r.structured_content.unwrap();
                        seqs.push(v["audit_seq"].as_u64().unwrap());
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Ok(r)) if !stop.load(Ordering::SeqCst) => {
                        panic!("a call failed before the kill: {r:?}")
                    }
                    // The hub is gone.
                    _ => break,
                }
            }
            seqs
        }));
    }
    wait_count(&answered, BEFORE_KILL).await;
    hub.kill();
    stop.store(true, Ordering::SeqCst);
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    hub.restart();
    hub.assert_audit_ok();
    // Every answered call's entry is in the chain, as that call.
    let admin = hub.admin();
    for seq in &seqs {
        let e = admin.audit_entry(*seq).await.unwrap().entry;
        assert_eq!(
            (e.action.as_str(), e.outcome.as_str()),
            ("probe", "ok"),
            "{e:?}"
        );
        assert_eq!(e.probe.as_deref(), Some("e2e.echo"));
    }
    let mut distinct = seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), seqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_chain_with_its_checkpoint_after_every_close() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let agent = loaded_agent(&scratch, &hub).await;
    let other = online_agent(&scratch, &hub, "other", "").await;
    for i in 0..20 {
        let r = admin_probe(&hub, "busy", "e2e.echo", json!({"text": format!("{i}")}))
            .await
            .unwrap();
        assert!(r.ok);
    }
    hub.stop();
    let report = hub.cli_json(&["audit", "verify"]);
    assert_eq!(report["ok"], true, "{report}");
    let head = report["head"]["seq"].as_u64().unwrap();
    assert_eq!(
        report["last_checkpoint"]["seq"].as_u64(),
        Some(head),
        "the final checkpoint is the last thing written: {report}"
    );
    let entries = hub.audit_entries();
    let last = entries.last().unwrap();
    assert_eq!(last["action"], "hub.stopped", "{last}");
    let closed: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["action"] == "connection.closed")
        .collect();
    for id in [agent.agent_id(), other.agent_id()] {
        assert!(
            closed.iter().any(|e| e["agent"] == id.as_str()),
            "no connection.closed for {id} before the checkpoint"
        );
    }
}
