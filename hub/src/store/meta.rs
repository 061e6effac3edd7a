//! Hub-wide settings (`meta` table) and the counts of the status line.

use rusqlite::{Connection, OptionalExtension, params};
use sonde_protocol::audit::{AuditAction, NewEntry};

use super::{Audited, Counts, HubStore, Result};

fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

impl HubStore {
    /// A new hub's identity (`init`), audited as `hub.initialised`.
    /// Blocks the thread (a one-off command).
    pub fn initialise(&self, hub_id: &str, hostnames: &[String], now_ms: i64) -> Result<()> {
        let id = hub_id.to_owned();
        let names = super::to_json(&hostnames)?;
        self.commit_blocking(move |c| {
            set(c, "hub_id", &id)?;
            set(c, "hostnames", &names)?;
            set(c, "created_at_ms", &now_ms.to_string())?;
            Ok(Audited::new(
                (),
                NewEntry::new("hub", AuditAction::HubInitialised, "ok")
                    .detail("hub_id", id.clone()),
            ))
        })?;
        Ok(())
    }

    /// Records an event from a one-off command (`cert reissue`), blocking
    /// the thread until it is committed.
    pub fn record_blocking(&self, entry: NewEntry) -> Result<()> {
        self.commit_blocking(move |_| Ok(Audited::new((), entry)))?;
        Ok(())
    }

    /// The hub id and the names given to `init`.
    pub async fn hub_identity(&self) -> Result<(String, Vec<String>)> {
        self.read(|c| {
            let id = get(c, "hub_id")?.unwrap_or_else(|| "hub".into());
            let names: Vec<String> = get(c, "hostnames")?
                .map(|h| serde_json::from_str(&h).unwrap_or_default())
                .unwrap_or_default();
            Ok((id, names))
        })
        .await
    }

    /// Pending enrollments and open drift events.
    pub async fn counts(&self) -> Result<Counts> {
        self.read(|c| {
            let count = |sql: &str| -> Result<u64> {
                Ok(c.prepare_cached(sql)?
                    .query_row([], |r| r.get::<_, i64>(0))?
                    .max(0) as u64)
            };
            Ok(Counts {
                pending_enrollments: count(
                    "SELECT COUNT(*) FROM enrollments WHERE status = 'pending'",
                )?,
                open_drift: count("SELECT COUNT(*) FROM drift_events WHERE status = 'open'")?,
            })
        })
        .await
    }
}
