//! The guarantees of the zfs pack, each proven by a test named after it.
//!
//! The command-line guarantees run every probe — with each example, with
//! hostile values in every parameter the schema lets through, with every
//! enum value, and under three ZFS behaviours (OpenZFS, zfs-fuse, OpenZFS
//! without `diff` rights, so every fallback path runs) — against a runner
//! that records each argv, and check the whole table with rules written
//! here, independently of the pack's own allowlist:
//! - `no_mutating_zfs_subcommand_is_reachable`
//! - `no_shell_in_any_probe_argv`
//! - `parameters_reach_argv_only_as_validated_names`
//! - `the_runner_refuses_what_is_not_read_only`
//! - `names_are_validated_before_any_call`
//!
//! Then: `paths_cannot_escape_the_snapshot` (and its property test),
//! `final_symlinks_are_reported_not_followed`, `every_read_is_bounded`,
//! `a_walk_past_its_deadline_returns_partial_results`,
//! `each_zfs_command_is_killed_at_the_deadline`,
//! `binary_content_comes_back_base64_with_a_flag`,
//! `the_dataset_allowlist_is_enforced`, `live_reading_can_be_turned_off`,
//! `every_probe_is_observe_and_needs_operator_approval`.
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sonde_pack_zfs::fixture::{Fixture, State};
use sonde_packs::exec::{Argv, ExecOutput, is_forbidden_program};
use sonde_packs::handler::{ProbeContext, ProbeError};
use sonde_packs::manifest::{Approval, ProbeSpec};
use sonde_packs::testing::RecordingRunner;
use sonde_protocol::Capability;
use sonde_protocol::schema::{DATASET, ParamKind, SNAPSHOT};
use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{Env, fake_binary, home, list};

/// The subcommands a read-only explorer needs, with the options each may
/// take (`true`: takes the next argument as its value). Written here, not
/// taken from the pack, so the pack cannot grant itself more.
/// An option and whether it takes the next argument as its value.
type Opt = (&'static str, bool);

const READ_ONLY: &[(&str, &str, &[Opt])] = &[
    (
        "zfs",
        "list",
        &[
            ("-H", false),
            ("-p", false),
            ("-r", false),
            ("-o", true),
            ("-t", true),
            ("-d", true),
        ],
    ),
    (
        "zfs",
        "get",
        &[
            ("-H", false),
            ("-p", false),
            ("-r", false),
            ("-o", true),
            ("-d", true),
        ],
    ),
    ("zfs", "diff", &[("-H", false), ("-F", false)]),
    ("zfs", "version", &[]),
    (
        "zpool",
        "list",
        &[("-H", false), ("-p", false), ("-o", true)],
    ),
    ("zpool", "status", &[]),
];

/// Every `zfs`/`zpool` subcommand that changes something (and a few that
/// stream data or run programs). None may appear anywhere in an argv.
const MUTATING: &[&str] = &[
    "destroy",
    "rollback",
    "snapshot",
    "snap",
    "clone",
    "promote",
    "rename",
    "set",
    "inherit",
    "mount",
    "unmount",
    "umount",
    "send",
    "receive",
    "recv",
    "allow",
    "unallow",
    "create",
    "upgrade",
    "hold",
    "release",
    "share",
    "unshare",
    "bookmark",
    "redact",
    "load-key",
    "unload-key",
    "change-key",
    "program",
    "scrub",
    "import",
    "export",
    "add",
    "remove",
    "attach",
    "detach",
    "replace",
    "offline",
    "online",
    "clear",
    "labelclear",
    "trim",
    "initialize",
    "split",
    "reguid",
    "reopen",
    "checkpoint",
    "resilver",
];

/// Values an attacker would try; most fail a schema (the first line of
/// defence), the ones a schema accepts are run.
const HOSTILE: &[&str] = &[
    "; zfs destroy -r tank",
    "$(zfs destroy tank)",
    "`id`",
    "a && b",
    "a | b",
    "-r",
    "-o",
    "--",
    "-t snapshot",
    "destroy",
    "rollback",
    "snapshot",
    "send",
    "tank@x; rm -rf /",
    "tank/home@autosnap_2024-01-01_daily",
    "tank",
    "tank/home",
    "../../etc",
    "/etc/passwd",
    "..",
    "x\ny",
    "name with spaces",
    "*",
    "-1",
    "written@-r",
    "all",
    "%2e%2e",
    "\\x2d",
    ".zfs/snapshot",
    "links/up/etc/passwd",
    "1 week ago",
    "2024-01-03",
];

fn hostile_values(spec: &sonde_protocol::schema::ParamSpec) -> Vec<Value> {
    match &spec.kind {
        ParamKind::Integer { min, max } => [*min, *max, 0, -1, 1]
            .into_iter()
            .map(|n| json!(n))
            .collect(),
        ParamKind::Boolean => vec![json!(true), json!(false)],
        ParamKind::StringList { .. } => HOSTILE.iter().map(|h| json!([h])).collect(),
        ParamKind::RelativePath { .. } => HOSTILE
            .iter()
            .flat_map(|h| {
                [
                    json!(h),
                    json!({"base64": base64::engine::general_purpose::STANDARD.encode(h)}),
                ]
            })
            .collect(),
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

/// Every parameter set the sweep tries for one probe.
fn sweep_params(probe: &ProbeSpec) -> Vec<Value> {
    let mut sets: Vec<Value> = probe
        .examples
        .iter()
        .map(|e| Value::Object(e.clone()))
        .collect();
    for base in &probe.examples {
        for p in &probe.params {
            for v in hostile_values(p) {
                let mut m: Map<String, Value> = base.clone();
                m.insert(p.name.clone(), v);
                sets.push(Value::Object(m));
            }
        }
    }
    sets
}

/// Every argv any probe built during the sweep (run once, shared).
fn sweep() -> &'static Vec<Argv> {
    static CALLS: OnceLock<Vec<Argv>> = OnceLock::new();
    CALLS.get_or_init(|| {
        let mut calls = Vec::new();
        let behaviours: [fn(&mut State); 3] =
            [|_| {}, |s| s.openzfs = false, |s| s.diff_delegated = false];
        for behave in behaviours {
            let mut env = Env::standard_in_process();
            env.change_state_in_process(behave);
            // No model kept between calls: every call builds every command
            // it needs from its own parameters.
            env.pack = sonde_pack_zfs::pack_with_cache(std::sync::Arc::new(
                sonde_pack_zfs::cache::ModelCache::new(Duration::ZERO),
            ))
            .unwrap();
            for probe in &env.pack.manifest.probes {
                for params in sweep_params(probe) {
                    // Errors are fine (most hostile values are refused);
                    // a panic fails the test.
                    let _ = env.run(&probe.name, params);
                }
            }
            calls.extend(env.calls());
        }
        calls
    })
}

fn args_of(argv: &Argv) -> Vec<String> {
    argv.args
        .iter()
        .map(|a| a.to_str().unwrap_or("\u{fffd}").to_owned())
        .collect()
}

#[test]
fn no_mutating_zfs_subcommand_is_reachable() {
    let calls = sweep();
    assert!(
        calls.len() > 500,
        "the sweep ran only {} commands",
        calls.len()
    );
    let mut seen = BTreeSet::new();
    for argv in calls {
        let args = args_of(argv);
        let sub = args.first().map(String::as_str).unwrap_or("");
        assert!(
            READ_ONLY
                .iter()
                .any(|(p, s, _)| *p == argv.program && *s == sub),
            "not a read-only command: {}",
            argv.display()
        );
        seen.insert((argv.program.clone(), sub.to_owned()));
        for a in &args {
            assert!(
                !MUTATING.contains(&a.as_str()),
                "{} holds the mutating word {a:?}",
                argv.display()
            );
        }
    }
    // The sweep reached every read-only command, so it covered the paths
    // that build them (fallbacks included).
    for (p, s, _) in READ_ONLY {
        assert!(
            seen.contains(&((*p).to_owned(), (*s).to_owned())),
            "`{p} {s}` was never run by the sweep"
        );
    }
}

#[test]
fn no_shell_in_any_probe_argv() {
    for argv in sweep() {
        assert!(
            argv.program == "zfs" || argv.program == "zpool",
            "program {:?}",
            argv.program
        );
        assert!(!is_forbidden_program(&argv.program));
        for a in args_of(argv) {
            assert!(
                !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.:/@,+-".contains(&b)),
                "argument {a:?} of {} holds a character a shell would interpret (or a space)",
                argv.display()
            );
        }
    }
}

fn is_property_list(text: &str) -> bool {
    text.split(',').all(|prop| {
        let (name, at) = prop
            .split_once('@')
            .map_or((prop, None), |(n, a)| (n, Some(a)));
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:.+-".contains(&b))
            && at.is_none_or(|a| !a.is_empty() && !a.starts_with('-'))
    })
}

#[test]
fn parameters_reach_argv_only_as_validated_names() {
    for argv in sweep() {
        let args = args_of(argv);
        let (_, _, options) = READ_ONLY
            .iter()
            .find(|(p, s, _)| *p == argv.program && Some(*s) == args.first().map(String::as_str))
            .unwrap();
        let mut i = 1;
        while i < args.len() {
            let a = &args[i];
            if let Some((_, valued)) = options.iter().find(|(o, _)| o == a) {
                if *valued {
                    let v = &args[i + 1];
                    assert!(
                        !v.starts_with('-'),
                        "{}: option {a} takes {v:?}",
                        argv.display()
                    );
                    i += 1;
                }
            } else {
                assert!(
                    !a.starts_with('-'),
                    "{}: option {a:?} is not one this command may take",
                    argv.display()
                );
                assert!(
                    DATASET.validate(a).is_ok()
                        || SNAPSHOT.validate(a).is_ok()
                        || is_property_list(a),
                    "{}: operand {a:?} is neither a validated name nor a property list",
                    argv.display()
                );
            }
            i += 1;
        }
    }
}

#[test]
fn the_runner_refuses_what_is_not_read_only() {
    let runner = RecordingRunner::replying(|_| ExecOutput {
        code: Some(0),
        ..ExecOutput::default()
    });
    let settings = Value::Null;
    let ctx = ProbeContext {
        deadline: Instant::now() + Duration::from_secs(5),
        runner: &runner,
        settings: &settings,
        secrets: &sonde_packs::SecretGuard::standard(),
    };
    let zfs = sonde_pack_zfs::zfs::Zfs::new(&ctx);
    let refused: &[(&str, &str, &[&str])] = &[
        ("zfs", "destroy", &["-r", "tank"]),
        ("zfs", "rollback", &["tank/home@a"]),
        ("zfs", "snapshot", &["tank/home@x"]),
        ("zfs", "set", &["compression=off", "tank"]),
        ("zpool", "scrub", &["tank"]),
        ("zpool", "export", &["tank"]),
        ("zfs", "get", &["-H", "-s", "local", "all", "tank"]),
        ("zfs", "list", &["-t", "snapshot"]),
        ("zfs", "get", &["all", "tank; zfs destroy tank"]),
        ("zfs", "diff", &["tank/home@a", "/etc/passwd"]),
        ("zpool", "status", &["-x", "tank"]),
        ("sh", "-c", &["zfs destroy tank"]),
    ];
    for (program, sub, args) in refused {
        let err = zfs.run(program, sub, args).unwrap_err();
        assert!(
            matches!(err, ProbeError::Denied(ref m) if m.contains("refusing")),
            "{program} {sub} {args:?}: {err:?}"
        );
    }
    assert!(
        runner.calls().is_empty(),
        "nothing was executed: {:?}",
        runner.calls()
    );
    assert!(zfs.run("zfs", "get", &["-H", "-p", "used", "tank"]).is_ok());
    assert_eq!(runner.calls().len(), 1);
}

#[test]
fn names_are_validated_before_any_call() {
    let env = Env::standard_in_process();
    let bad_names = [
        "tank; rm -rf /",
        "-r",
        "tank/../etc",
        "tank home",
        "tank@",
        "",
        "/tank",
        "tank/",
        "$(id)",
        "tank\n",
    ];
    for bad in bad_names {
        for probe in [
            "list_snapshots",
            "read_file",
            "find_deleted",
            "dataset_properties",
        ] {
            let err = env.err(probe, json!({"dataset": bad, "path": "x"}));
            assert!(
                matches!(err, ProbeError::InvalidInput(ref m) if m.contains("dataset")),
                "{probe} {bad:?}: {err:?}"
            );
        }
        assert!(matches!(
            env.err("pool_status", json!({"pool": bad})),
            ProbeError::InvalidInput(_)
        ));
        assert!(matches!(
            env.err("list_datasets", json!({"root": bad})),
            ProbeError::InvalidInput(_)
        ));
    }
    for bad in ["-rf", "Used", "all;id", "a b", "-o"] {
        assert!(
            matches!(
                env.err("dataset_properties", home(json!({"properties": [bad]}))),
                ProbeError::InvalidInput(_)
            ),
            "{bad}"
        );
    }
    assert!(
        env.calls().is_empty(),
        "nothing ran for invalid names: {:?}",
        env.calls()
    );
}

#[test]
fn paths_cannot_escape_the_snapshot() {
    let env = support::standard();
    std::fs::write(env.dir.path().join("outside.txt"), "SONDE-OUTSIDE-SECRET").unwrap();
    for snapshot in ["latest", "live"] {
        // Through a link in the middle of the path that leaves the root.
        for p in [
            "links/up/outside.txt",
            "links/up/etc/passwd",
            "links/escape/x",
            "links/up",
        ] {
            match env.run("read_file", home(json!({"path": p, "snapshot": snapshot}))) {
                Err(ProbeError::Denied(_) | ProbeError::NotFound(_)) => {}
                Ok((v, _)) => assert_eq!(v["type"], "symlink", "{p}: {v}"),
                Err(e) => panic!("{p}: {e:?}"),
            }
        }
        assert!(matches!(
            env.err("list_dir", home(json!({"path": "links/up", "snapshot": snapshot}))),
            ProbeError::InvalidInput(ref m) if m.contains("not followed")
        ));
        for probe in [
            "find_files",
            "size_breakdown",
            "top_consumers",
            "content_grep",
        ] {
            let err = env.err(
                probe,
                home(json!({"path": "links/up", "snapshot": snapshot, "text": "root"})),
            );
            assert!(
                matches!(err, ProbeError::InvalidInput(_)),
                "{probe}: {err:?}"
            );
        }
    }
    // `..` and absolute paths never get past the schema, in either form.
    for p in ["../../../etc/passwd", "/etc/passwd", "etc/../../x", ".."] {
        let b64 = json!({"base64": base64::engine::general_purpose::STANDARD.encode(p)});
        for path in [json!(p), b64] {
            for probe in [
                "read_file",
                "list_dir",
                "file_history",
                "find_deleted",
                "diff_snapshots",
            ] {
                let err = env.err(probe, home(json!({"path": path})));
                assert!(
                    matches!(err, ProbeError::InvalidInput(ref m) if m.contains("path")),
                    "{probe} {path}: {err:?}"
                );
            }
        }
    }
    // A link that stays inside is followed in the middle of a path.
    for snapshot in ["latest", "live"] {
        let inside = env.ok(
            "read_file",
            home(json!({"path": "links/etc/hosts", "snapshot": snapshot})),
        );
        assert_eq!(inside["content"], "127.0.0.1 localhost\n");
    }
    // The live tree's .zfs is not a way into the snapshots.
    let err = env.err(
        "read_file",
        home(json!({"path": ".zfs/snapshot/autosnap_2024-01-01_daily/alice/notes.txt"})),
    );
    assert!(
        matches!(err, ProbeError::Denied(ref m) if m.contains(".zfs")),
        "{err:?}"
    );
    // Walks never follow links out.
    let found = env.ok("find_files", home(json!({"name": "passwd"})));
    assert!(list(&found, "matches").is_empty(), "{found}");
}

#[test]
fn final_symlinks_are_reported_not_followed() {
    let env = support::standard();
    for snapshot in ["oldest", "live"] {
        let v = env.ok(
            "read_file",
            home(json!({"path": "links/escape", "snapshot": snapshot})),
        );
        assert_eq!(v["type"], "symlink");
        assert_eq!(v["symlink_target"], "/etc/passwd");
        assert!(v.get("content").is_none(), "{v}");
        let inside = env.ok(
            "read_file",
            home(json!({"path": "links/hosts", "snapshot": snapshot})),
        );
        assert_eq!(
            inside["type"], "symlink",
            "even a link that stays inside is not followed"
        );
        assert_eq!(inside["symlink_target"], "../etc/hosts");
        let listing = env.ok(
            "list_dir",
            home(json!({"path": "links", "snapshot": snapshot})),
        );
        let escape = list(&listing, "entries")
            .iter()
            .find(|e| e["name"] == "escape")
            .unwrap();
        assert_eq!(escape["type"], "symlink");
        assert_eq!(escape["symlink_target"], "/etc/passwd");
        let up = list(&listing, "entries")
            .iter()
            .find(|e| e["name"] == "up")
            .unwrap();
        assert_eq!(up["symlink_target"], "../../../../..");
    }
    let diff = env.ok(
        "file_diff",
        home(json!({"path": "links/escape", "from": "oldest"})),
    );
    assert_eq!(diff["new"]["type"], "symlink");
    assert!(diff["diff"].is_null());
}

mod confinement {
    use super::*;
    use proptest::prelude::*;

    const SEGMENTS: &[&str] = &[
        "links",
        "up",
        "escape",
        "hosts",
        "etc",
        "passwd",
        "..",
        ".",
        "",
        "weird",
        "nginx",
        "nginx.conf",
        "alice",
        "mnt",
        "outside.txt",
        "tank",
        "home",
        ".zfs",
        "snapshot",
        "autosnap_2024-01-01_daily",
    ];

    /// Whatever path a caller builds from the fixture's names, links and
    /// `..`, no probe returns anything from outside the snapshot.
    #[test]
    fn prop_no_probe_reads_outside_the_snapshot() {
        let env = Env::standard_in_process();
        for dir in [
            env.dir.path().to_path_buf(),
            env.dir.path().join("mnt"),
            env.dir.path().join("mnt/tank"),
        ] {
            std::fs::write(dir.join("outside.txt"), "SONDE-OUTSIDE-SECRET").unwrap();
        }
        let strategy = (
            prop::collection::vec(0..SEGMENTS.len(), 1..7),
            any::<bool>(),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(96));
        let successes = std::cell::Cell::new(0);
        runner
            .run(&strategy, |(segs, absolute)| {
                let path = format!(
                    "{}{}",
                    if absolute { "/" } else { "" },
                    segs.iter()
                        .map(|i| SEGMENTS[*i])
                        .collect::<Vec<_>>()
                        .join("/")
                );
                for snapshot in ["oldest", "live"] {
                    for probe in [
                        "read_file",
                        "list_dir",
                        "find_files",
                        "file_history",
                        "versions_of",
                    ] {
                        let mut params = home(json!({"path": path}));
                        if ["read_file", "list_dir", "find_files"].contains(&probe) {
                            params["snapshot"] = json!(snapshot);
                        }
                        if probe == "versions_of" {
                            params["include_content"] = json!(true);
                        }
                        if let Ok((v, _)) = env.run(probe, params) {
                            successes.set(successes.get() + 1);
                            let text = v.to_string();
                            prop_assert!(
                                !text.contains("SONDE-OUTSIDE-SECRET"),
                                "{probe} {path:?}: {text}"
                            );
                            prop_assert!(!text.contains("root:x:0:0"), "{probe} {path:?}: {text}");
                            prop_assert!(
                                !text.contains("U09OREUtT1VUU0lERS1TRUNSRVQ"),
                                "{probe} {path:?}: base64 of the secret"
                            );
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
        assert!(
            successes.get() > 20,
            "the paths tried mostly failed: {} successes",
            successes.get()
        );
    }
}

#[test]
fn every_read_is_bounded() {
    let mut env = Env::standard_in_process();
    let live = env.home();
    std::fs::write(live.join("big5.txt"), "x".repeat(5 << 20)).unwrap();
    std::fs::create_dir(live.join("many")).unwrap();
    for i in 0..10_050 {
        std::fs::write(live.join(format!("many/f{i:05}")), "").unwrap();
    }
    std::fs::write(live.join("needles.txt"), "needle\n".repeat(1100)).unwrap();
    let applied = |v: &Value, name: &str| v["limits"][name]["applied"].as_u64().unwrap();

    // read_file: 1 MiB by default, 4 MiB at most.
    let (v, t) = env
        .run("read_file", home(json!({"path": "big5.txt"})))
        .unwrap();
    assert!(t);
    assert_eq!(v["bytes_returned"], 1 << 20);
    assert_eq!(v["content"].as_str().unwrap().len(), 1 << 20);
    let (v, t) = env
        .run(
            "read_file",
            home(json!({"path": "big5.txt", "max_bytes": 100_000_000})),
        )
        .unwrap();
    assert!(t, "over the cap is truncated, not an error");
    assert_eq!(v["bytes_returned"], 4 << 20);
    assert_eq!(v["limits"]["max_bytes"]["capped"], true);
    let (v, t) = env
        .run(
            "read_file",
            home(json!({"path": "big5.txt", "offset": (5 << 20) - 3})),
        )
        .unwrap();
    assert!(!t);
    assert_eq!(v["content"], "xxx");

    // list_dir: 1,000 / 10,000 entries.
    let (v, t) = env.run("list_dir", home(json!({"path": "many"}))).unwrap();
    assert!(t);
    assert_eq!(list(&v, "entries").len(), 1000);
    let (v, t) = env
        .run("list_dir", home(json!({"path": "many", "limit": 50_000})))
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "entries").len(), 10_000);

    // find_files: 100 / 1,000 results; walks: 100,000 / 1,000,000 entries.
    let (v, t) = env
        .run("find_files", home(json!({"path": "many"})))
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "matches").len(), 100);
    let (v, t) = env
        .run("find_files", home(json!({"path": "many", "limit": 5000})))
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "matches").len(), 1000);
    let (v, t) = env
        .run(
            "find_files",
            home(json!({"name": "nothing-matches", "max_entries": 100})),
        )
        .unwrap();
    assert!(t);
    assert_eq!(v["entries_walked"], 100);
    assert_eq!(applied(&v, "max_entries"), 100);

    // content_grep: 100 / 1,000 matching lines; bytes per file 1 / 4 MiB.
    let (v, t) = env
        .run(
            "content_grep",
            home(json!({"text": "needle", "name": "needles.txt"})),
        )
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "matches").len(), 100);
    let (v, t) = env
        .run(
            "content_grep",
            home(json!({"text": "needle", "name": "needles.txt", "limit": 5000})),
        )
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "matches").len(), 1000);
    let (v, t) = env
        .run(
            "content_grep",
            home(json!({"text": "y", "name": "big5.txt", "max_file_bytes": 100_000_000})),
        )
        .unwrap();
    assert!(t, "the 5 MiB file is read only to 4 MiB");
    assert_eq!(v["files_read_partly"], 1);
    assert_eq!(applied(&v, "max_file_bytes"), 4 << 20);

    // size_breakdown and top_consumers: walks of 100,000 / 1,000,000 entries; n 20 / 1,000.
    for probe in ["size_breakdown", "top_consumers"] {
        let (v, t) = env.run(probe, home(json!({"max_entries": 50}))).unwrap();
        assert!(t, "{probe}");
        assert_eq!(v["entries_walked"], 50, "{probe}");
        assert_eq!(v["complete"], false);
        let (v, t) = env.run(probe, home(json!({}))).unwrap();
        assert!(!t, "{probe}: {v}");
        assert_eq!(applied(&v, "max_entries"), 100_000);
        let (v, _) = env
            .run(probe, home(json!({"max_entries": 90_000_000})))
            .unwrap();
        assert_eq!(applied(&v, "max_entries"), 1_000_000);
    }
    let (v, _) = env.run("top_consumers", home(json!({}))).unwrap();
    assert_eq!(list(&v, "files").len(), 20);
    let (v, _) = env
        .run("top_consumers", home(json!({"n": 50_000})))
        .unwrap();
    assert_eq!(applied(&v, "n"), 1000);

    // file_diff and versions_of: 1 MiB / 4 MiB per side.
    let (v, t) = env
        .run("file_diff", home(json!({"path": "big5.txt"})))
        .unwrap();
    assert!(t);
    assert_eq!(v["new"]["bytes_read"], 1 << 20);
    let (v, _) = env
        .run(
            "file_diff",
            home(json!({"path": "big5.txt", "max_bytes": 100_000_000})),
        )
        .unwrap();
    assert_eq!(v["new"]["bytes_read"], 4 << 20);
    let (v, t) = env
        .run(
            "versions_of",
            home(json!({"path": "big5.txt", "include_content": true})),
        )
        .unwrap();
    assert!(t);
    assert_eq!(v["versions"][0]["content"].as_str().unwrap().len(), 1 << 20);
    assert_eq!(v["versions"][0]["content_truncated"], true);
    let (v, _) = env
        .run(
            "versions_of",
            home(json!({"path": "big5.txt", "include_content": true, "max_bytes": 100_000_000})),
        )
        .unwrap();
    assert_eq!(v["versions"][0]["content"].as_str().unwrap().len(), 4 << 20);

    // find_deleted: 1,000 / 10,000 entries.
    let (v, _) = env
        .run("find_deleted", home(json!({"limit": 50_000})))
        .unwrap();
    assert_eq!(applied(&v, "limit"), 10_000);

    // list_snapshots and stale_snapshots: 1,000 by default, 10,000 at most.
    env.change_state_in_process(|s| {
        let template = s.snapshots[0].clone();
        for i in 0..10_050 {
            let mut extra = template.clone();
            extra.name = format!("tank/home@extra-{i:05}");
            extra.createtxg = 10 + i;
            extra.creation = template.creation - 86_400 * 400 - i as i64;
            s.snapshots.push(extra);
        }
    });
    let (v, t) = env.run("list_snapshots", home(json!({}))).unwrap();
    assert!(t);
    assert_eq!(list(&v, "snapshots").len(), 1000);
    let (v, t) = env
        .run("list_snapshots", home(json!({"limit": 50_000})))
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "snapshots").len(), 10_000);
    assert_eq!(v["total"], 10_056);
    let (v, t) = env.run("stale_snapshots", json!({})).unwrap();
    assert!(t);
    assert_eq!(list(&v, "snapshots").len(), 1000);
    let (v, t) = env
        .run("stale_snapshots", json!({"limit": 50_000}))
        .unwrap();
    assert!(t);
    assert_eq!(list(&v, "snapshots").len(), 10_000);
}

#[test]
fn a_walk_past_its_deadline_returns_partial_results() {
    let env = Env::standard_in_process();
    for probe in ["size_breakdown", "top_consumers", "find_files"] {
        let (v, truncated) = env.run_for(probe, home(json!({})), Duration::ZERO).unwrap();
        assert!(truncated, "{probe}: {v}");
        assert_eq!(v["entries_walked"], 0, "{probe}");
    }
}

#[test]
fn each_zfs_command_is_killed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // A `zfs` that takes a minute to answer: the fixture's fake (a real
    // program; the runner refuses scripts) with a command delay.
    let fixture = Fixture::standard(dir.path(), &fake_binary()).unwrap();
    fixture.set_command_delay(Duration::from_secs(60)).unwrap();
    let runner = sonde_packs::exec::SystemRunner::new(&fixture.search_path());
    let pack = sonde_pack_zfs::pack().unwrap();
    let settings = Value::Null;
    let ctx = ProbeContext {
        deadline: Instant::now() + Duration::from_millis(500),
        runner: &runner,
        settings: &settings,
        secrets: &sonde_packs::SecretGuard::standard(),
    };
    let params = sonde_protocol::schema::validate(
        &pack.manifest.probe("list_snapshots").unwrap().params,
        home(json!({})).as_object().unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    let err = pack.handlers["list_snapshots"]
        .run(&ctx, &params)
        .unwrap_err();
    assert_eq!(err, ProbeError::Timeout);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the command was not killed: {:?}",
        start.elapsed()
    );
}

#[test]
fn binary_content_comes_back_base64_with_a_flag() {
    let env = Env::standard_in_process();
    let v = env.ok(
        "read_file",
        home(json!({"path": "big/blob.bin", "max_bytes": 3})),
    );
    assert_eq!(v["binary"], true);
    assert_eq!(v["encoding"], "base64");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["content"].as_str().unwrap())
            .unwrap(),
        [0xab; 3]
    );
    let text = env.ok("read_file", home(json!({"path": "etc/hosts"})));
    assert_eq!(
        (text["binary"].as_bool(), text["encoding"].as_str()),
        (Some(false), Some("utf-8"))
    );
    let versions = env.ok(
        "versions_of",
        home(json!({"path": "docs/report.bin", "include_content": true})),
    );
    assert_eq!(versions["versions"][0]["binary"], true);
    assert_eq!(versions["versions"][0]["encoding"], "base64");
    let grep = env.ok("content_grep", home(json!({"text": "x"})));
    assert!(grep["binary_files_skipped"].as_u64().unwrap() >= 1);
}

#[test]
fn the_dataset_allowlist_is_enforced() {
    let mut env = Env::standard_in_process();
    env.settings = json!({"datasets": ["tank/media"]});
    for probe in [
        "list_snapshots",
        "read_file",
        "find_deleted",
        "file_history",
        "diff_snapshots",
        "dataset_properties",
        "size_delta",
        "snapshot_cadence",
        "stale_snapshots",
    ] {
        let takes_path = env
            .pack
            .manifest
            .probe(probe)
            .unwrap()
            .params
            .iter()
            .any(|p| p.name == "path");
        let params = if takes_path {
            home(json!({"path": "etc/hosts"}))
        } else {
            home(json!({}))
        };
        let err = env.err(probe, params);
        assert!(
            matches!(err, ProbeError::Denied(ref m) if m.contains("tank/media") && m.contains("[packs.zfs]")),
            "{probe}: {err:?}"
        );
    }
    assert!(
        env.calls().is_empty(),
        "refused before any command: {:?}",
        env.calls()
    );
    let listed = env.ok("list_datasets", json!({}));
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["datasets"][0]["name"], "tank/media");
    assert_eq!(
        env.ok("list_datasets", json!({"root": "tank"}))["total"],
        1,
        "a root above the allowlist lists only allowed datasets"
    );
    assert!(matches!(
        env.err("list_datasets", json!({"root": "tank/home"})),
        ProbeError::Denied(_)
    ));
    let stale = env.ok("stale_snapshots", json!({}));
    assert!(
        list(&stale, "snapshots")
            .iter()
            .all(|s| s["dataset"] == "tank/media"),
        "{stale}"
    );
    assert_eq!(stale["count"], 2);
    let cadence = env.ok("snapshot_cadence", json!({}));
    assert_eq!(list(&cadence, "datasets").len(), 1);
    assert_eq!(cadence["datasets"][0]["dataset"], "tank/media");
    assert_eq!(
        env.ok("list_pools", json!({}))["pools"][0]["name"],
        "tank",
        "the pool holding an allowed dataset is shown"
    );
    assert_eq!(env.ok("agent_info", json!({}))["datasets_visible"], 1);
    assert!(
        env.ok(
            "read_file",
            json!({"dataset": "tank/media", "path": "films/holiday.mkv", "max_bytes": 1})
        )
        .get("content")
        .is_some()
    );
    env.settings = json!({"datasets": ["backup"]});
    assert!(list(&env.ok("list_pools", json!({})), "pools").is_empty());
    assert!(matches!(
        env.err("pool_status", json!({"pool": "tank"})),
        ProbeError::Denied(_)
    ));
    assert!(list(&env.ok("pool_status", json!({})), "pools").is_empty());
    // The agent refuses a config with a mistake in the table.
    let check = env.pack.settings_check.unwrap();
    assert!(check(&json!({"datasets": ["tank/home"], "live": false})).is_ok());
    assert!(
        check(&json!({"dataset": ["tank/home"]}))
            .unwrap_err()
            .contains("known keys")
    );
    assert!(check(&json!({"datasets": ["tank; rm"]})).is_err());
}

#[test]
fn live_reading_can_be_turned_off() {
    let mut env = Env::standard_in_process();
    env.settings = json!({"live": false});
    let v = env.ok("read_file", home(json!({"path": "etc/hosts"})));
    assert_eq!(
        v["snapshot"]["name"], "autosnap_2024-01-06_daily",
        "the default is the newest snapshot"
    );
    for probe in ["read_file", "list_dir", "find_files", "size_breakdown"] {
        let err = env.err(
            probe,
            home(json!({"path": "etc/hosts", "snapshot": "live"})),
        );
        assert!(
            matches!(err, ProbeError::Denied(ref m) if m.contains("live = false")),
            "{probe}: {err:?}"
        );
    }
    let h = env.ok("file_history", home(json!({"path": "etc/hosts"})));
    assert_eq!(h["includes_live"], false);
    assert_eq!(h["snapshots_examined"], 6);
    let d = env.ok("find_deleted", home(json!({})));
    assert_eq!(d["compared_with"]["name"], "autosnap_2024-01-06_daily");
    let diff = env.ok("diff_snapshots", home(json!({})));
    assert_eq!(diff["to"]["name"], "autosnap_2024-01-06_daily");
    assert_eq!(diff["from"]["name"], "autosnap_2024-01-05_daily");
    assert!(
        env.ok("first_appearance", home(json!({"path": "live-only.txt"})))["exists_live"].is_null()
    );
}

#[test]
fn every_probe_is_observe_and_needs_operator_approval() {
    let pack = sonde_pack_zfs::pack().unwrap();
    assert_eq!(pack.manifest.approval, Approval::Operator);
    assert_eq!(pack.manifest.probes.len(), 25);
    for p in &pack.manifest.probes {
        assert_eq!(p.capability, Capability::Observe, "{}", p.name);
        assert!(
            !p.description.is_empty() && !p.output.is_empty() && !p.examples.is_empty(),
            "{}",
            p.name
        );
        assert!(p.exec.is_none(), "{} is code, not an argv template", p.name);
    }
    let runbook = pack
        .manifest
        .runbooks
        .iter()
        .find(|r| r.category == "zfs")
        .unwrap();
    let steps: Vec<&str> = runbook.steps.iter().map(|s| s.probe.as_str()).collect();
    assert_eq!(
        steps,
        [
            "pool_status",
            "list_pools",
            "snapshot_cadence",
            "space_report"
        ]
    );
    assert_eq!(pack.manifest.requires.commands, ["zfs", "zpool"]);
    assert!(pack.manifest.requires.hints["zfs"].contains("zfs allow -u sonde diff"));
}
