//! The system pack: each probe against this machine where it has the thing
//! (/proc, /sys, `ip`, `journalctl`, `dmesg`, the loopback), and the
//! parsers against output recorded on a real machine (fixtures/README.md).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Map, Value, json};
use sonde_packs::exec::{Argv, CommandRunner, ExecOutput, SystemRunner};
use sonde_packs::handler::ProbeError;
use sonde_packs::system::{cpu, disk, journal, logs, memory, network};
use sonde_packs::testing::RecordingRunner;
use sonde_protocol::schema::validate;
use std::time::{Duration, Instant};

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Runs a system probe with canned program output.
fn run_recorded(
    probe: &str,
    p: Value,
    reply: impl Fn(&Argv) -> ExecOutput + Send + Sync + 'static,
) -> (Result<Value, ProbeError>, Vec<String>) {
    let def = support::pack("system");
    let runner = RecordingRunner::replying(reply);
    let r = support::run_with(
        &def,
        probe,
        &params(p),
        &Value::Null,
        &runner,
        Duration::from_secs(5),
    )
    .map(|o| o.data);
    (r, runner.calls().iter().map(Argv::display).collect())
}

fn ok(stdout: &[u8]) -> ExecOutput {
    ExecOutput {
        code: Some(0),
        stdout: stdout.to_vec(),
        ..Default::default()
    }
}

fn failed(stderr: &str) -> ExecOutput {
    ExecOutput {
        code: Some(1),
        stderr: stderr.as_bytes().to_vec(),
        ..Default::default()
    }
}

// ---- this machine -------------------------------------------------------

#[test]
fn disk_usage_on_this_machine() {
    let disks = support::run_real("system", "disk.usage", json!({}), Value::Null).unwrap();
    let list = disks["filesystems"].as_array().unwrap();
    let root = list
        .iter()
        .find(|f| f["mount"] == "/")
        .expect("/ is listed");
    assert!(root["total_bytes"].as_u64().unwrap() > 0);
    assert!(root["used_bytes"].as_u64().unwrap() <= root["total_bytes"].as_u64().unwrap());
    assert!(
        list.iter()
            .all(|f| f["fstype"] != "proc" && f["fstype"] != "sysfs"),
        "pseudo file systems are skipped by default"
    );
    let all = support::run_real(
        "system",
        "disk.usage",
        json!({"include_pseudo": true}),
        Value::Null,
    )
    .unwrap();
    assert!(
        all["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["fstype"] == "proc")
    );
    let only =
        support::run_real("system", "disk.usage", json!({"mount": "/"}), Value::Null).unwrap();
    assert_eq!(only["filesystems"].as_array().unwrap().len(), 1);
    let err = support::run_real(
        "system",
        "disk.usage",
        json!({"mount": "/no/such/mount"}),
        Value::Null,
    )
    .unwrap_err();
    assert!(
        matches!(err, ProbeError::NotFound(ref m) if m.contains("not a mount point") && m.contains("without `mount`")),
        "{err:?}"
    );
}

#[test]
fn memory_cpu_and_uptime_on_this_machine() {
    let mem = support::run_real("system", "memory.usage", json!({}), Value::Null).unwrap();
    let meminfo = memory::parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap());
    assert_eq!(mem["total_bytes"], meminfo["MemTotal"]);
    assert!(mem["available_bytes"].as_u64().unwrap() <= mem["total_bytes"].as_u64().unwrap());

    let start = Instant::now();
    let c = support::run_real(
        "system",
        "cpu.usage",
        json!({"sample_ms": 100}),
        Value::Null,
    )
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(100), "it sampled");
    let cores = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(c["cpus"], cores);
    assert_eq!(c["per_core"].as_array().unwrap().len(), cores);
    let busy = c["busy_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&busy), "{c}");
    assert!(c["load"]["one"].as_f64().unwrap() >= 0.0);

    let up = support::run_real("system", "uptime", json!({}), Value::Null).unwrap();
    let proc_up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((up["uptime_seconds"].as_f64().unwrap() - proc_up).abs() < 5.0);
    assert_eq!(
        up["hostname"],
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .as_ref()
    );
}

#[test]
fn network_interfaces_on_this_machine() {
    let net = support::run_real("system", "network.interfaces", json!({}), Value::Null).unwrap();
    let lo = net["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lo")
        .expect("lo is listed")
        .clone();
    assert!(lo["mtu"].as_u64().unwrap() > 0);
    if SystemRunner::default().resolve("ip").is_some() {
        assert!(
            lo["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["address"] == "127.0.0.1"),
            "{lo}"
        );
        assert_eq!(net["note"], Value::Null);
    } else {
        assert!(net["note"].as_str().unwrap().contains("iproute2"));
    }
}

#[test]
fn ping_the_loopback_or_explain_why_not() {
    let r = support::run_real(
        "system",
        "network.ping",
        json!({"host": "127.0.0.1", "count": 1, "timeout_s": 1}),
        Value::Null,
    );
    match r {
        Ok(v) => {
            assert!(SystemRunner::default().resolve("ping").is_some());
            assert_eq!(v["host"], "127.0.0.1");
            assert_eq!(v["transmitted"], 1);
            assert_eq!(v["received"], 1, "{v}");
            assert!(v["rtt_ms"]["avg"].as_f64().unwrap() >= 0.0);
        }
        // Not installed, or no ICMP permission for this user.
        Err(ProbeError::Unsupported(m)) => {
            assert!(SystemRunner::default().resolve("ping").is_none());
            assert!(m.contains("apt install iputils-ping"), "{m}");
        }
        Err(ProbeError::Failed(m)) => {
            assert!(
                m.contains("ping_group_range") && m.contains("cap_net_raw"),
                "{m}"
            );
        }
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn journal_on_this_machine() {
    if SystemRunner::default().resolve("journalctl").is_none() {
        let err = support::run_real("system", "logs.journal", json!({}), Value::Null).unwrap_err();
        assert!(matches!(err, ProbeError::Unsupported(_)), "{err:?}");
        return;
    }
    let v = support::run_real(
        "system",
        "logs.journal",
        json!({"lines": 5, "priority": "err", "since": "-1h"}),
        Value::Null,
    )
    .unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.len() <= 5);
    assert!(
        entries
            .iter()
            .all(|e| e["priority"].as_i64().unwrap_or(0) <= 3)
    );
}

/// Every form of `since` the schema allows is one journalctl parses, and
/// forms it cannot parse are refused before anything runs.
#[test]
fn every_since_form_the_schema_accepts_journalctl_parses() {
    let def = support::pack("system");
    let spec = &support::spec(&def, "logs.journal").params;
    let accepted = [
        "now",
        "today",
        "yesterday",
        "@1700000000",
        "2024-05-01",
        "2024-05-01 12:00",
        "2024-05-01 12:00:30",
        "-1h",
        "-30min",
        "-30 min",
        "-2d",
        "-1w",
        "-3M",
        "-1y",
        "-10s",
        "-5 minutes",
        "-1m",
        "-2days",
        "2 hours ago",
        "5min ago",
        "1 week ago",
    ];
    for since in accepted {
        assert!(
            validate(spec, &params(json!({"since": since}))).is_ok(),
            "{since}"
        );
    }
    for refused in [
        "bogus",
        "-x",
        "--help",
        "-1",
        "1h",
        "2024-05-01T12:00:30",
        "; rm -rf /",
        "$(id)",
        "-1h; id",
        "yesterday\n",
        "-1 h ago",
        "",
    ] {
        assert!(
            validate(spec, &params(json!({"since": refused}))).is_err(),
            "{refused:?}"
        );
    }
    if SystemRunner::default().resolve("journalctl").is_none() {
        eprintln!("journalctl is not installed: the schema side was checked only");
        return;
    }
    for since in accepted {
        let r = support::run_real(
            "system",
            "logs.journal",
            json!({"since": since, "lines": 1}),
            Value::Null,
        );
        assert!(r.is_ok(), "journalctl refused since = {since:?}: {r:?}");
    }
}

#[test]
fn dmesg_on_this_machine_or_what_to_grant() {
    match support::run_real("system", "logs.dmesg", json!({"lines": 5}), Value::Null) {
        Ok(v) => {
            let entries = v["entries"].as_array().unwrap();
            assert!(!entries.is_empty() && entries.len() <= 5, "{v}");
            assert!(["journal", "dmesg"].contains(&v["source"].as_str().unwrap()));
            for e in entries {
                assert!(e["message"].is_string() || e["message"].is_object(), "{e}");
                if let Some(p) = e["priority"].as_u64() {
                    assert!(p <= 7);
                }
            }
        }
        Err(ProbeError::Failed(m)) => {
            assert!(m.contains("usermod -aG systemd-journal sonde"), "{m}");
        }
        Err(ProbeError::Unsupported(m)) => assert!(m.contains("dmesg"), "{m}"),
        Err(e) => panic!("{e:?}"),
    }
}

// ---- logs.tail ----------------------------------------------------------

fn tail(p: Value, settings: Value) -> Result<Value, ProbeError> {
    support::run_real("system", "logs.tail", p, settings)
}

#[test]
fn logs_tail_reads_only_allowlisted_files_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!(
            "line {i}{}\n",
            if i % 100 == 0 { " ERROR" } else { "" }
        ));
    }
    std::fs::write(&log, &text).unwrap();
    let path = log.to_string_lossy().into_owned();
    let settings = json!({"log_files": [path]});
    let v = tail(json!({"path": path, "lines": 3}), settings.clone()).unwrap();
    assert_eq!(v["lines"], json!(["line 997", "line 998", "line 999"]));
    assert_eq!(v["size_bytes"], text.len());
    let v = tail(
        json!({"path": path, "grep": "ERROR", "lines": 2}),
        settings.clone(),
    )
    .unwrap();
    assert_eq!(v["lines"], json!(["line 800 ERROR", "line 900 ERROR"]));
    let denied = tail(json!({"path": "/etc/shadow"}), settings).unwrap_err();
    assert!(
        matches!(denied, ProbeError::Denied(ref m) if m.contains("log_files") && m.contains("allowed: ")),
        "{denied:?}"
    );
    let denied = tail(json!({"path": path}), Value::Null).unwrap_err();
    assert!(
        matches!(denied, ProbeError::Denied(ref m) if m.contains("the list is empty")),
        "{denied:?}"
    );
}

#[test]
fn logs_tail_keeps_bytes_and_reads_a_bounded_window() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    // 6 MiB of numbered lines, one of them not UTF-8, near the end.
    let mut data = Vec::new();
    let mut i = 0;
    while data.len() < 6 << 20 {
        data.extend_from_slice(format!("entry {i:08} ").as_bytes());
        data.extend_from_slice(&[b'x'; 100]);
        data.push(b'\n');
        i += 1;
    }
    data.extend_from_slice(b"caf\xe9 au lait\nlast\n");
    std::fs::write(&log, &data).unwrap();
    let path = log.to_string_lossy().into_owned();
    let settings = json!({"log_files": [path]});
    let v = support::run_with(
        &support::pack("system"),
        "logs.tail",
        &params(json!({"path": path, "lines": 2})),
        &settings,
        &SystemRunner::default(),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(v.data["lines"][0]["display"], "caf\u{fffd} au lait");
    assert_eq!(v.data["lines"][0]["base64"], "Y2Fm6SBhdSBsYWl0");
    assert_eq!(v.data["lines"][1], "last");
    assert!(!v.truncated);
    // More lines than the 4 MiB window holds: what it has, marked partial.
    let v = support::run_with(
        &support::pack("system"),
        "logs.tail",
        &params(json!({"path": path, "lines": 5000, "grep": "entry 0000"})),
        &settings,
        &SystemRunner::default(),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(v.truncated);
    assert!(
        v.data["lines"].as_array().unwrap().is_empty(),
        "the first lines are outside the window"
    );
}

#[test]
fn logs_tail_directory_entries_refuse_links_fifos_and_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    let logs_dir = dir.path().join("nginx");
    std::fs::create_dir(&logs_dir).unwrap();
    std::fs::write(logs_dir.join("access.log"), "a\nb\n").unwrap();
    std::fs::write(logs_dir.join("access.log.1"), "old\n").unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "password\n").unwrap();
    std::os::unix::fs::symlink(&secret, logs_dir.join("evil.log")).unwrap();
    std::fs::create_dir(logs_dir.join("sub")).unwrap();
    std::fs::write(logs_dir.join("sub/x.log"), "x\n").unwrap();
    let fifo = logs_dir.join("pipe.log");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let d = logs_dir.to_string_lossy().into_owned();
    let settings = json!({"log_files": [format!("{d}/"), fifo.to_string_lossy()]});
    let at = |name: &str| format!("{d}/{name}");
    assert_eq!(
        tail(json!({"path": at("access.log")}), settings.clone()).unwrap()["lines"],
        json!(["a", "b"])
    );
    assert_eq!(
        tail(json!({"path": at("access.log.1")}), settings.clone()).unwrap()["lines"],
        json!(["old"])
    );
    let link = tail(json!({"path": at("evil.log")}), settings.clone()).unwrap_err();
    assert!(
        matches!(link, ProbeError::Denied(ref m) if m.contains("symbolic link")),
        "{link:?}"
    );
    let sub = tail(json!({"path": at("sub/x.log")}), settings.clone()).unwrap_err();
    assert!(matches!(sub, ProbeError::Denied(_)), "{sub:?}");
    let up = tail(json!({"path": at("../secret")}), settings.clone()).unwrap_err();
    assert!(matches!(up, ProbeError::Denied(_)), "{up:?}");
    // A FIFO, even listed by name, is refused at once instead of hanging.
    let start = Instant::now();
    let pipe = tail(json!({"path": fifo.to_string_lossy()}), settings).unwrap_err();
    assert!(
        matches!(pipe, ProbeError::Denied(ref m) if m.contains("not a regular file")),
        "{pipe:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn system_settings_are_checked_by_key() {
    let check = support::pack("system").settings_check.unwrap();
    assert!(check(&Value::Null).is_ok());
    assert!(check(&json!({"log_files": ["/var/log/syslog", "/var/log/nginx/"]})).is_ok());
    let err = check(&json!({"log_file": ["/var/log/syslog"]})).unwrap_err();
    assert!(err.contains("log_file"), "{err}");
    let err = check(&json!({"log_files": ["var/log/syslog"]})).unwrap_err();
    assert!(
        err.contains("log_files") && err.contains("absolute"),
        "{err}"
    );
    for bad in [
        "/var/log/../../etc/shadow",
        "/var//log",
        "/var/log/./x",
        "/",
    ] {
        let err = check(&json!({"log_files": [bad]})).unwrap_err();
        assert!(err.contains("log_files"), "{bad}: {err}");
    }
    assert!(check(&json!({"log_files": "/var/log/syslog"})).is_err());
}

// ---- recorded output ----------------------------------------------------

#[test]
fn proc_files_recorded_on_a_real_machine_parse() {
    let mem = memory::summarise(&support::fixture_text("system/proc-meminfo.txt"));
    assert!(mem["total_bytes"].as_u64().unwrap() > 1 << 30);
    assert!(mem["available_bytes"].as_u64().unwrap() <= mem["total_bytes"].as_u64().unwrap());
    let c = cpu::summarise(
        &support::fixture_text("system/proc-stat-1.txt"),
        &support::fixture_text("system/proc-stat-2.txt"),
        &support::fixture_text("system/proc-loadavg.txt"),
    );
    assert_eq!(c["cpus"], 2);
    assert_eq!(c["per_core"][1]["cpu"], 1);
    assert!(c["busy_percent"].as_f64().is_some());
    let mounts = disk::parse_mountinfo(&support::fixture("system/proc-self-mountinfo.txt"));
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_point == b"/" && !m.fstype.is_empty())
    );
    let dev = network::parse_net_dev(&support::fixture_text("system/proc-net-dev.txt"));
    assert!(dev.contains_key("lo"));
    assert!(dev["lo"].rx_bytes > 0);
    let addrs = network::parse_ip_addr(&support::fixture("system/ip-j-addr.json"));
    assert_eq!(
        addrs["lo"][0],
        json!({"family": "inet", "address": "127.0.0.1", "prefix_len": 8, "scope": "host"})
    );
    assert_eq!(addrs["lo"][1]["address"], "::1");
}

#[test]
fn dmesg_output_recorded_on_a_real_machine_parses() {
    let j = logs::dmesg_json(&support::fixture("system/dmesg-json.json")).unwrap();
    assert_eq!(j.len(), 23);
    assert!(
        j[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Linux version")
    );
    assert_eq!(j[0]["priority"], 5);
    assert!(
        j.iter()
            .all(|e| e["priority"].as_u64().unwrap() <= 7 && e["uptime_s"].is_f64())
    );
    let plain = logs::dmesg_lines(&support::fixture("system/dmesg.txt"));
    assert_eq!(plain.len(), 23);
    assert_eq!(plain[0]["uptime_s"], 0.0);
    assert_eq!(plain[0]["message"], j[0]["message"]);
}

#[test]
fn journal_output_recorded_on_a_real_machine_parses_oldest_first() {
    let entries = journal::parse_reversed(&support::fixture("system/journalctl-reverse.jsonl"));
    assert_eq!(entries.len(), 8);
    let times: Vec<i64> = entries
        .iter()
        .map(|e| e["time_ms"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    let last = &entries[7];
    assert_eq!(last["identifier"], "backup");
    assert_eq!(last["priority"], 4);
    assert_eq!(
        last["message"]["display"],
        "upload of \u{fffd}\u{fffd}.bin failed"
    );
    assert_eq!(
        entries[6]["message"],
        "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)"
    );
    assert_eq!(entries[6]["priority"], 3);
    let kernel =
        journal::parse_reversed(&support::fixture("system/journalctl-dmesg-reverse.jsonl"));
    assert_eq!(kernel.len(), 4);
    assert!(
        kernel.iter().all(|e| e["uptime_s"].as_f64().is_some()),
        "{kernel:?}"
    );
}

#[test]
fn logs_journal_runs_journalctl_and_reads_its_answer() {
    let (r, calls) = run_recorded(
        "logs.journal",
        json!({"unit": "nginx.service", "priority": "err", "since": "-1h", "lines": 50}),
        |_| ok(&support::fixture("system/journalctl-reverse.jsonl")),
    );
    let v = r.unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 8);
    assert_eq!(v["entries"][7]["identifier"], "backup");
    assert_eq!(
        calls,
        [
            "journalctl --no-pager --quiet --reverse --output json --output-fields MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID,_COMM,_TRANSPORT,_SOURCE_MONOTONIC_TIMESTAMP --lines 50 --unit nginx.service --priority err --since -1h"
        ]
    );
    // journalctl's own refusal of a time becomes an invalid-parameter error.
    let stderr = support::fixture_text("system/journalctl-bad-since.stderr");
    let (r, _) = run_recorded("logs.journal", json!({"since": "today"}), move |_| {
        failed(&stderr)
    });
    assert!(
        matches!(r, Err(ProbeError::InvalidInput(ref m)) if m.contains("since")),
        "{r:?}"
    );
    let (r, _) = run_recorded("logs.journal", json!({}), |_| {
        failed("No journal files were found.")
    });
    assert!(
        r.unwrap()["note"]
            .as_str()
            .unwrap()
            .contains("no journal files")
    );
    let (r, _) = run_recorded("logs.journal", json!({}), |_| {
        failed("Failed to open journal: Bad message")
    });
    // journalctl before systemd 236 has no --output-fields: asked again without.
    let (r2, calls) = run_recorded("logs.journal", json!({"lines": 2}), |argv| {
        if argv.args.iter().any(|a| a == "--output-fields") {
            failed("journalctl: unrecognized option '--output-fields'")
        } else {
            ok(&support::fixture("system/journalctl-reverse.jsonl"))
        }
    });
    assert_eq!(r2.unwrap()["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        calls[1],
        "journalctl --no-pager --quiet --reverse --output json --lines 2"
    );
    assert!(
        matches!(r, Err(ProbeError::Failed(ref m)) if m.contains("Bad message")),
        "{r:?}"
    );
}

#[test]
fn logs_journal_output_cut_by_the_bound_loses_the_oldest_entries() {
    let def = support::pack("system");
    let runner = RecordingRunner::replying(|_| {
        let mut full = support::fixture("system/journalctl-reverse.jsonl");
        // As the runner leaves it when the bound hits mid-line.
        full.truncate(full.len() / 2);
        ExecOutput {
            code: None,
            signal: Some(9),
            stdout: full,
            stdout_truncated: true,
            ..Default::default()
        }
    });
    let out = support::run_with(
        &def,
        "logs.journal",
        &Map::new(),
        &Value::Null,
        &runner,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(out.truncated);
    let entries = out.data["entries"].as_array().unwrap();
    assert!(!entries.is_empty() && entries.len() < 8);
    assert_eq!(
        entries.last().unwrap()["identifier"],
        "backup",
        "the newest entry is kept"
    );
}

#[test]
fn logs_dmesg_falls_back_from_the_journal_to_the_ring_buffer() {
    // The journal has kernel messages: they are used.
    let (r, calls) = run_recorded("logs.dmesg", json!({"lines": 3}), |_| {
        ok(&support::fixture("system/journalctl-dmesg-reverse.jsonl"))
    });
    let v = r.unwrap();
    assert_eq!(v["source"], "journal");
    // The recording holds 4; only the 3 newest asked for are kept.
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);
    assert!(v["entries"][0]["time_ms"].is_i64());
    assert_eq!(calls.len(), 1);
    assert!(calls[0].contains("--dmesg"));
    // No journal: dmesg --json.
    let (r, calls) = run_recorded("logs.dmesg", json!({"lines": 3}), |argv| {
        match argv.program.as_str() {
            "journalctl" => ok(b""),
            _ => ok(&support::fixture("system/dmesg-json.json")),
        }
    });
    let v = r.unwrap();
    assert_eq!(v["source"], "dmesg");
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);
    assert_eq!(calls[1], "dmesg --json");
    // An old dmesg without --json: plain text.
    let (r, calls) = run_recorded("logs.dmesg", json!({"lines": 2}), |argv| {
        match (argv.program.as_str(), argv.args.len()) {
            ("journalctl", _) => ok(b""),
            ("dmesg", 1) => failed("dmesg: unrecognized option '--json'"),
            _ => ok(&support::fixture("system/dmesg.txt")),
        }
    });
    let v = r.unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        calls,
        [
            "journalctl --no-pager --quiet --reverse --output json --output-fields MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID,_COMM,_TRANSPORT,_SOURCE_MONOTONIC_TIMESTAMP --lines 2 --dmesg",
            "dmesg --json",
            "dmesg"
        ]
    );
    // Restricted everywhere: the error says what to grant.
    let (r, _) = run_recorded("logs.dmesg", json!({}), |argv| {
        match argv.program.as_str() {
            "journalctl" => ok(b""),
            _ => failed("dmesg: read kernel buffer failed: Operation not permitted"),
        }
    });
    assert!(
        matches!(r, Err(ProbeError::Failed(ref m)) if m.contains("usermod -aG systemd-journal sonde") && m.contains("dmesg_restrict")),
        "{r:?}"
    );
}

fn exit(code: i32, stdout: &[u8], stderr: &[u8]) -> ExecOutput {
    ExecOutput {
        code: Some(code),
        stdout: stdout.to_vec(),
        stderr: stderr.to_vec(),
        ..Default::default()
    }
}

#[test]
fn ping_reads_recorded_iputils_output_and_explains_failures() {
    let (r, calls) = run_recorded("network.ping", json!({"host": "127.0.0.1"}), |_| {
        exit(0, &support::fixture("system/ping-loopback.stdout"), b"")
    });
    let v = r.unwrap();
    assert_eq!(
        (v["transmitted"].as_u64(), v["received"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        v["rtt_ms"],
        json!({"min": 0.039, "avg": 0.047, "max": 0.058})
    );
    assert_eq!(v.get("findings"), None);
    assert_eq!(calls, ["ping -n -c 3 -W 2 -w 5 -- 127.0.0.1"]);
    let (r, _) = run_recorded(
        "network.ping",
        json!({"host": "198.51.100.1", "count": 2, "timeout_s": 1}),
        |_| exit(1, &support::fixture("system/ping-unreachable.stdout"), b""),
    );
    let v = r.unwrap();
    assert_eq!(v["loss_percent"], 100.0);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["rtt_ms"], Value::Null);
    assert_eq!(
        v["findings"][0]["message"],
        "198.51.100.1 did not answer (Destination Port Unreachable)"
    );
    let (r, _) = run_recorded("network.ping", json!({"host": "fd00::1"}), |_| {
        exit(1, &support::fixture("system/ping-no-answer.stdout"), b"")
    });
    let v = r.unwrap();
    assert_eq!(
        (v["transmitted"].as_u64(), v["errors"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        v["unreachable"],
        "Destination unreachable: Address unreachable"
    );
    let (r, _) = run_recorded("network.ping", json!({"host": "nas.invalid"}), |_| {
        exit(2, b"", &support::fixture("system/ping-unknown-host.stderr"))
    });
    assert!(
        matches!(r, Err(ProbeError::NotFound(ref m)) if m.contains("cannot resolve nas.invalid")),
        "{r:?}"
    );
    let (r, _) = run_recorded("network.ping", json!({"host": "127.0.0.1"}), |_| {
        exit(2, b"", &support::fixture("system/ping-unprivileged.stderr"))
    });
    assert!(
        matches!(r, Err(ProbeError::Failed(ref m)) if m.contains("ping_group_range") && m.contains("no_new_privs")),
        "{r:?}"
    );
    // Hosts that could be options or more than one argument never validate.
    let def = support::pack("system");
    let spec = &support::spec(&def, "network.ping").params;
    for bad in ["-f", "--help", "-c 1000", "a b", "a;b", "$(id)", "", "a\nb"] {
        assert!(
            validate(spec, &params(json!({"host": bad}))).is_err(),
            "{bad:?}"
        );
    }
    for good in [
        "127.0.0.1",
        "::1",
        "fe80::1",
        "nas.lan",
        "my-host",
        "host_1",
    ] {
        assert!(
            validate(spec, &params(json!({"host": good}))).is_ok(),
            "{good:?}"
        );
    }
}

#[test]
fn interfaces_degrade_gracefully_without_ip() {
    let (r, calls) = run_recorded("network.interfaces", json!({}), |_| {
        failed("Object \"addr\" is unknown")
    });
    let v = r.unwrap();
    assert!(v["note"].as_str().unwrap().contains("addresses left out"));
    assert!(
        v["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "lo")
    );
    assert_eq!(calls, ["ip -j addr show"]);
    let def = support::pack("system");
    let v = support::run_with(
        &def,
        "network.interfaces",
        &Map::new(),
        &Value::Null,
        &SystemRunner::new("/nonexistent"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        v.data["note"]
            .as_str()
            .unwrap()
            .contains("apt install iproute2")
    );
}
