//! The docs name real tests: every test SECURITY.md cites exists as a
//! function somewhere in the workspace, so the list of guarantees cannot
//! silently point at a test that was renamed or deleted.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Test names cited in backticks: `crate::module::name` or `…::name`.
fn cited_tests(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, part) in doc.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let cited = part.starts_with("sonde-") || part.starts_with('…');
        if !cited || !part.contains("::") {
            continue;
        }
        let last = part.rsplit("::").next().unwrap();
        if !last.is_empty()
            && last
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            names.insert(last.to_owned());
        }
    }
    names
}

#[test]
fn every_test_security_md_cites_exists() {
    let doc = std::fs::read_to_string(root().join("SECURITY.md")).unwrap();
    let cited = cited_tests(&doc);
    assert!(cited.len() > 50, "only {} tests cited?", cited.len());
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let sources: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let missing: Vec<&String> = cited
        .iter()
        .filter(|name| {
            let needle = format!("fn {name}(");
            !sources.iter().any(|s| s.contains(&needle))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "SECURITY.md cites tests that do not exist: {missing:?}"
    );
}
