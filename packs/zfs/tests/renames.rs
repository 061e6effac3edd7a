//! `find_deleted` tells deletions from renames and moves: a path whose
//! object (inode) lives on under another name, or whose exact content
//! appeared under a new path after its object was removed, is listed as
//! renamed with its new path and when; duplicates that existed before are
//! not mistaken for moves; `since` and `before` bound the window.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_pack_zfs::fixture::{Content, Fixture, STANDARD_START, Tree};
use sonde_packs::handler::ProbeError;
use support::{Env, fake_binary, list};

fn text(s: &str) -> Content {
    Content::Text(s.to_owned())
}

/// s1 → s2: `docs/readme.md` renamed to `docs/README.md`, `notes/ideas.txt`
/// moved to `archive/ideas.txt`. s2 → s3: `a.txt` deleted (its twin
/// `b.txt` stays), `copy/src.txt` copied to `moved/src.txt` and deleted (a
/// new object with the same bytes). s3 → s4: `gone.txt` deleted. Live: s4.
fn trees() -> Vec<Tree> {
    let mut s1 = Tree::new();
    for (p, c) in [
        ("docs/readme.md", text("# readme\n")),
        ("notes/ideas.txt", text("ideas\n")),
        ("notes/keep.txt", text("keep\n")),
        ("a.txt", text("twin\n")),
        ("b.txt", text("twin\n")),
        ("copy/src.txt", text("copied across\n")),
        ("copy/keep.txt", text("stays\n")),
        ("gone.txt", text("bye\n")),
    ] {
        s1.insert(p.as_bytes().to_vec(), c);
    }
    let mut s2 = s1.clone();
    let readme = s2.remove(b"docs/readme.md".as_slice()).unwrap();
    s2.insert(b"docs/README.md".to_vec(), readme);
    let ideas = s2.remove(b"notes/ideas.txt".as_slice()).unwrap();
    s2.insert(b"archive/ideas.txt".to_vec(), ideas);
    let mut s3 = s2.clone();
    s3.remove(b"a.txt".as_slice());
    s3.remove(b"copy/src.txt".as_slice());
    s3.insert(
        b"moved/src.txt".to_vec(),
        Content::Bytes(b"copied across\n".to_vec()),
    );
    let mut s4 = s3.clone();
    s4.remove(b"gone.txt".as_slice());
    vec![s1, s2, s3, s4.clone(), s4]
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::from_trees(
        dir.path(),
        &fake_binary(),
        "tank/work",
        &trees(),
        &["s1", "s2", "s3", "s4"],
        STANDARD_START,
    )
    .unwrap();
    Env::new(dir, f)
}

fn work(extra: Value) -> Value {
    let mut v = json!({"dataset": "tank/work"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn paths(v: &Value, field: &str) -> Vec<String> {
    list(v, field)
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

fn entry<'a>(v: &'a Value, field: &str, path: &str) -> &'a Value {
    list(v, field)
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {field}: {v}"))
}

#[test]
fn renamed_and_moved_files_are_not_reported_as_deleted() {
    let env = env();
    let d = env.ok("find_deleted", work(json!({})));
    assert_eq!(paths(&d, "deleted"), ["gone.txt", "a.txt"], "{d}");
    assert_eq!(d["count"], 2);
    assert_eq!(d["renamed_count"], 3);
    let readme = entry(&d, "renamed", "docs/readme.md");
    assert_eq!(readme["new_path"], "docs/README.md");
    assert!(
        readme["identity"]
            .as_str()
            .unwrap()
            .starts_with("object number"),
        "{readme}"
    );
    assert_eq!(readme["last_seen"]["name"], "s1");
    assert_eq!(readme["gone_by"]["name"], "s2");
    let ideas = entry(&d, "renamed", "notes/ideas.txt");
    assert_eq!(
        ideas["new_path"], "archive/ideas.txt",
        "moved to another directory"
    );
    let copied = entry(&d, "renamed", "copy/src.txt");
    assert_eq!(copied["new_path"], "moved/src.txt");
    assert_eq!(copied["identity"], "content");
    assert_eq!(copied["last_seen"]["name"], "s2");
    assert_eq!(copied["gone_by"]["name"], "s3");
    // a.txt's twin b.txt was there all along: a.txt was deleted.
    assert_eq!(entry(&d, "deleted", "a.txt")["gone_by"]["name"], "s3");
    assert_eq!(d["rename_search"]["complete"], true);
}

#[test]
fn before_and_since_bound_the_window() {
    let env = env();
    // Compared with s2: only what went between s1 and s2.
    let d = env.ok("find_deleted", work(json!({"before": "s2"})));
    assert_eq!(d["compared_with"]["name"], "s2");
    assert!(list(&d, "deleted").is_empty(), "{d}");
    assert_eq!(d["renamed_count"], 2);
    assert_eq!(
        entry(&d, "renamed", "docs/readme.md")["gone_by"]["name"],
        "s2"
    );
    // By time: a moment after s2 was taken is still s2.
    let t = env.ok(
        "find_deleted",
        work(json!({"before": "2024-01-02T12:00:00Z"})),
    );
    assert_eq!(t["compared_with"]["name"], "s2");
    assert_eq!(t["time_selection"]["before"]["snapshot"], "s2");
    // Between s2 and s4: a.txt went, src.txt moved.
    let mid = env.ok("find_deleted", work(json!({"since": "s2", "before": "s4"})));
    assert_eq!(paths(&mid, "deleted"), ["gone.txt", "a.txt"]);
    assert_eq!(paths(&mid, "renamed"), ["copy/src.txt"]);
    assert_eq!(mid["since"]["name"], "s2");
    // From s3 on: only gone.txt.
    let late = env.ok("find_deleted", work(json!({"since": "s3"})));
    assert_eq!(paths(&late, "deleted"), ["gone.txt"]);
    assert!(list(&late, "renamed").is_empty());
    for bad in [
        json!({"since": "s3", "before": "s2"}),
        json!({"before": "oldest"}),
    ] {
        assert!(
            matches!(
                env.err("find_deleted", work(bad.clone())),
                ProbeError::InvalidInput(_)
            ),
            "{bad}"
        );
    }
}
