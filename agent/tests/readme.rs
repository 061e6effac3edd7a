//! The README's table of packs and probes must match the manifests.
//! `SONDE_UPDATE_README=1 cargo test -p sonde-agent readme` rewrites it.
#![allow(clippy::unwrap_used)]

#[test]
fn readme_pack_table_matches_the_manifests() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let (begin, end) = ("<!-- packs:begin -->\n", "<!-- packs:end -->");
    let start = readme
        .find(begin)
        .expect("README lacks the packs:begin marker")
        + begin.len();
    let stop = readme.find(end).expect("README lacks the packs:end marker");
    let generated = sonde_agent::pack_states::markdown_table().unwrap();
    if std::env::var_os("SONDE_UPDATE_README").is_some() {
        let updated = format!("{}{}{}", &readme[..start], generated, &readme[stop..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..stop] == generated,
        "README.md's pack table is stale; run `SONDE_UPDATE_README=1 cargo test -p sonde-agent readme`"
    );
}
