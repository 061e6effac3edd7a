//! Group commit: one writer thread owns the connection; appends from
//! concurrent callers are batched into one transaction and one fsync, and
//! each caller is answered only once the batch holding its entry has
//! committed.
//!
//! A caller hands the writer a *job*: a closure run inside the batch's
//! transaction, under its own savepoint, with a [`Tx`] that can change rows
//! and append entries to the chain. A job that fails is rolled back alone
//! (its savepoint) and answered at once; the other jobs of the batch still
//! commit. When the commit itself fails, every job of the batch is answered
//! with the error and nothing of it is kept.
//!
//! While the writer commits one batch, new jobs queue; they become the next
//! batch. Nothing waits on a timer: with one caller a batch is one job, with
//! many the fsync is shared.
//!
//! The chain head is read once per batch inside the write transaction, so
//! the chain stays linear even if another process appends to the same file
//! between two batches (`sonde-agent probe` next to the daemon). Signed
//! checkpoints are written exactly at the multiples of `checkpoint_every`,
//! in the same transaction as the entry that reaches them: one checkpoint
//! per mark, however many callers race past it.

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use sonde_protocol::audit::{AuditEntry, ChainHead, Checkpoint, NewEntry};
use sonde_protocol::time::now_ms;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{Result, StoreError};

/// Most jobs in one batch (bounds the time a batch holds the write lock).
pub const MAX_BATCH: usize = 512;

/// The chain as the writer knows it: its head, the key that signs its
/// checkpoints and how often it does.
#[derive(Debug)]
pub struct ChainWriter {
    head: ChainHead,
    key: SigningKey,
    checkpoint_every: u64,
}

impl ChainWriter {
    /// A writer for the chain in `conn` (reads its head).
    pub fn load(conn: &Connection, key: SigningKey, checkpoint_every: u64) -> Result<Self> {
        Ok(ChainWriter {
            head: crate::head(conn)?,
            key,
            checkpoint_every,
        })
    }

    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Re-reads the head (inside a write transaction).
    fn reload(&mut self, conn: &Connection) -> Result<()> {
        self.head = crate::head(conn)?;
        Ok(())
    }

    /// Appends one entry after the head; signs a checkpoint when the entry
    /// lands on a multiple of `checkpoint_every`.
    pub fn append(
        &mut self,
        conn: &Connection,
        entry: NewEntry,
        now_ms: i64,
    ) -> Result<AuditEntry> {
        let mut next = self.head;
        let e = next.append(entry, now_ms);
        crate::insert_entry(conn, &e)?;
        self.head = next;
        if self.checkpoint_every > 0 && e.seq.is_multiple_of(self.checkpoint_every) {
            crate::insert_checkpoint(conn, &Checkpoint::sign(self.head, now_ms, &self.key))?;
        }
        Ok(e)
    }

    /// Signs and stores a checkpoint of the head unless the last checkpoint
    /// already covers it.
    pub fn checkpoint(&mut self, conn: &Connection, now_ms: i64) -> Result<Option<Checkpoint>> {
        let last = crate::last_checkpoint(conn)?;
        if self.head.seq == 0 || last.is_some_and(|l| l.seq >= self.head.seq) {
            return Ok(None);
        }
        let cp = Checkpoint::sign(self.head, now_ms, &self.key);
        crate::insert_checkpoint(conn, &cp)?;
        Ok(Some(cp))
    }
}

/// What a job sees: the batch's transaction (under the job's savepoint)
/// and the chain.
#[derive(Debug)]
pub struct Tx<'a> {
    conn: &'a Connection,
    chain: &'a mut ChainWriter,
}

impl Tx<'_> {
    /// The connection, inside the write transaction.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// Appends an entry to the chain (committed with the rest of the job).
    pub fn append(&mut self, entry: NewEntry) -> Result<AuditEntry> {
        self.chain.append(self.conn, entry, now_ms())
    }

    /// The head as of this point of the batch.
    pub fn head(&self) -> ChainHead {
        self.chain.head()
    }

    /// Signs a checkpoint of the head if it moved since the last one.
    pub fn checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        self.chain.checkpoint(self.conn, now_ms())
    }
}

/// Called once the batch is settled: `None` when it committed, else why not.
type Completion = Box<dyn FnOnce(Option<String>) + Send>;

/// A job's result inside the batch.
enum Staged {
    /// Keep its changes; answer after the commit.
    Keep(Completion),
    /// Its savepoint was rolled back; answer now.
    RolledBack(Box<dyn FnOnce() + Send>),
}

/// Why a job was not run.
enum Abort {
    /// The writer is closed.
    Closed,
    /// The batch could not be set up (begin or savepoint failed).
    Failed(String),
}

/// A job: run it with the batch's `Tx`, or tell it why it cannot run.
type Job = Box<dyn FnOnce(std::result::Result<&mut Tx<'_>, Abort>) -> Option<Staged> + Send>;

/// Counters of the writer (for benchmarks and tests).
#[derive(Debug, Default)]
pub struct WriterStats {
    batches: AtomicU64,
    jobs: AtomicU64,
    failed_commits: AtomicU64,
}

impl WriterStats {
    /// Batches committed (or attempted).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Jobs run.
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    /// Batches whose commit failed.
    pub fn failed_commits(&self) -> u64 {
        self.failed_commits.load(Ordering::Relaxed)
    }
}

/// The writer thread and the queue in front of it.
#[derive(Debug)]
pub struct GroupCommit {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<Connection>>>,
    stats: Arc<WriterStats>,
}

impl GroupCommit {
    /// Starts the writer thread on `conn` (already configured: journal
    /// mode, `synchronous`, schema).
    pub fn start(
        conn: Connection,
        key: SigningKey,
        checkpoint_every: u64,
        name: &str,
    ) -> Result<Self> {
        let chain = ChainWriter::load(&conn, key, checkpoint_every)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || writer_loop(conn, chain, rx, &thread_stats))
            .map_err(|e| StoreError::Closed(format!("cannot start the writer thread: {e}")))?;
        Ok(GroupCommit {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues `op` for the next batch; `done` gets its result once the batch
    /// is settled (or at once, if `op` fails or the writer is closed).
    pub fn submit<T, E, F, C>(&self, op: F, done: C)
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
        C: FnOnce(std::result::Result<T, E>) + Send + 'static,
    {
        let job: Job = Box::new(move |tx| {
            let tx = match tx {
                Ok(tx) => tx,
                Err(Abort::Closed) => {
                    done(Err(E::from(StoreError::Closed(
                        "the audit writer has stopped".into(),
                    ))));
                    return None;
                }
                Err(Abort::Failed(why)) => {
                    done(Err(E::from(StoreError::Commit(why))));
                    return None;
                }
            };
            Some(match op(tx) {
                Ok(value) => Staged::Keep(Box::new(move |failure| {
                    done(match failure {
                        None => Ok(value),
                        Some(why) => Err(E::from(StoreError::Commit(why))),
                    })
                })),
                Err(e) => Staged::RolledBack(Box::new(move || done(Err(e)))),
            })
        });
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let rejected = match queue.as_ref() {
            Some(sender) => sender.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(queue);
        if let Some(job) = rejected {
            job(Err(Abort::Closed));
        }
    }

    /// Runs `op` in the next batch and waits (async) until it is durable.
    pub async fn run<T, E, F>(&self, op: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(op, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or_else(|_| {
            Err(E::from(StoreError::Closed(
                "the audit writer stopped before answering".into(),
            )))
        })
    }

    /// Runs `op` in the next batch and blocks the thread until it is durable.
    pub fn run_blocking<T, E, F>(&self, op: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(op, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(E::from(StoreError::Closed(
                "the audit writer stopped before answering".into(),
            )))
        })
    }

    /// Stops taking jobs, lets the queued ones commit, and returns the
    /// connection (for a final WAL checkpoint). `None` if already closed.
    pub fn close(&self) -> Option<Connection> {
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        thread.join().ok()
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn writer_loop(
    conn: Connection,
    mut chain: ChainWriter,
    rx: mpsc::Receiver<Job>,
    stats: &WriterStats,
) -> Connection {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::with_capacity(8);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, &mut chain, batch, stats);
    }
    conn
}

fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn commit_batch(conn: &Connection, chain: &mut ChainWriter, batch: Vec<Job>, stats: &WriterStats) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
    let begin = exec_cached(conn, "BEGIN IMMEDIATE")
        .map_err(StoreError::from)
        .and_then(|()| chain.reload(conn));
    if let Err(e) = begin {
        let _ = conn.execute_batch("ROLLBACK");
        fail_all(
            batch,
            &format!("starting the write transaction: {e}"),
            stats,
        );
        return;
    }
    let start = chain.head;
    let mut kept: Vec<Completion> = Vec::with_capacity(batch.len());
    for job in batch {
        let before = chain.head;
        if let Err(e) = exec_cached(conn, "SAVEPOINT job") {
            // Without a savepoint the job cannot be isolated: fail it.
            tracing::error!(error = %e, "cannot open a savepoint for a write");
            let _ = job(Err(Abort::Failed(format!("opening a savepoint: {e}"))));
            continue;
        }
        let mut tx = Tx { conn, chain };
        let staged = std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut tx))));
        match staged {
            Ok(Some(Staged::Keep(done))) => match exec_cached(conn, "RELEASE job") {
                Ok(()) => kept.push(done),
                Err(e) => {
                    chain.head = before;
                    let _ = exec_cached(conn, "ROLLBACK TO job");
                    let _ = exec_cached(conn, "RELEASE job");
                    done(Some(format!("releasing the savepoint: {e}")));
                }
            },
            Ok(Some(Staged::RolledBack(answer))) => {
                chain.head = before;
                let _ = exec_cached(conn, "ROLLBACK TO job");
                let _ = exec_cached(conn, "RELEASE job");
                answer();
            }
            Ok(None) => {}
            Err(_) => {
                // The job panicked: its completion is gone with it (its
                // caller sees the channel close and gets an error).
                chain.head = before;
                let _ = exec_cached(conn, "ROLLBACK TO job");
                let _ = exec_cached(conn, "RELEASE job");
                tracing::error!("a write job panicked; its changes were rolled back");
            }
        }
    }
    match exec_cached(conn, "COMMIT") {
        Ok(()) => {
            for done in kept {
                done(None);
            }
        }
        Err(e) => {
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            let _ = conn.execute_batch("ROLLBACK");
            chain.head = start;
            let why = format!("committing the batch: {e}");
            tracing::error!(error = %why, "a write batch could not be committed");
            for done in kept {
                done(Some(why.clone()));
            }
        }
    }
}

fn fail_all(batch: Vec<Job>, why: &str, stats: &WriterStats) {
    stats.failed_commits.fetch_add(1, Ordering::Relaxed);
    tracing::error!(error = %why, "a write batch could not start");
    for job in batch {
        // Answer each job without running it.
        let _ = job(Err(Abort::Failed(why.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_protocol::audit::AuditAction;
    use std::sync::Barrier;

    fn open(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("a.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn.execute_batch(crate::SCHEMA).unwrap();
        conn
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn append(w: &GroupCommit, i: u64) -> Result<AuditEntry> {
        w.run_blocking(move |tx| {
            tx.append(NewEntry::new("t", AuditAction::HubStarted, "ok").detail("i", i))
        })
    }

    #[test]
    fn one_checkpoint_per_mark_under_eight_concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(GroupCommit::start(open(&dir), key(), 100, "test-writer").unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    for i in 0..400 {
                        append(&w, t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let conn = w.close().unwrap();
        let seqs: Vec<u64> = crate::checkpoints(&conn)
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, (1..=32).map(|i| i * 100).collect::<Vec<_>>());
        let report = crate::verify(&conn, &key().verifying_key())
            .unwrap()
            .unwrap();
        assert_eq!(report.entries, 3200);
        assert_eq!(report.checkpoints_verified, 32);
    }

    #[test]
    fn queued_appends_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(GroupCommit::start(open(&dir), key(), 0, "test-writer").unwrap());
        let started = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let (s, r) = (Arc::clone(&started), Arc::clone(&release));
        let (first_tx, first_rx) = mpsc::channel();
        w.submit(
            move |tx: &mut Tx<'_>| {
                s.wait();
                r.wait();
                tx.append(NewEntry::new("t", AuditAction::HubStarted, "ok"))
            },
            move |res: Result<AuditEntry>| first_tx.send(res.map(|e| e.seq)).unwrap(),
        );
        started.wait();
        let (tx, rx) = mpsc::channel();
        for i in 0..50 {
            let tx = tx.clone();
            w.submit(
                move |t: &mut Tx<'_>| {
                    t.append(NewEntry::new("t", AuditAction::ProbeRan, "ok").detail("i", i))
                },
                move |res: Result<AuditEntry>| tx.send(res.map(|e| e.seq)).unwrap(),
            );
        }
        release.wait();
        assert_eq!(first_rx.recv().unwrap().unwrap(), 1);
        let mut seqs: Vec<u64> = (0..50).map(|_| rx.recv().unwrap().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (2..=51).collect::<Vec<_>>());
        assert_eq!(w.stats().jobs(), 51);
        assert_eq!(
            w.stats().batches(),
            2,
            "the 50 queued appends share one commit"
        );
    }

    #[test]
    fn an_answer_means_the_entry_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let w = GroupCommit::start(open(&dir), key(), 0, "test-writer").unwrap();
        let other = Connection::open(dir.path().join("a.db")).unwrap();
        for i in 1..=20 {
            let e = append(&w, i).unwrap();
            assert_eq!(e.seq, i);
            // A separate connection sees it: it is committed, not pending.
            assert_eq!(crate::head(&other).unwrap(), e.head());
        }
    }

    #[test]
    fn a_failed_job_is_rolled_back_alone_and_the_chain_stays_linear() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir);
        conn.execute_batch("CREATE TABLE things (id INTEGER PRIMARY KEY)")
            .unwrap();
        let w = Arc::new(GroupCommit::start(conn, key(), 0, "test-writer").unwrap());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        let fail = i % 3 == 0;
                        let r: Result<()> = w.run_blocking(move |tx| {
                            tx.conn().execute(
                                "INSERT INTO things (id) VALUES (?1)",
                                [(t * 100 + i) as i64],
                            )?;
                            tx.append(NewEntry::new("t", AuditAction::ProbeRan, "ok"))?;
                            if fail {
                                return Err(StoreError::Corrupt("refused".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(r.is_err(), fail);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let conn = w.close().unwrap();
        let things: i64 = conn
            .query_row("SELECT COUNT(*) FROM things", [], |r| r.get(0))
            .unwrap();
        let kept = 4 * (50 - 17);
        assert_eq!(things, kept);
        let report = crate::verify(&conn, &key().verifying_key())
            .unwrap()
            .unwrap();
        assert_eq!(report.entries, kept as u64);
    }

    #[test]
    fn another_process_appending_between_batches_keeps_the_chain_linear() {
        let dir = tempfile::tempdir().unwrap();
        let w = GroupCommit::start(open(&dir), key(), 0, "test-writer").unwrap();
        append(&w, 1).unwrap();
        // Another writer on the same file (a second process).
        let other = open(&dir);
        let mut other_chain = ChainWriter::load(&other, key(), 0).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other_chain
            .append(
                &other,
                NewEntry::new("other", AuditAction::HubStarted, "ok"),
                5,
            )
            .unwrap();
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(append(&w, 3).unwrap().seq, 3);
        let conn = w.close().unwrap();
        assert_eq!(
            crate::verify(&conn, &key().verifying_key())
                .unwrap()
                .unwrap()
                .entries,
            3
        );
    }

    #[test]
    fn after_close_jobs_are_refused_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let w = GroupCommit::start(open(&dir), key(), 0, "test-writer").unwrap();
        append(&w, 1).unwrap();
        assert!(w.close().is_some());
        let err = append(&w, 2).unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
    }
}
