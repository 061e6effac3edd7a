//! The systemd pack. This machine runs no systemd (PID 1 is something
//! else), so the probes run for real only to prove they say so cleanly;
//! their parsing is tested on systemctl output in systemd's formats
//! (fixtures/README.md says which is recorded and which transcribed).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Map, Value, json};
use sonde_packs::exec::{Argv, ExecOutput, SystemRunner};
use sonde_packs::handler::ProbeError;
use sonde_packs::testing::RecordingRunner;
use sonde_protocol::Capability;
use sonde_protocol::schema::validate;
use std::path::Path;
use std::time::Duration;

fn run(
    probe: &str,
    p: Value,
    reply: impl Fn(&Argv) -> ExecOutput + Send + Sync + 'static,
) -> (Result<Value, ProbeError>, Vec<String>) {
    let def = support::pack("systemd");
    let runner = RecordingRunner::replying(reply);
    let r = support::run_with(
        &def,
        probe,
        p.as_object().unwrap(),
        &Value::Null,
        &runner,
        Duration::from_secs(5),
    )
    .map(|o| o.data);
    (r, runner.calls().iter().map(Argv::display).collect())
}

fn ok(stdout: Vec<u8>) -> ExecOutput {
    ExecOutput {
        code: Some(0),
        stdout,
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

fn runs_systemd() -> bool {
    Path::new("/run/systemd/system").exists()
}

#[test]
fn on_this_machine_every_probe_works_or_says_systemd_is_absent() {
    let runner = SystemRunner::default();
    for (probe, p) in [
        ("services.list", json!({"state": "failed"})),
        ("service.status", json!({"unit": "ssh.service"})),
    ] {
        let r = support::run_real("systemd", probe, p, Value::Null);
        if runs_systemd() {
            assert!(
                r.is_ok() || matches!(r, Err(ProbeError::NotFound(_))),
                "{probe}: {r:?}"
            );
        } else if sonde_packs::exec::CommandRunner::resolve(&runner, "systemctl").is_some() {
            // Recorded here: "System has not been booted with systemd …".
            assert!(
                matches!(r, Err(ProbeError::Unsupported(ref m)) if m.contains("systemd is not running") && m.contains("has not been booted with systemd")),
                "{probe}: {r:?}"
            );
        } else {
            assert!(
                matches!(r, Err(ProbeError::Unsupported(_))),
                "{probe}: {r:?}"
            );
        }
    }
    // The journal can be read without systemd running (from its files).
    if sonde_packs::exec::CommandRunner::resolve(&runner, "journalctl").is_some() {
        let v = support::run_real(
            "systemd",
            "journal.query",
            json!({"unit": "ssh.service", "lines": 5}),
            Value::Null,
        )
        .unwrap();
        assert_eq!(v["unit"], "ssh.service");
        assert!(v["entries"].as_array().unwrap().len() <= 5);
    }
}

#[test]
fn the_recorded_no_systemd_error_is_unsupported() {
    let stderr = support::fixture_text("systemd/systemctl-without-systemd.stderr");
    let (r, _) = run("services.list", json!({}), move |_| failed(&stderr));
    assert!(
        matches!(r, Err(ProbeError::Unsupported(ref m)) if m.contains("PID 1")),
        "{r:?}"
    );
}

#[test]
fn services_list_parses_and_flags_failures() {
    let (r, calls) = run(
        "services.list",
        json!({"state": "failed", "pattern": "n*"}),
        |_| ok(support::fixture("systemd/list-units-service-all.txt")),
    );
    let v = r.unwrap();
    assert_eq!(v["counts"], json!({"total": 8, "failed": 1}));
    assert_eq!(
        v["services"][3],
        json!({"unit": "nginx.service", "load": "loaded", "active": "failed", "sub": "failed", "description": "A high performance web server and a reverse proxy server"})
    );
    assert_eq!(
        v["services"][5]["unit"],
        "systemd-fsck@dev-disk-by\\x2duuid-1234.service"
    );
    assert_eq!(
        v["services"][7]["unit"], "plymouth-quit.service",
        "the ● marker is not part of the name"
    );
    assert_eq!(v["services"][7]["load"], "not-found");
    assert_eq!(
        v["findings"],
        json!([{"severity": "error", "message": "nginx.service has failed (A high performance web server and a reverse proxy server)"}])
    );
    assert_eq!(
        calls,
        [
            "systemctl list-units --type service --all --no-pager --plain --full --no-legend --state failed -- n*"
        ]
    );
}

#[test]
fn service_status_reads_show_output() {
    let (r, calls) = run("service.status", json!({"unit": "ssh.service"}), |_| {
        ok(support::fixture("systemd/show-ssh.txt"))
    });
    let v = r.unwrap();
    assert_eq!(v["active_state"], "active");
    assert_eq!(v["since_ms"], 1_714_550_400_000i64);
    assert_eq!(v["memory_bytes"], 5_234_688);
    assert_eq!(v["main_pid"], 612);
    assert_eq!(v["cpu_seconds"], 1.52);
    assert_eq!(v["findings"], json!([]));
    assert_eq!(calls.len(), 1);
    assert!(calls[0].starts_with("systemctl show --no-pager --timestamp unix --property Id,"));
    assert!(calls[0].ends_with(" -- ssh.service"));

    let (r, _) = run("service.status", json!({"unit": "nginx.service"}), |_| {
        ok(support::fixture("systemd/show-nginx-failed.txt"))
    });
    let v = r.unwrap();
    assert_eq!(v["memory_bytes"], Value::Null, "[not set] is null");
    assert_eq!(v["main_pid"], Value::Null, "no main process");
    assert_eq!(v["main_exit_status"], 1);
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert!(
        findings[0]["message"]
            .as_str()
            .unwrap()
            .contains("failed (result: exit-code)")
    );
    assert!(
        findings[1]["message"]
            .as_str()
            .unwrap()
            .contains("restarted 5 times")
    );

    let (r, _) = run("service.status", json!({"unit": "nope.service"}), |_| {
        ok(support::fixture("systemd/show-not-found.txt"))
    });
    assert!(
        matches!(r, Err(ProbeError::NotFound(ref m)) if m.contains("nope.service")),
        "{r:?}"
    );
}

#[test]
fn service_status_retries_without_unix_timestamps_on_old_systemd() {
    let (r, calls) = run("service.status", json!({"unit": "ssh.service"}), |argv| {
        if argv.args.iter().any(|a| a == "--timestamp") {
            failed(&support::fixture_text(
                "systemd/show-timestamp-unknown-systemd247.stderr",
            ))
        } else {
            ok(support::fixture("systemd/show-ssh-systemd247.txt"))
        }
    });
    let v = r.unwrap();
    assert_eq!(v["since_ms"], Value::Null);
    assert_eq!(v["since"], "Wed 2024-05-01 08:00:00 UTC");
    assert_eq!(v["active_state"], "active");
    assert_eq!(calls.len(), 2);
    assert!(!calls[1].contains("--timestamp"));
}

#[test]
fn journal_query_is_one_units_journal() {
    let (r, calls) = run(
        "journal.query",
        json!({"unit": "nginx.service", "priority": "err", "since": "-1d", "lines": 100}),
        |_| ok(support::fixture("system/journalctl-reverse.jsonl")),
    );
    let v = r.unwrap();
    assert_eq!(v["unit"], "nginx.service");
    assert_eq!(v["entries"].as_array().unwrap().len(), 8);
    assert!(
        calls[0].ends_with("--lines 100 --unit nginx.service --priority err --since -1d"),
        "{calls:?}"
    );
}

#[test]
fn service_restart_is_the_only_interact_probe_and_runs_argv_only() {
    let def = support::pack("systemd");
    for p in &def.manifest.probes {
        let expected = if p.name == "service.restart" {
            Capability::Interact
        } else {
            Capability::Observe
        };
        assert_eq!(p.capability, expected, "{}", p.name);
    }
    assert_eq!(
        def.manifest.approval,
        sonde_packs::manifest::Approval::Operator
    );
    let (r, calls) = run(
        "service.restart",
        json!({"unit": "nginx.service"}),
        |argv| {
            if argv.args[0] == "restart" {
                ok(Vec::new())
            } else {
                ok(b"active\n".to_vec())
            }
        },
    );
    assert_eq!(
        r.unwrap(),
        json!({"unit": "nginx.service", "restarted": true, "active_state": "active"})
    );
    assert_eq!(
        calls,
        [
            "systemctl restart --no-ask-password -- nginx.service",
            "systemctl show --property ActiveState --value -- nginx.service"
        ]
    );
    let stderr = support::fixture_text("systemd/restart-interactive-auth.stderr");
    let (r, calls) = run(
        "service.restart",
        json!({"unit": "nginx.service"}),
        move |_| failed(&stderr),
    );
    assert!(
        matches!(r, Err(ProbeError::Failed(ref m)) if m.contains("polkit") && m.contains("org.freedesktop.systemd1.manage-units") && m.contains("nginx.service")),
        "{r:?}"
    );
    assert_eq!(calls.len(), 1, "nothing else runs after a refusal");
    let stderr = support::fixture_text("systemd/restart-not-found.stderr");
    let (r, _) = run(
        "service.restart",
        json!({"unit": "nope.service"}),
        move |_| failed(&stderr),
    );
    assert!(matches!(r, Err(ProbeError::NotFound(_))), "{r:?}");
    // Only `.service` units, never anything that could be an option.
    let spec = &support::spec(&def, "service.restart").params;
    for bad in [
        "nginx",
        "-x.service",
        "--help",
        "a b.service",
        "multi-user.target",
        "x.service\n",
        "../x.service",
    ] {
        assert!(
            validate(spec, json!({"unit": bad}).as_object().unwrap()).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn unit_names_and_patterns_refuse_options_and_shell_text() {
    let def = support::pack("systemd");
    for probe in ["service.status", "journal.query"] {
        let spec = &support::spec(&def, probe).params;
        for bad in [
            "-x", "--help", "a b", "a;b", "$(id)", "`id`", "a\nb", "", "a/b",
        ] {
            let mut p = Map::new();
            p.insert("unit".into(), json!(bad));
            assert!(validate(spec, &p).is_err(), "{probe}: {bad:?}");
        }
        for good in [
            "ssh.service",
            "getty@tty1.service",
            "systemd-fsck@dev-disk-by\\x2duuid-1234.service",
            "docker",
        ] {
            let mut p = Map::new();
            p.insert("unit".into(), json!(good));
            assert!(validate(spec, &p).is_ok(), "{probe}: {good:?}");
        }
    }
    let spec = &support::spec(&def, "services.list").params;
    for bad in ["-x", "--all", "a b", "$(id)", "ssh*;id"] {
        assert!(
            validate(spec, json!({"pattern": bad}).as_object().unwrap()).is_err(),
            "{bad:?}"
        );
    }
    for good in ["ssh*", "docker*", "getty@*", "*.service", "[a-c]*"] {
        assert!(
            validate(spec, json!({"pattern": good}).as_object().unwrap()).is_ok(),
            "{good:?}"
        );
    }
}

#[test]
fn systemd_has_no_settings() {
    let check = support::pack("systemd").settings_check.unwrap();
    assert!(check(&Value::Null).is_ok());
    assert!(check(&json!({})).is_ok());
    let err = check(&json!({"restart_units": ["x.service"]})).unwrap_err();
    assert!(
        err.contains("restart_units") && err.contains("no settings"),
        "{err}"
    );
}
