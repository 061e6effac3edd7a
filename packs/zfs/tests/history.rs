//! The cross-snapshot probes on a generated history (hundreds of
//! snapshots): bisection reads O(log N) snapshots and finds the right
//! pair, `find_deleted` agrees with a brute-force search, and directories
//! whose entry list did not change are not read twice.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use sonde_pack_zfs::fixture::{Fixture, GENERATED_MARKER, GENERATED_PROBE_FILE};
use sonde_pack_zfs::probes::changes::find_deleted_in;
use sonde_pack_zfs::probes::history::bisect_bound;
use sonde_pack_zfs::tree::{DirKey, Meta, Root};
use sonde_protocol::path::RelativePath;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Env, list};

const SNAPSHOTS: usize = 200;

fn generated(snapshots: usize, files: usize) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::generated(dir.path(), &support::fake_binary(), snapshots, files, 7).unwrap();
    Env::new(dir, f)
}

fn data(extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"dataset": "tank/data"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn bisect_reads_log_n_snapshots_on_a_long_history() {
    let env = generated(SNAPSHOTS, 300);
    let b = env.ok(
        "bisect_change",
        data(json!({"path": GENERATED_PROBE_FILE, "predicate": "contains", "value": GENERATED_MARKER})),
    );
    let marked = SNAPSHOTS / 3;
    assert_eq!(b["changed"], true);
    assert_eq!(b["first_after_change"]["name"], format!("auto-{marked:05}"));
    assert_eq!(
        b["last_before_change"]["name"],
        format!("auto-{:05}", marked - 1)
    );
    let reads = b["snapshots_read"].as_u64().unwrap() as usize;
    assert!(reads <= bisect_bound(SNAPSHOTS), "{reads} reads");
    assert_eq!(bisect_bound(SNAPSHOTS), 10);
    assert!(
        reads >= 3,
        "a change strictly inside the range needs a probe in the middle"
    );
    assert_eq!(b["snapshots_in_range"], SNAPSHOTS);
    // A narrower range costs fewer reads.
    let narrow = env.ok(
        "bisect_change",
        data(json!({"path": GENERATED_PROBE_FILE, "predicate": "contains", "value": GENERATED_MARKER, "from": "auto-00060", "to": "auto-00070"})),
    );
    assert_eq!(
        narrow["first_after_change"]["name"],
        format!("auto-{marked:05}")
    );
    assert!(narrow["snapshots_read"].as_u64().unwrap() as usize <= bisect_bound(11));
    // The history sees each edit of the file: at steps 50, 66, 100 and 150.
    let h = env.ok("file_history", data(json!({"path": GENERATED_PROBE_FILE})));
    assert_eq!(h["snapshots_examined"], SNAPSHOTS + 1);
    let starts: Vec<&str> = list(&h, "timeline")
        .iter()
        .map(|t| t["from"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "auto-00000",
            "auto-00050",
            "auto-00066",
            "auto-00100",
            "auto-00150",
            "live"
        ]
    );
}

/// Paths in a tree (`rel` → is a directory), by walking it with std.
fn walk(root: &Path, rel: &[u8], out: &mut BTreeMap<Vec<u8>, bool>) {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    };
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if rel.is_empty() && name == ".zfs" {
            continue;
        }
        let child = if rel.is_empty() {
            name.as_bytes().to_vec()
        } else {
            [rel, b"/", name.as_bytes()].concat()
        };
        let is_dir = e.file_type().unwrap().is_dir();
        out.insert(child.clone(), is_dir);
        if is_dir {
            walk(root, &child, out);
        }
    }
}

#[test]
fn find_deleted_agrees_with_a_brute_force_search() {
    let env = generated(60, 400);
    let mount = env.fixture.mountpoint("tank/data");
    let mut live = BTreeMap::new();
    walk(&mount, b"", &mut live);
    // Newest snapshot that has each path whose parent is still there but
    // which is not.
    let mut expected: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    for s in env.fixture.state.snapshots.iter().rev() {
        let short = s.name.split_once('@').unwrap().1;
        let mut tree = BTreeMap::new();
        walk(&mount.join(".zfs/snapshot").join(short), b"", &mut tree);
        for path in tree.keys() {
            let parent_there = match path.iter().rposition(|b| *b == b'/') {
                Some(i) => live.get(&path[..i]) == Some(&true),
                None => true,
            };
            if parent_there && !live.contains_key(path) {
                expected
                    .entry(path.clone())
                    .or_insert_with(|| short.to_owned());
            }
        }
    }
    assert!(
        expected.len() > 20,
        "the history deletes files: {}",
        expected.len()
    );
    let d = env.ok("find_deleted", data(json!({"limit": 10_000})));
    let got: BTreeMap<Vec<u8>, String> = list(&d, "deleted")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().as_bytes().to_vec(),
                e["last_seen"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(d["snapshots_examined"], 60);
}

#[test]
fn unchanged_directories_are_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::generated(dir.path(), &support::fake_binary(), 40, 2000, 3).unwrap();
    let mount = f.mountpoint("tank/data");
    let roots: Vec<Root> = f
        .state
        .snapshots
        .iter()
        .map(|s| {
            Root::open(
                &mount
                    .join(".zfs/snapshot")
                    .join(s.name.split_once('@').unwrap().1),
                false,
            )
            .unwrap()
        })
        .collect();
    let live = Root::open(&mount, true).unwrap();
    let far = Instant::now() + Duration::from_secs(60);
    let start = RelativePath::root();
    // On ZFS a directory keeps its inode across snapshots; the fixture
    // cannot share directories, but it keeps a directory's mtime while its
    // entries stay the same, so an mtime key shows the skipping at work.
    let by_mtime = |m: &Meta| DirKey {
        ino: 0,
        ctime: 0,
        ctime_nsec: 0,
        mtime: m.mtime,
        mtime_nsec: m.mtime_nsec,
        size: 0,
    };
    let (skipping, s1) =
        find_deleted_in(&roots, &live, &start, by_mtime, 100_000, usize::MAX, far).unwrap();
    let (reading, s2) = find_deleted_in(
        &roots,
        &live,
        &start,
        Meta::dir_key,
        100_000,
        usize::MAX,
        far,
    )
    .unwrap();
    assert_eq!(
        skipping, reading,
        "skipping unchanged directories changes nothing in the result"
    );
    assert!(!reading.is_empty());
    assert_eq!(
        s2.dirs_unchanged, 0,
        "fixture directories never share an inode"
    );
    assert!(s1.dirs_unchanged > 100, "{s1:?}");
    assert!(s1.dirs_listed < s2.dirs_listed, "{s1:?} vs {s2:?}");
    let deleted_paths: BTreeSet<&Vec<u8>> = reading.keys().collect();
    assert!(deleted_paths.iter().all(|p| !p.starts_with(b".zfs")));
}
