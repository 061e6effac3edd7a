//! Load tool: probe round-trips through MCP on loopback, with real hub and
//! agent processes (the same ones the end-to-end tests use).
//!
//! `cargo run --release -p sonde-tests --bin sonde-load -- [CALLS] [CLIENTS]`
//!
//! Reports p50/p90/p99/max latency of `probe` calls from one client, then
//! throughput with CLIENTS concurrent clients, and the hub's resident memory
//! before and after. Bounded: CALLS calls per phase (default 2000), at most
//! 10 minutes in all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sonde_tests::*;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000)
        .clamp(1, 100_000);
    let clients: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(8)
        .clamp(1, 64);
    let deadline = Instant::now() + Duration::from_secs(600);
    let scratch = Scratch::new();
    let hub = Hub::start_with(&scratch, "[mcp]\nrate_limit_per_minute = 100000000\n");
    let mut agent = Agent::new(&scratch, "load", "max_concurrent_probes = 64");
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(&hub);
    agent.run();
    assert!(
        agent
            .wait_state(&hub, "online", Duration::from_secs(30))
            .await
    );
    hub.cli_ok(&["packs", "approve", "load", "e2e"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let key = hub.api_key(&["--name", "load"]);
    let rss_start = hub.rss_kib();

    // Phase 1: one client, sequential calls.
    let client = mcp_client(&hub, &key).await.unwrap();
    for _ in 0..20 {
        call_tool(
            &client,
            "probe",
            json!({"agent": "load", "probe": "e2e.echo", "params": {"text": "warm"}}),
        )
        .await;
    }
    let mut latencies = Vec::with_capacity(calls);
    let phase1 = Instant::now();
    for i in 0..calls {
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        let (err, v) = call_tool(
            &client,
            "probe",
            json!({"agent": "load", "probe": "e2e.echo", "params": {"text": format!("{i}")}}),
        )
        .await;
        assert!(!err, "{v}");
        latencies.push(t.elapsed());
    }
    let phase1_secs = phase1.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "one client, {} sequential probe calls over MCP (TLS, loopback):",
        latencies.len()
    );
    println!(
        "  latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({:.0} calls/s)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len() as f64 / phase1_secs
    );

    // Phase 2: CLIENTS clients in parallel, CALLS calls in all.
    let per_client = calls.div_ceil(clients);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = mcp_client(&hub, &key).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for i in 0..per_client {
                if Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                let (err, v) = call_tool(&client, "probe", json!({"agent": "load", "probe": "e2e.echo", "params": {"text": format!("{c}-{i}")}})).await;
                assert!(!err, "{v}");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    println!("{clients} clients, {} probe calls in parallel:", all.len());
    println!(
        "  throughput {:.0} calls/s  latency p50 {:.2} ms  p99 {:.2} ms",
        all.len() as f64 / secs,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "hub resident memory: {} KiB at start, {} KiB after {} calls",
        rss_start,
        hub.rss_kib(),
        latencies.len() + all.len()
    );
    hub.assert_audit_ok();
}
