//! The command-line guarantees of every built-in probe, proven by running
//! each probe — with each of its examples, with hostile values wherever its
//! schema lets them through, and with every enum value — against a runner
//! that records argv instead of executing it, under several answers (so the
//! retry and fallback paths run too):
//!
//! - `no_probe_argv_starts_with_a_shell`: every program is one of a fixed
//!   list of plain tools, none a shell, interpreter or exec-wrapper;
//! - `no_probe_program_comes_from_a_parameter`;
//! - `parameters_reach_argv_only_as_whole_elements`: never spliced into a
//!   larger argument that a program would interpret;
//! - `no_parameter_reaches_argv_as_an_option`: a value starting with `-`
//!   only ever follows an option that takes it as its value, or `--`;
//! - `every_builtin_probe_has_its_expected_capability`.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Map, Value, json};
use sonde_packs::exec::{Argv, ExecOutput, is_forbidden_program};
use sonde_packs::manifest::ProbeSpec;
use sonde_packs::testing::RecordingRunner;
use sonde_protocol::Capability;
use sonde_protocol::schema::{ParamKind, validate};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

/// The only programs built-in probes run, each with the options that take
/// the next argument as their value (getopt's required arguments).
const PROGRAMS: &[(&str, &[&str])] = &[
    (
        "journalctl",
        &[
            "--output",
            "--output-fields",
            "--lines",
            "--unit",
            "--priority",
            "--since",
        ],
    ),
    (
        "systemctl",
        &["--type", "--state", "--property", "--timestamp"],
    ),
    ("ping", &["-c", "-W", "-w"]),
    ("ip", &[]),
    ("dmesg", &[]),
    ("smartctl", &["--nocheck", "--device"]),
    ("upsc", &[]),
    (
        "pvesh",
        &[
            "--type",
            "--current",
            "--limit",
            "--start",
            "--source",
            "--errors",
            "--typefilter",
            "--output-format",
        ],
    ),
];

/// Programs whose pack checks composite arguments against a table (a
/// `pvesh` API path holding a node name, upsc's `UPS@HOST:PORT`): a
/// parameter may be part of such an argument only when the pack's table
/// accepts the whole argv (each pack's own hostile sweep proves the table
/// holds: `no_mutating_proxmox_call_is_reachable`,
/// `no_mutating_upsc_argv_is_reachable`).
fn checked_by_table(argv: &Argv) -> bool {
    let args: Vec<String> = argv
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    match argv.program.as_str() {
        "pvesh" => sonde_packs::proxmox::pvesh::check_argv("pvesh", &refs).is_ok(),
        "upsc" => sonde_packs::ups::upsc::check_argv("upsc", &refs).is_ok(),
        _ => false,
    }
}

/// Values an attacker would try. Most fail the schemas (which is the first
/// line of defence); the ones a schema accepts are run.
const HOSTILE: &[&str] = &[
    "; rm -rf /",
    "$(id)",
    "`id`",
    "a && b",
    "a | b",
    "-x",
    "--help",
    "--output=/etc/passwd",
    "-o",
    "x\ny",
    "x\r\ny",
    "..",
    "../../etc/shadow",
    "/etc/shadow",
    "name with spaces",
    "*",
    "-1h",
    "-30min",
    "a--help",
    "a=b",
    "::",
    "@1700000000",
    "x.service",
    "%2e%2e",
    "\\x2d",
    // Plain names, valid for many schemas: if a probe ever took its program
    // from a parameter, these would show up as the program.
    "sh",
    "evil-program",
];

/// Answers the recording runner gives, so that every retry and fallback
/// path of a probe is walked.
fn replies() -> Vec<ExecOutput> {
    let fail = |stderr: &str| ExecOutput {
        code: Some(1),
        stderr: stderr.as_bytes().to_vec(),
        ..Default::default()
    };
    vec![
        ExecOutput {
            code: Some(0),
            ..Default::default()
        },
        // Triggers `service.status`'s retry without --timestamp and
        // `logs.dmesg`'s fallback to plain dmesg.
        fail("systemctl: unrecognized option '--timestamp'"),
        fail("dmesg: read kernel buffer failed: Operation not permitted"),
        // Triggers the journal's retry without --output-fields.
        fail("journalctl: unrecognized option '--output-fields'"),
        ExecOutput {
            code: Some(0),
            stdout: b"not what the parser expects\n".to_vec(),
            ..Default::default()
        },
    ]
}

/// Every parameter set tried for a probe: its examples; each example with
/// one string parameter replaced by each hostile value its schema accepts;
/// each enum value.
fn parameter_sets(probe: &ProbeSpec) -> Vec<Map<String, Value>> {
    let mut sets: Vec<Map<String, Value>> = probe.examples.clone();
    if sets.is_empty() {
        sets.push(Map::new());
    }
    let mut more = Vec::new();
    for base in &sets {
        for p in &probe.params {
            let ParamKind::String { values, .. } = &p.kind else {
                continue;
            };
            let candidates: Vec<String> = HOSTILE
                .iter()
                .map(|h| (*h).to_owned())
                .chain(values.iter().flatten().cloned())
                .collect();
            for c in candidates {
                let mut s = base.clone();
                s.insert(p.name.clone(), json!(c));
                if validate(&probe.params, &s).is_ok() {
                    more.push(s);
                }
            }
        }
    }
    sets.extend(more);
    sets
}

/// One probe run: the parameters and every argv it produced.
#[derive(Debug)]
struct Run {
    probe: String,
    /// Which of [`replies`] the runner gave.
    reply: usize,
    params: Map<String, Value>,
    argvs: Vec<Argv>,
}

impl Run {
    /// The string values of the parameters (what an attacker controls).
    fn values(&self) -> Vec<&str> {
        self.params.values().filter_map(Value::as_str).collect()
    }
}

/// Runs every probe with every parameter set under every reply, once.
fn walk() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let mut runs = Vec::new();
        for def in support::packs() {
            let settings = match def.manifest.name.as_str() {
                "system" => json!({"log_files": ["/var/log/syslog", "/var/log/nginx/"]}),
                "docker" => json!({"socket": "/nonexistent/sonde-test/docker.sock"}),
                _ => Value::Null,
            };
            for probe in &def.manifest.probes {
                for params in parameter_sets(probe) {
                    for (reply_index, reply) in replies().into_iter().enumerate() {
                        let runner = RecordingRunner::replying(move |_| reply.clone());
                        // The result does not matter here, only what ran.
                        let _ = support::run_with(
                            &def,
                            &probe.name,
                            &params,
                            &settings,
                            &runner,
                            Duration::from_secs(5),
                        );
                        runs.push(Run {
                            probe: def.manifest.full_name(&probe.name),
                            reply: reply_index,
                            params: params.clone(),
                            argvs: runner.calls(),
                        });
                    }
                }
            }
        }
        runs
    })
}

fn value_options(program: &str) -> &'static [&'static str] {
    PROGRAMS
        .iter()
        .find(|(p, _)| *p == program)
        .map(|(_, o)| *o)
        .unwrap_or(&[])
}

#[test]
fn the_walk_reaches_every_program_running_probe_and_hostile_values() {
    let runs = walk();
    let running: BTreeSet<&str> = runs
        .iter()
        .filter(|r| !r.argvs.is_empty())
        .map(|r| r.probe.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "system.network.interfaces",
        "system.network.ping",
        "system.logs.journal",
        "system.logs.dmesg",
        "systemd.services.list",
        "systemd.service.status",
        "systemd.journal.query",
        "systemd.service.restart",
        "smart.disks.list",
        "smart.disks.health",
        "smart.disk.details",
        "ups.status",
        "ups.variables",
        "ups.clients",
        "proxmox.cluster.status",
        "proxmox.guests.list",
        "proxmox.guests.locks",
        "proxmox.guest.config",
        "proxmox.ha.status",
        "proxmox.storage.usage",
        "proxmox.tasks.recent",
        "proxmox.task.log",
        "proxmox.ceph.status",
    ]
    .into();
    assert_eq!(running, expected);
    let programs: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.argvs.iter().map(|a| a.program.as_str()))
        .collect();
    assert_eq!(
        programs,
        PROGRAMS.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>(),
        "every program of the list is exercised"
    );
    // Hostile values that a schema let through did reach argv, including
    // ones that start with `-`: the checks below are not vacuous.
    let reached = |pred: &dyn Fn(&str) -> bool| {
        runs.iter().any(|r| {
            r.values().iter().any(|v| {
                pred(v)
                    && HOSTILE.contains(v)
                    && r.argvs
                        .iter()
                        .any(|a| a.args.iter().any(|x| x.to_str() == Some(v)))
            })
        })
    };
    assert!(
        reached(&|v| v.starts_with('-')),
        "no dash value reached argv"
    );
    assert!(reached(&|v| v.contains('*')), "no glob reached argv");
}

#[test]
fn no_probe_argv_starts_with_a_shell() {
    for run in walk() {
        for argv in &run.argvs {
            assert!(
                !is_forbidden_program(&argv.program),
                "{} runs {}",
                run.probe,
                argv.display()
            );
            assert!(
                PROGRAMS.iter().any(|(p, _)| *p == argv.program),
                "{} runs {}, which is not in the list of plain tools probes may run",
                run.probe,
                argv.program
            );
        }
    }
}

#[test]
fn no_probe_program_comes_from_a_parameter() {
    for run in walk() {
        for argv in &run.argvs {
            for v in run.values() {
                assert!(
                    argv.program != v,
                    "{}: parameter {v:?} became the program in {}",
                    run.probe,
                    argv.display()
                );
            }
        }
    }
}

/// Arguments of the same probe's runs (same reply) where parameter `name`
/// had another value: the arguments that do not depend on it.
fn args_without(runs: &[Run], run: &Run, name: &str, value: &str) -> BTreeSet<String> {
    runs.iter()
        .filter(|r| r.probe == run.probe && r.reply == run.reply)
        .filter(|r| r.params.get(name).and_then(Value::as_str) != Some(value))
        .flat_map(|r| r.argvs.iter().flat_map(|a| a.args.iter()))
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn parameters_reach_argv_only_as_whole_elements() {
    let runs = walk();
    let mut checked = 0;
    for run in runs {
        for (name, v) in run
            .params
            .iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?)))
            .filter(|(_, v)| !v.is_empty())
        {
            let constant = args_without(runs, run, name, v);
            for argv in &run.argvs {
                for arg in &argv.args {
                    let arg = arg.to_string_lossy();
                    // An argument that also appears when the parameter has
                    // another value (`show` when unit = "sh") is the probe's
                    // own; one that contains the value only now is spliced.
                    if arg.contains(v)
                        && arg != v
                        && !constant.contains(arg.as_ref())
                        && !checked_by_table(argv)
                    {
                        panic!(
                            "{}: parameter {name} = {v:?} spliced into argument {arg:?} of {}",
                            run.probe,
                            argv.display()
                        );
                    }
                    checked += usize::from(arg == v);
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} parameter values reached argv"
    );
}

#[test]
fn no_parameter_reaches_argv_as_an_option() {
    for run in walk() {
        for argv in &run.argvs {
            let options = value_options(&argv.program);
            for v in run.values().into_iter().filter(|v| v.starts_with('-')) {
                for (i, arg) in argv.args.iter().enumerate() {
                    if arg.to_str() != Some(v) {
                        continue;
                    }
                    let after_end_of_options = argv.args[..i].iter().any(|a| a == "--");
                    let as_option_value = i
                        .checked_sub(1)
                        .and_then(|p| argv.args[p].to_str())
                        .is_some_and(|prev| options.contains(&prev));
                    assert!(
                        after_end_of_options || as_option_value,
                        "{}: {v:?} could be read as an option in {}",
                        run.probe,
                        argv.display()
                    );
                }
            }
        }
    }
}

#[test]
fn every_builtin_probe_has_its_expected_capability() {
    use Capability::{Interact, Observe};
    let expected: BTreeMap<&str, Capability> = [
        ("system.disk.usage", Observe),
        ("system.memory.usage", Observe),
        ("system.cpu.usage", Observe),
        ("system.uptime", Observe),
        ("system.network.interfaces", Observe),
        ("system.network.ping", Observe),
        ("system.logs.journal", Observe),
        ("system.logs.dmesg", Observe),
        ("system.logs.tail", Observe),
        ("systemd.services.list", Observe),
        ("systemd.service.status", Observe),
        ("systemd.journal.query", Observe),
        ("systemd.service.restart", Interact),
        ("docker.containers.list", Observe),
        ("docker.container.inspect", Observe),
        ("docker.logs.tail", Observe),
        ("docker.images.list", Observe),
        ("docker.daemon.info", Observe),
        ("nginx.error_log", Observe),
        ("nginx.access_log", Observe),
        ("nginx.access_summary", Observe),
        ("nginx.logs.list", Observe),
        ("nginx.stub_status", Observe),
        ("nginx.config", Observe),
        ("nginx.config.servers", Observe),
        ("proxmox.cluster.status", Observe),
        ("proxmox.guests.list", Observe),
        ("proxmox.guests.locks", Observe),
        ("proxmox.guest.config", Observe),
        ("proxmox.ha.status", Observe),
        ("proxmox.storage.usage", Observe),
        ("proxmox.tasks.recent", Observe),
        ("proxmox.task.log", Observe),
        ("proxmox.ceph.status", Observe),
        ("smart.disks.list", Observe),
        ("smart.disks.health", Observe),
        ("smart.disk.details", Observe),
        ("ups.status", Observe),
        ("ups.variables", Observe),
        ("ups.clients", Observe),
    ]
    .into();
    let mut actual = BTreeMap::new();
    for def in support::packs() {
        for probe in &def.manifest.probes {
            let full = def.manifest.full_name(&probe.name);
            assert!(
                !probe.description.is_empty() && !probe.output.is_empty(),
                "{full} needs a description and an output"
            );
            assert!(!probe.examples.is_empty(), "{full} needs an example");
            for p in &probe.params {
                assert!(
                    !p.description.is_empty(),
                    "{full}: parameter {} needs a description",
                    p.name
                );
            }
            actual.insert(full, probe.capability);
        }
    }
    let actual: BTreeMap<&str, Capability> = actual.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(actual, expected);
    // Only the systemd pack holds an interact probe, so only it needs the
    // operator; the system pack is all observe and may be automatic.
    for def in support::packs() {
        let m = &def.manifest;
        if m.max_capability() > Observe {
            assert_eq!(
                m.approval,
                sonde_packs::manifest::Approval::Operator,
                "{}",
                m.name
            );
        }
    }
}

#[test]
fn every_runbook_uses_its_category_and_valid_steps() {
    let categories: BTreeSet<String> = support::packs()
        .iter()
        .flat_map(|d| d.manifest.runbooks.iter().map(|r| r.category.clone()))
        .collect();
    assert_eq!(
        categories,
        [
            "docker", "nginx", "proxmox", "smart", "system", "systemd", "ups"
        ]
        .map(String::from)
        .into()
    );
    for def in support::packs() {
        // Manifest::parse already validated each step's parameters; the
        // summaries resolve every step to a full probe name.
        assert_eq!(
            def.manifest.runbook_summaries().len(),
            def.manifest.runbooks.len()
        );
    }
}

#[test]
fn docker_and_systemd_say_what_to_grant() {
    let docker = support::pack("docker");
    assert_eq!(docker.manifest.requires.groups, ["docker"]);
    assert_eq!(docker.manifest.requires.sockets, ["/var/run/docker.sock"]);
    assert!(docker.manifest.requires.hints["docker"].contains("usermod -aG docker sonde"));
    let systemd = support::pack("systemd");
    for requirement in systemd
        .manifest
        .requires
        .commands
        .iter()
        .chain(&systemd.manifest.requires.files)
    {
        assert!(
            systemd.manifest.requires.hints.contains_key(requirement),
            "{requirement} has no hint"
        );
    }
}
