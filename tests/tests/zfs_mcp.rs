//! The questions ZFS users ask, from a real MCP client through the real hub
//! to a real agent whose zfs pack reads the fixture dataset (its fake
//! `zfs`/`zpool` first on the agent's command path): when did a file
//! change, what was deleted, what does an old version say (scrubbed), and
//! file names that are not UTF-8 make the round trip without loss.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sonde_tests::*;

fn snap(n: u32) -> String {
    format!("autosnap_2024-01-0{n}_daily")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zfs_questions_through_mcp() {
    let scratch = Scratch::new();
    let (_fixture, extra) = zfs_fixture(&scratch);
    let hub = Hub::start(&scratch);
    let _agent = online_agent(&scratch, &hub, "nas", &extra).await;
    hub.approve_pack("nas", "zfs").await;
    let key = hub.api_key(&["--name", "claude", "--probes", "zfs.*"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let probe = |probe: &str, params: Value| {
        let client = &client;
        let args = json!({"agent": "nas", "probe": probe, "params": params});
        async move {
            let (err, v) = call_tool(client, "probe", args).await;
            assert!(!err, "{v}");
            v
        }
    };

    // "When did nginx.conf change, and which snapshots still had the old one?"
    let h = probe(
        "zfs.file_history",
        json!({"dataset": "tank/home", "path": "etc/nginx/nginx.conf"}),
    )
    .await;
    let timeline = h["data"]["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 3, "{h}");
    assert_eq!(timeline[1]["from"]["name"], snap(2));
    assert_eq!(timeline[2]["from"]["name"], snap(4));
    let before = probe(
        "zfs.read_file",
        json!({"dataset": "tank/home", "path": "etc/nginx/nginx.conf", "snapshot": snap(1)}),
    )
    .await;
    assert!(
        before["data"]["content"]
            .as_str()
            .unwrap()
            .contains("listen 80;")
    );

    // "What did I delete from tank/home?"
    let d = probe("zfs.find_deleted", json!({"dataset": "tank/home"})).await;
    let deleted: Vec<&str> = d["data"]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(deleted.contains(&"alice/notes.txt"), "{d}");

    // An old file with a secret in it: scrubbed before it left the machine.
    let notes = probe(
        "zfs.read_file",
        json!({"dataset": "tank/home", "path": "alice/notes.txt", "snapshot": snap(1)}),
    )
    .await;
    let text = notes["data"]["content"].as_str().unwrap();
    assert!(
        text.contains("buy milk") && !text.contains("hunter2"),
        "{notes}"
    );
    assert!(notes["redactions"].as_u64().unwrap() >= 1, "{notes}");

    // A name that is not UTF-8 comes back as base64 and can be sent back.
    let weird = probe(
        "zfs.list_dir",
        json!({"dataset": "tank/home", "path": "weird"}),
    )
    .await;
    let bad = weird["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].is_object())
        .unwrap_or_else(|| panic!("no base64 name in {weird}"));
    assert_eq!(bad["name"]["base64"], "YmFk/25hbWUudHh0");
    let back = probe(
        "zfs.read_file",
        json!({"dataset": "tank/home", "path": {"base64": "d2VpcmQvYmFk/25hbWUudHh0"}}),
    )
    .await;
    assert_eq!(back["data"]["content"], "invalid UTF-8 in the name\n");

    // Escaping paths are refused before the agent is asked.
    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "nas", "probe": "zfs.read_file",
               "params": {"dataset": "tank/home", "path": "../../etc/passwd"}}),
    )
    .await;
    assert!(err && v["error"]["code"] == "invalid_params", "{v}");

    // "Is my pool healthy and are snapshots still being taken?"
    let (err, v) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "nas", "category": "zfs"}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["run"], v["summary"]["succeeded"], "{v}");
    let text = v.to_string();
    assert!(
        text.contains("last scrubbed"),
        "the old scrub is a finding: {v}"
    );

    hub.assert_audit_ok();
    client.cancel().await.unwrap();
}
