//! Load tool: probe round-trips through MCP on loopback, with real hub and
//! agent processes (the same ones the end-to-end tests use).
//!
//! ```text
//! cargo run --release -p sonde-tests --bin sonde-load -- [OPTIONS]
//!   --calls N       calls per phase (default 2000)
//!   --clients N     concurrent clients in phase 2 (default 8)
//!   --probe NAME    the probe to call (default e2e.echo; system.* needs no approval)
//!   --bins DIR      binaries to measure (repeat: every DIR is measured in
//!                   the same run, side by side, the first one as baseline)
//!   --rounds N      alternate the binary sets N times (default 1)
//!   --json          print the measurements as JSON
//! ```
//!
//! For each set of binaries it starts a hub and an agent, makes an API key,
//! and measures (1) CALLS sequential `probe` calls from one client: latency
//! p50/p90/p99/max and calls/s, (2) the same number of calls from CLIENTS
//! concurrent clients: calls/s and latency, (3) the CPU time the hub (and
//! the agent) spent per call in each phase, from `/proc/<pid>/stat`, and (4)
//! the hub's resident memory at start, after each phase and after 2 s idle.
//! Every call is signed both ways and audited on both sides.
//!
//! With `--bins OLD --bins NEW`, each set runs in a child process of this
//! tool (`SONDE_BIN_DIR`), in turn, and the table shows NEW/OLD ratios.
//! Build the old commit's binaries into their own target dir first (see
//! docs/performance.md). Bounded: CALLS calls per phase, 10 minutes per
//! set of binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::{Deserialize, Serialize};
use serde_json::json;
use sonde_tests::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Options {
    calls: usize,
    clients: usize,
    probe: String,
    bins: Vec<PathBuf>,
    rounds: usize,
    json: bool,
    worker: bool,
}

fn parse_args() -> Options {
    let mut o = Options {
        calls: 2000,
        clients: 8,
        probe: "e2e.echo".into(),
        bins: Vec::new(),
        rounds: 1,
        json: false,
        worker: false,
    };
    let mut args = std::env::args().skip(1);
    let mut positional = 0;
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--calls" => o.calls = value("--calls").parse().expect("--calls N"),
            "--clients" => o.clients = value("--clients").parse().expect("--clients N"),
            "--probe" => o.probe = value("--probe"),
            "--bins" => o.bins.push(PathBuf::from(value("--bins"))),
            "--rounds" => o.rounds = value("--rounds").parse().expect("--rounds N"),
            "--json" => o.json = true,
            "--worker" => o.worker = true,
            "-h" | "--help" => {
                println!(
                    "sonde-load [--calls N] [--clients N] [--probe NAME] [--bins DIR]... [--rounds N] [--json]"
                );
                std::process::exit(0);
            }
            // The old form: CALLS [CLIENTS].
            n if n.parse::<usize>().is_ok() => {
                if positional == 0 {
                    o.calls = n.parse().unwrap();
                } else {
                    o.clients = n.parse().unwrap();
                }
                positional += 1;
            }
            other => panic!("unknown argument {other:?} (see --help)"),
        }
    }
    o.calls = o.calls.clamp(1, 100_000);
    o.clients = o.clients.clamp(1, 64);
    o.rounds = o.rounds.clamp(1, 10);
    o
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// CPU time (user + system) of a process so far, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is 3rd,
    // utime 14th and stime 15th of the whole line.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (get(11) + get(12)) * 1000.0 / ticks
}

/// One phase's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Phase {
    calls: usize,
    clients: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    calls_per_s: f64,
    hub_cpu_ms_per_call: f64,
    agent_cpu_ms_per_call: f64,
}

/// Everything measured for one set of binaries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Measurement {
    bins: String,
    probe: String,
    one: Phase,
    many: Phase,
    rss_start_kib: u64,
    rss_after_one_kib: u64,
    rss_after_many_kib: u64,
    rss_idle_kib: u64,
}

fn args_for(probe: &str, tag: &str) -> serde_json::Value {
    if probe == "e2e.echo" {
        json!({"text": tag})
    } else {
        json!({})
    }
}

async fn timed_calls(
    client: &McpClient,
    agent: &str,
    probe: &str,
    n: usize,
    tag: usize,
    deadline: Instant,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        let (err, v) = call_tool(
            client,
            "probe",
            json!({"agent": agent, "probe": probe, "params": args_for(probe, &format!("{tag}-{i}"))}),
        )
        .await;
        assert!(!err, "{v}");
        lat.push(t.elapsed());
    }
    lat
}

fn phase(mut lat: Vec<Duration>, clients: usize, secs: f64, hub_cpu: f64, agent_cpu: f64) -> Phase {
    lat.sort();
    let n = lat.len().max(1) as f64;
    Phase {
        calls: lat.len(),
        clients,
        p50_ms: percentile(&lat, 0.50),
        p90_ms: percentile(&lat, 0.90),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
        calls_per_s: lat.len() as f64 / secs,
        hub_cpu_ms_per_call: hub_cpu / n,
        agent_cpu_ms_per_call: agent_cpu / n,
    }
}

/// Measures the binaries this process uses (`SONDE_BIN_DIR` or the build).
async fn measure(o: &Options) -> Measurement {
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
            .await,
        "the agent did not come online: {}",
        agent.log_text()
    );
    if o.probe.starts_with("e2e.") {
        hub.approve_pack("load", "e2e").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let key = hub.api_key(&["--name", "load"]);
    let (hub_pid, agent_pid) = (hub.pid().unwrap(), agent.pid().unwrap());
    let client = mcp_client(&hub, &key).await.unwrap();
    timed_calls(&client, "load", &o.probe, 50, 0, deadline).await;
    let mut m = Measurement {
        bins: bin_dir().display().to_string(),
        probe: o.probe.clone(),
        rss_start_kib: hub.rss_kib(),
        ..Measurement::default()
    };

    // Phase 1: one client, sequential calls.
    let (h0, a0, t0) = (cpu_ms(hub_pid), cpu_ms(agent_pid), Instant::now());
    let lat = timed_calls(&client, "load", &o.probe, o.calls, 1, deadline).await;
    let secs = t0.elapsed().as_secs_f64();
    m.one = phase(lat, 1, secs, cpu_ms(hub_pid) - h0, cpu_ms(agent_pid) - a0);
    m.rss_after_one_kib = hub.rss_kib();

    // Phase 2: CLIENTS clients in parallel, CALLS calls in all.
    let per_client = o.calls.div_ceil(o.clients);
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        let c = mcp_client(&hub, &key).await.unwrap();
        timed_calls(&c, "load", &o.probe, 5, 0, deadline).await;
        clients.push(c);
    }
    let (h0, a0, t0) = (cpu_ms(hub_pid), cpu_ms(agent_pid), Instant::now());
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        let probe = o.probe.clone();
        tasks.push(tokio::spawn(async move {
            let lat = timed_calls(&client, "load", &probe, per_client, c + 2, deadline).await;
            (lat, client)
        }));
    }
    let mut all = Vec::new();
    let mut keep = Vec::new();
    for t in tasks {
        let (lat, client) = t.await.unwrap();
        all.extend(lat);
        keep.push(client);
    }
    let secs = t0.elapsed().as_secs_f64();
    m.many = phase(
        all,
        o.clients,
        secs,
        cpu_ms(hub_pid) - h0,
        cpu_ms(agent_pid) - a0,
    );
    m.rss_after_many_kib = hub.rss_kib();
    drop(keep);
    tokio::time::sleep(Duration::from_secs(2)).await;
    m.rss_idle_kib = hub.rss_kib();
    hub.assert_audit_ok();
    m
}

fn print_one(m: &Measurement) {
    println!("binaries: {} (probe {})", m.bins, m.probe);
    for (title, p) in [("one client", &m.one), ("clients in parallel", &m.many)] {
        println!(
            "  {} × {title}: {} calls  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  {:.0} calls/s  hub CPU {:.3} ms/call  agent CPU {:.3} ms/call",
            p.clients,
            p.calls,
            p.p50_ms,
            p.p90_ms,
            p.p99_ms,
            p.max_ms,
            p.calls_per_s,
            p.hub_cpu_ms_per_call,
            p.agent_cpu_ms_per_call
        );
    }
    println!(
        "  hub resident memory: {:.1} MiB at start, {:.1} after one client, {:.1} after {} clients, {:.1} idle 2 s later",
        m.rss_start_kib as f64 / 1024.0,
        m.rss_after_one_kib as f64 / 1024.0,
        m.rss_after_many_kib as f64 / 1024.0,
        m.many.clients,
        m.rss_idle_kib as f64 / 1024.0
    );
}

/// Runs this tool on one set of binaries in a child process.
fn measure_in_child(o: &Options, dir: &PathBuf) -> Measurement {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--worker",
            "--json",
            "--calls",
            &o.calls.to_string(),
            "--clients",
            &o.clients.to_string(),
            "--probe",
            &o.probe,
        ])
        .env("SONDE_BIN_DIR", dir)
        .env("SONDE_TEST_NO_BUILD", "1")
        .output()
        .expect("run the measuring child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "measuring {} failed:\n{text}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("unreadable measurement ({e}): {text}"))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Average of several rounds of one set of binaries.
fn average(runs: &[Measurement]) -> Measurement {
    let ph = |f: fn(&Measurement) -> &Phase| Phase {
        calls: runs.iter().map(|m| f(m).calls).sum(),
        clients: f(&runs[0]).clients,
        p50_ms: mean(runs.iter().map(|m| f(m).p50_ms)),
        p90_ms: mean(runs.iter().map(|m| f(m).p90_ms)),
        p99_ms: mean(runs.iter().map(|m| f(m).p99_ms)),
        max_ms: runs.iter().map(|m| f(m).max_ms).fold(0.0, f64::max),
        calls_per_s: mean(runs.iter().map(|m| f(m).calls_per_s)),
        hub_cpu_ms_per_call: mean(runs.iter().map(|m| f(m).hub_cpu_ms_per_call)),
        agent_cpu_ms_per_call: mean(runs.iter().map(|m| f(m).agent_cpu_ms_per_call)),
    };
    let kib = |f: fn(&Measurement) -> u64| mean(runs.iter().map(|m| f(m) as f64)) as u64;
    Measurement {
        bins: runs[0].bins.clone(),
        probe: runs[0].probe.clone(),
        one: ph(|m| &m.one),
        many: ph(|m| &m.many),
        rss_start_kib: kib(|m| m.rss_start_kib),
        rss_after_one_kib: kib(|m| m.rss_after_one_kib),
        rss_after_many_kib: kib(|m| m.rss_after_many_kib),
        rss_idle_kib: kib(|m| m.rss_idle_kib),
    }
}

/// A table row: its name, how to read it, and whether higher is better.
type Row = (&'static str, fn(&Measurement) -> f64, bool);

fn side_by_side(ms: &[Measurement]) {
    let base = &ms[0];
    let names: Vec<String> = ms
        .iter()
        .enumerate()
        .map(|(i, m)| format!("[{i}] {}", m.bins))
        .collect();
    println!("{}", names.join("\n"));
    let rows: Vec<Row> = vec![
        ("1 client p50 ms", |m| m.one.p50_ms, false),
        ("1 client p90 ms", |m| m.one.p90_ms, false),
        ("1 client p99 ms", |m| m.one.p99_ms, false),
        ("1 client calls/s", |m| m.one.calls_per_s, true),
        (
            "1 client hub CPU ms/call",
            |m| m.one.hub_cpu_ms_per_call,
            false,
        ),
        (
            "1 client agent CPU ms/call",
            |m| m.one.agent_cpu_ms_per_call,
            false,
        ),
        ("N clients calls/s", |m| m.many.calls_per_s, true),
        ("N clients p50 ms", |m| m.many.p50_ms, false),
        ("N clients p99 ms", |m| m.many.p99_ms, false),
        (
            "N clients hub CPU ms/call",
            |m| m.many.hub_cpu_ms_per_call,
            false,
        ),
        (
            "N clients agent CPU ms/call",
            |m| m.many.agent_cpu_ms_per_call,
            false,
        ),
        (
            "hub RSS start MiB",
            |m| m.rss_start_kib as f64 / 1024.0,
            false,
        ),
        (
            "hub RSS after load MiB",
            |m| m.rss_after_many_kib as f64 / 1024.0,
            false,
        ),
        (
            "hub RSS idle MiB",
            |m| m.rss_idle_kib as f64 / 1024.0,
            false,
        ),
    ];
    let mut header = format!("{:<30}", format!("(N = {})", base.many.clients));
    for i in 0..ms.len() {
        header.push_str(&format!("{:>12}", format!("[{i}]")));
    }
    for i in 1..ms.len() {
        header.push_str(&format!("{:>14}", format!("[0]/[{i}]")));
    }
    println!("{header}");
    for (name, f, higher_is_better) in rows {
        let mut line = format!("{name:<30}");
        for m in ms {
            line.push_str(&format!("{:>12.3}", f(m)));
        }
        for m in &ms[1..] {
            // "× better": old/new for costs, new/old for rates.
            let (a, b) = (f(base), f(m));
            let ratio = if higher_is_better { b / a } else { a / b };
            line.push_str(&format!("{:>13.2}×", ratio));
        }
        println!("{line}");
    }
    println!(
        "(ratios are \"times better\" than [0]: old/new for times, CPU and memory; new/old for calls/s)"
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = parse_args();
    if o.worker || o.bins.is_empty() {
        let m = measure(&o).await;
        if o.json {
            println!("{}", serde_json::to_string(&m).unwrap());
        } else {
            print_one(&m);
        }
        return;
    }
    let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); o.bins.len()];
    for round in 0..o.rounds {
        // Alternate the order so that drift in the machine's load is shared.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..o.bins.len()).collect()
        } else {
            (0..o.bins.len()).rev().collect()
        };
        for i in order {
            eprintln!("round {}: measuring {}", round + 1, o.bins[i].display());
            let m = measure_in_child(&o, &o.bins[i]);
            if !o.json {
                print_one(&m);
            }
            runs[i].push(m);
        }
    }
    let averaged: Vec<Measurement> = runs.iter().map(|r| average(r)).collect();
    if o.json {
        println!("{}", serde_json::to_string(&averaged).unwrap());
    } else {
        println!();
        side_by_side(&averaged);
    }
}
