//! `replication.status`: as a replica, each replication channel (MariaDB
//! multi-source connections included) with its I/O and SQL threads, lag
//! and last errors; as a source, the binary log position and the replicas
//! connected to it (their binlog dump threads).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::client::{My, codes, num, server_code, session, text};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// MariaDB: every connection of a multi-source replica.
pub const ALL_SLAVES: &str = "SHOW ALL SLAVES STATUS";
/// MySQL 8.0.22+.
pub const REPLICA_STATUS: &str = "SHOW REPLICA STATUS";
/// Older MySQL.
pub const SLAVE_STATUS: &str = "SHOW SLAVE STATUS";
/// MariaDB and MySQL before 8.4.
pub const MASTER_STATUS: &str = "SHOW MASTER STATUS";
/// MySQL 8.4+.
pub const BINARY_LOG_STATUS: &str = "SHOW BINARY LOG STATUS";
pub const DUMP_THREADS: &str =
    "SELECT ID AS id, USER AS user, HOST AS host, TIME AS connected_s, STATE AS state
  FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY ID LIMIT 100";
pub const GTID: &str = "SELECT @@GLOBAL.read_only AS read_only, @@GLOBAL.log_bin AS log_bin, @@GLOBAL.server_id AS server_id";

pub const QUERIES: &[&str] = &[
    ALL_SLAVES,
    REPLICA_STATUS,
    SLAVE_STATUS,
    MASTER_STATUS,
    BINARY_LOG_STATUS,
    DUMP_THREADS,
    GTID,
];

/// A field under its MySQL 8 (`Replica`/`Source`) or older
/// (`Slave`/`Master`) name.
fn field<'a>(row: &'a Map<String, Value>, new: &str, old: &str) -> Option<&'a Value> {
    row.get(new).or_else(|| row.get(old))
}

fn field_text<'a>(row: &'a Map<String, Value>, new: &str, old: &str) -> &'a str {
    field(row, new, old).and_then(Value::as_str).unwrap_or("")
}

/// One channel, normalized (the full server row stays under `raw`).
pub fn channel(row: &Map<String, Value>) -> Value {
    let lag = field(row, "Seconds_Behind_Source", "Seconds_Behind_Master").and_then(|v| match v {
        Value::String(s) => s.parse::<i64>().ok(),
        v => v.as_i64(),
    });
    json!({
        "name": text(row, "Connection_name").or_else(|| text(row, "Channel_Name")).unwrap_or(""),
        "source_host": field_text(row, "Source_Host", "Master_Host"),
        "source_port": field(row, "Source_Port", "Master_Port"),
        "source_user": field_text(row, "Source_User", "Master_User"),
        "io_running": field_text(row, "Replica_IO_Running", "Slave_IO_Running"),
        "sql_running": field_text(row, "Replica_SQL_Running", "Slave_SQL_Running"),
        "io_state": field_text(row, "Replica_IO_State", "Slave_IO_State"),
        "sql_state": field_text(row, "Replica_SQL_Running_State", "Slave_SQL_Running_State"),
        "seconds_behind": lag,
        "source_log_file": field_text(row, "Source_Log_File", "Master_Log_File"),
        "read_source_log_pos": field(row, "Read_Source_Log_Pos", "Read_Master_Log_Pos"),
        "exec_source_log_pos": field(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos"),
        "relay_log_space": row.get("Relay_Log_Space"),
        "using_gtid": row.get("Using_Gtid"),
        "gtid_io_pos": row.get("Gtid_IO_Pos").or_else(|| row.get("Retrieved_Gtid_Set")),
        "last_io_errno": row.get("Last_IO_Errno"),
        "last_io_error": row.get("Last_IO_Error"),
        "last_sql_errno": row.get("Last_SQL_Errno"),
        "last_sql_error": row.get("Last_SQL_Error"),
        "sql_delay": row.get("SQL_Delay"),
    })
}

/// Findings for the channels of a replica.
pub fn channel_findings(channels: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in channels {
        let name = c["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map_or(String::new(), |n| format!(" {n:?}"));
        let from = format!(
            "{}:{}",
            c["source_host"].as_str().unwrap_or("?"),
            c["source_port"]
        );
        if c["io_running"] != "Yes" {
            let err = c["last_io_error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .unwrap_or("no error recorded");
            out.push(finding(
                "error",
                format!(
                    "replication{name} from {from}: the I/O thread is {} ({err})",
                    c["io_running"].as_str().unwrap_or("?")
                ),
            ));
        }
        if c["sql_running"] != "Yes" {
            let err = c["last_sql_error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .unwrap_or("no error recorded");
            out.push(finding(
                "error",
                format!(
                    "replication{name} from {from}: the SQL thread is {} ({err})",
                    c["sql_running"].as_str().unwrap_or("?")
                ),
            ));
        }
        match c["seconds_behind"].as_i64() {
            Some(lag) if lag >= 300 => out.push(finding("error", format!("replication{name} from {from} is {lag} s behind"))),
            Some(lag) if lag >= 30 => out.push(finding("warning", format!("replication{name} from {from} is {lag} s behind"))),
            None if c["io_running"] == "Yes" && c["sql_running"] == "Yes" => out.push(finding(
                "warning",
                format!("replication{name} from {from}: the lag is unknown (Seconds_Behind_Master is NULL)"),
            )),
            _ => {}
        }
    }
    out
}

pub fn status(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut my: My| {
        let rows = if my.mariadb {
            my.query(ALL_SLAVES).await.map_err(|e| my.fail(e))?
        } else {
            match my.query(REPLICA_STATUS).await {
                Ok(r) => r,
                Err(e) if server_code(&e) == Some(codes::PARSE_ERROR) => {
                    my.query(SLAVE_STATUS).await.map_err(|e| my.fail(e))?
                }
                Err(e) => return Err(my.fail(e)),
            }
        };
        let binlog = match my.query(MASTER_STATUS).await {
            Ok(r) => r,
            Err(e) if server_code(&e) == Some(codes::PARSE_ERROR) => {
                my.query(BINARY_LOG_STATUS).await.map_err(|e| my.fail(e))?
            }
            Err(e) => return Err(my.fail(e)),
        };
        let replicas = my.query(DUMP_THREADS).await.map_err(|e| my.fail(e))?;
        let server = my.first(GTID).await.map_err(|e| my.fail(e))?;
        let channels: Vec<Value> = rows.iter().map(channel).collect();
        let mut findings = channel_findings(&channels);
        let is_replica = !channels.is_empty();
        if is_replica && num(&server, "read_only") == Some(0.0) {
            findings.push(finding("info", "this replica is not read_only: writes made here directly would make it diverge from its source"));
        }
        if !is_replica && replicas.is_empty() {
            findings.push(finding(
                "info",
                "this server neither replicates from a source nor has replicas connected",
            ));
        }
        Ok(ProbeOutput::new(json!({
            "role": match (is_replica, !replicas.is_empty()) {
                (true, true) => "replica and source",
                (true, false) => "replica",
                (false, true) => "source",
                (false, false) => "standalone",
            },
            "server": server,
            "channels": channels,
            "binary_log": binlog.first(),
            "replicas": replicas,
            "findings": findings,
        })))
    })
}
