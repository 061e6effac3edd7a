//! A small pool of read-only connections. In WAL mode readers never wait
//! for the writer, and with several connections they do not wait for each
//! other either: the console paging the audit chain or an `audit verify`
//! does not hold up an API-key check. Long reads take one extra permit
//! ([`ReadPool::read_long`]), so at most one runs at a time and the other
//! connections stay free for short ones.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::Semaphore;

use super::{Result, StoreError};

type Opener = fn(&Path) -> Result<Connection>;

pub(super) struct ReadPool {
    path: PathBuf,
    open: Opener,
    idle: Mutex<Vec<Connection>>,
    slots: Semaphore,
    long: Semaphore,
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool")
            .field("path", &self.path)
            .field("available", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl ReadPool {
    pub(super) fn new(path: &Path, size: usize, open: Opener) -> Result<Self> {
        let size = size.max(1);
        let idle = (0..size).map(|_| open(path)).collect::<Result<Vec<_>>>()?;
        Ok(ReadPool {
            path: path.to_owned(),
            open,
            idle: Mutex::new(idle),
            slots: Semaphore::new(size),
            long: Semaphore::new(1),
        })
    }

    /// Runs `f` on a free connection, on a blocking thread.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        // A connection lost to a panicked read is replaced.
        let conn = match taken {
            Some(c) => c,
            None => (self.open)(&self.path)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }

    /// Like [`ReadPool::read`], one long read at a time.
    pub(super) async fn read_long<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _long = self
            .long
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        self.read(f).await
    }
}
