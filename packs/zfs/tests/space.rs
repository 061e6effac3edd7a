//! `zfs.space_report`: "why is my pool full?", read only. Its bounds on
//! what destroying old snapshots would free are checked against the exact
//! figure the fixture knows (which file versions only those snapshots
//! hold), on the standard fixture and on random histories.
#![allow(clippy::unwrap_used)]

mod support;

use proptest::prelude::*;
use serde_json::json;
use sonde_pack_zfs::fixture::{
    Content, SnapshotSpace as Space, Tree, VersionSpan, standard_trees, version_spans,
};
use sonde_pack_zfs::probes::space::{FreeEstimate, SnapshotSpace, free_estimate};
use support::{Env, list};

/// Exactly what destroying the snapshots `chosen` frees: versions whose
/// every holder is chosen (and not live).
fn exact(spans: &[VersionSpan], snapshots: usize, chosen: &[usize]) -> u64 {
    spans
        .iter()
        .filter(|v| v.last < snapshots && (v.first..=v.last).all(|i| chosen.contains(&i)))
        .map(|v| v.size)
        .sum()
}

fn spaces(space: &Space) -> Vec<SnapshotSpace> {
    space
        .used
        .iter()
        .zip(&space.written)
        .enumerate()
        .map(|(i, (u, w))| SnapshotSpace {
            name: format!("t/d@s{i}"),
            createtxg: i as u64,
            creation: i as i64,
            used: *u,
            referenced: 0,
            written: Some(*w),
        })
        .collect()
}

#[test]
fn why_is_the_pool_full_on_the_standard_fixture() {
    let env = Env::standard_in_process();
    let r = env.ok("space_report", json!({"older_than": "2024-01-04"}));
    let trees = standard_trees();
    let spans = version_spans(&trees);
    let space = Space::of(&spans, 6);
    let home = list(&r, "datasets")
        .iter()
        .find(|d| d["dataset"] == "tank/home")
        .unwrap();
    assert_eq!(home["used_by_snapshots_bytes"], space.usedbysnapshots);
    assert_eq!(home["snapshots"], 6);
    let old = &home["older_snapshots"];
    assert_eq!(old["count"], 3, "taken before 2024-01-04: {home}");
    assert_eq!(old["first"]["name"], "autosnap_2024-01-01_daily");
    assert_eq!(old["last"]["name"], "autosnap_2024-01-03_daily");
    let truth = Space::would_free(&spans, 0..3);
    let (lo, hi) = (
        old["frees_at_least_bytes"].as_u64().unwrap(),
        old["frees_at_most_bytes"].as_u64().unwrap(),
    );
    assert!(lo <= truth && truth <= hi, "{lo} <= {truth} <= {hi}");
    assert!(truth > 0);
    // The snapshot holding the most unique data comes first.
    let top = &list(&r, "top_snapshots")[0];
    let max_used = *space.used.iter().max().unwrap();
    assert_eq!(top["used_bytes"], max_used);
    assert_eq!(list(&r, "pools")[0]["pool"], "tank");
    assert!(
        list(&r, "caveats")
            .iter()
            .any(|c| c.as_str().unwrap().contains("zfs destroy -nv"))
    );
    assert!(
        list(&r, "findings")
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("would free")),
        "{r}"
    );
    // Nothing mutating ran, and the listings were read afresh.
    for argv in env.calls() {
        let sub = argv.args[0].to_string_lossy().into_owned();
        assert!(
            ["list", "get"].contains(&sub.as_str()),
            "{}",
            argv.display()
        );
    }
}

#[test]
fn space_report_on_an_older_zfs_and_within_the_allowlist() {
    let mut env = Env::standard_in_process();
    env.change_state_in_process(|s| s.openzfs = false);
    let r = env.ok(
        "space_report",
        json!({"dataset": "tank/home", "older_than": "2024-01-04"}),
    );
    let home = &list(&r, "datasets")[0];
    assert_eq!(home["dataset"], "tank/home");
    assert_eq!(
        home["written_since_newest_snapshot_bytes"],
        serde_json::Value::Null
    );
    let old = &home["older_snapshots"];
    let truth = Space::would_free(&version_spans(&standard_trees()), 0..3);
    assert!(old["frees_at_least_bytes"].as_u64().unwrap() <= truth);
    assert!(
        old["frees_at_most_bytes"].as_u64().unwrap() >= truth,
        "{old}"
    );
    assert_eq!(
        list(&r, "top_snapshots")[0]["written_bytes"],
        serde_json::Value::Null
    );

    let mut env = Env::standard_in_process();
    env.settings = json!({"datasets": ["tank/media"]});
    let r = env.ok("space_report", json!({}));
    let names: Vec<&str> = list(&r, "datasets")
        .iter()
        .map(|d| d["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tank/media"]);
    assert!(
        list(&r, "top_snapshots")
            .iter()
            .all(|s| s["dataset"] == "tank/media")
    );
    assert!(matches!(
        env.err("space_report", json!({"dataset": "tank/home"})),
        sonde_packs::handler::ProbeError::Denied(_)
    ));
    assert!(matches!(
        env.err("space_report", json!({"older_than": "someday"})),
        sonde_packs::handler::ProbeError::InvalidInput(_)
    ));
}

fn content(k: u8) -> Content {
    Content::Text("x".repeat(usize::from(k) * 7 + 1))
}

prop_compose! {
    /// A history of 2–7 snapshots (then live) over five paths and four
    /// contents: edits, deletions, re-creations, renames and duplicates.
    fn history()(steps in prop::collection::vec(
        prop::collection::vec(prop::option::of(0u8..4), 5), 3..9)) -> Vec<Tree> {
        steps
            .into_iter()
            .map(|files| {
                files
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.map(|c| (format!("f{i}").into_bytes(), content(c))))
                    .collect()
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For any history and any set of snapshots, the bounds hold the exact
    /// figure; one snapshot, or all of them, is exact.
    #[test]
    fn prop_the_estimate_bounds_what_destroying_frees(
        trees in history(),
        picks in prop::collection::vec(any::<bool>(), 8),
    ) {
        let snapshots = trees.len() - 1;
        let spans = version_spans(&trees);
        let space = Space::of(&spans, snapshots);
        let snaps = spaces(&space);
        let chosen: Vec<usize> = (0..snapshots).filter(|i| picks[*i]).collect();
        let e = free_estimate(&snaps, &chosen, Some(space.usedbysnapshots));
        let truth = exact(&spans, snapshots, &chosen);
        prop_assert!(e.at_least <= truth, "{e:?} vs {truth}");
        prop_assert!(e.at_most.unwrap() >= truth, "{e:?} vs {truth}");
        if chosen.len() == 1 || chosen.len() == snapshots {
            let all = free_estimate(&snaps, &(0..snapshots).collect::<Vec<_>>(), Some(space.usedbysnapshots));
            prop_assert_eq!(all, FreeEstimate { at_least: space.usedbysnapshots, at_most: Some(space.usedbysnapshots) });
        }
        if chosen.len() == 1 {
            prop_assert_eq!(e.at_most, Some(truth));
        }
        // Without `written` (older ZFS) the bounds still hold.
        let mut no_written = snaps.clone();
        for s in &mut no_written {
            s.written = None;
        }
        let e = free_estimate(&no_written, &chosen, Some(space.usedbysnapshots));
        prop_assert!(e.at_least <= truth && e.at_most.unwrap() >= truth);
    }
}
