//! The admin API calls the console is built on, against a real hub and
//! agents: quarantined agents stay listed (kept ones too) until resolved,
//! drift says which agent versions were running, probe traffic per minute,
//! the CA path for the trust line, and audit filters by agent name that
//! cover every agent that had the name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sonde_admin::api::*;
use sonde_tests::*;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_drift_versions_traffic_and_audit_by_name_for_the_console() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let admin = hub.admin();
    let status = admin.status().await.unwrap();
    assert_eq!(
        status.ca_cert_path.as_deref(),
        Some(hub.data.join("ca.crt").display().to_string().as_str()),
        "the CA path, for the NODE_EXTRA_CA_CERTS line"
    );

    let mut nas = Agent::new(&scratch, "nas1", "");
    nas.add_pack("e2e", TEST_PACK);
    nas.enroll_auto(&hub);
    nas.run();
    assert!(
        nas.wait_state(&hub, "online", T).await,
        "{}",
        nas.log_text()
    );
    hub.approve_pack("nas1", "e2e").await;
    let first_id = nas.agent_id();

    // Traffic: three answered calls and one with a bad parameter.
    for text in ["a", "b", "c"] {
        let r = admin_probe(&hub, "nas1", "e2e.echo", json!({"text": text}))
            .await
            .unwrap();
        assert!(r.ok, "{r:?}");
    }
    let bad = admin_probe(&hub, "nas1", "e2e.echo", json!({"text": 5})).await;
    assert!(bad.is_err(), "a bad parameter is an error");
    let m = admin
        .metrics(MetricsQuery { minutes: Some(5) })
        .await
        .unwrap();
    assert_eq!(m.calls.len(), 5);
    assert_eq!(m.start_ms % 60_000, 0, "whole minutes");
    let calls: u64 = m.calls.iter().sum();
    assert!(calls >= 4, "{m:?}");
    assert_eq!(m.refusals.iter().sum::<u64>(), 0, "errors are not refusals");
    let a = m
        .agents
        .iter()
        .find(|a| a.name == "nas1")
        .expect("nas1's traffic");
    assert_eq!(a.agent_id, first_id);
    assert!(a.calls.iter().sum::<u64>() >= 4);
    assert!(a.latency_ms.iter().flatten().count() >= 1, "{a:?}");
    // Bounds: a day at most, one minute at least.
    assert_eq!(
        admin
            .metrics(MetricsQuery { minutes: Some(0) })
            .await
            .unwrap()
            .calls
            .len(),
        1
    );
    assert_eq!(
        admin
            .metrics(MetricsQuery {
                minutes: Some(100_000)
            })
            .await
            .unwrap()
            .calls
            .len(),
        1440
    );

    // Drift: a new pack; the agent is quarantined and listed with its drift.
    nas.stop();
    nas.add_pack(
        "extra",
        &TEST_PACK.replace("name = \"e2e\"", "name = \"extra\""),
    );
    nas.run();
    assert!(
        nas.wait_state(&hub, "quarantined", T).await,
        "{}",
        hub.log_text()
    );
    // The quarantine is recorded before the connection's
    // `connection.accepted` entry: wait for that entry (bounded).
    let deadline = std::time::Instant::now() + T;
    let drift = loop {
        let drift = admin.drift(false).await.unwrap();
        let after = drift
            .first()
            .and_then(|d| d.agent_version.as_ref())
            .is_some_and(|v| v.after.is_some());
        if after || std::time::Instant::now() > deadline {
            break drift;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let version = admin.agent("nas1").await.unwrap().summary.agent_version;
    assert_eq!(
        drift[0].agent_version,
        Some(VersionChange {
            before: Some(version.clone()),
            after: Some(version.clone())
        }),
        "the versions of the connections around the drift"
    );
    // A probe on a quarantined agent is refused, and counted as a refusal.
    assert!(
        admin_probe(&hub, "nas1", "e2e.echo", json!({"text": "x"}))
            .await
            .is_err()
    );
    let m = admin
        .metrics(MetricsQuery { minutes: Some(5) })
        .await
        .unwrap();
    assert!(m.refusals.iter().sum::<u64>() >= 1, "{m:?}");
    let q = admin.quarantined().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].agent.name, "nas1");
    assert_eq!(q[0].drift.as_ref().unwrap().status, DriftStatus::Open);
    // Kept quarantined: no open drift any more, still listed, still releasable.
    hub.cli_ok(&["agents", "keep-quarantined", "nas1"]);
    assert!(admin.drift(false).await.unwrap().is_empty());
    let q = admin.quarantined().await.unwrap();
    assert_eq!(q.len(), 1, "a kept quarantine stays in reach");
    assert_eq!(q[0].drift.as_ref().unwrap().status, DriftStatus::Kept);
    assert!(q[0].drift.as_ref().unwrap().agent_version.is_some());
    admin.accept_baseline("nas1").await.unwrap();
    assert!(nas.wait_state(&hub, "online", T).await);
    assert!(admin.quarantined().await.unwrap().is_empty());

    // The name lives on: revoked, then a new machine enrolls as nas1.
    nas.stop();
    admin.revoke_agent("nas1").await.unwrap();
    let mut again = Agent::new(&scratch, "nas1-again", "");
    again.name = "nas1".into();
    again.enroll_auto(&hub);
    again.run();
    assert!(
        again.wait_state(&hub, "online", T).await,
        "{}",
        again.log_text()
    );
    let second_id = again.agent_id();
    assert_ne!(first_id, second_id);
    let _web = online_agent(&scratch, &hub, "web2", "").await;

    let by_name = admin
        .audit(&AuditQuery {
            agent: Some("nas1".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: BTreeSet<&str> = by_name
        .entries
        .iter()
        .filter_map(|e| e.agent.as_deref())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([first_id.as_str(), second_id.as_str()]),
        "every agent that had the name"
    );
    assert!(
        by_name.entries.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    assert_eq!(by_name.agent_names[&first_id], "nas1");
    assert_eq!(by_name.agent_names[&second_id], "nas1");
    // By id: only that agent. By prefix: names too.
    let by_id = admin
        .audit(&AuditQuery {
            agent: Some(second_id.clone()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        by_id
            .entries
            .iter()
            .all(|e| e.agent.as_deref() == Some(second_id.as_str()))
    );
    assert!(!by_id.entries.is_empty());
    let by_prefix = admin
        .audit(&AuditQuery {
            agent: Some("web*".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!by_prefix.entries.is_empty());
    assert!(
        by_prefix
            .entries
            .iter()
            .all(|e| by_prefix.agent_names[e.agent.as_deref().unwrap()] == "web2")
    );
    // Paging by name returns the same entries as one big page.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let p = admin
            .audit(&AuditQuery {
                agent: Some("nas1".into()),
                limit: Some(7),
                before_seq: before,
                ..Default::default()
            })
            .await
            .unwrap();
        paged.extend(p.entries.iter().map(|e| e.seq));
        match p.next_before_seq {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(
        paged,
        by_name.entries.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    hub.assert_audit_ok();
}
