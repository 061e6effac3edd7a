//! The dataset and snapshot model, kept in the agent between probe calls.
//!
//! An AI assistant asks in bursts: a dozen questions about one dataset in
//! a minute. Each `zfs list` costs tens to hundreds of milliseconds on a
//! box with thousands of snapshots, so the pack lists once and answers the
//! burst from memory:
//! - the datasets (every file system and volume, one command) and each
//!   dataset's snapshots (one command per dataset) are kept for at most
//!   [`MODEL_TTL`];
//! - a dataset's snapshot list is listed again at once when its
//!   `.zfs/snapshot` directory changed: on OpenZFS that directory's mtime
//!   is the time a snapshot was last created, destroyed or renamed, and its
//!   link count is two plus the number of snapshots (`zpl_snapdir_getattr`),
//!   so one `stat` — no subprocess — tells whether the list is still
//!   current (where the directory is missing, as on zfs-fuse, the time to
//!   live alone applies);
//! - a caller that names a snapshot the list lacks, or asks for a time
//!   after the list was taken, gets a fresh list first ([`crate::probes`]
//!   asks for it), and a snapshot whose directory has vanished drops the
//!   dataset's list;
//! - a dataset the cached list lacks is looked up again before it is
//!   called missing.
//!
//! What may be stale for up to [`MODEL_TTL`]: the space figures (`used`,
//! `referenced`, `available`) and mount state. The space report
//! (`zfs.space_report`) always lists afresh.
//!
//! The cache holds at most [`MAX_DATASETS`] snapshot lists; it is shared
//! by concurrent calls (a mutex around the maps, never held while a command
//! runs: two calls that miss together may both list).

use sonde_packs::handler::ProbeError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::model::{self, Dataset, Listing, Snapshot};
use crate::zfs::Zfs;

/// How long a listing is used without asking ZFS again.
pub const MODEL_TTL: Duration = Duration::from_secs(60);
/// Most datasets whose snapshot lists are kept.
pub const MAX_DATASETS: usize = 256;

/// What `stat` says about `<mountpoint>/.zfs/snapshot`: it changes when a
/// snapshot is created, destroyed or renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapdirStamp {
    pub ino: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub nlink: u64,
}

impl SnapdirStamp {
    /// The stamp of a dataset's snapshot directory, if it has one.
    pub fn of(ds: &Dataset) -> Option<SnapdirStamp> {
        let mount = model::mountpoint(ds).ok()?;
        SnapdirStamp::at(&mount.join(".zfs").join("snapshot"))
    }

    pub fn at(dir: &Path) -> Option<SnapdirStamp> {
        let st = rustix::fs::stat(dir).ok()?;
        Some(SnapdirStamp {
            ino: st.st_ino,
            mtime: st.st_mtime,
            mtime_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
            // `st_nlink` is 32 bits on some targets.
            #[allow(clippy::useless_conversion)]
            nlink: u64::try_from(st.st_nlink).unwrap_or(0),
        })
    }
}

/// One dataset's snapshots as listed at some moment.
#[derive(Debug, Clone)]
pub struct Snapshots {
    pub list: Arc<Vec<Snapshot>>,
    /// The listing was cut short by its output bound.
    pub truncated: bool,
    /// When it was listed (Unix seconds): a snapshot taken later may be
    /// missing from it.
    pub listed_unix: i64,
    /// Listed during this call (not taken from the cache).
    pub fresh: bool,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    at: Instant,
    unix: i64,
    value: T,
}

#[derive(Debug, Clone)]
struct SnapEntry {
    list: Arc<Vec<Snapshot>>,
    truncated: bool,
    stamp: Option<SnapdirStamp>,
}

#[derive(Debug, Default)]
struct Inner {
    datasets: Option<Entry<Arc<Listing<Dataset>>>>,
    snapshots: HashMap<String, Entry<SnapEntry>>,
    all_snapshots: Option<Entry<Arc<Listing<Snapshot>>>>,
}

/// Counts of what the cache did (for tests and the benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Listings run (datasets, one dataset's snapshots, all snapshots).
    pub listings: u64,
    /// Answers from memory.
    pub hits: u64,
}

/// The model shared by all calls of one pack instance.
#[derive(Debug)]
pub struct ModelCache {
    ttl: Duration,
    inner: Mutex<Inner>,
    stats: Mutex<CacheStats>,
}

impl Default for ModelCache {
    fn default() -> Self {
        ModelCache::new(MODEL_TTL)
    }
}

impl ModelCache {
    /// A cache whose listings live for `ttl` (zero: every call lists).
    pub fn new(ttl: Duration) -> ModelCache {
        ModelCache {
            ttl,
            inner: Mutex::new(Inner::default()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn stats(&self) -> CacheStats {
        *lock(&self.stats)
    }

    fn count(&self, hit: bool) {
        let mut s = lock(&self.stats);
        if hit {
            s.hits += 1;
        } else {
            s.listings += 1;
        }
    }

    fn live<T>(&self, e: &Entry<T>) -> bool {
        e.at.elapsed() < self.ttl
    }

    /// Every file system and volume (from memory when recent enough, or
    /// listed again when `refresh`), and whether it was listed just now.
    pub fn datasets(
        &self,
        zfs: &Zfs<'_>,
        now: i64,
        refresh: bool,
    ) -> Result<(Arc<Listing<Dataset>>, bool), ProbeError> {
        if !refresh
            && let Some(e) = &lock(&self.inner).datasets
            && self.live(e)
        {
            let v = e.value.clone();
            self.count(true);
            return Ok((v, false));
        }
        let listing = Arc::new(model::datasets(zfs, None)?);
        self.count(false);
        lock(&self.inner).datasets = Some(Entry {
            at: Instant::now(),
            unix: now,
            value: listing.clone(),
        });
        Ok((listing, true))
    }

    /// One dataset by name: from the cached list, listed again once if it
    /// is not there (it may be new) before it is called missing.
    pub fn dataset(&self, zfs: &Zfs<'_>, name: &str, now: i64) -> Result<Dataset, ProbeError> {
        let find = |l: &Listing<Dataset>| l.items.iter().find(|d| d.name == name).cloned();
        let (listing, fresh) = self.datasets(zfs, now, false)?;
        let found = match find(&listing) {
            Some(d) => Some(d),
            None if !fresh => find(&self.datasets(zfs, now, true)?.0),
            None => None,
        };
        found.ok_or_else(|| {
            ProbeError::NotFound(format!(
                "no file system or volume {name} (zfs.list_datasets lists them)"
            ))
        })
    }

    /// One dataset's snapshots, oldest first: from memory while recent and
    /// its snapshot directory unchanged, else listed (also when `refresh`).
    pub fn snapshots(
        &self,
        zfs: &Zfs<'_>,
        ds: &Dataset,
        now: i64,
        refresh: bool,
    ) -> Result<Snapshots, ProbeError> {
        let stamp = SnapdirStamp::of(ds);
        if !refresh
            && let Some(e) = lock(&self.inner).snapshots.get(&ds.name)
            && self.live(e)
            && e.value.stamp == stamp
        {
            let v = Snapshots {
                list: e.value.list.clone(),
                truncated: e.value.truncated,
                listed_unix: e.unix,
                fresh: false,
            };
            self.count(true);
            return Ok(v);
        }
        // The stamp is taken before listing: a snapshot made while the
        // command runs changes it again, and the next call lists anew.
        let listing = model::snapshots(zfs, Some(&ds.name))?;
        self.count(false);
        let list = Arc::new(listing.items);
        let mut inner = lock(&self.inner);
        if inner.snapshots.len() >= MAX_DATASETS {
            let ttl = self.ttl;
            inner.snapshots.retain(|_, e| e.at.elapsed() < ttl);
            if inner.snapshots.len() >= MAX_DATASETS
                && let Some(oldest) = inner
                    .snapshots
                    .iter()
                    .min_by_key(|(_, e)| e.at)
                    .map(|(k, _)| k.clone())
            {
                inner.snapshots.remove(&oldest);
            }
        }
        inner.snapshots.insert(
            ds.name.clone(),
            Entry {
                at: Instant::now(),
                unix: now,
                value: SnapEntry {
                    list: list.clone(),
                    truncated: listing.truncated,
                    stamp,
                },
            },
        );
        Ok(Snapshots {
            list,
            truncated: listing.truncated,
            listed_unix: now,
            fresh: true,
        })
    }

    /// Every snapshot of every dataset (time to live only).
    pub fn all_snapshots(
        &self,
        zfs: &Zfs<'_>,
        now: i64,
    ) -> Result<Arc<Listing<Snapshot>>, ProbeError> {
        if let Some(e) = &lock(&self.inner).all_snapshots
            && self.live(e)
        {
            let v = e.value.clone();
            self.count(true);
            return Ok(v);
        }
        let listing = Arc::new(model::snapshots(zfs, None)?);
        self.count(false);
        lock(&self.inner).all_snapshots = Some(Entry {
            at: Instant::now(),
            unix: now,
            value: listing.clone(),
        });
        Ok(listing)
    }

    /// Drops what is known about a dataset's snapshots (one of them
    /// vanished).
    pub fn forget(&self, dataset: &str) {
        let mut inner = lock(&self.inner);
        inner.snapshots.remove(dataset);
        inner.all_snapshots = None;
    }

    /// Drops everything.
    pub fn clear(&self) {
        *lock(&self.inner) = Inner::default();
    }
}

/// A poisoned lock only means another call panicked mid-update of a cache:
/// the data is still a consistent listing, so it is used.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapdir_stamp_changes_when_a_snapshot_directory_appears() {
        let d = tempfile::tempdir().unwrap();
        let snapdir = d.path().join(".zfs/snapshot");
        std::fs::create_dir_all(snapdir.join("a")).unwrap();
        let before = SnapdirStamp::at(&snapdir).unwrap();
        assert_eq!(before, SnapdirStamp::at(&snapdir).unwrap());
        std::fs::create_dir(snapdir.join("b")).unwrap();
        let after = SnapdirStamp::at(&snapdir).unwrap();
        assert_ne!(before, after);
        assert_eq!(after.nlink, before.nlink + 1);
        assert!(SnapdirStamp::at(&d.path().join("missing")).is_none());
    }
}
