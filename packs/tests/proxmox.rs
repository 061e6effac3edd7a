//! The proxmox pack against recorded `pvesh get … --output-format json`
//! answers in the documented Proxmox VE API formats (fixtures/proxmox, see
//! fixtures/README.md): Proxmox VE cannot run on the development machine.
//! A recording runner answers each checked argv from a fixture; the
//! guarantee test sweeps every probe × example × hostile value and proves
//! no argv but `pvesh get <table path> … --output-format json` is ever
//! built.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Map, Value, json};
use sonde_packs::ProbeError;
use sonde_packs::exec::{Argv, ExecOutput, SystemRunner};
use sonde_packs::proxmox::pvesh;
use sonde_packs::testing::RecordingRunner;
use sonde_protocol::schema::{ParamKind, validate};
use std::collections::BTreeSet;
use std::time::Duration;

fn args_of(argv: &Argv) -> Vec<String> {
    argv.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn ok(rel: &str) -> ExecOutput {
    ExecOutput {
        code: Some(0),
        stdout: support::fixture(&format!("proxmox/{rel}")),
        ..Default::default()
    }
}

fn api_error(rel: &str) -> ExecOutput {
    ExecOutput {
        code: Some(255),
        stderr: support::fixture(&format!("proxmox/{rel}")),
        ..Default::default()
    }
}

/// The recorded cluster: `homelab`, nodes pve1 (local), pve2, pve3 (down);
/// Ceph present unless `ceph` is false.
fn recorded(ceph: bool) -> impl Fn(&Argv) -> ExecOutput + Send + Sync + 'static {
    move |argv: &Argv| {
        let a = args_of(argv);
        assert_eq!(argv.program, "pvesh");
        let opt = |name: &str| a.iter().position(|x| x == name).map(|i| a[i + 1].clone());
        match a[1].as_str() {
            "/version" => ok("version.json"),
            "/cluster/status" => ok("cluster-status.json"),
            "/cluster/resources" => match opt("--type").as_deref() {
                Some("vm") => ok("resources-vm.json"),
                Some("node") => ok("resources-node.json"),
                Some("storage") => ok("resources-storage.json"),
                other => panic!("unrecorded resources type {other:?}"),
            },
            "/cluster/ha/status/current" => ok("ha-status-current.json"),
            "/cluster/ha/resources" => ok("ha-resources.json"),
            "/cluster/tasks" => ok("cluster-tasks.json"),
            "/cluster/ceph/status" if ceph => ok("ceph-status.json"),
            "/cluster/ceph/status" => api_error("ceph-not-installed.stderr"),
            "/nodes/pve1/tasks" => ok("node-pve1-tasks-errors.json"),
            p if p.starts_with("/nodes/pve1/tasks/UPID:pve1:0002B1C4:") => ok("task-log-105.json"),
            "/nodes/pve1/qemu/100/config" => ok("qemu-100-config.json"),
            "/nodes/pve1/qemu/100/pending" => ok("qemu-100-pending.json"),
            "/nodes/pve1/qemu/100/snapshot" => ok("qemu-100-snapshot.json"),
            "/nodes/pve1/lxc/101/config" => ok("lxc-101-config.json"),
            "/nodes/pve1/lxc/101/pending" => ok("lxc-101-pending.json"),
            "/nodes/pve1/lxc/101/snapshot" => ok("lxc-101-snapshot.json"),
            _ => api_error("config-missing.stderr"),
        }
    }
}

fn run_on(
    runner: &RecordingRunner,
    probe: &str,
    params: &Map<String, Value>,
) -> Result<Value, ProbeError> {
    let def = support::pack("proxmox");
    support::run_with(
        &def,
        probe,
        params,
        &Value::Null,
        runner,
        Duration::from_secs(10),
    )
    .map(|o| o.data)
}

fn run(probe: &str, params: Value) -> (Result<Value, ProbeError>, Vec<Vec<String>>) {
    let runner = RecordingRunner::replying(recorded(true));
    let r = run_on(&runner, probe, params.as_object().unwrap());
    (r, runner.calls().iter().map(args_of).collect())
}

fn messages(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn has(v: &Value, severity: &str, needle: &str) -> bool {
    messages(v)
        .iter()
        .any(|(s, m)| s == severity && m.contains(needle))
}

#[test]
fn cluster_nodes_and_quorum() {
    let (r, calls) = run("cluster.status", json!({}));
    let v = r.unwrap();
    assert_eq!(v["pve_version"], "8.2.4");
    assert_eq!(v["cluster"]["name"], "homelab");
    assert_eq!(v["cluster"]["quorate"], true);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["name"], "pve1");
    assert_eq!(nodes[0]["local"], true);
    assert_eq!(nodes[0]["mem_percent"], 92.2);
    assert_eq!(nodes[2]["online"], false);
    assert!(has(&v, "warning", "node pve3 is offline"), "{v}");
    assert!(
        has(&v, "warning", "node pve1 uses 92.2% of its memory"),
        "{v}"
    );
    assert!(!has(&v, "critical", "quorum"));
    for c in &calls {
        assert_eq!(c[0], "get");
        assert_eq!(&c[c.len() - 2..], ["--output-format", "json"]);
    }
}

#[test]
fn guests_with_state_resources_and_locks() {
    let (r, _) = run("guests.list", json!({}));
    let v = r.unwrap();
    // The template (104) and the pool entry are left out.
    assert_eq!(
        v["counts"],
        json!({"guests": 6, "vms": 4, "containers": 2, "running": 3, "stopped": 2, "locked": 2})
    );
    let ha = &v["guests"][0];
    assert_eq!(ha["vmid"], 100);
    assert_eq!(ha["name"], "homeassistant");
    assert_eq!(ha["mem_percent"], 62.5);
    assert_eq!(
        ha["disk_percent"],
        Value::Null,
        "a VM's disk use is unknown without the guest agent"
    );
    assert_eq!(ha["tags"], json!(["home", "prod"]));
    let pihole = &v["guests"][1];
    assert_eq!(pihole["type"], "lxc");
    assert_eq!(pihole["disk_percent"], 92.5);
    assert!(
        has(
            &v,
            "warning",
            "container 101 (pihole) on pve1: root disk 92.5% full"
        ),
        "{v}"
    );
    assert!(has(
        &v,
        "warning",
        "VM 102 (nextcloud) on pve2 is locked (backup)"
    ));
    assert!(has(
        &v,
        "critical",
        "VM 105 (plex) on pve1 is in HA state error"
    ));
    assert!(has(
        &v,
        "warning",
        "container 106 (unifi) on pve3: state unknown"
    ));

    let (r, _) = run(
        "guests.list",
        json!({"type": "qemu", "status": "stopped", "templates": true}),
    );
    let ids: Vec<u64> = r.unwrap()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["vmid"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [102, 104, 105]);

    let (r, _) = run("guests.locks", json!({}));
    let v = r.unwrap();
    assert_eq!(v["count"], 2);
    let locked = v["locked"].as_array().unwrap();
    // 102's backup lock is held by the running vzdump on pve2; 103's
    // migrate lock by nothing: stale.
    assert_eq!(locked[0]["vmid"], 102);
    assert_eq!(locked[0]["held_by_task"]["type"], "vzdump");
    assert_eq!(locked[1]["vmid"], 103);
    assert_eq!(locked[1]["held_by_task"], Value::Null);
    let m = messages(&v);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].1
            .contains("VM 103 (gitea) on pve2 is locked (migrate) and no task of it runs")
    );
    assert!(m[0].1.contains("`qm unlock 103` on pve2"));
}

#[test]
fn configs_are_scrubbed_with_disks_pending_changes_and_snapshots() {
    let (r, calls) = run("guest.config", json!({"vmid": 100}));
    let v = r.unwrap();
    assert!(calls.contains(&vec![
        "get".into(),
        "/nodes/pve1/qemu/100/config".into(),
        "--current".into(),
        "1".into(),
        "--output-format".into(),
        "json".into()
    ]));
    let text = v.to_string();
    for secret in [
        "S3cr3tMqttPass!",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("REDACTED"), "{text}");
    assert_eq!(v["config"]["digest"], Value::Null);
    assert_eq!(v["config"]["cores"], 4);
    let disks = v["disks"].as_array().unwrap();
    let scsi1 = disks.iter().find(|d| d["key"] == "scsi1").unwrap();
    assert_eq!(scsi1["backup"], false);
    assert_eq!(scsi1["size"], "200G");
    assert!(has(
        &v,
        "info",
        "disk scsi1 (local-zfs:vm-100-disk-2) is excluded from backups"
    ));
    assert!(
        !messages(&v).iter().any(|(_, m)| m.contains("ide2")),
        "a CD drive is no backup finding"
    );
    let pending = v["pending"].as_array().unwrap();
    let keys: Vec<&str> = pending.iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["cores", "memory", "balloon"]);
    assert!(has(&v, "info", "3 pending configuration change(s)"));
    let snaps = v["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2, "`current` is not a snapshot");
    assert_eq!(snaps[0]["with_ram"], true);
    assert!(has(&v, "info", "snapshot pre_upgrade is"), "{v}");

    let (r, _) = run("guest.config", json!({"vmid": 101, "pending": false}));
    let v = r.unwrap();
    assert_eq!(v["guest"]["type"], "lxc");
    assert_eq!(v["pending"], Value::Null);
    let mp0 = v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "mp0")
        .unwrap()
        .clone();
    assert_eq!(mp0["mountpoint"], "/etc/pihole");
    assert_eq!(v["snapshots"], json!([]));

    let (r, _) = run("guest.config", json!({"vmid": 999}));
    assert!(
        matches!(r, Err(ProbeError::NotFound(ref m)) if m.contains("no VM or container 999")),
        "{r:?}"
    );
}

#[test]
fn failed_backups_come_first() {
    let (r, _) = run("tasks.recent", json!({}));
    let v = r.unwrap();
    assert_eq!(
        v["counts"],
        json!({"tasks": 7, "failed_backups": 2, "failed": 1, "warnings": 1, "running": 1, "ok": 2})
    );
    let outcomes: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "failed_backup",
            "failed_backup",
            "failed",
            "warnings",
            "running",
            "ok",
            "ok"
        ]
    );
    // Newest failed backup first.
    assert_eq!(v["tasks"][0]["id"], "105");
    assert_eq!(v["tasks"][0]["what"], "backup");
    assert_eq!(v["tasks"][0]["started"], "2026-12-01 02:00:00Z");
    assert_eq!(v["tasks"][0]["duration_s"], 95);
    assert!(has(
        &v,
        "critical",
        "backup of guest 105 on pve1 failed (2026-12-01 02:00:00Z): job errors"
    ));
    assert!(has(&v, "critical", "backup of guest 102 on pve2 failed"));
    assert!(has(
        &v,
        "warning",
        "qmstart task of guest 105 on pve1 failed"
    ));

    let (r, _) = run("tasks.recent", json!({"errors_only": true, "limit": 2}));
    let v = r.unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(v["counts"]["tasks"], 4);

    let (r, calls) = run(
        "tasks.recent",
        json!({"node": "pve1", "type": "vzdump", "errors_only": true}),
    );
    let v = r.unwrap();
    assert_eq!(
        calls[0],
        [
            "get",
            "/nodes/pve1/tasks",
            "--limit",
            "50",
            "--source",
            "all",
            "--errors",
            "1",
            "--typefilter",
            "vzdump",
            "--output-format",
            "json"
        ]
    );
    assert_eq!(v["counts"]["failed_backups"], 1);
    assert_eq!(v["tasks"][0]["node"], "pve1");

    let upid = v["tasks"][0]["upid"].as_str().unwrap().to_owned();
    let (r, calls) = run("task.log", json!({"upid": upid}));
    let v = r.unwrap();
    assert_eq!(calls[0][1], format!("/nodes/pve1/tasks/{upid}/log"));
    assert_eq!(v["count"], 11);
    assert!(has(&v, "critical", "storage 'pbs' is not online"), "{v}");
    // What leaves the machine: the agent scrubs the whole result.
    let mut sent = v.clone();
    sonde_packs::SecretGuard::standard().scrub_value(&mut sent);
    assert!(!sent.to_string().contains("hunter2hunter2"), "{sent}");
}

#[test]
fn ha_storage_and_ceph() {
    let (r, _) = run("ha.status", json!({}));
    let v = r.unwrap();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["master"]["node"], "pve1");
    assert_eq!(v["services"].as_array().unwrap().len(), 2);
    assert_eq!(v["services"][0]["group"], "prefer-pve1");
    assert!(has(
        &v,
        "critical",
        "HA service vm:105 on pve1 is in state error"
    ));
    assert!(has(
        &v,
        "warning",
        "HA LRM on pve3: pve3 (old timestamp - dead?"
    ));
    assert!(!has(&v, "critical", "quorum"));

    let (r, _) = run("storage.usage", json!({}));
    let v = r.unwrap();
    let names: Vec<&str> = v["storages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["local-zfs", "pbs", "local", "local-lvm", "nas-nfs"],
        "fullest first"
    );
    assert_eq!(v["storages"][0]["used_percent"], 95.6);
    assert!(has(
        &v,
        "critical",
        "storage local-zfs on pve1 is 95.6% full"
    ));
    assert!(has(&v, "warning", "storage pbs on pve1 is 82.5% full"));
    assert!(has(&v, "warning", "storage nas-nfs on pve2 is unknown"));
    let (r, _) = run("storage.usage", json!({"node": "pve2"}));
    assert_eq!(r.unwrap()["count"], 2);

    let (r, _) = run("ceph.status", json!({}));
    let v = r.unwrap();
    assert_eq!(v["present"], true);
    assert_eq!(v["health"], "HEALTH_WARN");
    assert_eq!(v["osds"], json!({"total": 6.0, "up": 5.0, "in": 6.0}));
    assert_eq!(v["monitors"]["count"], 3);
    assert!(has(&v, "warning", "Ceph OSD_DOWN: 1 osds down"));
    assert!(has(&v, "warning", "1 of 6 Ceph OSDs are down"));
    assert!(has(
        &v,
        "warning",
        "21 placement groups are not active+clean"
    ));

    let runner = RecordingRunner::replying(recorded(false));
    let v = run_on(&runner, "ceph.status", &Map::new()).unwrap();
    assert_eq!(v["present"], false);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("binary not installed")
    );
}

#[test]
fn absent_unprivileged_or_silent_pvesh_is_a_clear_error() {
    // No Proxmox VE here: the real runner finds no pvesh.
    let r = support::run_real("proxmox", "cluster.status", json!({}), Value::Null);
    assert!(
        matches!(r, Err(ProbeError::Unsupported(ref m)) if m.contains("not a Proxmox VE node")),
        "{r:?}"
    );
    let _ = SystemRunner::default();
    let not_root = RecordingRunner::replying(|_| api_error("not-root.stderr"));
    let r = run_on(&not_root, "guests.list", &Map::new());
    assert!(
        matches!(r, Err(ProbeError::Denied(ref m)) if m.contains("needs root")),
        "{r:?}"
    );
    let silent = RecordingRunner::replying(|_| ExecOutput {
        timed_out: true,
        ..Default::default()
    });
    let r = run_on(&silent, "storage.usage", &Map::new());
    assert!(
        matches!(r, Err(ProbeError::Failed(ref m)) if m.contains("did not finish")),
        "{r:?}"
    );
    let garbage = RecordingRunner::replying(|_| ExecOutput {
        code: Some(0),
        stdout: b"<html>".to_vec(),
        ..Default::default()
    });
    let r = run_on(&garbage, "ha.status", &Map::new());
    assert!(
        matches!(r, Err(ProbeError::Failed(ref m)) if m.contains("did not answer JSON")),
        "{r:?}"
    );
}

// ---- guarantee: no mutating verb or path is reachable ----

const HOSTILE: &[&str] = &[
    "",
    "pve1",
    "../../etc",
    "/nodes/pve1/qemu/100/status/stop",
    "x/../../access",
    "pve1/qemu/100/status/start",
    "set",
    "create",
    "delete",
    "--output-format",
    "-1",
    "100 --delete 1",
    "vm\n--type",
    "*",
    "pve1;reboot",
    "$(reboot)",
    "`id`",
    "%2e%2e",
    "UPID:pve1:1:1:1:vzdump:105:root@pam:/../../status/stop",
    "UPID:pve1:0002B1C4:00A3F1D2:6925A1C0:vzdump:105:root@pam:",
    "UPID:x:1:1:1:qmstop:100:root@pam:",
    "qemu",
    "lxc",
    "vzdump",
];

fn hostile_values(spec: &sonde_protocol::schema::ParamSpec) -> Vec<Value> {
    match &spec.kind {
        ParamKind::Integer { min, max } => [*min, *max, 0, -1, 1, 100, 101, 999]
            .into_iter()
            .map(|n| json!(n))
            .collect(),
        ParamKind::Boolean => vec![json!(true), json!(false)],
        ParamKind::String {
            values: Some(values),
            ..
        } => values
            .iter()
            .map(|v| json!(v))
            .chain(HOSTILE.iter().map(|h| json!(h)))
            .collect(),
        _ => HOSTILE.iter().map(|h| json!(h)).collect(),
    }
}

#[test]
fn no_mutating_proxmox_call_is_reachable() {
    let def = support::pack("proxmox");
    let mut calls = Vec::new();
    for ceph in [true, false] {
        let runner = RecordingRunner::replying(recorded(ceph));
        for probe in &def.manifest.probes {
            let mut sets: Vec<Map<String, Value>> = probe.examples.clone();
            for base in &probe.examples {
                for p in &probe.params {
                    for v in hostile_values(p) {
                        let mut m = base.clone();
                        m.insert(p.name.clone(), v);
                        sets.push(m);
                    }
                }
            }
            for params in sets {
                // Values the schema refuses never reach the handler.
                let Ok(validated) = validate(&probe.params, &params) else {
                    continue;
                };
                let ctx = sonde_packs::handler::ProbeContext {
                    deadline: std::time::Instant::now() + Duration::from_secs(10),
                    runner: &runner,
                    settings: &Value::Null,
                    secrets: &sonde_packs::SecretGuard::standard(),
                };
                let _ = def.handlers[&probe.name].run(&ctx, &validated);
            }
        }
        calls.extend(runner.calls());
    }
    assert!(
        calls.len() > 300,
        "the sweep ran only {} commands",
        calls.len()
    );
    let mut seen = BTreeSet::new();
    for argv in &calls {
        let a = args_of(argv);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_eq!(argv.program, "pvesh", "{}", argv.display());
        assert_eq!(a[0], "get", "{}", argv.display());
        let spec = pvesh::check_argv("pvesh", &refs)
            .unwrap_or_else(|e| panic!("an argv outside the table was run: {e}"));
        seen.insert(format!("{:?}", spec.template));
        for word in &a {
            assert!(
                !pvesh::MUTATING.contains(&word.as_str()),
                "{} holds {word:?}",
                argv.display()
            );
        }
        // No path segment is a mutating API endpoint.
        for seg in a[1].split('/') {
            assert!(
                ![
                    "status",
                    "start",
                    "stop",
                    "shutdown",
                    "reboot",
                    "migrate",
                    "agent",
                    "vncproxy",
                    "termproxy",
                    "exec",
                    "access",
                    "firewall"
                ]
                .contains(&seg)
                    || a[1].starts_with("/cluster/status")
                    || a[1].starts_with("/cluster/ha/status")
                    || a[1].starts_with("/cluster/ceph/status"),
                "{} reaches {seg:?}",
                argv.display()
            );
        }
    }
    // Every table path was reached by the sweep.
    for spec in pvesh::PATHS {
        assert!(
            seen.contains(&format!("{:?}", spec.template)),
            "{:?} was never read by the sweep",
            spec.template
        );
    }
}

#[test]
fn every_hostile_path_and_verb_is_refused_by_the_table() {
    for verb in [
        "set", "create", "delete", "put", "post", "ls", "usage", "help",
    ] {
        for p in pvesh::PATHS {
            let path: String = p
                .template
                .iter()
                .map(|s| match s {
                    pvesh::Segment::Lit(l) => format!("/{l}"),
                    pvesh::Segment::Node => "/pve1".into(),
                    pvesh::Segment::Vmid => "/100".into(),
                    pvesh::Segment::Upid => {
                        "/UPID:pve1:0002B1C4:00A3F1D2:6925A1C0:vzdump:105:root@pam:".into()
                    }
                })
                .collect();
            assert!(
                pvesh::check_argv("pvesh", &["get", &path, "--output-format", "json"]).is_ok(),
                "{path}"
            );
            assert!(
                pvesh::check_argv("pvesh", &[verb, &path, "--output-format", "json"]).is_err(),
                "{verb} {path}"
            );
            for tail in ["/status/start", "/../status/stop", "/", "/x"] {
                let p2 = format!("{path}{tail}");
                assert!(
                    pvesh::check_argv("pvesh", &["get", &p2, "--output-format", "json"]).is_err(),
                    "{p2}"
                );
            }
        }
    }
}

// ---- the HTTPS API transport, against a real TLS server ----

/// A real HTTPS server on 127.0.0.1 (rustls, a self-signed certificate)
/// that answers `GET /api2/json{path}?{options}` from the same recorded
/// answers, in the API's `{"data": …}` envelope (errors as the status
/// line's reason, as pveproxy sends them), and records each request line
/// and Authorization header. Serves at most 200 connections.
struct ApiServer {
    port: u16,
    fingerprint: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

const TOKEN_SECRET: &str = "5f1c3a9e-2b7d-4c61-9f0a-7e3d2c1b0a99";

fn api_server() -> ApiServer {
    use sha2::Digest;
    use std::io::{Read, Write};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let fingerprint = sha2::Sha256::digest(cert_der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    let answer = recorded(true);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(tcp) = stream else { continue };
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            if !head.ends_with(b"\r\n\r\n") {
                // No request came (e.g. the client refused the certificate).
                continue;
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let line = text.lines().next().unwrap_or_default().to_owned();
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("Authorization: "))
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push((line.clone(), auth.clone()));
            let (status, body) = if auth != format!("PVEAPIToken=sonde@pve!agent={TOKEN_SECRET}") {
                ("401 authentication failure".to_owned(), String::new())
            } else {
                let target = line.split(' ').nth(1).unwrap_or_default();
                let (path, query) = target
                    .strip_prefix("/api2/json")
                    .unwrap_or("/")
                    .split_once('?')
                    .unwrap_or((target.strip_prefix("/api2/json").unwrap_or("/"), ""));
                let mut argv = Argv::new("pvesh").args(["get", path]);
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap();
                    argv = argv.args([format!("--{k}"), v.to_owned()]);
                }
                let out = answer(&argv.args(["--output-format", "json"]));
                if out.code == Some(0) {
                    let data: Value = serde_json::from_slice(&out.stdout).unwrap();
                    ("200 OK".to_owned(), json!({"data": data}).to_string())
                } else {
                    (
                        format!("500 {}", String::from_utf8_lossy(&out.stderr).trim()),
                        json!({"data": null}).to_string(),
                    )
                }
            };
            let _ = write!(
                tls,
                "HTTP/1.1 {status}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    ApiServer {
        port,
        fingerprint,
        requests,
    }
}

fn api_settings(server: &ApiServer, token_file: &std::path::Path, fingerprint: &str) -> Value {
    json!({
        "transport": "api",
        "api_host": "127.0.0.1",
        "api_port": server.port,
        "api_fingerprint": fingerprint,
        "api_token_id": "sonde@pve!agent",
        "api_token_file": token_file,
    })
}

fn run_api(settings: &Value, probe: &str, params: Value) -> Result<Value, ProbeError> {
    let def = support::pack("proxmox");
    assert_eq!((def.settings_check.unwrap())(settings), Ok(()));
    // No program may run on this transport.
    let runner = RecordingRunner::replying(|argv| panic!("ran {}", argv.display()));
    support::run_with(
        &def,
        probe,
        params.as_object().unwrap(),
        settings,
        &runner,
        Duration::from_secs(10),
    )
    .map(|o| o.data)
}

#[test]
fn the_api_transport_reads_the_same_table_over_pinned_tls_with_a_token() {
    let server = api_server();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("proxmox-token");
    std::fs::write(&token_file, format!("{TOKEN_SECRET}\n")).unwrap();
    let settings = api_settings(&server, &token_file, &server.fingerprint);

    let v = run_api(
        &settings,
        "tasks.recent",
        json!({"node": "pve1", "type": "vzdump", "errors_only": true}),
    )
    .unwrap();
    assert_eq!(v["counts"]["failed_backups"], 1, "{v}");
    let v = run_api(&settings, "guest.config", json!({"vmid": 100})).unwrap();
    assert_eq!(v["config"]["cores"], 4);
    assert!(!v.to_string().contains("S3cr3tMqttPass!"));
    let v = run_api(&settings, "cluster.status", json!({})).unwrap();
    assert_eq!(v["cluster"]["name"], "homelab");
    let r = run_api(&settings, "guest.config", json!({"vmid": 999}));
    assert!(matches!(r, Err(ProbeError::NotFound(_))), "{r:?}");

    let requests = server.requests.lock().unwrap().clone();
    assert!(requests.len() >= 8, "{requests:?}");
    for (line, _) in &requests {
        let target = line
            .strip_prefix("GET ")
            .unwrap_or_else(|| panic!("not a GET: {line}"));
        let path = target
            .strip_prefix("/api2/json")
            .unwrap()
            .split(['?', ' '])
            .next()
            .unwrap();
        assert!(pvesh::match_path(path).is_some(), "{line}");
    }
    assert!(requests.iter().any(|(l, _)| l.starts_with(
        "GET /api2/json/nodes/pve1/tasks?limit=50&source=all&errors=1&typefilter=vzdump HTTP/1.1"
    )));
    assert!(
        requests
            .iter()
            .any(|(l, _)| l.starts_with("GET /api2/json/nodes/pve1/qemu/100/config?current=1 "))
    );

    // Another certificate than the pinned one: refused before any request.
    let before = server.requests.lock().unwrap().len();
    let other = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
    let r = run_api(
        &api_settings(&server, &token_file, &other),
        "cluster.status",
        json!({}),
    );
    assert!(
        matches!(r, Err(ProbeError::Denied(ref m)) if m.contains("fingerprint")),
        "{r:?}"
    );
    assert_eq!(
        server.requests.lock().unwrap().len(),
        before,
        "no request was sent"
    );

    // A wrong secret: the API's 401 says what to check; the secret is in no message.
    std::fs::write(&token_file, "00000000-0000-0000-0000-000000000000\n").unwrap();
    let r = run_api(&settings, "cluster.status", json!({}));
    assert!(
        matches!(r, Err(ProbeError::Denied(ref m)) if m.contains("401") && !m.contains("00000000-")),
        "{r:?}"
    );

    // Nothing listening: a clear error, not a hang.
    drop(dir);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut s = settings.clone();
    s["api_port"] = json!(port);
    let r = run_api(&s, "cluster.status", json!({}));
    assert!(
        matches!(r, Err(ProbeError::Denied(_) | ProbeError::Failed(_))),
        "{r:?}"
    );
}

#[test]
fn api_settings_are_checked() {
    let def = support::pack("proxmox");
    let check = def.settings_check.unwrap();
    assert_eq!(check(&Value::Null), Ok(()));
    assert_eq!(check(&json!({"transport": "pvesh"})), Ok(()));
    let fp = (0..32).map(|_| "0A").collect::<Vec<_>>().join(":");
    let good = json!({"transport": "api", "api_fingerprint": fp, "api_token_id": "sonde@pve!agent", "api_token_file": "/etc/sonde/proxmox-token"});
    assert_eq!(check(&good), Ok(()));
    for (key, bad) in [
        ("api_fingerprint", json!("AB:CD")),
        ("api_token_id", json!("root@pam")),
        ("api_token_file", json!("relative/token")),
        ("api_host", json!("evil host")),
        ("api_port", json!(0)),
        ("transport", json!("ssh")),
        ("bogus", json!(1)),
    ] {
        let mut s = good.clone();
        s[key] = bad;
        assert!(check(&s).is_err(), "{key}");
    }
}
