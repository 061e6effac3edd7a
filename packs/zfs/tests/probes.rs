//! Every probe of the zfs pack against the standard fixture: what each
//! returns for the scenario in `sonde_pack_zfs::fixture::standard_trees`
//! (OpenZFS answers), and how each degrades on an older ZFS (zfs-fuse
//! answers) or without `zfs diff` rights.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_pack_zfs::fixture::{degraded_status, standard_snapshot_names};
use sonde_packs::handler::ProbeError;
use support::{home, list, standard};

fn names(v: &Value, field: &str) -> Vec<Value> {
    list(v, field).iter().map(|e| e["name"].clone()).collect()
}

fn snap(n: usize) -> String {
    standard_snapshot_names()[n - 1].clone()
}

#[test]
fn every_probe_runs_every_example() {
    let env = standard();
    for probe in &env.pack.manifest.probes {
        for example in &probe.examples {
            if let Err(e) = env.run(&probe.name, Value::Object(example.clone())) {
                panic!("zfs.{} {:?}: {e:?}", probe.name, example);
            }
        }
    }
}

#[test]
fn pools_capacity_health_and_scrub_age() {
    let mut env = standard();
    let pools = env.ok("list_pools", json!({}));
    let tank = &list(&pools, "pools")[0];
    assert_eq!(tank["name"], "tank");
    assert_eq!(tank["size_bytes"], 10u64 << 30);
    assert_eq!(tank["capacity_percent"], 10.0);
    assert_eq!(tank["fragmentation_percent"], 3.0);
    assert_eq!(tank["approximate"], false);
    assert!(list(&pools, "findings").is_empty(), "{pools}");

    let status = env.ok("pool_status", json!({"pool": "tank"}));
    let p = &list(&status, "pools")[0];
    assert_eq!(p["state"], "ONLINE");
    assert_eq!(p["last_scrub"]["time"], "2024-01-07T00:24:01Z");
    assert!(p["last_scrub_age_days"].as_i64().unwrap() > 35);
    assert_eq!(list(p, "vdevs").len(), 4);
    let findings = list(&status, "findings");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]["message"]
            .as_str()
            .unwrap()
            .contains("last scrubbed")
    );

    env.change_state(|s| {
        s.pools[0].status = degraded_status("tank");
        s.pools[0].health = "DEGRADED".into();
        s.pools[0].allocated = 9 << 30;
    });
    let status = env.ok("pool_status", json!({}));
    let messages: Vec<&str> = list(&status, "findings")
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(
            |m| m.starts_with("pool tank is DEGRADED: One or more devices")
                && m.contains("zpool replace")
        ),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("device sda has 0 read, 0 write and 3 checksum errors")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("device sdb is UNAVAIL (cannot open)")),
        "{messages:?}"
    );
    let pools = env.ok("list_pools", json!({}));
    let severities: Vec<&str> = list(&pools, "findings")
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, ["error", "error"], "{pools}");

    assert!(matches!(
        env.err("pool_status", json!({"pool": "nosuch"})),
        ProbeError::NotFound(_)
    ));
    assert!(matches!(
        env.err("pool_status", json!({"pool": "tank/home"})),
        ProbeError::InvalidInput(_)
    ));
}

#[test]
fn agent_info_describes_what_is_available() {
    let env = standard();
    let info = env.ok("agent_info", json!({}));
    assert_eq!(info["implementation"], "OpenZFS");
    assert_eq!(info["version"][0], "zfs-2.2.2-1");
    assert_eq!(info["pools"], json!(["tank"]));
    assert_eq!(info["datasets_visible"], 4);
    assert_eq!(info["datasets_mounted"], 2);
    assert_eq!(
        info["datasets_with_snapshot_contents"],
        json!(["tank/home", "tank/media"])
    );
    assert_eq!(
        info["features"],
        json!({"zfs_diff": true, "snapshot_contents": true})
    );
    assert!(
        info["delegation"]["needed_for_diff"]
            .as_str()
            .unwrap()
            .contains(" diff POOL_OR_DATASET")
    );
}

#[test]
fn datasets_and_properties() {
    let env = standard();
    let all = env.ok("list_datasets", json!({}));
    assert_eq!(
        names(&all, "datasets"),
        ["tank", "tank/home", "tank/media", "tank/vol"]
    );
    let ds = &list(&all, "datasets")[1];
    assert_eq!(ds["type"], "filesystem");
    assert_eq!(ds["mounted"], true);
    assert!(
        ds["mountpoint"]
            .as_str()
            .unwrap()
            .ends_with("/mnt/tank/home")
    );
    assert_eq!(list(&all, "datasets")[3]["type"], "volume");
    assert_eq!(list(&all, "datasets")[0]["mountpoint"], Value::Null);
    let below = env.ok("list_datasets", json!({"root": "tank/home"}));
    assert_eq!(names(&below, "datasets"), ["tank/home"]);
    let (few, truncated) = env.run("list_datasets", json!({"limit": 2})).unwrap();
    assert!(truncated);
    assert_eq!(few["total"], 4);

    let props = env.ok(
        "dataset_properties",
        home(json!({"properties": ["compression", "atime", "com.sun:auto-snapshot"]})),
    );
    assert_eq!(
        props["properties"]["compression"],
        json!({"value": "lz4", "source": "inherited from tank"})
    );
    assert_eq!(props["properties"]["atime"]["source"], "local");
    assert_eq!(
        props["properties"]["com.sun:auto-snapshot"]["value"],
        "true"
    );
    let every = env.ok("dataset_properties", home(json!({})));
    assert!(every["count"].as_u64().unwrap() >= 10);
    let unknown = env.err(
        "dataset_properties",
        home(json!({"properties": ["nosuchprop"]})),
    );
    assert!(
        matches!(unknown, ProbeError::InvalidInput(ref m) if m.contains("nosuchprop")),
        "{unknown:?}"
    );
    assert!(matches!(
        env.err("dataset_properties", json!({"dataset": "tank/nope"})),
        ProbeError::NotFound(_)
    ));
}

#[test]
fn snapshots_listed_oldest_first_and_by_time() {
    let env = standard();
    let s = env.ok("list_snapshots", home(json!({})));
    assert_eq!(s["total"], 6);
    let got: Vec<Value> = names(&s, "snapshots");
    let want: Vec<Value> = standard_snapshot_names()
        .into_iter()
        .map(Value::from)
        .collect();
    assert_eq!(got, want);
    assert_eq!(list(&s, "snapshots")[0]["time"], "2024-01-01T00:00:00Z");
    assert_eq!(
        list(&s, "snapshots")[0]["full_name"],
        format!("tank/home@{}", snap(1))
    );
    let since = env.ok("list_snapshots", home(json!({"since": "2024-01-05"})));
    assert_eq!(since["total"], 2);
    let (newest, truncated) = env
        .run("list_snapshots", home(json!({"limit": 2})))
        .unwrap();
    assert!(truncated);
    assert_eq!(
        names(&newest, "snapshots"),
        [json!(snap(5)), json!(snap(6))]
    );
    assert_eq!(newest["omitted_oldest"], 4);
    assert!(matches!(
        env.err("list_snapshots", home(json!({"since": "someday"}))),
        ProbeError::InvalidInput(_)
    ));
}

#[test]
fn cadence_finds_the_stopped_schedule() {
    let env = standard();
    let c = env.ok("snapshot_cadence", json!({}));
    let reports = list(&c, "datasets");
    let home_report = reports
        .iter()
        .find(|r| r["dataset"] == "tank/home")
        .unwrap();
    assert_eq!(home_report["classes"][0]["class"], "autosnap_*_daily");
    assert_eq!(home_report["classes"][0]["median_interval_seconds"], 86_400);
    assert_eq!(home_report["stale"], true);
    let media = reports
        .iter()
        .find(|r| r["dataset"] == "tank/media")
        .unwrap();
    assert_eq!(media["stale"], false, "two snapshots are not a schedule");
    assert_eq!(c["datasets_without_snapshots"], json!(["tank", "tank/vol"]));
    let findings = list(&c, "findings");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("tank/home: snapshots like autosnap_2024-01-06_daily came every 1d 0h")
    );
    let one = env.ok("snapshot_cadence", json!({"dataset": "tank/media"}));
    assert_eq!(list(&one, "datasets").len(), 1);
    let none = env.ok("snapshot_cadence", json!({"dataset": "tank"}));
    assert!(
        list(&none, "findings")[0]["message"]
            .as_str()
            .unwrap()
            .contains("no snapshots")
    );
}

#[test]
fn stale_snapshots_biggest_first() {
    let env = standard();
    let s = env.ok("stale_snapshots", json!({"older_than": "2024-01-03T12:00"}));
    assert_eq!(
        s["count"], 4,
        "three of tank/home and one of tank/media: {s}"
    );
    let used: Vec<u64> = list(&s, "snapshots")
        .iter()
        .map(|x| x["used_bytes"].as_u64().unwrap())
        .collect();
    assert!(used.windows(2).all(|w| w[0] >= w[1]), "{used:?}");
    assert_eq!(s["used_bytes_total"], used.iter().sum::<u64>());
    assert_eq!(list(&s, "per_dataset").len(), 2);
    let one = env.ok(
        "stale_snapshots",
        home(json!({"older_than": "2024-01-03T12:00"})),
    );
    assert_eq!(one["count"], 3);
    // The default is 90 days ago: every fixture snapshot is older.
    assert_eq!(env.ok("stale_snapshots", json!({}))["count"], 8);
}

#[test]
fn size_delta_between_snapshots_and_now() {
    let env = standard();
    let d = env.ok(
        "size_delta",
        home(json!({"from": "oldest", "to": "latest"})),
    );
    assert_eq!(d["snapshots_between"], 4);
    let r0 = d["referenced_from_bytes"].as_i64().unwrap();
    let r1 = d["referenced_to_bytes"].as_i64().unwrap();
    assert_eq!(d["referenced_delta_bytes"], r1 - r0);
    assert!(r1 - r0 > 190 * 1024, "big/blob.bin was added: {d}");
    // The blob and the edited files were written after the first snapshot.
    let written = d["written_since_from_bytes"].as_u64().unwrap();
    assert!(written >= 200 * 1024, "{d}");
    assert!(d["dataset_used_by_snapshots_bytes"].as_u64().is_some());
    let now = env.ok("size_delta", home(json!({"from": snap(6)})));
    assert_eq!(now["to"]["name"], "live");
    assert_eq!(
        now["written_since_from_bytes"],
        "not in any snapshot\n".len()
    );
    let err = env.err(
        "size_delta",
        home(json!({"from": "latest", "to": "oldest"})),
    );
    assert!(matches!(err, ProbeError::InvalidInput(ref m) if m.contains("newer")));
}

#[test]
fn directories_files_and_odd_names() {
    let env = standard();
    let root = env.ok("list_dir", home(json!({})));
    let top: Vec<Value> = names(&root, "entries");
    assert!(top.contains(&json!("live-only.txt")));
    assert!(
        !top.contains(&json!(".zfs")),
        "the control directory is hidden: {top:?}"
    );
    let old = env.ok("list_dir", home(json!({"snapshot": "oldest"})));
    assert!(names(&old, "entries").contains(&json!("deep")));
    assert_eq!(old["snapshot"]["name"], snap(1));

    let weird = env.ok("list_dir", home(json!({"path": "weird"})));
    let entries = names(&weird, "entries");
    assert!(entries.contains(&json!("new\nline.txt")), "{entries:?}");
    let bad = entries
        .iter()
        .find(|n| n.is_object())
        .expect("the non-UTF-8 name is base64");
    assert_eq!(bad["base64"], "YmFk/25hbWUudHh0");
    assert_eq!(bad["display"], "bad\u{fffd}name.txt");
    // A name that came back as base64 can be given back as base64.
    let back = env.ok(
        "read_file",
        home(json!({"path": {"base64": "d2VpcmQvYmFk/25hbWUudHh0"}})),
    );
    assert_eq!(back["content"], "invalid UTF-8 in the name\n");
    assert_eq!(back["path"]["base64"], "d2VpcmQvYmFk/25hbWUudHh0");
    let nl = env.ok("read_file", home(json!({"path": "weird/new\nline.txt"})));
    assert_eq!(nl["content"], "a newline in the name\n");
    let spaced = env.ok(
        "read_file",
        home(json!({"path": "bob/with space.txt", "snapshot": snap(2)})),
    );
    assert_eq!(spaced["content"], "spaces in names\n");

    let conf = env.ok("read_file", home(json!({"path": "etc/nginx/nginx.conf"})));
    assert_eq!(conf["type"], "file");
    assert_eq!(conf["binary"], false);
    assert_eq!(conf["encoding"], "utf-8");
    assert!(conf["content"].as_str().unwrap().contains("http2"));
    let then = env.ok(
        "read_file",
        home(json!({"path": "etc/nginx/nginx.conf", "snapshot": "2024-01-01"})),
    );
    assert!(then["content"].as_str().unwrap().contains("listen 80;"));
    let part = env.ok(
        "read_file",
        home(json!({"path": "etc/hosts", "offset": 10, "max_bytes": 5})),
    );
    assert_eq!(part["content"], "local");
    assert_eq!(part["next_offset"], 15);

    assert!(
        matches!(env.err("read_file", home(json!({"path": "etc"}))), ProbeError::InvalidInput(ref m) if m.contains("list_dir"))
    );
    assert!(matches!(
        env.err("read_file", home(json!({"path": "nope.txt"}))),
        ProbeError::NotFound(_)
    ));
    assert!(
        matches!(env.err("read_file", home(json!({"path": "misc/pipe"}))), ProbeError::InvalidInput(ref m) if m.contains("never opened"))
    );
    assert!(matches!(
        env.err("list_dir", home(json!({"path": "etc/hosts"}))),
        ProbeError::InvalidInput(_)
    ));
    assert!(
        matches!(env.err("read_file", home(json!({"path": "etc/hosts", "snapshot": "2023-06-01"}))), ProbeError::InvalidInput(ref m) if m.contains("oldest is autosnap_2024-01-01_daily"))
    );
    assert!(
        matches!(env.err("list_dir", json!({"dataset": "tank"})), ProbeError::Unsupported(ref m) if m.contains("mountpoint"))
    );
    assert!(
        matches!(env.err("list_dir", json!({"dataset": "tank/vol"})), ProbeError::Unsupported(ref m) if m.contains("volume"))
    );
}

#[test]
fn binary_files_come_back_as_base64() {
    let env = standard();
    let bin = env.ok(
        "read_file",
        home(json!({"path": "docs/report.bin", "max_bytes": 6})),
    );
    assert_eq!(bin["binary"], true);
    assert_eq!(bin["encoding"], "base64");
    assert_eq!(bin["content"], "AAcOFRwj");
}

#[test]
fn search_by_name_and_content() {
    let env = standard();
    let ff = env.ok(
        "find_files",
        home(json!({"name": "*.CONF", "ignore_case": true})),
    );
    assert_eq!(list(&ff, "matches").len(), 1);
    assert_eq!(list(&ff, "matches")[0]["path"], "etc/nginx/nginx.conf");
    let links = env.ok("find_files", home(json!({"type": "symlink"})));
    let paths: Vec<&str> = list(&links, "matches")
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 4, "{paths:?}");
    let old = env.ok(
        "find_files",
        home(json!({"name": "leaf*", "snapshot": "oldest"})),
    );
    assert_eq!(
        list(&old, "matches")[0]["path"],
        "deep/a/b/c/d/e/f/g/h/leaf.txt"
    );
    assert!(
        list(
            &env.ok("find_files", home(json!({"name": "leaf*"}))),
            "matches"
        )
        .is_empty()
    );

    let grep = env.ok(
        "content_grep",
        home(json!({"text": "db_password", "ignore_case": true, "snapshot": "oldest"})),
    );
    let m = &list(&grep, "matches")[0];
    assert_eq!(
        (m["path"].as_str(), m["line_number"].as_u64()),
        (Some("alice/notes.txt"), Some(2))
    );
    // The line as it leaves the machine: the search ran on scrubbed text.
    assert_eq!(m["line"], "DB_PASSWORD=[REDACTED:secret_assignment]");
    let guess = env.ok(
        "content_grep",
        home(json!({"text": "hunter", "snapshot": "oldest"})),
    );
    assert!(
        list(&guess, "matches").is_empty(),
        "a secret is searchable: {guess}"
    );
    assert_eq!(grep["binary_files_skipped"], 1);
    let live = env.ok("content_grep", home(json!({"text": "DB_PASSWORD"})));
    assert!(list(&live, "matches").is_empty(), "deleted since: {live}");
    let conf = env.ok(
        "content_grep",
        home(json!({"text": "listen", "name": "*.conf"})),
    );
    assert_eq!(conf["files_searched"], 1);
}

#[test]
fn content_grep_searches_one_file() {
    let env = standard();
    let one = env.ok(
        "content_grep",
        home(json!({"path": "etc/nginx/nginx.conf", "text": "LISTEN", "ignore_case": true})),
    );
    assert_eq!(one["searched"], "file");
    assert_eq!(one["files_searched"], 1);
    let m = &list(&one, "matches")[0];
    assert_eq!(m["path"], "etc/nginx/nginx.conf");
    assert_eq!(m["line_number"], 2);
    assert_eq!(m["line"], "    listen 443 ssl http2;");
    // In a snapshot, under a name that is not UTF-8, with `name` ignored.
    let odd = env.ok(
        "content_grep",
        home(json!({"path": {"base64": "d2VpcmQvYmFk/25hbWUudHh0"}, "text": "UTF-8", "name": "*.conf", "snapshot": "oldest"})),
    );
    assert_eq!(list(&odd, "matches").len(), 1, "{odd}");
    assert!(odd["note"].as_str().unwrap().contains("names a file"));
    // A binary file is skipped, not searched as text.
    let bin = env.ok(
        "content_grep",
        home(json!({"path": "docs/report.bin", "text": "x"})),
    );
    assert_eq!(bin["binary_files_skipped"], 1);
    // Symlinks are not followed; FIFOs are never opened.
    for (path, what) in [("links/hosts", "symlink"), ("misc/pipe", "FIFO")] {
        let e = env.err("content_grep", home(json!({"path": path, "text": "x"})));
        assert!(
            matches!(e, ProbeError::InvalidInput(ref m) if m.contains(what)),
            "{path}: {e:?}"
        );
    }
    assert!(matches!(
        env.err(
            "content_grep",
            home(json!({"path": "no/such.txt", "text": "x"}))
        ),
        ProbeError::NotFound(_)
    ));
    assert!(matches!(
        env.err("content_grep", home(json!({"text": "x", "name": "[bad"}))),
        ProbeError::InvalidInput(_)
    ));
}

#[test]
fn space_breakdown_and_largest_files() {
    let env = standard();
    let sb = env.ok("size_breakdown", home(json!({})));
    let children = list(&sb, "children");
    assert_eq!(children[0]["name"], "big");
    assert_eq!(children[0]["size_bytes"], 200 * 1024);
    assert_eq!(sb["complete"], true);
    let total: u64 = children
        .iter()
        .map(|c| c["size_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(sb["total_size_bytes"], total);
    let alice = env.ok(
        "size_breakdown",
        home(json!({"path": "alice", "snapshot": snap(2)})),
    );
    assert_eq!(alice["files"], 2);
    let top = env.ok("top_consumers", home(json!({"n": 2})));
    let files = list(&top, "files");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["path"], "big/blob.bin");
    assert_eq!(files[1]["path"], "docs/report.bin");
}

#[test]
fn history_of_one_file() {
    let env = standard();
    let h = env.ok(
        "file_history",
        home(json!({"path": "etc/nginx/nginx.conf"})),
    );
    assert_eq!(h["snapshots_examined"], 7, "six snapshots and live");
    assert_eq!(h["includes_live"], true);
    let changes: Vec<&str> = list(&h, "timeline")
        .iter()
        .map(|t| t["change"].as_str().unwrap())
        .collect();
    // The fixture writes an edit as a new file, so the inode changes.
    assert_eq!(changes, ["present", "replaced", "replaced"]);
    assert_eq!(h["timeline"][1]["from"]["name"], snap(2));
    assert_eq!(h["timeline"][2]["from"]["name"], snap(4));
    assert_eq!(h["timeline"][2]["to"]["name"], "live");
    assert_eq!(h["timeline"][2]["stops"], 4);

    let notes = env.ok("file_history", home(json!({"path": "alice/notes.txt"})));
    let states: Vec<(&str, &str)> = list(&notes, "timeline")
        .iter()
        .map(|t| (t["change"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("present", "present"), ("deleted", "absent")]);
    let todo = env.ok("file_history", home(json!({"path": "alice/todo.txt"})));
    assert_eq!(todo["timeline"][1]["change"], "created");
    let (_, truncated) = env
        .run(
            "file_history",
            home(json!({"path": "etc/nginx/nginx.conf", "limit": 2})),
        )
        .unwrap();
    assert!(truncated);
}

#[test]
fn versions_and_diffs_of_one_file() {
    let env = standard();
    let v = env.ok(
        "versions_of",
        home(json!({"path": "etc/nginx/nginx.conf", "include_content": true})),
    );
    assert_eq!(v["distinct_versions"], 3);
    let versions = list(&v, "versions");
    assert!(
        versions[0]["content"]
            .as_str()
            .unwrap()
            .contains("listen 80;")
    );
    assert!(versions[2]["content"].as_str().unwrap().contains("http2"));
    assert_eq!(versions[2]["last_seen"]["name"], "live");
    assert_eq!(versions[0]["sha256"].as_str().unwrap().len(), 64);
    let same = env.ok("versions_of", home(json!({"path": "etc/hosts"})));
    assert_eq!(same["distinct_versions"], 1);
    assert_eq!(same["versions"][0]["stops"], 7);

    let d = env.ok(
        "file_diff",
        home(json!({"path": "etc/nginx/nginx.conf", "from": snap(1), "to": snap(2)})),
    );
    assert_eq!(
        d["diff"],
        "@@ -1,4 +1,4 @@\n server {\n-    listen 80;\n+    listen 443 ssl;\n     root /srv/www;\n }\n"
    );
    assert_eq!(d["identical"], false);
    // Default: `to` live, `from` the newest snapshot.
    let none = env.ok("file_diff", home(json!({"path": "etc/nginx/nginx.conf"})));
    assert_eq!(none["identical"], true);
    assert_eq!(none["from"]["name"], snap(6));
    // Only `to`: compared with the snapshot before it.
    let before = env.ok(
        "file_diff",
        home(json!({"path": "etc/nginx/nginx.conf", "to": snap(4)})),
    );
    assert_eq!(before["from"]["name"], snap(3));
    assert!(
        before["diff"]
            .as_str()
            .unwrap()
            .contains("+    listen 443 ssl http2;")
    );
    let created = env.ok(
        "file_diff",
        home(json!({"path": "alice/todo.txt", "from": snap(1), "to": snap(2)})),
    );
    assert_eq!(created["old"]["exists"], false);
    assert_eq!(created["diff"], "@@ -0,0 +1,1 @@\n+write tests\n");
    let bin = env.ok(
        "file_diff",
        home(json!({"path": "docs/report.bin", "from": "oldest"})),
    );
    assert_eq!(bin["binary"], true);
    assert_eq!(bin["identical"], true);
}

#[test]
fn which_snapshots_hold_a_file() {
    let env = standard();
    let c = env.ok(
        "snapshots_containing",
        home(json!({"path": "deep/a/b/c/d/e/f/g/h/leaf.txt"})),
    );
    assert_eq!(c["count"], 5);
    assert_eq!(c["of"], 6);
    assert_eq!(c["exists_live"], false);
    let first = env.ok("first_appearance", home(json!({"path": "alice/todo.txt"})));
    assert_eq!(first["snapshot"]["name"], snap(2));
    assert_eq!(first["absent_before"]["name"], snap(1));
    assert_eq!(first["snapshots_examined"], 2);
    let last = env.ok("last_appearance", home(json!({"path": "alice/notes.txt"})));
    assert_eq!(last["snapshot"]["name"], snap(2));
    assert_eq!(last["gone_by"]["name"], snap(3));
    assert_eq!(last["exists_live"], false);
    let live_only = env.ok("first_appearance", home(json!({"path": "live-only.txt"})));
    assert_eq!(live_only["found"], false);
    assert_eq!(live_only["exists_live"], true);
    assert!(
        live_only["note"]
            .as_str()
            .unwrap()
            .contains("after the newest snapshot")
    );
    let never = env.ok("last_appearance", home(json!({"path": "never/was.txt"})));
    assert_eq!(never["found"], false);
    assert_eq!(never["snapshots_examined"], 6);
}

#[test]
fn bisect_reads_log_n_snapshots() {
    let env = standard();
    let b = env.ok(
        "bisect_change",
        home(
            json!({"path": "etc/nginx/nginx.conf", "predicate": "contains", "value": "listen 443"}),
        ),
    );
    assert_eq!(b["changed"], true);
    assert_eq!(b["last_before_change"]["name"], snap(1));
    assert_eq!(b["first_after_change"]["name"], snap(2));
    // Six snapshots: both ends, then at most ceil(log2(5)) = 3 more (here
    // the halvings land on the change after two).
    assert_eq!(b["snapshots_read"], 4);
    assert_eq!(b["max_reads"], 5);
    let gone = env.ok(
        "bisect_change",
        home(json!({"path": "deep/a/b/c/d/e/f/g/h/leaf.txt"})),
    );
    assert_eq!(gone["first_after_change"]["name"], snap(6));
    assert_eq!(gone["predicate_at_from"], true);
    assert_eq!(gone["snapshots_read"], 5);
    let same = env.ok(
        "bisect_change",
        home(json!({"path": "etc/hosts", "predicate": "hash"})),
    );
    assert_eq!(same["changed"], false);
    assert_eq!(same["snapshots_read"], 2);
    let grew = env.ok(
        "bisect_change",
        home(json!({"path": "etc/nginx/nginx.conf", "predicate": "size", "value": "55"})),
    );
    assert_eq!(grew["first_after_change"]["name"], snap(4));
    let hash_of_first = env.ok("versions_of", home(json!({"path": "etc/nginx/nginx.conf"})))["versions"][0]["sha256"].clone();
    let left = env.ok(
        "bisect_change",
        home(json!({"path": "etc/nginx/nginx.conf", "predicate": "hash", "value": hash_of_first})),
    );
    assert_eq!(left["first_after_change"]["name"], snap(2));
    let to_live = env.ok(
        "bisect_change",
        home(json!({"path": "live-only.txt", "to": "live"})),
    );
    assert_eq!(to_live["first_after_change"]["name"], "live");
    for bad in [
        json!({"predicate": "contains"}),
        json!({"predicate": "size", "value": "big"}),
        json!({"predicate": "hash", "value": "xyz"}),
        json!({"from": "latest", "to": "oldest"}),
    ] {
        let mut p = home(json!({"path": "etc/hosts"}));
        for (k, v) in bad.as_object().unwrap() {
            p[k] = v.clone();
        }
        assert!(
            matches!(
                env.err("bisect_change", p.clone()),
                ProbeError::InvalidInput(_)
            ),
            "{p}"
        );
    }
}

#[test]
fn deleted_files_with_when() {
    let env = standard();
    let d = env.ok("find_deleted", home(json!({})));
    let deleted = list(&d, "deleted");
    let find = |p: &str| {
        deleted
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in {deleted:?}"))
    };
    let notes = find("alice/notes.txt");
    assert_eq!(notes["last_seen"]["name"], snap(2));
    assert_eq!(notes["gone_by"]["name"], snap(3));
    assert_eq!(notes["size"], 29);
    // Renamed, not deleted: the object lives on under its new name.
    assert!(deleted.iter().all(|e| e["path"] != "bob/with space.txt"));
    let renamed = &list(&d, "renamed")[0];
    assert_eq!(renamed["path"], "bob/with space.txt");
    assert_eq!(renamed["new_path"], "bob/renamed.txt");
    assert_eq!(renamed["gone_by"]["name"], snap(3));
    assert_eq!(d["renamed_count"], 1);
    let deep = find("deep");
    assert_eq!(deep["type"], "dir");
    assert_eq!(deep["gone_by"]["name"], snap(6));
    assert_eq!(d["count"], 2, "{deleted:?}");
    assert_eq!(deleted[0]["path"], "deep", "most recently deleted first");
    assert_eq!(d["snapshots_examined"], 6);
    let narrow = env.ok("find_deleted", home(json!({"path": "alice"})));
    assert_eq!(narrow["count"], 1);
    let recent = env.ok("find_deleted", home(json!({"since": snap(4)})));
    assert_eq!(
        recent["count"], 1,
        "only deep/ went after the 4th: {recent}"
    );
    let (one, truncated) = env.run("find_deleted", home(json!({"limit": 1}))).unwrap();
    assert!(truncated);
    assert_eq!(one["count"], 1);
}

fn change<'a>(d: &'a Value, kind: &str, path: &str) -> Option<&'a Value> {
    list(d, "changes")
        .iter()
        .find(|c| c["change"] == kind && c["path"] == path)
}

#[test]
fn diffs_with_zfs_diff() {
    let env = standard();
    let d = env.ok(
        "diff_snapshots",
        home(json!({"from": snap(2), "to": snap(3)})),
    );
    assert_eq!(d["method"], "zfs diff");
    assert!(change(&d, "-", "alice/notes.txt").is_some(), "{d}");
    let r = change(&d, "R", "bob/with space.txt").unwrap();
    assert_eq!(r["new_path"], "bob/renamed.txt");
    assert_eq!(r["type"], "file");
    assert!(
        change(&d, "M", "alice").is_some(),
        "directories change too: {d}"
    );
    let live = env.ok("diff_snapshots", home(json!({})));
    assert_eq!(live["from"]["name"], snap(6));
    assert!(change(&live, "+", "live-only.txt").is_some(), "{live}");
    assert!(change(&live, "+", "misc/pipe").is_some(), "{live}");
    let weird = env.ok(
        "diff_snapshots",
        home(json!({"from": "oldest", "to": snap(2), "path": "etc"})),
    );
    let paths: Vec<&Value> = list(&weird, "changes").iter().map(|c| &c["path"]).collect();
    assert_eq!(
        paths,
        [&json!("etc/nginx/nginx.conf")],
        "only under etc: {weird}"
    );
    let (_, truncated) = env
        .run(
            "diff_snapshots",
            home(json!({"from": "oldest", "limit": 1})),
        )
        .unwrap();
    assert!(truncated);
    assert!(matches!(
        env.err(
            "diff_snapshots",
            home(json!({"from": "latest", "to": "oldest"}))
        ),
        ProbeError::InvalidInput(_)
    ));
}

#[test]
fn diffs_without_zfs_diff_compare_the_trees() {
    let mut env = standard();
    env.change_state(|s| s.diff_delegated = false);
    let d = env.ok(
        "diff_snapshots",
        home(json!({"from": snap(2), "to": snap(3)})),
    );
    assert_eq!(d["method"], "tree comparison");
    assert!(d["note"].as_str().unwrap().contains("zfs allow -u"), "{d}");
    assert!(change(&d, "-", "alice/notes.txt").is_some(), "{d}");
    let r = change(&d, "R", "bob/with space.txt").expect("the kept inode makes it a rename");
    assert_eq!(r["new_path"], "bob/renamed.txt");
    let e = env.ok(
        "diff_snapshots",
        home(json!({"from": snap(1), "to": snap(2)})),
    );
    assert!(change(&e, "M", "etc/nginx/nginx.conf").is_some(), "{e}");
    assert!(change(&e, "+", "alice/todo.txt").is_some(), "{e}");
    assert_eq!(
        list(&e, "changes").len(),
        2,
        "unchanged files are not reported: {e}"
    );
    let live = env.ok("diff_snapshots", home(json!({})));
    assert!(change(&live, "+", "live-only.txt").is_some());
    assert!(
        !list(&live, "changes")
            .iter()
            .any(|c| c["path"].as_str().unwrap_or("").starts_with(".zfs"))
    );
}

#[test]
fn an_older_zfs_degrades_with_clear_messages() {
    let mut env = standard();
    env.change_state(|s| s.openzfs = false);
    let pools = env.ok("list_pools", json!({}));
    assert_eq!(pools["pools"][0]["approximate"], true);
    assert_eq!(pools["pools"][0]["size_bytes"], 10u64 << 30);
    let info = env.ok("agent_info", json!({}));
    assert_eq!(info["features"]["zfs_diff"], false);
    assert!(
        info["implementation"]
            .as_str()
            .unwrap()
            .contains("zfs-fuse")
    );
    let ds = env.ok("list_datasets", json!({}));
    assert_eq!(ds["total"], 4);
    assert_eq!(
        list(&ds, "datasets")[1]["used_bytes"],
        env.fixture.state.datasets[1].used
    );
    let snaps = env.ok("list_snapshots", home(json!({})));
    assert_eq!(snaps["total"], 6);
    assert_eq!(snaps["snapshots"][0]["name"], snap(1));
    let d = env.ok(
        "diff_snapshots",
        home(json!({"from": snap(2), "to": snap(3)})),
    );
    assert_eq!(d["method"], "tree comparison");
    assert!(d["note"].as_str().unwrap().contains("zfs-fuse"), "{d}");
    let delta = env.ok("size_delta", home(json!({"from": "oldest"})));
    assert_eq!(delta["written_since_from_bytes"], Value::Null);
    assert!(delta["written_note"].as_str().unwrap().contains("written@"));
    // Without .zfs/snapshot (zfs-fuse has none), contents are unavailable.
    std::fs::rename(env.home().join(".zfs"), env.home().join("zfs-hidden")).unwrap();
    let err = env.err("file_history", home(json!({"path": "etc/hosts"})));
    assert!(
        matches!(err, ProbeError::Unsupported(ref m) if m.contains(".zfs/snapshot") && m.contains("live file system")),
        "{err:?}"
    );
    assert!(
        env.ok("read_file", home(json!({"path": "etc/hosts"})))["content"].is_string(),
        "live files still work"
    );
}
