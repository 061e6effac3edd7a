//! The dataset and snapshot model the pack keeps between calls
//! (`sonde_pack_zfs::cache`): a burst of questions about one dataset costs
//! one listing, a new snapshot is seen at once, a snapshot named that the
//! model lacks is listed anew, and times that land far from any snapshot
//! say so.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_pack_zfs::fixture::{SnapshotState, standard_snapshot_names};
use sonde_packs::exec::Argv;
use support::{Env, home, list};

/// `zfs list` and `zfs get` commands that list datasets or snapshots (not
/// a property read such as `written@…` or `dataset_properties`).
fn listings(calls: &[Argv]) -> usize {
    calls
        .iter()
        .filter(|a| {
            let args: Vec<String> = a
                .args
                .iter()
                .map(|x| x.to_string_lossy().into_owned())
                .collect();
            a.program == "zfs"
                && (args[0] == "list"
                    || (args[0] == "get" && args.iter().any(|x| x.contains("createtxg"))))
        })
        .count()
}

/// Twenty questions an assistant might ask about one dataset.
fn session() -> Vec<(&'static str, Value)> {
    let snap = |n: usize| standard_snapshot_names()[n - 1].clone();
    vec![
        ("list_snapshots", home(json!({}))),
        ("list_dir", home(json!({"path": "etc"}))),
        ("read_file", home(json!({"path": "etc/nginx/nginx.conf"}))),
        (
            "file_history",
            home(json!({"path": "etc/nginx/nginx.conf"})),
        ),
        (
            "read_file",
            home(json!({"path": "etc/nginx/nginx.conf", "snapshot": snap(1)})),
        ),
        (
            "file_diff",
            home(json!({"path": "etc/nginx/nginx.conf", "from": snap(1), "to": snap(2)})),
        ),
        ("find_deleted", home(json!({}))),
        ("last_appearance", home(json!({"path": "alice/notes.txt"}))),
        (
            "read_file",
            home(json!({"path": "alice/notes.txt", "snapshot": snap(2)})),
        ),
        ("find_files", home(json!({"name": "*.txt"}))),
        ("content_grep", home(json!({"text": "listen"}))),
        ("versions_of", home(json!({"path": "etc/nginx/nginx.conf"}))),
        ("size_breakdown", home(json!({}))),
        ("top_consumers", home(json!({"n": 5}))),
        (
            "diff_snapshots",
            home(json!({"from": snap(2), "to": snap(3)})),
        ),
        (
            "bisect_change",
            home(
                json!({"path": "etc/nginx/nginx.conf", "predicate": "contains", "value": "http2"}),
            ),
        ),
        ("snapshots_containing", home(json!({"path": "deep"}))),
        ("first_appearance", home(json!({"path": "alice/todo.txt"}))),
        (
            "list_dir",
            home(json!({"path": "bob", "snapshot": "2024-01-02"})),
        ),
        ("snapshot_cadence", home(json!({}))),
    ]
}

#[test]
fn a_session_about_one_dataset_lists_it_once() {
    let env = Env::standard_in_process();
    let questions = session();
    assert_eq!(questions.len(), 20);
    for (probe, params) in questions {
        env.ok(probe, params);
    }
    let calls = env.calls();
    assert_eq!(
        listings(&calls),
        2,
        "one listing of the datasets, one of tank/home's snapshots: {:?}",
        calls.iter().map(Argv::display).collect::<Vec<_>>()
    );

    // Without the model (a zero time to live) every call lists.
    let mut cold = Env::standard_in_process();
    cold.pack = sonde_pack_zfs::pack_with_cache(std::sync::Arc::new(
        sonde_pack_zfs::cache::ModelCache::new(std::time::Duration::ZERO),
    ))
    .unwrap();
    for (probe, params) in session() {
        cold.ok(probe, params);
    }
    assert!(listings(&cold.calls()) >= 39, "{}", listings(&cold.calls()));
}

fn new_snapshot(env: &mut Env, name: &str, with_dir: bool) {
    let mount = env.home();
    if with_dir {
        let dir = mount.join(".zfs/snapshot").join(name);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/hosts"), "10.0.0.1 new\n").unwrap();
    }
    let last = env.fixture.state.snapshots[5].clone();
    env.change_state_in_process_keeping_model(|s| {
        s.snapshots.insert(
            6,
            SnapshotState {
                name: format!("tank/home@{name}"),
                createtxg: last.createtxg + 1,
                creation: last.creation + 3600,
                ..last
            },
        );
    });
}

#[test]
fn a_new_snapshot_is_seen_at_once() {
    let mut env = Env::standard_in_process();
    let v = env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "snapshot": "latest"})),
    );
    assert_eq!(v["snapshot"]["name"], standard_snapshot_names()[5]);
    // Taken a moment later: its directory appears in .zfs/snapshot, which
    // changes that directory's time and link count.
    new_snapshot(&mut env, "fresh", true);
    let before = listings(&env.calls());
    let v = env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "snapshot": "latest"})),
    );
    assert_eq!(v["snapshot"]["name"], "fresh");
    assert_eq!(v["content"], "10.0.0.1 new\n");
    assert_eq!(listings(&env.calls()), before + 1, "listed once more");
    env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "snapshot": "latest"})),
    );
    assert_eq!(listings(&env.calls()), before + 1, "and then kept");
}

#[test]
fn a_snapshot_named_that_the_model_lacks_is_listed_anew() {
    let mut env = Env::standard_in_process();
    env.ok("list_snapshots", home(json!({})));
    // A snapshot the model has not seen, whose directory is not (yet)
    // visible: naming it lists the snapshots again.
    new_snapshot(&mut env, "named-later", false);
    let before = listings(&env.calls());
    let v = env.ok(
        "size_delta",
        home(json!({"from": "oldest", "to": "named-later"})),
    );
    assert_eq!(v["to"]["name"], "named-later");
    assert_eq!(listings(&env.calls()), before + 1);
    // A name that does not exist at all is an error after one listing.
    let e = env.err("size_delta", home(json!({"to": "@no-such-snapshot"})));
    assert!(e.to_string().contains("no snapshot"), "{e}");
    // A snapshot that vanished: its directory is gone, the cached list is
    // dropped, and the next call lists again.
    let v = env.ok("list_snapshots", home(json!({})));
    assert_eq!(v["total"], 7);
    let gone = standard_snapshot_names()[0].clone();
    std::fs::rename(
        env.home().join(".zfs/snapshot").join(&gone),
        env.dir.path().join("moved-away"),
    )
    .unwrap();
    env.change_state_in_process_keeping_model(|s| {
        s.snapshots.remove(0);
    });
    let v = env.ok("list_snapshots", home(json!({})));
    assert_eq!(
        v["total"], 6,
        "the snapshot directory changed: listed again"
    );
}

#[test]
fn a_dataset_the_model_lacks_is_looked_up_again() {
    let mut env = Env::standard_in_process();
    env.ok("list_datasets", json!({}));
    let mut media = env.fixture.state.datasets[2].clone();
    media.name = "tank/media2".into();
    env.change_state_in_process_keeping_model(|s| s.datasets.push(media));
    let v = env.ok("list_snapshots", json!({"dataset": "tank/media2"}));
    assert_eq!(v["dataset"], "tank/media2");
    let e = env.err("list_snapshots", json!({"dataset": "tank/nothing"}));
    assert!(
        matches!(e, sonde_packs::handler::ProbeError::NotFound(_)),
        "{e:?}"
    );
}

#[test]
fn a_time_far_from_any_snapshot_says_how_far_and_warns() {
    let env = Env::standard_in_process();
    // The standard snapshots are from January 2024, daily.
    let v = env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "snapshot": "3 weeks ago"})),
    );
    let t = &v["time_selection"]["snapshot"];
    assert_eq!(t["asked"], "3 weeks ago");
    assert_eq!(t["snapshot"], standard_snapshot_names()[5]);
    assert!(
        t["distance_seconds"].as_i64().unwrap() > 300 * 86_400,
        "{t}"
    );
    assert!(
        t["warning"]
            .as_str()
            .unwrap()
            .contains("usually 1d 0h apart"),
        "{t}"
    );
    assert!(
        list(&v, "warnings")[0]
            .as_str()
            .unwrap()
            .starts_with("snapshot: the newest snapshot at or before")
    );
    // A date within the history: how far, and no warning.
    let v = env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "snapshot": "2024-01-03T12:00Z"})),
    );
    let t = &v["time_selection"]["snapshot"];
    assert_eq!(t["snapshot"], standard_snapshot_names()[2]);
    assert_eq!(t["distance_seconds"], 12 * 3600);
    assert_eq!(t["distance"], "12h 0m");
    assert!(
        t.get("warning").is_none() && v.get("warnings").is_none(),
        "{v}"
    );
    // Names and keywords are not times: nothing to say.
    let v = env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "snapshot": "oldest"})),
    );
    assert!(v.get("time_selection").is_none());
}
