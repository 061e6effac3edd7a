//! What a probe holds while it runs so that no secret leaves the machine:
//! the scrubber, for parameters that filter, search or compare content, and
//! the identity of the agent's own files, for every file a probe opens.
//!
//! - **Filters run on scrubbed text.** A handler with a `grep`-like, search
//!   or comparison parameter applies it to [`SecretGuard::scrub`]'s output,
//!   never to raw bytes, so a match (or a difference, or a hash) that exists
//!   only because of a secret is no match: guessing a redacted password
//!   character by character learns nothing.
//! - **The agent's own data is never returned**, judged by file identity
//!   *after* opening ([`SecretGuard::check_file`]): a symlink, hard link,
//!   bind mount or `/proc/<pid>/fd` path to the agent's key, config or audit
//!   database is refused whatever its name. (The kernel sandbox hides the
//!   data dir by path as well: [`crate::sandbox`].)

use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::handler::ProbeError;
use crate::scrub::{Redactions, Scrubber};

/// The agent's own files, by `(device, inode)`.
#[derive(Debug, Clone, Default)]
pub struct ProtectedFiles {
    roots: Vec<PathBuf>,
    ids: HashSet<(u64, u64)>,
}

/// Most entries read under the protected roots (the data dir holds a dozen).
const MAX_PROTECTED_ENTRIES: usize = 10_000;

impl ProtectedFiles {
    /// Nothing is protected (tools and tests that have no agent data).
    pub fn none() -> Self {
        ProtectedFiles::default()
    }

    /// Everything under `roots` (files and directories, recursively; a
    /// root may be a file), as it is now.
    pub fn scan(roots: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut p = ProtectedFiles {
            roots: roots.into_iter().collect(),
            ids: HashSet::new(),
        };
        p.refresh();
        p
    }

    /// Re-reads the identities (files come and go: the audit database's
    /// WAL, a renewed certificate).
    pub fn refresh(&mut self) {
        let mut ids = HashSet::new();
        let mut stack: Vec<PathBuf> = self.roots.clone();
        while let Some(path) = stack.pop() {
            if ids.len() >= MAX_PROTECTED_ENTRIES {
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            ids.insert((meta.dev(), meta.ino()));
            if meta.is_dir()
                && let Ok(entries) = std::fs::read_dir(&path)
            {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
        self.ids = ids;
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether `meta` is one of the agent's own files.
    pub fn contains(&self, meta: &Metadata) -> bool {
        self.ids.contains(&(meta.dev(), meta.ino()))
    }

    /// Whether inode `ino` on device `dev` is one of the agent's own files
    /// (for snapshots: a ZFS snapshot shows a file under its live inode
    /// number on another device, so callers ask with the live device).
    pub fn contains_inode(&self, dev: u64, ino: u64) -> bool {
        self.ids.contains(&(dev, ino))
    }

    /// The inode numbers of the agent's own files on device `dev` (a
    /// snapshot of that file system shows them under the same numbers).
    pub fn inodes_on(&self, dev: u64) -> Vec<u64> {
        self.ids
            .iter()
            .filter(|(d, _)| *d == dev)
            .map(|(_, i)| *i)
            .collect()
    }
}

/// The scrubber and the agent's files, for one probe run; counts what the
/// handler redacted so the reply can say so.
#[derive(Debug)]
pub struct SecretGuard {
    scrubber: Arc<Scrubber>,
    protected: ProtectedFiles,
    counts: Mutex<Redactions>,
}

impl SecretGuard {
    pub fn new(scrubber: Arc<Scrubber>, protected: ProtectedFiles) -> Self {
        SecretGuard {
            scrubber,
            protected,
            counts: Mutex::new(Redactions::new()),
        }
    }

    /// The default rules, no protected files (tools, tests, benchmarks).
    pub fn standard() -> Self {
        Self::new(Scrubber::shared_defaults(), ProtectedFiles::none())
    }

    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    pub fn protected(&self) -> &ProtectedFiles {
        &self.protected
    }

    fn add(&self, counts: Redactions) {
        if counts.is_empty() {
            return;
        }
        if let Ok(mut all) = self.counts.lock() {
            for (rule, n) in counts {
                *all.entry(rule).or_default() += n;
            }
        }
    }

    /// `text` as it will leave the machine: what filters, searches and
    /// comparisons must look at.
    pub fn scrub<'b>(&self, text: &'b [u8]) -> Cow<'b, [u8]> {
        let mut counts = Redactions::new();
        let out = self.scrubber.scrub_bytes(text, &mut counts);
        self.add(counts);
        match out {
            Some(clean) => Cow::Owned(clean),
            None => Cow::Borrowed(text),
        }
    }

    /// [`SecretGuard::scrub`] keeping every line where it was
    /// ([`Scrubber::scrub_lines`]): for searches that report line numbers.
    pub fn scrub_lines<'b>(&self, text: &'b [u8]) -> Cow<'b, [u8]> {
        let mut counts = Redactions::new();
        let out = self.scrubber.scrub_lines(text, &mut counts);
        self.add(counts);
        match out {
            Some(clean) => Cow::Owned(clean),
            None => Cow::Borrowed(text),
        }
    }

    /// [`SecretGuard::scrub`] for a string.
    pub fn scrub_str<'b>(&self, text: &'b str) -> Cow<'b, str> {
        let mut counts = Redactions::new();
        let out = self.scrubber.scrub_str(text, &mut counts);
        self.add(counts);
        match out {
            Some(clean) => Cow::Owned(clean),
            None => Cow::Borrowed(text),
        }
    }

    /// Scrubs a whole result (what the agent does before signing it).
    pub fn scrub_value(&self, value: &mut Value) {
        let counts = self.scrubber.scrub_value(value);
        self.add(counts);
    }

    /// Refuses a file that is one of the agent's own (checked on the
    /// opened file, so no name, link or mount can dress it up). `shown`
    /// names it in the error.
    pub fn check_file(&self, file: &File, shown: &str) -> Result<(), ProbeError> {
        let meta = file
            .metadata()
            .map_err(|e| ProbeError::Failed(format!("{shown}: {e}")))?;
        self.check_metadata(&meta, shown)
    }

    /// [`SecretGuard::check_file`] from metadata already read (`fstat`).
    pub fn check_metadata(&self, meta: &Metadata, shown: &str) -> Result<(), ProbeError> {
        if self.protected.contains(meta) {
            return Err(own_file_refused(shown));
        }
        Ok(())
    }

    /// Everything redacted so far during this run.
    pub fn take_counts(&self) -> Redactions {
        self.counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// The error for a file that belongs to the agent itself.
pub fn own_file_refused(shown: &str) -> ProbeError {
    ProbeError::Denied(format!(
        "{shown} is one of the agent's own files (its keys, certificates, config or audit chain); no probe ever returns them"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_agents_files_are_known_by_identity_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let key = data.join("signing.key");
        std::fs::write(&key, "secret").unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(&config, "x = 1").unwrap();
        let guard = SecretGuard::new(
            Arc::new(Scrubber::default_rules()),
            ProtectedFiles::scan([data.clone(), config.clone()]),
        );
        let symlink = dir.path().join("app.log");
        std::os::unix::fs::symlink(&key, &symlink).unwrap();
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&key, &hard).unwrap();
        let other = dir.path().join("other.log");
        std::fs::write(&other, "fine").unwrap();
        for path in [&key, &symlink, &hard, &config] {
            let f = File::open(path).unwrap();
            let err = guard.check_file(&f, "x").unwrap_err();
            assert!(matches!(err, ProbeError::Denied(_)), "{path:?}");
        }
        let proc_path = format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            let f = File::open(&key).unwrap();
            let n = f.as_raw_fd();
            std::mem::forget(f);
            n
        });
        assert!(
            guard
                .check_file(&File::open(proc_path).unwrap(), "x")
                .is_err()
        );
        assert!(guard.check_file(&File::open(&other).unwrap(), "x").is_ok());
    }

    #[test]
    fn filters_see_scrubbed_text_and_counts_add_up() {
        let guard = SecretGuard::standard();
        let clean = guard.scrub(b"DB_PASSWORD=hunter2\nok");
        assert!(memchr::memmem::find(&clean, b"hunter2").is_none());
        assert_eq!(guard.scrub_str("nothing here"), "nothing here");
        assert_eq!(guard.take_counts()["secret_assignment"], 1);
        assert!(guard.take_counts().is_empty());
    }
}
