//! The README's first command: `sonde-hub demo`, run non-interactively, then
//! a probe through MCP with what it printed; Ctrl-C (SIGTERM) stops it
//! cleanly and a second run reuses the data dir and the key.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sonde_tests::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Demo {
    child: std::process::Child,
    url: String,
    key: String,
    output: Vec<String>,
}

fn start_demo(dir: &std::path::Path, agent_port: u16, mcp_port: u16) -> Demo {
    let mut child = Command::new(bin("sonde-hub"))
        .args(["demo", "--dir"])
        .arg(dir)
        .args([
            "--agent-port",
            &agent_port.to_string(),
            "--mcp-port",
            &mcp_port.to_string(),
        ])
        .env_remove("CARGO")
        .current_dir(dir.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading to the end, so the demo never writes into a closed pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("Press Ctrl-C");
                output.push(line);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let find = |label: &str| {
        output
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
    };
    let url = find("MCP URL").unwrap_or_else(|| panic!("no MCP URL in:\n{}", output.join("\n")));
    let key = find("API key").unwrap();
    Demo {
        child,
        url,
        key,
        output,
    }
}

fn stop(mut demo: Demo) -> i32 {
    let pid = rustix::process::Pid::from_raw(demo.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_an_mcp_client_and_restarts_cleanly() {
    let scratch = Scratch::new();
    let dir = scratch.path().join("sonde-demo");
    let (agent_port, mcp_port) = (free_port(), free_port());
    let demo = start_demo(&dir, agent_port, mcp_port);
    let text = demo.output.join("\n");
    assert!(
        text.contains("claude mcp add sonde --transport http"),
        "{text}"
    );
    assert!(text.contains("curl -s --cacert"), "{text}");
    assert!(text.contains("sonde-console -- --data"), "{text}");
    let ca = std::fs::read_to_string(dir.join("hub/ca.crt")).unwrap();
    let client = mcp_client_at(&demo.url, &ca, &demo.key).await.unwrap();
    let (err, v) = call_tool(
        &client,
        "probe",
        json!({"agent": "local", "probe": "system.uptime"}),
    )
    .await;
    assert!(!err, "{v}");
    assert!(v["data"]["uptime_seconds"].as_u64().unwrap() > 0);
    client.cancel().await.unwrap();
    // The curl line the demo printed works as printed.
    let curl_line = demo
        .output
        .iter()
        .find(|l| l.trim_start().starts_with("curl "))
        .unwrap()
        .trim()
        .to_owned();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&curl_line)
        .current_dir(dir.parent().unwrap())
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"name\":\"local\""), "curl said: {body}");
    let first_key = demo.key.clone();
    assert_eq!(stop(demo), 0);
    // Second run: same data dir, same key, agent back online.
    let demo = start_demo(&dir, agent_port, mcp_port);
    assert_eq!(demo.key, first_key);
    let client = mcp_client_at(&demo.url, &ca, &demo.key).await.unwrap();
    let (err, v) = call_tool(&client, "list_agents", json!({})).await;
    assert!(!err && v["agents"][0]["status"] == "online", "{v}");
    client.cancel().await.unwrap();
    assert_eq!(stop(demo), 0);
}
