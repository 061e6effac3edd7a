//! `sonde-hub` commands that read the database when the hub is not running
//! show the same things as the admin API (one summary function for both).
#![allow(clippy::unwrap_used)]

use sonde_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_agents_list_matches_the_admin_api_with_its_packs() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let mut agent = Agent::new(&scratch, "nas", "");
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(&hub);
    agent.run();
    assert!(
        agent
            .wait_state(&hub, "online", Duration::from_secs(30))
            .await
    );
    let online = hub.admin().agents().await.unwrap();
    let a = online.iter().find(|a| a.name == "nas").unwrap();
    assert!(a.packs_active > 0, "the system pack is active: {a:?}");
    assert!(
        a.packs_pending > 0,
        "the e2e pack waits for approval: {a:?}"
    );
    agent.stop();
    hub.stop();
    let offline: Vec<sonde_admin::api::AgentSummary> =
        serde_json::from_value(hub.cli_json(&["agents", "list"])).unwrap();
    let b = offline.iter().find(|b| b.name == "nas").unwrap();
    assert_eq!(
        (b.packs_active, b.packs_pending, b.packs_unavailable),
        (a.packs_active, a.packs_pending, a.packs_unavailable),
        "offline: {b:?}\nonline: {a:?}"
    );
    assert_eq!(b.state.as_str(), "offline");
    assert!(!b.connected);
    assert!(b.last_seen_ms.is_some());
    assert_eq!(
        (&b.id, &b.os, &b.agent_version),
        (&a.id, &a.os, &a.agent_version)
    );
}
