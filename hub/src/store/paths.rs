//! Critical paths: the operator's definitions (validated JSON, see
//! `crate::critical_path`) and what each one's last run found. Defining,
//! removing and running a path are audited (`path.defined`,
//! `path.removed`, `path.ran`).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use sonde_protocol::Digest;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::time::now_ms;

use super::{Audited, HubStore, Result, StoreError, from_json, to_json};

/// A stored path.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPath {
    pub name: String,
    /// The validated definition, as JSON.
    pub definition: Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub defined_by: String,
    /// The last run's summary, as JSON.
    pub last_run: Option<Value>,
}

const COLUMNS: &str = "name, definition, created_at_ms, updated_at_ms, defined_by, last_run";

fn row(r: &Row<'_>) -> rusqlite::Result<(String, String, i64, i64, String, Option<String>)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn finish(
    (name, definition, created_at_ms, updated_at_ms, defined_by, last_run): (
        String,
        String,
        i64,
        i64,
        String,
        Option<String>,
    ),
) -> Result<StoredPath> {
    Ok(StoredPath {
        name,
        definition: from_json("critical_paths.definition", &definition)?,
        created_at_ms,
        updated_at_ms,
        defined_by,
        last_run: last_run
            .map(|t| from_json("critical_paths.last_run", &t))
            .transpose()?,
    })
}

fn get(conn: &Connection, name: &str) -> Result<Option<StoredPath>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM critical_paths WHERE name = ?1"
    ))?
    .query_row([name], row)
    .optional()?
    .map(finish)
    .transpose()
}

impl HubStore {
    /// Creates or replaces the path `name`; audited as `path.defined` with
    /// the definition's digest. Returns the stored path and whether one of
    /// that name was replaced.
    pub async fn define_path(
        &self,
        name: String,
        definition: Value,
        by: &str,
    ) -> Result<(StoredPath, bool)> {
        let by = by.to_owned();
        let (out, _) = self
            .commit(move |c| {
                let now = now_ms();
                let old = get(c, &name)?;
                let text = to_json(&definition)?;
                c.prepare_cached(
                    "INSERT INTO critical_paths (name, definition, created_at_ms, updated_at_ms, defined_by, last_run) \
                     VALUES (?1, ?2, ?3, ?3, ?4, NULL) \
                     ON CONFLICT(name) DO UPDATE SET definition = ?2, updated_at_ms = ?3, defined_by = ?4, last_run = NULL",
                )?
                .execute(params![name, text, now, by])?;
                let stored = get(c, &name)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("critical path {name:?} vanished after insert"))
                })?;
                let steps = definition["steps"].as_array().map_or(0, Vec::len);
                let checks: usize = definition["steps"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .map(|s| s["checks"].as_array().map_or(0, Vec::len))
                            .sum()
                    })
                    .unwrap_or(0);
                let entry = NewEntry::new(by, AuditAction::PathDefined, "ok")
                    .detail("path", name)
                    .detail("replaced", old.is_some())
                    .detail("steps", steps)
                    .detail("checks", checks)
                    .detail("definition_sha256", Digest::of_json(&definition).to_hex());
                Ok(Audited::new((stored, old.is_some()), entry))
            })
            .await?;
        Ok(out)
    }

    /// Removes the path `name`; audited as `path.removed`.
    pub async fn remove_path(&self, name: &str, by: &str) -> Result<StoredPath> {
        let (name, by) = (name.to_owned(), by.to_owned());
        let (old, _) = self
            .commit(move |c| {
                let old = get(c, &name)?.ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "no critical path {name:?}; see `sonde-hub paths list`"
                    ))
                })?;
                c.prepare_cached("DELETE FROM critical_paths WHERE name = ?1")?
                    .execute([&name])?;
                let entry = NewEntry::new(by, AuditAction::PathRemoved, "ok")
                    .detail("path", name)
                    .detail(
                        "definition_sha256",
                        Digest::of_json(&old.definition).to_hex(),
                    );
                Ok(Audited::new(old, entry))
            })
            .await?;
        Ok(old)
    }

    /// Stores a run's summary as the path's last run, with its audit entry
    /// (`path.ran`, built by the caller). A path removed while it ran keeps
    /// only the entry.
    pub async fn record_path_run(&self, name: &str, summary: Value, entry: NewEntry) -> Result<()> {
        let name = name.to_owned();
        self.commit(move |c| {
            c.prepare_cached("UPDATE critical_paths SET last_run = ?2 WHERE name = ?1")?
                .execute(params![name, to_json(&summary)?])?;
            Ok(Audited::new((), entry))
        })
        .await?;
        Ok(())
    }

    pub async fn critical_path(&self, name: &str) -> Result<Option<StoredPath>> {
        let name = name.to_owned();
        self.read(move |c| get(c, &name)).await
    }

    /// Every path, by name.
    pub async fn critical_paths(&self) -> Result<Vec<StoredPath>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM critical_paths ORDER BY name"
            ))?
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(finish)
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{PageQuery, test_support};
    use serde_json::json;

    #[tokio::test]
    async fn define_replace_run_and_remove_are_each_audited() {
        let (_dir, store) = test_support::store();
        let def = json!({"name": "web", "steps": [{"name": "a", "checks": [{"target": "nas", "probe": "system.uptime"}]}]});
        let (p, replaced) = store
            .define_path("web".into(), def.clone(), "operator:alice")
            .await
            .unwrap();
        assert!(!replaced);
        assert_eq!(p.definition, def);
        let (_, replaced) = store
            .define_path("web".into(), def.clone(), "operator:bob")
            .await
            .unwrap();
        assert!(replaced);
        store
            .record_path_run(
                "web",
                json!({"ok": true}),
                sonde_protocol::audit::NewEntry::new(
                    "operator:bob",
                    sonde_protocol::audit::AuditAction::PathRan,
                    "ok",
                ),
            )
            .await
            .unwrap();
        let listed = store.critical_paths().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].defined_by, "operator:bob");
        assert_eq!(listed[0].last_run, Some(json!({"ok": true})));
        store.remove_path("web", "operator:bob").await.unwrap();
        assert!(store.critical_path("web").await.unwrap().is_none());
        let err = store.remove_path("web", "operator:bob").await.unwrap_err();
        assert!(err.to_string().contains("no critical path"), "{err}");
        let (page, _) = store.audit_page(PageQuery::default()).await.unwrap();
        let actions: Vec<&str> = page.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["path.removed", "path.ran", "path.defined", "path.defined"]
        );
        assert_eq!(page[2].detail["replaced"], json!(true));
        assert_eq!(page[3].detail["checks"], json!(1));
    }
}
