//! `databases.list`: every schema with its tables, data, index and free
//! space. Sizes come from `information_schema.TABLES` for the tables the
//! account can see; for the others, from InnoDB's persistent statistics
//! (`mysql.innodb_table_stats`, which an account may read without any
//! access to the data), marked as estimates.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::client::{My, codes, num, server_code, session, text};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

pub const SCHEMAS: &str = "SELECT SCHEMA_NAME AS name, DEFAULT_CHARACTER_SET_NAME AS charset, DEFAULT_COLLATION_NAME AS collation FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME LIMIT 10000";

pub const TABLE_SIZES: &str = "SELECT TABLE_SCHEMA AS name, COUNT(*) AS tables,
       CAST(SUM(COALESCE(DATA_LENGTH, 0)) AS SIGNED) AS data_bytes,
       CAST(SUM(COALESCE(INDEX_LENGTH, 0)) AS SIGNED) AS index_bytes,
       CAST(SUM(COALESCE(DATA_FREE, 0)) AS SIGNED) AS free_bytes,
       CAST(SUM(COALESCE(TABLE_ROWS, 0)) AS SIGNED) AS rows_estimate,
       GROUP_CONCAT(DISTINCT ENGINE ORDER BY ENGINE SEPARATOR ',') AS engines
  FROM information_schema.TABLES
 WHERE TABLE_TYPE = 'BASE TABLE'
 GROUP BY TABLE_SCHEMA LIMIT 10000";

pub const INNODB_STATS: &str = "SELECT database_name AS name, COUNT(*) AS tables,
       CAST(SUM(clustered_index_size) * @@innodb_page_size AS SIGNED) AS data_bytes,
       CAST(SUM(sum_of_other_index_sizes) * @@innodb_page_size AS SIGNED) AS index_bytes,
       CAST(SUM(n_rows) AS SIGNED) AS rows_estimate
  FROM mysql.innodb_table_stats GROUP BY database_name LIMIT 10000";

pub const QUERIES: &[&str] = &[SCHEMAS, TABLE_SIZES, INNODB_STATS];

const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "performance_schema", "sys", "mysql"];

fn by_name(rows: Vec<Map<String, Value>>) -> BTreeMap<String, Map<String, Value>> {
    rows.into_iter()
        .filter_map(|r| Some((text(&r, "name")?.to_owned(), r)))
        .collect()
}

pub fn list(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let include_system = params.bool("include_system").unwrap_or(false);
    session(ctx, async |mut my: My| {
        let schemas = my.query(SCHEMAS).await.map_err(|e| my.fail(e))?;
        let sizes = by_name(my.query(TABLE_SIZES).await.map_err(|e| my.fail(e))?);
        let mut notes = Vec::new();
        let stats = match my.query(INNODB_STATS).await {
            Ok(rows) => by_name(rows),
            Err(e)
                if matches!(
                    server_code(&e),
                    Some(
                        codes::TABLE_ACCESS_DENIED | codes::NO_SUCH_TABLE | codes::DB_ACCESS_DENIED
                    )
                ) =>
            {
                notes.push(format!(
                    "sizes of schemas whose tables this account cannot see are unknown: `GRANT SELECT ON mysql.innodb_table_stats TO {};` gives InnoDB size estimates without access to any data",
                    my.account
                ));
                BTreeMap::new()
            }
            Err(e) => return Err(my.fail(e)),
        };
        let mut out = Vec::new();
        let mut findings = Vec::new();
        let mut total = 0.0;
        // Schemas this account cannot list (no SHOW DATABASES) but whose
        // InnoDB statistics it reads.
        let listed: std::collections::BTreeSet<String> = schemas
            .iter()
            .filter_map(|s| text(s, "name").map(str::to_owned))
            .collect();
        let mut schemas = schemas;
        for name in stats.keys().filter(|n| !listed.contains(*n)) {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            schemas.push(m);
        }
        for s in schemas {
            let Some(name) = text(&s, "name").map(str::to_owned) else {
                continue;
            };
            let system = SYSTEM_SCHEMAS.contains(&name.as_str());
            if system && !include_system {
                continue;
            }
            let mut db = s.clone();
            db.insert("system".into(), json!(system));
            if let Some(sz) = sizes.get(&name) {
                for k in [
                    "tables",
                    "data_bytes",
                    "index_bytes",
                    "free_bytes",
                    "rows_estimate",
                    "engines",
                ] {
                    db.insert(k.into(), sz.get(k).cloned().unwrap_or(Value::Null));
                }
                db.insert("size_source".into(), json!("information_schema"));
            } else if let Some(st) = stats.get(&name) {
                for k in ["tables", "data_bytes", "index_bytes", "rows_estimate"] {
                    db.insert(k.into(), st.get(k).cloned().unwrap_or(Value::Null));
                }
                db.insert("size_source".into(), json!("innodb_table_stats (estimate)"));
            } else {
                db.insert("tables".into(), json!(0));
                db.insert("size_source".into(), json!(null));
            }
            let size =
                num(&db, "data_bytes").unwrap_or(0.0) + num(&db, "index_bytes").unwrap_or(0.0);
            db.insert("size_bytes".into(), json!(size as i64));
            total += size;
            let free = num(&db, "free_bytes").unwrap_or(0.0);
            if free >= 1_073_741_824.0 && free >= size * 0.25 {
                findings.push(finding("info", format!(
                    "schema {name}: {:.1} GiB free inside its tablespaces ({:.0}% of its size): OPTIMIZE TABLE on the fragmented tables would give it back",
                    free / 1_073_741_824.0,
                    100.0 * free / size.max(1.0)
                )));
            }
            out.push(Value::Object(db));
        }
        out.sort_by(|a, b| {
            b["size_bytes"]
                .as_i64()
                .unwrap_or(0)
                .cmp(&a["size_bytes"].as_i64().unwrap_or(0))
        });
        Ok(ProbeOutput::new(json!({
            "databases": out,
            "count": out.len(),
            "total_size_bytes": total as i64,
            "notes": notes,
            "findings": findings,
        })))
    })
}
