//! The smart pack against recorded `smartctl --json` outputs of healthy,
//! degrading and failing disks (SATA and NVMe), a disk in standby, and the
//! refusals an unprivileged agent meets (fixtures/smart, see
//! fixtures/README.md): there are no real disks to read in the test VM. The
//! real `smartctl` (`--version`, `--scan`, `--scan-open`, a device read)
//! also runs inside the agent's sandbox, to prove the argv works with the
//! real binary there.
#![allow(clippy::unwrap_used)]

#[path = "support/ops_servers.rs"]
mod ops_servers;
mod support;

use serde_json::{Value, json};
use sonde_packs::ProbeError;
use sonde_packs::exec::{Argv, ExecOutput, SystemRunner};
use sonde_packs::smart::smartctl;
use sonde_packs::testing::RecordingRunner;
use std::time::Duration;

/// What the recorded machine answers: a fixture per device.
fn recorded(argv: &Argv) -> ExecOutput {
    let args: Vec<String> = argv
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let fixture = if args.contains(&"--scan-open".to_owned()) {
        "scan-open.json"
    } else {
        match args.last().map(String::as_str) {
            Some("/dev/sda") => "sata-healthy.json",
            Some("/dev/sdb") => "sata-degraded.json",
            Some("/dev/sdc") => "sata-failing.json",
            Some("/dev/sdd") => "sata-standby.json",
            Some("/dev/nvme0") => "nvme-healthy.json",
            Some("/dev/nvme1") => "nvme-worn.json",
            Some("/dev/sde") => "sata-rawio-denied.json",
            Some("/dev/nvme0n1") => "nvme-admin-denied.json",
            Some("/dev/sdf") => "open-denied.json",
            other => panic!("no recorded answer for {other:?}"),
        }
    };
    let stdout = support::fixture(&format!("smart/{fixture}"));
    let v: Value = serde_json::from_slice(&stdout).unwrap();
    ExecOutput {
        code: Some(i32::try_from(v["smartctl"]["exit_status"].as_i64().unwrap()).unwrap()),
        stdout,
        ..Default::default()
    }
}

fn run(probe: &str, params: Value) -> (Result<Value, ProbeError>, Vec<Vec<String>>) {
    let def = support::pack("smart");
    let runner = RecordingRunner::replying(recorded);
    let r = support::run_with(
        &def,
        probe,
        params.as_object().unwrap(),
        &Value::Null,
        &runner,
        Duration::from_secs(10),
    )
    .map(|o| o.data);
    let calls = runner
        .calls()
        .iter()
        .map(|a| {
            a.args
                .iter()
                .map(|x| x.to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    (r, calls)
}

fn disk<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

fn findings_about(v: &Value, name: &str) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["message"].as_str().unwrap().contains(name))
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_disk_gets_a_verdict_and_failing_ones_are_flagged() {
    let (r, calls) = run("disks.health", json!({}));
    let v = r.unwrap();
    assert_eq!(
        v["counts"],
        json!({"disks": 6, "ok": 2, "warning": 1, "failing": 2, "unknown": 1}),
        "{v}"
    );
    // Read-only forms only, and a sleeping disk is never woken.
    assert_eq!(calls[0], ["--json", "--scan-open"]);
    for c in &calls[1..] {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        assert_eq!(
            smartctl::check_argv("smartctl", &refs),
            Ok(smartctl::Form::All)
        );
        assert_eq!(&refs[2..4], ["--nocheck", "standby"]);
    }
    assert!(
        !calls.iter().any(|c| c.contains(&"/dev/bus/0".to_owned())),
        "a RAID controller node is skipped"
    );

    let sda = disk(&v, "/dev/sda");
    assert_eq!(sda["verdict"], "ok");
    assert_eq!(sda["kind"], "hdd");
    assert_eq!(sda["model"], "WDC WD40EFRX-68N32N0");
    assert_eq!(sda["temperature_c"], 34);
    assert_eq!(sda["power_on_hours"], 25872);
    assert_eq!(sda["ata"]["pending_sectors"], 0);
    assert_eq!(sda["last_self_test_passed"], true);
    assert!(findings_about(&v, "/dev/sda").is_empty());

    let sdb = disk(&v, "/dev/sdb");
    assert_eq!(sdb["verdict"], "warning");
    assert_eq!(sdb["ata"]["pending_sectors"], 8);
    assert_eq!(sdb["ata"]["reallocated_sectors"], 16);
    assert_eq!(sdb["last_self_test_passed"], false);
    assert_eq!(sdb["self_tests"][0]["first_error_lba"], 3_021_458_711u64);
    assert_eq!(
        sdb["exit_status_meaning"],
        json!([
            "the device error log contains errors",
            "the self-test log contains errors"
        ])
    );
    let f = findings_about(&v, "/dev/sdb");
    for (sev, text) in [
        ("error", "8 pending sectors"),
        ("warning", "reallocated 16"),
        ("error", "Completed: read failure"),
        ("info", "cable"),
    ] {
        assert!(
            f.iter().any(|(s, m)| s == sev && m.contains(text)),
            "{sev} {text}: {f:?}"
        );
    }

    let sdc = disk(&v, "/dev/sdc");
    assert_eq!(sdc["verdict"], "failing");
    assert_eq!(sdc["smart_passed"], false);
    assert_eq!(sdc["failing_now"], json!(["Reallocated_Sector_Ct"]));
    let f = findings_about(&v, "/dev/sdc");
    assert!(
        f.iter()
            .any(|(s, m)| s == "critical" && m.contains("FAILS its SMART health check")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|(s, m)| s == "critical" && m.contains("Reallocated_Sector_Ct")),
        "{f:?}"
    );

    let sdd = disk(&v, "/dev/sdd");
    assert_eq!(sdd["verdict"], "unknown");
    assert_eq!(sdd["standby"], true);
    assert!(findings_about(&v, "/dev/sdd")[0].1.contains("wake = true"));

    let nvme0 = disk(&v, "/dev/nvme0");
    assert_eq!(nvme0["verdict"], "ok");
    assert_eq!(nvme0["kind"], "nvme");
    assert_eq!(nvme0["nvme"]["percentage_used"], 3);
    assert_eq!(nvme0["nvme"]["written_bytes"], 34_567_890u64 * 512_000);
    assert_eq!(nvme0["self_tests"][0]["passed"], true);

    let nvme1 = disk(&v, "/dev/nvme1");
    assert_eq!(nvme1["verdict"], "failing");
    assert_eq!(
        nvme1["nvme"]["critical_warnings"],
        json!(["available spare is below its threshold"])
    );
    let f = findings_about(&v, "/dev/nvme1");
    for (sev, text) in [
        ("critical", "critical warnings"),
        ("error", "104% of its rated endurance"),
        ("error", "12 media"),
        ("warning", "71 °C"),
    ] {
        assert!(
            f.iter().any(|(s, m)| s == sev && m.contains(text)),
            "{sev} {text}: {f:?}"
        );
    }
}

#[test]
fn one_disk_wake_and_details() {
    let (r, calls) = run(
        "disks.health",
        json!({"device": "/dev/sdc", "device_type": "sat", "wake": true}),
    );
    assert_eq!(r.unwrap()["counts"]["failing"], 1);
    assert_eq!(
        calls,
        [[
            "--json",
            "--all",
            "--nocheck",
            "never",
            "--device",
            "sat",
            "/dev/sdc"
        ]]
    );
    let (r, calls) = run("disk.details", json!({"device": "/dev/sdc"}));
    let v = r.unwrap();
    assert_eq!(calls[0][1], "--xall");
    let attrs = v["attributes"].as_array().unwrap();
    assert_eq!(attrs.len(), 18);
    let five = attrs.iter().find(|a| a["id"] == 5).unwrap();
    assert_eq!(five["when_failed"], "now");
    assert_eq!(five["threshold"], 36);
    assert_eq!(v["summary"]["self_tests"].as_array().unwrap().len(), 2);
    assert_eq!(v["ata_error_log"]["count"], 1450);
    let err = run("disks.health", json!({"device_type": "sat"}))
        .0
        .unwrap_err();
    assert!(matches!(err, ProbeError::InvalidInput(_)), "{err:?}");
}

#[test]
fn refusals_say_exactly_what_to_grant() {
    for (device, expect) in [
        (
            "/dev/sde",
            ["CAP_SYS_RAWIO", "no_new_privs", "AmbientCapabilities"],
        ),
        (
            "/dev/nvme0n1",
            ["CAP_SYS_ADMIN", "no_new_privs", "AmbientCapabilities"],
        ),
        ("/dev/sdf", ["group disk", "usermod -aG disk", "restart"]),
    ] {
        let v = run("disks.health", json!({"device": device})).0.unwrap();
        let d = &v["disks"][0];
        assert_eq!(d["verdict"], "unknown", "{device}");
        let reason = d["reason"].as_str().unwrap();
        for e in expect {
            assert!(reason.contains(e), "{device}: {reason}");
        }
        assert_eq!(v["findings"][0]["severity"], "warning");
    }
}

#[test]
fn an_old_smartctl_without_json_is_named() {
    let def = support::pack("smart");
    let runner = RecordingRunner::replying(|argv| {
        let version = argv.args.iter().any(|a| a == "--version");
        ExecOutput {
            code: Some(if version { 0 } else { 1 }),
            stdout: if version {
                b"smartctl 6.6 2016-05-31 r4324 [x86_64-linux-4.9.0] (local build)\n".to_vec()
            } else {
                Vec::new()
            },
            stderr: if version {
                Vec::new()
            } else {
                b"=======> UNRECOGNIZED OPTION: json\n".to_vec()
            },
            ..Default::default()
        }
    });
    let err = support::run_with(
        &def,
        "disks.list",
        json!({}).as_object().unwrap(),
        &Value::Null,
        &runner,
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ProbeError::Unsupported(m) if m.contains("7.0") && m.contains("smartctl 6.6")),
        "{err:?}"
    );
    let err = support::run_with(
        &def,
        "disks.list",
        json!({}).as_object().unwrap(),
        &Value::Null,
        &SystemRunner::new("/nonexistent"),
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("apt install smartmontools"),
        "{err}"
    );
}

#[test]
fn the_real_smartctl_runs_in_the_sandbox() {
    if ops_servers::missing("/usr/sbin/smartctl", "smartmontools").is_some() {
        return;
    }
    let def = support::pack("smart");
    let confined = |probe: &str, params: Value| {
        ops_servers::run_confined(
            &def,
            probe,
            params.as_object().unwrap(),
            &Value::Null,
            Duration::from_secs(30),
        )
        .map(|o| o.data)
    };
    let real_version = {
        let out = std::process::Command::new("/usr/sbin/smartctl")
            .arg("--version")
            .output()
            .unwrap();
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap()
            .to_owned();
        first.split_whitespace().nth(1).unwrap().to_owned()
    };
    for open in [false, true] {
        let v = confined("disks.list", json!({"open": open})).unwrap();
        assert_eq!(v["smartctl_version"], real_version.as_str(), "{v}");
        assert_eq!(v["opened"], open);
        assert!(v["devices"].is_array());
    }
    // A device read with the full argv (--nocheck, --device): smartctl
    // answers in JSON even when the disk is not there.
    let v = confined(
        "disks.health",
        json!({"device": "/dev/sdzz", "device_type": "sat"}),
    )
    .unwrap();
    assert_eq!(v["disks"][0]["verdict"], "unknown", "{v}");
    assert!(
        v["disks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("/dev/sdzz"),
        "{v}"
    );
    // Every disk of this machine (virtual ones have no SMART): no failure.
    let v = confined("disks.health", json!({})).unwrap();
    assert!(v["counts"]["disks"].is_u64(), "{v}");
    // `--version` itself, through the checked runner in the sandbox.
    let sandbox = sonde_packs::sandbox::Sandbox::new(Vec::new());
    let runner = SystemRunner::default().confined(sandbox, def.manifest.sandbox.to_pack_sandbox());
    let ctx = sonde_packs::ProbeContext {
        deadline: std::time::Instant::now() + Duration::from_secs(20),
        runner: &runner,
        settings: &Value::Null,
        secrets: &sonde_packs::SecretGuard::standard(),
    };
    let out = smartctl::run(
        &ctx,
        &smartctl::argv(smartctl::Form::Version, None, None, false),
    )
    .unwrap();
    assert!(out.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("smartctl {real_version}")));
    // Anything else is refused before it runs.
    let err = smartctl::run(&ctx, &["-t".into(), "long".into(), "/dev/sda".into()]).unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err:?}");
}

#[path = "support/sweep.rs"]
mod sweep;

/// Every probe × example × hostile value: every argv the pack builds is one
/// of the read-only forms and holds no option that changes a disk.
#[test]
fn no_mutating_smartctl_argv_is_reachable() {
    let def = support::pack("smart");
    let runner = RecordingRunner::replying(|argv| {
        let a = sweep::args_of(argv);
        let fixture = if a.iter().any(|x| x.starts_with("--scan")) {
            "scan-open.json"
        } else {
            "sata-healthy.json"
        };
        ExecOutput {
            code: Some(0),
            stdout: support::fixture(&format!("smart/{fixture}")),
            ..Default::default()
        }
    });
    let runs = sweep::sweep(&def, &runner, &Value::Null);
    let calls = runner.calls();
    assert!(
        runs > 30 && calls.len() > 50,
        "the sweep ran {runs} probes, {} commands",
        calls.len()
    );
    let mut forms = std::collections::BTreeSet::new();
    for argv in &calls {
        assert_eq!(argv.program, "smartctl");
        let a = sweep::args_of(argv);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let form = smartctl::check_argv("smartctl", &refs)
            .unwrap_or_else(|e| panic!("an argv outside the table was run: {e}"));
        forms.insert(format!("{form:?}"));
        for word in &a {
            assert!(
                !smartctl::MUTATING.contains(&word.as_str()),
                "{} holds {word:?}",
                argv.display()
            );
        }
    }
    for f in ["Scan", "ScanOpen", "All", "Xall"] {
        assert!(
            forms.contains(f),
            "the sweep never built the {f} form: {forms:?}"
        );
    }
}
