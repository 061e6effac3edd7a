//! Hub-side integrations end to end: a real Prometheus scraping a real
//! node exporter on 127.0.0.1, with an alert rule firing into a real
//! Alertmanager; Proxmox VE and UniFi Network (which cannot run here)
//! against a local HTTPS server replaying answers in their documented
//! formats, with a self-signed certificate pinned. Everything through MCP
//! with rmcp's client, the CLI and the admin API.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sonde_tests::replay::{Replay, Route};
use sonde_tests::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// A server process killed on drop.
struct Server(Child, &'static str, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.2).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(bin: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

fn spawn(name: &'static str, dir: &Path, args: &[String]) -> Server {
    let log = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let child = Command::new(name)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Server(child, name, log)
}

async fn http_ok(url: &str) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder().build() else {
        return false;
    };
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// node exporter + Alertmanager + Prometheus (rule firing into it).
struct Stack {
    prometheus: String,
    alertmanager: String,
    _servers: Vec<Server>,
}

/// Calls a probe until `done` holds for its result (bounded by `T`).
async fn poll_probe(
    client: &McpClient,
    agent: &str,
    probe: &str,
    done: impl Fn(&Value) -> bool,
) -> (bool, Value) {
    let start = std::time::Instant::now();
    loop {
        let (_, r) = call_tool(client, "probe", json!({"agent": agent, "probe": probe})).await;
        if done(&r) {
            return (true, r);
        }
        if start.elapsed() > T {
            return (false, r);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const PLANTED: &str = "S3cretPassw0rdPlanted";

async fn start_stack(dir: &Path) -> Option<Stack> {
    for bin in [
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-node-exporter",
    ] {
        if !which(bin) {
            skip_unless_ci(&format!(
                "{bin} is not installed (apt-get install prometheus prometheus-alertmanager prometheus-node-exporter)"
            ));
            return None;
        }
    }
    let (p_node, p_am, p_prom, p_dead) = (free_port(), free_port(), free_port(), free_port());
    let mut servers = Vec::new();
    servers.push(spawn(
        "prometheus-node-exporter",
        dir,
        &[
            format!("--web.listen-address=127.0.0.1:{p_node}"),
            "--collector.disable-defaults".into(),
            "--collector.cpu".into(),
            "--collector.meminfo".into(),
            "--collector.loadavg".into(),
            // No filesystem collector: it stats every mount, and one that
            // hangs (a wedged FUSE daemon) would stall every scrape.
        ],
    ));
    std::fs::write(
        dir.join("am.yml"),
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("am-data")).unwrap();
    servers.push(spawn(
        "prometheus-alertmanager",
        dir,
        &[
            format!("--config.file={}", dir.join("am.yml").display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{p_am}"),
            "--cluster.listen-address=".into(),
        ],
    ));
    std::fs::write(
        dir.join("rules.yml"),
        format!(
            "groups:\n  - name: sonde-e2e\n    rules:\n      - alert: SondeE2EDiskFull\n        expr: vector(1)\n        labels:\n          severity: critical\n          instance: nas1\n        annotations:\n          summary: disk almost full on nas1\n          description: backup target postgres://app:{PLANTED}@db:5432/app is failing\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{p_am}']\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{p_node}']\n  - job_name: dead\n    static_configs:\n      - targets: ['127.0.0.1:{p_dead}']\n",
            dir.join("rules.yml").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("prom-data")).unwrap();
    servers.push(spawn(
        "prometheus",
        dir,
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{p_prom}"),
        ],
    ));
    let prometheus = format!("http://127.0.0.1:{p_prom}");
    let alertmanager = format!("http://127.0.0.1:{p_am}");
    let up = wait_for(T, || async {
        http_ok(&format!("{prometheus}/-/ready")).await
            && http_ok(&format!("{alertmanager}/-/ready")).await
            && http_ok(&format!("http://127.0.0.1:{p_node}/metrics")).await
    })
    .await;
    assert!(
        up,
        "the Prometheus stack did not start:\n{}",
        servers
            .iter()
            .map(|s| format!("== {}\n{}", s.1, s.log()))
            .collect::<String>()
    );
    Some(Stack {
        prometheus,
        alertmanager,
        _servers: servers,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_alertmanager_through_mcp_against_real_servers() {
    let scratch = Scratch::new();
    let Some(stack) = start_stack(scratch.path()).await else {
        return;
    };
    let hub = Hub::start(&scratch);
    // Pending until approved: invisible to MCP clients.
    let added = hub.cli_json(&[
        "integrations",
        "add",
        "prom",
        "--kind",
        "prometheus",
        "--url",
        &stack.prometheus,
        "--query",
        "node_count=count(up{job=\"node\"})",
    ]);
    assert_eq!(added["state"], "pending");
    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (_, caps) = call_tool(&client, "list_capabilities", json!({})).await;
    assert!(!caps.to_string().contains("prometheus.query"), "{caps}");
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom", "probe": "prometheus.buildinfo"}),
    )
    .await;
    assert!(err, "a pending integration is not a target: {r}");
    // The operator can test it before approving.
    let tested = hub.cli_json(&["integrations", "test", "prom"]);
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(tested["data"]["version"].is_string(), "{tested}");
    hub.cli_ok(&["integrations", "approve", "prom"]);
    hub.cli_ok(&[
        "integrations",
        "add",
        "am",
        "--kind",
        "alertmanager",
        "--url",
        &stack.alertmanager,
    ]);
    hub.cli_ok(&["integrations", "approve", "am"]);
    // A credential (Prometheus ignores it; the hub sends it as a bearer
    // token to a loopback address): stored sealed, never shown.
    let token = "prom-bearer-token-e2e-4f1d2c3b";
    let out = Command::new(bin("sonde-hub"))
        .arg("--data")
        .arg(&hub.data)
        .args(["--json", "integrations", "set-credential", "prom"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(token.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        set["credential"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("fp:")
    );

    // list_agents and list_capabilities show them like agents.
    let (_, agents) = call_tool(&client, "list_agents", json!({})).await;
    let names: Vec<&str> = agents["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["am", "prom"], "{agents}");
    let (_, caps) = call_tool(&client, "list_capabilities", json!({})).await;
    let prom = caps["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "prom")
        .unwrap()
        .clone();
    assert_eq!(prom["kind"], "integration");
    let query = prom["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "prometheus.query")
        .unwrap();
    let choices = query["params"]["properties"]["query"]["enum"]
        .as_array()
        .unwrap();
    assert!(
        choices.contains(&json!("up")) && choices.contains(&json!("node_count")),
        "{query}"
    );
    assert_eq!(prom["diagnose_categories"][0]["category"], "prometheus");
    let (_, one) = call_tool(&client, "list_capabilities", json!({"agent": "am"})).await;
    assert_eq!(one["agents"].as_array().unwrap().len(), 1);

    // Probes. Prometheus scrapes every second: the first scrape of the
    // node exporter may still be on its way (bounded wait).
    let start = std::time::Instant::now();
    let (err, r) = loop {
        let (err, r) = call_tool(
            &client,
            "probe",
            json!({"agent": "prom", "probe": "prometheus.query", "params": {"query": "up"}}),
        )
        .await;
        let scraped = r["data"]["series"]
            .as_array()
            .is_some_and(|series| series.iter().any(|s| s["metric"]["job"] == "node"));
        if err || scraped || start.elapsed() > T {
            break (err, r);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!err, "{r}");
    assert!(
        r["data"]["series"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["metric"]["job"] == "node"),
        "{r}"
    );
    assert!(r["audit_seq"].as_u64().unwrap() > 0);
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom", "probe": "prometheus.query", "params": {"query": "node_count"}}),
    )
    .await;
    assert!(!err, "the operator-approved query runs: {r}");
    assert_eq!(r["data"]["series"][0]["value"][1], "1", "{r}");
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom", "probe": "prometheus.query", "params": {"query": "count(up)"}}),
    )
    .await;
    assert!(
        err && r["error"]["code"] == "invalid_params",
        "PromQL is never taken from the caller: {r}"
    );
    // The range ends at the current whole second: right after the first
    // scrape it may hold no sample yet (bounded wait).
    let start = std::time::Instant::now();
    let (err, r) = loop {
        let (err, r) = call_tool(&client, "probe", json!({"agent": "prom", "probe": "prometheus.query_range", "params": {"query": "up", "minutes": 5, "step_seconds": 15}})).await;
        if err || r["data"]["series"][0]["values"].is_array() || start.elapsed() > T {
            break (err, r);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!err, "{r}");
    assert!(r["data"]["series"][0]["values"].is_array(), "{r}");
    // Targets: the dead one is down, a finding.
    let ok = wait_for(T, || async {
        let (_, r) = call_tool(
            &client,
            "probe",
            json!({"agent": "prom", "probe": "prometheus.targets"}),
        )
        .await;
        r["data"]["down"] == 1
            && r["data"]["targets"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["health"] == "up"))
    })
    .await;
    assert!(ok, "prometheus.targets shows one up and one down target");
    // The alert fires in Prometheus, then reaches Alertmanager.
    let (fired, last) = poll_probe(&client, "prom", "prometheus.alerts", |r| {
        r["data"]["firing"] == 1
    })
    .await;
    assert!(fired, "the rule fires: {last}");
    assert_eq!(
        last["data"]["alerts"][0]["labels"]["alertname"],
        "SondeE2EDiskFull"
    );
    // The planted secret in the answer is scrubbed, and counted.
    assert!(!last.to_string().contains(PLANTED), "{last}");
    assert!(last["redactions"].as_u64().unwrap() >= 1, "{last}");
    let (arrived, am) = poll_probe(&client, "am", "alertmanager.alerts", |r| {
        r["data"]["count"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(arrived, "the alert reaches Alertmanager: {am}");
    assert_eq!(am["data"]["by_severity"]["critical"]["count"], 1, "{am}");
    assert_eq!(
        am["data"]["by_target"]["nas1"]["alerts"][0], "SondeE2EDiskFull",
        "{am}"
    );
    assert!(!am.to_string().contains(PLANTED));
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "am", "probe": "alertmanager.silenced"}),
    )
    .await;
    assert!(!err && r["data"]["count"] == 0, "{r}");
    // diagnose runs the runbooks.
    let (err, d) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "prom", "category": "prometheus"}),
    )
    .await;
    assert!(!err, "{d}");
    assert_eq!(d["summary"]["succeeded"], 4, "{d}");
    assert!(d["findings"].to_string().contains("target"), "{d}");
    let (err, d) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "am", "category": "alertmanager"}),
    )
    .await;
    assert!(!err && d["summary"]["failed"] == 0, "{d}");
    assert!(
        d["findings"].to_string().contains("SondeE2EDiskFull"),
        "{d}"
    );
    let (err, _) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "am", "category": "zfs"}),
    )
    .await;
    assert!(err);

    // Key policy: agent scope covers integration names, probe scope and
    // denials are audited.
    let narrow = hub.api_key(&[
        "--name",
        "narrow",
        "--agents",
        "prom",
        "--probes",
        "prometheus.targets",
    ]);
    let narrow = mcp_client(&hub, &narrow).await.unwrap();
    let (_, caps) = call_tool(&narrow, "list_capabilities", json!({})).await;
    assert!(!caps.to_string().contains("alertmanager"), "{caps}");
    let (err, r) = call_tool(
        &narrow,
        "probe",
        json!({"agent": "am", "probe": "alertmanager.alerts"}),
    )
    .await;
    assert!(err && r.to_string().contains("not_found"), "{r}");
    let (err, r) = call_tool(
        &narrow,
        "probe",
        json!({"agent": "prom", "probe": "prometheus.alerts"}),
    )
    .await;
    assert!(err && r["error"]["code"] == "denied", "{r}");

    // Audit: one `probe` entry per call, target = the integration name.
    let probes: Vec<Value> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["agent"] == "prom")
        .collect();
    assert!(
        probes
            .iter()
            .any(|e| e["outcome"] == "ok" && e["probe"] == "prometheus.query")
    );
    assert!(
        probes
            .iter()
            .any(|e| e["outcome"] == "denied" && e["probe"] == "prometheus.alerts")
    );
    assert!(!hub.audit_actions("integration.approved").is_empty());
    assert!(!hub.audit_actions("integration.credential_set").is_empty());

    // Rotation: credentials still open, the key file changed.
    let key_file = hub.data.join("integrations.key");
    let before = std::fs::read(&key_file).unwrap();
    let rotated = hub.cli_json(&["integrations", "rotate-key"]);
    assert_eq!(rotated["credentials"], 1, "{rotated}");
    assert_ne!(std::fs::read(&key_file).unwrap(), before);
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom", "probe": "prometheus.buildinfo"}),
    )
    .await;
    assert!(!err, "{r}");

    // The credential is nowhere but sealed: not in any API answer, audit
    // entry, log line, or the database file.
    let listed = hub.cli_ok(&["--json", "integrations", "list"]);
    assert!(!listed.contains(token));
    let audit = serde_json::to_string(&hub.audit_entries()).unwrap();
    assert!(!audit.contains(token));
    assert!(!hub.log_text().contains(token));
    for f in ["hub.db", "hub.db-wal"] {
        let bytes = std::fs::read(hub.data.join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{f} holds the credential"
        );
    }
    // Removal.
    hub.cli_ok(&["integrations", "remove", "am"]);
    let (err, _) = call_tool(
        &client,
        "probe",
        json!({"agent": "am", "probe": "alertmanager.status"}),
    )
    .await;
    assert!(err);
    hub.assert_audit_ok();
}

fn proxmox_routes() -> HashMap<String, Route> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packs/tests/fixtures/proxmox");
    let wrap = |file: &str| Route {
        status: 200,
        body: format!(
            "{{\"data\":{}}}",
            std::fs::read_to_string(fixtures.join(file)).unwrap()
        ),
    };
    let mut r = HashMap::new();
    r.insert("/api2/json/version".into(), wrap("version.json"));
    r.insert("/api2/json/nodes".into(), wrap("resources-node.json"));
    r.insert(
        "/api2/json/cluster/resources?type=vm".into(),
        wrap("resources-vm.json"),
    );
    r.insert(
        "/api2/json/cluster/resources?type=storage".into(),
        wrap("resources-storage.json"),
    );
    r.insert(
        "/api2/json/cluster/tasks".into(),
        wrap("cluster-tasks.json"),
    );
    r.insert(
        "/api2/json/cluster/status".into(),
        wrap("cluster-status.json"),
    );
    r.insert(
        "/api2/json/cluster/ha/status/current".into(),
        wrap("ha-status-current.json"),
    );
    r.insert(
        "/api2/json/nodes/pve1/status".into(),
        Route {
            status: 200,
            body: r#"{"data":{"cpu":0.0731,"wait":0.0012,"loadavg":["0.52","0.61","0.58"],"memory":{"total":68719476736,"used":63350767616,"free":5368709120},"swap":{"total":8589934592,"used":0,"free":8589934592},"rootfs":{"total":100931731456,"used":9663676416,"avail":86114336768,"free":91268055040},"uptime":1874532,"pveversion":"pve-manager/8.2.4/faa83925c9641325","kversion":"Linux 6.8.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.8-2 (2024-06-24T09:00Z)","cpuinfo":{"model":"AMD Ryzen 9 5950X 16-Core Processor","cpus":16,"sockets":1}}}"#.into(),
        },
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmox_through_mcp_against_recorded_answers_over_pinned_tls() {
    let token = "monitor@pve!sonde=0b9a7c2e-1f3d-4e5a-8b6c-9d0e1f2a3b4c";
    let replay = Replay::start(
        proxmox_routes(),
        "authorization",
        format!("PVEAPIToken={token}"),
        false,
    )
    .await;
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    // Self-signed and not pinned: the system roots refuse it.
    hub.cli_ok(&[
        "integrations",
        "add",
        "pve-nopin",
        "--kind",
        "proxmox",
        "--url",
        &replay.url(),
    ]);
    let r = hub.cli_json(&["integrations", "test", "pve-nopin"]);
    assert_eq!(r["ok"], false);
    assert_eq!(r["error_code"], "tls", "{r}");
    // A wrong pin is refused too.
    let wrong = "00".repeat(32);
    hub.cli_ok(&[
        "integrations",
        "add",
        "pve-wrong",
        "--kind",
        "proxmox",
        "--url",
        &replay.url(),
        "--fingerprint",
        &wrong,
    ]);
    let r = hub.cli_json(&["integrations", "test", "pve-wrong"]);
    assert_eq!(r["error_code"], "tls", "{r}");
    assert!(
        replay.requests().is_empty(),
        "nothing was sent over an unverified connection"
    );
    // The right pin, with colons as Proxmox shows it.
    let fp: Vec<String> = replay
        .certs
        .leaf_sha256
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect();
    hub.cli_ok(&[
        "integrations",
        "add",
        "pve",
        "--kind",
        "proxmox",
        "--url",
        &replay.url(),
        "--fingerprint",
        &fp.join(":"),
    ]);
    let r = hub.cli_json(&["integrations", "test", "pve"]);
    assert_eq!(r["error_code"], "http_status", "no token yet: 401 {r}");
    let out = Command::new(bin("sonde-hub"))
        .arg("--data")
        .arg(&hub.data)
        .args(["integrations", "set-credential", "pve"])
        .stdin(Stdio::piped())
        .output_with_stdin(token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = hub.cli_json(&["integrations", "test", "pve"]);
    assert_eq!(r["data"]["version"], "8.2.4", "{r}");
    hub.cli_ok(&["integrations", "approve", "pve"]);

    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (err, g) = call_tool(
        &client,
        "probe",
        json!({"agent": "pve", "probe": "proxmox.guests"}),
    )
    .await;
    assert!(!err, "{g}");
    let guests = g["data"]["guests"].as_array().unwrap();
    let used: Vec<f64> = guests
        .iter()
        .map(|g| g["cpu_cores_used"].as_f64().unwrap())
        .collect();
    assert!(
        used.windows(2).all(|w| w[0] >= w[1]),
        "busiest first: {used:?}"
    );
    let (err, b) = call_tool(
        &client,
        "probe",
        json!({"agent": "pve", "probe": "proxmox.failed_backups"}),
    )
    .await;
    assert!(!err, "{b}");
    let failed = b["data"]["failed"].as_array().unwrap();
    assert!(
        failed
            .iter()
            .any(|t| t["id"] == "105" && t["status"] == "job errors"),
        "{b}"
    );
    assert!(failed.iter().all(|t| t["type"] == "vzdump"));
    let (err, t) = call_tool(
        &client,
        "probe",
        json!({"agent": "pve", "probe": "proxmox.tasks", "params": {"errors_only": true}}),
    )
    .await;
    assert!(
        !err && t["data"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] != "OK"),
        "{t}"
    );
    let (err, n) = call_tool(
        &client,
        "probe",
        json!({"agent": "pve", "probe": "proxmox.node_status", "params": {"node": "pve1"}}),
    )
    .await;
    assert!(!err && n["data"]["cpuinfo"]["cpus"] == 16, "{n}");
    // Hostile path values never leave the hub.
    let before = replay.requests().len();
    for hostile in [
        "../../access/users",
        "pve1/../..",
        "pve1?x=1",
        "%2e%2e",
        "pve1#",
        "..",
    ] {
        let (err, r) = call_tool(
            &client,
            "probe",
            json!({"agent": "pve", "probe": "proxmox.node_status", "params": {"node": hostile}}),
        )
        .await;
        assert!(
            err && r["error"]["code"] == "invalid_params",
            "{hostile}: {r}"
        );
    }
    assert_eq!(
        replay.requests().len(),
        before,
        "no request was made for a hostile value"
    );
    let (err, d) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "pve", "category": "proxmox"}),
    )
    .await;
    assert!(!err && d["summary"]["failed"] == 0, "{d}");
    assert!(d["findings"].to_string().contains("backup of 105"), "{d}");
    // Every request: GET, under /api2/json, with the token header.
    for (line, auth) in replay.requests() {
        assert!(line.starts_with("GET /api2/json/"), "{line}");
        if line.contains("/version") && auth.is_none() {
            continue;
        }
        assert_eq!(
            auth.as_deref(),
            Some(format!("PVEAPIToken={token}").as_str()),
            "{line}"
        );
    }
    let audit = serde_json::to_string(&hub.audit_entries()).unwrap();
    assert!(!audit.contains("0b9a7c2e-1f3d-4e5a-8b6c-9d0e1f2a3b4c"));
    hub.assert_audit_ok();
}

fn unifi_routes() -> HashMap<String, Route> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations/unifi/testdata");
    let file = |f: &str| Route {
        status: 200,
        body: std::fs::read_to_string(dir.join(f)).unwrap(),
    };
    let base = "/proxy/network/api/s/default/stat";
    let mut r = HashMap::new();
    for (p, f) in [
        ("sysinfo", "sysinfo.json"),
        ("device", "device.json"),
        ("sta", "sta.json"),
        ("alarm?archived=false", "alarm.json"),
        ("event?_limit=200", "event.json"),
        ("health", "health.json"),
    ] {
        r.insert(format!("{base}/{p}"), file(f));
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unifi_through_mcp_against_recorded_answers_with_a_pinned_ca() {
    let api_key = "unifi-api-key-Zx81QmPq0rStUvWx";
    let replay = Replay::start(unifi_routes(), "x-api-key", api_key.into(), true).await;
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let ca = scratch.path().join("unifi-ca.pem");
    std::fs::write(&ca, &replay.certs.ca_pem).unwrap();
    let url = format!("{}/proxy/network", replay.url());
    hub.cli_ok(&[
        "integrations",
        "add",
        "udm",
        "--kind",
        "unifi",
        "--url",
        &url,
        "--ca",
        ca.to_str().unwrap(),
    ]);
    let out = Command::new(bin("sonde-hub"))
        .arg("--data")
        .arg(&hub.data)
        .args(["integrations", "set-credential", "udm"])
        .stdin(Stdio::piped())
        .output_with_stdin(api_key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hub.cli_ok(&["integrations", "approve", "udm"]);
    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (err, d) = call_tool(
        &client,
        "probe",
        json!({"agent": "udm", "probe": "unifi.devices"}),
    )
    .await;
    assert!(!err, "{d}");
    assert_eq!(d["data"]["devices"].as_array().unwrap().len(), 3);
    assert!(
        !d.to_string().contains("x_authkey"),
        "the projection keeps only the listed fields"
    );
    assert!(
        d["data"]["findings"].to_string().contains("AP Garage"),
        "{d}"
    );
    let (err, c) = call_tool(
        &client,
        "probe",
        json!({"agent": "udm", "probe": "unifi.clients"}),
    )
    .await;
    assert!(!err && c["data"]["wireless"] == 1, "{c}");
    let (err, e) = call_tool(
        &client,
        "probe",
        json!({"agent": "udm", "probe": "unifi.events"}),
    )
    .await;
    assert!(
        !err && e["data"]["events"][0]["key"] == "EVT_GW_WANTransition",
        "{e}"
    );
    let (err, h) = call_tool(
        &client,
        "probe",
        json!({"agent": "udm", "probe": "unifi.health"}),
    )
    .await;
    assert!(!err && h["data"]["wan"]["isp_name"] == "Example ISP", "{h}");
    let (err, d) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "udm", "category": "unifi"}),
    )
    .await;
    assert!(!err && d["summary"]["succeeded"] == 3, "{d}");
    assert!(
        d["findings"].to_string().contains("EVT_AP_Lost_Contact"),
        "{d}"
    );
    for (line, auth) in replay.requests() {
        assert!(
            line.starts_with("GET /proxy/network/api/s/default/stat/"),
            "{line}"
        );
        assert_eq!(auth.as_deref(), Some(api_key));
    }
    // A CA that did not sign the server's certificate is refused.
    let other = Replay::start(HashMap::new(), "x-api-key", String::new(), true).await;
    let other_ca = scratch.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.certs.ca_pem).unwrap();
    hub.cli_ok(&[
        "integrations",
        "add",
        "udm2",
        "--kind",
        "unifi",
        "--url",
        &url,
        "--ca",
        other_ca.to_str().unwrap(),
    ]);
    let r = hub.cli_json(&["integrations", "test", "udm2"]);
    assert_eq!(r["error_code"], "tls", "{r}");
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output;
}

impl OutputWithStdin for Command {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output {
        use std::io::Write;
        let mut c = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }
}

/// A third-party integration as a publisher would write it: Prometheus'
/// build information and one label's values (a parameter filling one
/// path segment), with a runbook.
const THIRD_PARTY: &str = r#"# A publisher's read-only view of a Prometheus server.
[integration]
name = "promstatus"
version = "0.1.0"
description = "Prometheus server status (third-party, signed): build information and label values."
auth = "none"
test_probe = "buildinfo"

[[probes]]
name = "buildinfo"
description = "The server's version and build."
output = "version, revision, goVersion"
path = "/api/v1/status/buildinfo"
select = "/data"
fields = ["version", "revision", "goVersion"]
timeout_ms = 10000

[[probes]]
name = "label_values"
description = "Every value one label takes across the stored series."
output = "items: the values"
path = "/api/v1/label/{label}/values"
select = "/data"
max_items = 200
[[probes.params]]
name = "label"
type = "string"
required = true
pattern = "[a-zA-Z_][a-zA-Z0-9_]{0,63}"
description = "Label name, e.g. job"

[[runbooks]]
category = "promstatus"
description = "Which Prometheus is this, and which jobs does it scrape."
steps = [
    { probe = "promstatus.buildinfo" },
    { probe = "promstatus.label_values", params = { label = "job" } },
]
"#;

/// A publisher key for `name` (see [`Agent::publisher_key`]).
fn publisher_key(scratch: &Scratch, name: &str) -> (std::path::PathBuf, String) {
    Agent::new(scratch, name, "").publisher_key()
}

/// Writes `DIR/integration.toml` and signs it with `sonde-hub integrations sign`.
fn signed_manifest(hub: &Hub, dir: &Path, text: &str, key: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("integration.toml"), text).unwrap();
    let signed = hub.cli_json(&[
        "integrations",
        "sign",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(signed["integration"], "promstatus", "{signed}");
}

/// `integrations add NAME --url URL --manifest DIR/… --signature DIR/…`.
fn add_third_party(hub: &Hub, name: &str, url: &str, dir: &Path) -> std::process::Output {
    hub.cli(&[
        "--json",
        "integrations",
        "add",
        name,
        "--url",
        url,
        "--manifest",
        dir.join("integration.toml").to_str().unwrap(),
        "--signature",
        dir.join("integration.sig").to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_third_party_integration_through_mcp_and_bad_signatures_refused() {
    let scratch = Scratch::new();
    let Some(stack) = start_stack(scratch.path()).await else {
        return;
    };
    let (key, public) = publisher_key(&scratch, "publisher");
    let (stranger_key, _) = publisher_key(&scratch, "stranger");
    let hub = Hub::start_with(
        &scratch,
        &format!("[integrations]\npublisher_keys = [\"{public}\"]\n"),
    );
    let dir = scratch.path().join("promstatus");
    signed_manifest(&hub, &dir, THIRD_PARTY, &key);

    // Refused, each with its reason, and nothing stored.
    let refused = |out: std::process::Output, why: &str| {
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "accepted: {why}");
        assert!(text.contains(why), "{why:?} not in: {text}");
    };
    // Unsigned (the admin API; the CLI demands --signature with --manifest).
    let unsigned = hub
        .admin()
        .add_integration(&sonde_admin::api::IntegrationAdd {
            name: "unsigned".into(),
            base_url: stack.prometheus.clone(),
            manifest: Some(THIRD_PARTY.into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        unsigned
            .to_string()
            .contains("must be signed by a publisher key in [integrations] publisher_keys"),
        "{unsigned}"
    );
    // Signed by a key the hub does not trust.
    let stranger = scratch.path().join("stranger-signed");
    signed_manifest(&hub, &stranger, THIRD_PARTY, &stranger_key);
    refused(
        add_third_party(&hub, "stranger", &stack.prometheus, &stranger),
        "which is not a trusted publisher key (add it to [integrations] publisher_keys",
    );
    // Modified after signing: a probe pointed elsewhere, the old signature kept.
    let tampered = scratch.path().join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    std::fs::write(
        tampered.join("integration.toml"),
        THIRD_PARTY.replace("/api/v1/status/buildinfo", "/api/v1/status/config"),
    )
    .unwrap();
    std::fs::copy(
        dir.join("integration.sig"),
        tampered.join("integration.sig"),
    )
    .unwrap();
    refused(
        add_third_party(&hub, "tampered", &stack.prometheus, &tampered),
        "integration.toml was modified after it was signed",
    );
    // Even a comment changes what was signed.
    std::fs::write(
        tampered.join("integration.toml"),
        format!("{THIRD_PARTY}# one more line\n"),
    )
    .unwrap();
    refused(
        add_third_party(&hub, "tampered", &stack.prometheus, &tampered),
        "modified after it was signed",
    );
    // Not a signature at all.
    std::fs::write(tampered.join("integration.sig"), "not a signature").unwrap();
    refused(
        add_third_party(&hub, "tampered", &stack.prometheus, &tampered),
        "integration.sig is not valid",
    );
    // A third-party manifest cannot take a built-in kind's name.
    let builtin_name = scratch.path().join("builtin-name");
    std::fs::create_dir_all(&builtin_name).unwrap();
    std::fs::write(
        builtin_name.join("integration.toml"),
        THIRD_PARTY.replace("\"promstatus", "\"prometheus"),
    )
    .unwrap();
    let out = hub.cli(&[
        "integrations",
        "sign",
        builtin_name.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(
        add_third_party(&hub, "fake-prom", &stack.prometheus, &builtin_name),
        "cannot take the built-in name \"prometheus\"",
    );
    let listed = hub.cli_json(&["integrations", "list"]);
    assert_eq!(listed, json!([]), "nothing refused is stored");
    assert!(hub.audit_actions("integration.added").is_empty());

    // The signed one: added pending, invisible to MCP clients until approved.
    let out = add_third_party(&hub, "prom-status", &stack.prometheus, &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["state"], "pending", "{added}");
    assert_eq!(added["signed"], true, "{added}");
    assert_eq!(added["builtin"], false, "{added}");
    assert_eq!(added["kind"], "promstatus", "{added}");
    let key = hub.api_key(&["--name", "claude"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom-status", "probe": "promstatus.buildinfo"}),
    )
    .await;
    assert!(err, "pending: not a target yet: {r}");
    let tested = hub.cli_json(&["integrations", "test", "prom-status"]);
    assert_eq!(tested["ok"], true, "{tested}");
    hub.cli_ok(&["integrations", "approve", "prom-status"]);

    // Through MCP with rmcp's client.
    let (_, caps) = call_tool(
        &client,
        "list_capabilities",
        json!({"agent": "prom-status"}),
    )
    .await;
    let probes: Vec<&str> = caps["agents"][0]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        probes,
        ["promstatus.buildinfo", "promstatus.label_values"],
        "{caps}"
    );
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom-status", "probe": "promstatus.buildinfo"}),
    )
    .await;
    assert!(!err, "{r}");
    let version = r["data"]["version"].as_str().unwrap_or_default();
    assert!(
        version.split('.').count() >= 2,
        "Prometheus' own version, projected: {r}"
    );
    assert!(
        r["data"].get("branch").is_none(),
        "only the listed fields: {r}"
    );
    let seq = r["audit_seq"].as_u64().unwrap();
    // Prometheus scrapes every second: `job` holds `node` once it has.
    let ok = wait_for(T, || async {
        let (err, r) = call_tool(
            &client,
            "probe",
            json!({"agent": "prom-status", "probe": "promstatus.label_values", "params": {"label": "job"}}),
        )
        .await;
        !err && r["data"].to_string().contains("\"node\"")
    })
    .await;
    assert!(ok, "label values through the third-party probe");
    // A parameter fills one path segment and nothing else.
    let (err, r) = call_tool(
        &client,
        "probe",
        json!({"agent": "prom-status", "probe": "promstatus.label_values", "params": {"label": "../../status/config"}}),
    )
    .await;
    assert!(err && r["error"]["code"] == "invalid_params", "{r}");
    let (err, d) = call_tool(
        &client,
        "diagnose",
        json!({"agent": "prom-status", "category": "promstatus"}),
    )
    .await;
    assert!(!err && d["summary"]["failed"] == 0, "{d}");

    // Audited like any probe: target the integration, the caller's key.
    let entries: Vec<Value> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["agent"] == "prom-status")
        .collect();
    let call = entries
        .iter()
        .find(|e| e["seq"].as_u64() == Some(seq))
        .unwrap_or_else(|| panic!("no audit entry #{seq}: {entries:?}"));
    assert_eq!(call["probe"], "promstatus.buildinfo", "{call}");
    assert_eq!(call["outcome"], "ok", "{call}");
    let added = hub.audit_actions("integration.added");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["detail"]["signed"], true, "{added:?}");
    hub.assert_audit_ok();
}
