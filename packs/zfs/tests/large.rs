//! Large files across snapshots (`Fixture::large_files`: sparse files of
//! 128 MiB to 9 GiB): metadata tells unchanged versions without reading them, a size
//! or a sample tells most changed ones apart, whole files are hashed only
//! where nothing else decides, a hash budget that runs out says which
//! versions are unknown (never a wrong count), and reading a window far
//! into a file does not read what comes before it.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_pack_zfs::fixture::{Fixture, LARGE_MARK_AT};
use support::{Env, fake_binary, list};

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::large_files(dir.path(), &fake_binary()).unwrap();
    Env::new(dir, fixture)
}

fn big(extra: Value) -> Value {
    let mut v = json!({"dataset": "tank/big"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn metadata_and_samples_tell_large_versions_apart_without_hashing() {
    let env = env();
    let v = env.ok("versions_of", big(json!({"path": "disk.img"})));
    assert_eq!(v["distinct_versions"], 3, "{v}");
    assert_eq!(v["distinct_versions_min"], 3);
    assert_eq!(v["distinct_versions_max"], 3);
    let versions = list(&v, "versions");
    let by: Vec<&str> = versions
        .iter()
        .map(|x| x["told_apart_by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["sampled content", "sampled content", "size"]);
    assert_eq!(versions[0]["first_seen"]["name"], "day-1");
    assert_eq!(versions[0]["last_seen"]["name"], "day-2");
    assert_eq!(versions[0]["stops"], 2, "one object, unchanged: one run");
    assert_eq!(versions[2]["size"], 9u64 << 30);
    assert_eq!(versions[2]["last_seen"]["name"], "live");
    assert!(versions.iter().all(|x| x["sha256"].is_null()));
    // Two samples of 1 MiB, not 25 GiB.
    assert!(v["bytes_hashed"].as_u64().unwrap() <= 2 << 20, "{v}");
}

#[test]
fn a_hash_budget_that_runs_out_says_which_versions_are_unknown() {
    let env = env();
    // mid.img's two versions differ only in a block no sample reads; with
    // less than one file's worth of hashing, nothing can be decided.
    let (v, truncated) = env
        .run(
            "versions_of",
            big(json!({"path": "mid.img", "max_hash_bytes": 1 << 30})),
        )
        .unwrap();
    assert!(truncated);
    assert_eq!(
        v["distinct_versions"],
        Value::Null,
        "never a wrong count: {v}"
    );
    assert_eq!(v["distinct_versions_min"], 1);
    assert_eq!(v["distinct_versions_max"], 2);
    let unknown = list(&v, "undetermined");
    assert_eq!(unknown.len(), 2);
    assert_eq!(unknown[0]["from"]["name"], "day-1");
    assert_eq!(unknown[1]["from"]["name"], "day-3");
    assert!(
        v["note"].as_str().unwrap().contains("max_hash_bytes"),
        "{v}"
    );
    assert!(list(&v, "versions").is_empty());
}

#[test]
fn the_same_bytes_under_a_new_object_are_one_version() {
    let env = env();
    let v = env.ok("versions_of", big(json!({"path": "same.img"})));
    assert_eq!(v["distinct_versions"], 1, "{v}");
    let only = &list(&v, "versions")[0];
    assert_eq!(only["told_apart_by"], "sha256");
    assert_eq!(only["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(list(only, "intervals").len(), 2, "two objects, one content");
    assert_eq!(only["stops"], 6);
    assert!(v["bytes_hashed"].as_u64().unwrap() >= 256 << 20);
}

#[test]
fn bisect_by_hash_reads_no_whole_large_file_when_metadata_decides() {
    let env = env();
    let b = env.ok(
        "bisect_change",
        big(json!({"path": "disk.img", "predicate": "hash"})),
    );
    assert_eq!(b["changed"], true, "{b}");
    assert_eq!(b["last_before_change"]["name"], "day-2");
    assert_eq!(b["first_after_change"]["name"], "day-3");
    assert!(b["bytes_hashed"].as_u64().unwrap() <= 8 << 20, "{b}");
    // A hash that needs a whole 8 GiB file, with too little to read: a
    // clear error, not a wrong answer.
    let e = env.err(
        "bisect_change",
        big(json!({"path": "mid.img", "predicate": "hash", "value": "00".repeat(32), "max_hash_bytes": 1000})),
    );
    assert!(e.to_string().contains("max_hash_bytes"), "{e}");
}

#[test]
fn a_window_far_into_a_large_file_is_read_alone() {
    let env = env();
    let v = env.ok(
        "read_file",
        big(json!({"path": "disk.img", "snapshot": "day-1", "offset": LARGE_MARK_AT, "max_bytes": 9})),
    );
    assert_eq!(v["content"], "version 1");
    assert_eq!(v["next_offset"], LARGE_MARK_AT + 9);
    let end = env.ok(
        "read_file",
        big(json!({"path": "disk.img", "snapshot": "day-1", "offset": (8u64 << 30) - 3})),
    );
    assert_eq!(end["binary"], true);
    assert_eq!(end["content"], "AAAA");
    assert_eq!(end["next_offset"], Value::Null);
    let past = env.ok(
        "read_file",
        big(json!({"path": "disk.img", "offset": 10u64 << 30})),
    );
    assert_eq!(past["bytes_returned"], 0);
}

#[test]
fn file_diff_of_large_files_knows_identity_from_metadata() {
    let env = env();
    let d = |from: &str, to: &str| {
        env.ok(
            "file_diff",
            big(json!({"path": "disk.img", "from": from, "to": to})),
        )
    };
    let same = d("day-1", "day-2");
    assert_eq!(same["identical"], true);
    assert_eq!(same["identical_by"], "metadata");
    let changed = d("day-2", "day-3");
    assert_eq!(changed["identical"], false);
    assert_eq!(changed["identical_by"], "content");
    let grown = d("day-3", "day-4");
    assert_eq!(grown["identical"], false);
    assert_eq!(grown["identical_by"], "size");
    let mid = env.ok(
        "file_diff",
        big(json!({"path": "mid.img", "from": "day-2", "to": "day-3"})),
    );
    assert_eq!(
        mid["identical"],
        Value::Null,
        "the first MiB is equal, the rest unread: {mid}"
    );
}
