//! The `zfs` pack: a complete, read-only explorer of a homelab ZFS box —
//! pools, datasets, snapshots, and files across snapshots (history,
//! versions, diffs, deletions, space) — with no way to change anything.
//!
//! A map of the crate:
//! - [`zfs`]: the only way the pack runs `zfs`/`zpool` — a table of
//!   read-only subcommands and their options, checked on every call;
//! - [`parse`]: parsers of what those commands print (OpenZFS 2.x and the
//!   older zfs-fuse);
//! - [`model`]: datasets and snapshots as `zfs list` gives them, and
//!   where their files are (`<mountpoint>/.zfs/snapshot/<name>`);
//! - [`cache`]: that model kept between calls (a short time to live, and
//!   listed again at once when a snapshot is created or named that it
//!   lacks), so a burst of questions costs one listing;
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

pub mod cache;
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

use sonde_packs::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use sonde_packs::manifest::ManifestError;
use sonde_protocol::schema::ValidatedParams;
use std::sync::Arc;

use cache::ModelCache;
use probes::Ctx;

/// The manifest, compiled in.
pub const MANIFEST: &str = include_str!("../pack.toml");

/// The pack, ready for the agent's executor, with its model cache
/// ([`cache::MODEL_TTL`]).
pub fn pack() -> Result<PackDef, ManifestError> {
    pack_with_cache(Arc::new(ModelCache::default()))
}

/// The pack with a model cache of its own (a zero time to live lists on
/// every call, as the pack did before it kept a model: the benchmark's
/// "before").
pub fn pack_with_cache(cache: Arc<ModelCache>) -> Result<PackDef, ManifestError> {
    use probes::{changes, datasets, files, history, pools, snapshots, space};
    let probes: Vec<(&str, Handler)> = vec![
        ("agent_info", pools::agent_info),
        ("list_pools", pools::list_pools),
        ("pool_status", pools::pool_status),
        ("list_datasets", datasets::list_datasets),
        ("dataset_properties", datasets::dataset_properties),
        ("list_snapshots", snapshots::list_snapshots),
        ("snapshot_cadence", snapshots::snapshot_cadence),
        ("stale_snapshots", snapshots::stale_snapshots),
        ("size_delta", snapshots::size_delta),
        ("diff_snapshots", changes::diff_snapshots),
        ("find_deleted", changes::find_deleted),
        ("list_dir", files::list_dir),
        ("read_file", files::read_file),
        ("find_files", files::find_files),
        ("content_grep", files::content_grep),
        ("size_breakdown", space::size_breakdown),
        ("top_consumers", space::top_consumers),
        ("space_report", space::space_report),
        ("file_history", history::file_history),
        ("versions_of", history::versions_of),
        ("file_diff", history::file_diff),
        ("snapshots_containing", history::snapshots_containing),
        ("first_appearance", history::first_appearance),
        ("last_appearance", history::last_appearance),
        ("bisect_change", history::bisect_change),
    ];
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = probes
        .into_iter()
        .map(|(name, f)| (name, with_cache(&cache, f)))
        .collect();
    PackDef::builtin(MANIFEST, handlers, Some(settings::Settings::check))
}

/// A probe's code: the per-call context (with the shared model) in, a
/// result out.
type Handler = fn(&Ctx<'_>, &ValidatedParams) -> Result<ProbeOutput, ProbeError>;

fn with_cache(cache: &Arc<ModelCache>, f: Handler) -> Arc<dyn ProbeHandler> {
    let cache = cache.clone();
    Arc::new(
        move |probe: &ProbeContext<'_>,
              params: &ValidatedParams|
              -> Result<ProbeOutput, ProbeError> {
            let ctx = Ctx::new(probe, &cache, params)?;
            f(&ctx, params)
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_manifest_loads_with_a_handler_for_every_probe() {
        let pack = super::pack().unwrap();
        assert_eq!(pack.manifest.name, "zfs");
        assert_eq!(pack.handlers.len(), 25);
        assert!(pack.settings_check.is_some());
    }
}
