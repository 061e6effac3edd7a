//! The hub's data directory: what lives where, and private file writes.
//!
//! ```text
//! DIR/                 0700
//!   hub.db             SQLite (WAL): all state, including the audit chain
//!   ca.crt  ca.key     the hub CA (key 0600)
//!   server.crt/.key    the hub's TLS server certificate chain (key 0600)
//!   signing.key        the hub's Ed25519 envelope/grant/checkpoint key (0600)
//!   hub.toml           optional settings (see `config.rs`)
//!   admin.sock         the admin API (0600), while the hub runs
//!   run.json           the addresses the running hub listens on
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Paths inside one hub data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("hub.db")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("signing.key")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("hub.toml")
    }
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("admin.sock")
    }
    pub fn run_info(&self) -> PathBuf {
        self.root.join("run.json")
    }

    /// True if this looks like an initialised hub data dir.
    pub fn is_initialised(&self) -> bool {
        self.db().exists() && self.ca_cert().exists()
    }

    /// Reads a text file, naming it on failure.
    pub fn read(&self, path: &Path) -> anyhow::Result<String> {
        fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e}{}",
                path.display(),
                if self.is_initialised() {
                    ""
                } else {
                    " (create the data dir with `sonde-hub init --data DIR`)"
                }
            )
        })
    }
}

/// Writes `contents` to a new file only the owner can read (0600). Fails if
/// the file exists: key material is never overwritten.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Writes a public file (0644), replacing it atomically.
pub fn write_public(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)
}

/// Creates the directory (0700) if missing.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_private(&p, b"secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_private(&p, b"other").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"secret");
    }
}
