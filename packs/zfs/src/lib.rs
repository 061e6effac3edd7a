//! The `zfs` pack: a complete, read-only explorer of a homelab ZFS box —
//! pools, datasets, snapshots, and files across snapshots (history,
//! versions, diffs, deletions, space) — with no way to change anything.
//!
//! A map of the crate:
//! - [`zfs`]: the only way the pack runs `zfs`/`zpool` — a table of
//!   read-only subcommands and their options, checked on every call;
//! - [`parse`]: parsers of what those commands print (OpenZFS 2.x and the
//!   older zfs-fuse);
//! - [`model`]: datasets and snapshots, loaded once per call, and where
//!   their files are (`<mountpoint>/.zfs/snapshot/<name>`);
//! - [`settings`]: `[packs.zfs]` in the agent config (dataset allowlist,
//!   whether the live file system may be read);
//! - [`select`]: snapshots by name or time (`latest`, `3 weeks ago`, ISO);
//! - [`tree`]: confined reading of one snapshot — paths can never leave it;
//! - [`content`]: bounded reads, text or base64, hashes, unified diffs;
//! - [`probes`]: the probes, one file per family;
//! - [`fixture`]: test support — a dataset-like tree with `.zfs/snapshot`
//!   and the fake `zfs`/`zpool` (`sonde-zfs-fixture`) that describe it.
//!
//! The guarantees, each enforced here and proven by a test named after it
//! (see `README.md` in this directory):
//! 1. no mutation is reachable ([`zfs::check_argv`]);
//! 2. no shell: argv only, names validated before any call;
//! 3. paths cannot escape their snapshot ([`tree`]);
//! 4. every read is bounded (caps in [`probes`]);
//! 5. least privilege: no delegation but `diff`, an optional dataset
//!    allowlist, and `live = false` for snapshots only ([`settings`]).

pub mod content;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod model;
pub mod parse;
pub mod probes;
pub mod select;
pub mod settings;
pub mod tree;
pub mod zfs;

use sonde_packs::handler::{PackDef, ProbeHandler};
use sonde_packs::manifest::ManifestError;
use std::sync::Arc;

/// The manifest, compiled in.
pub const MANIFEST: &str = include_str!("../pack.toml");

/// The pack, ready for the agent's executor.
pub fn pack() -> Result<PackDef, ManifestError> {
    use probes::{changes, datasets, files, history, pools, snapshots, space};
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("agent_info", Arc::new(pools::agent_info)),
        ("list_pools", Arc::new(pools::list_pools)),
        ("pool_status", Arc::new(pools::pool_status)),
        ("list_datasets", Arc::new(datasets::list_datasets)),
        ("dataset_properties", Arc::new(datasets::dataset_properties)),
        ("list_snapshots", Arc::new(snapshots::list_snapshots)),
        ("snapshot_cadence", Arc::new(snapshots::snapshot_cadence)),
        ("stale_snapshots", Arc::new(snapshots::stale_snapshots)),
        ("size_delta", Arc::new(snapshots::size_delta)),
        ("diff_snapshots", Arc::new(changes::diff_snapshots)),
        ("find_deleted", Arc::new(changes::find_deleted)),
        ("list_dir", Arc::new(files::list_dir)),
        ("read_file", Arc::new(files::read_file)),
        ("find_files", Arc::new(files::find_files)),
        ("content_grep", Arc::new(files::content_grep)),
        ("size_breakdown", Arc::new(space::size_breakdown)),
        ("top_consumers", Arc::new(space::top_consumers)),
        ("file_history", Arc::new(history::file_history)),
        ("versions_of", Arc::new(history::versions_of)),
        ("file_diff", Arc::new(history::file_diff)),
        (
            "snapshots_containing",
            Arc::new(history::snapshots_containing),
        ),
        ("first_appearance", Arc::new(history::first_appearance)),
        ("last_appearance", Arc::new(history::last_appearance)),
        ("bisect_change", Arc::new(history::bisect_change)),
    ];
    PackDef::builtin(MANIFEST, handlers, Some(settings::Settings::check))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_manifest_loads_with_a_handler_for_every_probe() {
        let pack = super::pack().unwrap();
        assert_eq!(pack.manifest.name, "zfs");
        assert_eq!(pack.handlers.len(), 24);
        assert!(pack.settings_check.is_some());
    }
}
