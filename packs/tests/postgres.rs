//! The postgres pack against real PostgreSQL servers (Debian's
//! `postgresql`), started in temporary directories by
//! `support::databases`, with the read-only role exactly as the README
//! creates it (`CREATE ROLE sonde LOGIN IN ROLE pg_monitor`) logging in
//! by peer authentication, and real activity: dead rows, slow statements,
//! a lock held by an idle transaction with sessions queued behind it, a
//! streaming standby.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_packs::exec::SystemRunner;
use sonde_packs::handler::ProbeError;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::databases::{Postgres, finding_messages as messages, password_file, wait_until};

/// The account line of packs/postgres/README.md.
const CREATE_ROLE: &str = "CREATE ROLE sonde LOGIN IN ROLE pg_monitor";

fn run(settings: &Value, probe: &str, params: Value) -> Result<Value, ProbeError> {
    run_for(settings, probe, params, Duration::from_secs(20))
}

fn run_for(
    settings: &Value,
    probe: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, ProbeError> {
    support::databases::run_pack("postgres", settings, probe, params, timeout)
}

#[test]
fn postgres_probes_answer_against_a_real_server() {
    let pg = with_server!(Postgres::start(&["pg_stat_statements.track = all"]));
    pg.sql("postgres", CREATE_ROLE);
    pg.sql("postgres", "CREATE EXTENSION pg_stat_statements");
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql(
        "shop",
        "CREATE EXTENSION pgstattuple;
         CREATE TABLE orders (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = false);
         INSERT INTO orders SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         ANALYZE orders;
         UPDATE orders SET note = note || '!' WHERE id <= 15000;
         CREATE TABLE small (id int);",
    );
    for _ in 0..3 {
        pg.sql("postgres", "SELECT pg_sleep(0.3)");
    }
    let s = pg.settings();

    let info = run(&s, "server.info", json!({})).unwrap();
    assert!(
        info["server_version_num"].as_i64().unwrap() >= 120_000,
        "{info}"
    );
    assert_eq!(info["connected_as"], "sonde");
    assert_eq!(info["has_pg_monitor"], true);
    assert_eq!(info["in_recovery"], false);
    assert_eq!(info["settings"]["max_connections"]["value"], "40");
    assert_eq!(
        info["settings"]["shared_preload_libraries"]["value"],
        "pg_stat_statements"
    );
    // Our own session's read-only setting is marked as ours.
    assert!(info["uptime_s"].as_f64().unwrap() >= 0.0);
    // The test server runs with fsync off: exactly what the pack must flag.
    assert_eq!(
        messages(&info),
        ["error: fsync is off: a crash or power loss can corrupt the database"],
        "{info}"
    );

    let settings = run(&s, "settings.list", json!({"name": "max_conn"})).unwrap();
    let rows = settings["settings"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{settings}");
    assert_eq!(rows[0]["name"], "max_connections");
    assert_eq!(rows[0]["source"], "configuration file");
    assert!(
        rows[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("postgresql.conf")
    );
    let all = run(
        &s,
        "settings.list",
        json!({"changed_only": false, "limit": 5}),
    )
    .unwrap();
    assert_eq!(all["settings"].as_array().unwrap().len(), 5);

    let dbs = run(&s, "databases.list", json!({})).unwrap();
    let shop = dbs["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "shop")
        .unwrap_or_else(|| panic!("{dbs}"));
    assert!(shop["size_bytes"].as_i64().unwrap() > 1_000_000, "{shop}");
    assert!(shop["xid_age"].as_i64().unwrap() > 0);
    assert!(shop["wraparound_percent"].as_f64().unwrap() < 1.0);
    assert!(dbs["total_size_bytes"].as_i64().unwrap() >= shop["size_bytes"].as_i64().unwrap());
    assert!(
        !messages(&dbs).iter().any(|m| m.starts_with("error")),
        "{dbs}"
    );

    let slow = run(&s, "queries.slow", json!({"order_by": "mean_time"})).unwrap();
    assert_eq!(slow["available"], true, "{slow}");
    let sleep = slow["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().unwrap().contains("pg_sleep"))
        .unwrap_or_else(|| panic!("{slow}"));
    assert!(sleep["calls"].as_i64().unwrap() >= 3, "{sleep}");
    assert!(sleep["mean_ms"].as_f64().unwrap() >= 250.0, "{sleep}");
    assert_eq!(sleep["user"], "postgres");
    let only_shop = run(
        &s,
        "queries.slow",
        json!({"database": "shop", "order_by": "calls"}),
    )
    .unwrap();
    assert!(
        only_shop["statements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["database"] == "shop"),
        "{only_shop}"
    );

    let tables = run(
        &s,
        "tables.health",
        json!({"database": "shop", "measure": true}),
    )
    .unwrap();
    assert_eq!(tables["database"], "shop");
    let orders = &tables["tables"][0];
    assert_eq!(orders["table"], "orders", "{tables}");
    assert_eq!(orders["dead_rows"], 15000, "{orders}");
    assert!(orders["dead_percent"].as_f64().unwrap() > 40.0, "{orders}");
    assert!(orders["dead_bytes_estimate"].as_i64().unwrap() > 0);
    assert_eq!(orders["needs_vacuum"], true);
    assert!(
        orders["measured"]["dead_percent"].as_f64().unwrap() > 10.0,
        "{orders}"
    );
    assert!(
        messages(&tables)
            .iter()
            .any(|m| m.starts_with("warning: table public.orders: 15000 dead rows")),
        "{tables}"
    );
    assert_eq!(tables["totals"]["tables"], 2);
    // Without the extension: estimates, and a note saying how to measure.
    let plain = run(&s, "tables.health", json!({"measure": true})).unwrap();
    assert!(
        plain["notes"][0]
            .as_str()
            .unwrap()
            .contains("CREATE EXTENSION pgstattuple")
    );

    let conns = run(&s, "connections.list", json!({"state": "all"})).unwrap();
    assert_eq!(conns["max_connections"], 40);
    assert!(conns["usage_percent"].as_f64().unwrap() > 0.0);
    assert!(
        conns["other_backends"]
            .as_object()
            .unwrap()
            .contains_key("checkpointer"),
        "{conns}"
    );

    let repl = run(&s, "replication.status", json!({})).unwrap();
    assert_eq!(repl["role"], "primary");
    assert_eq!(repl["standbys"], json!([]));
}

#[test]
fn postgres_blocking_chains_long_transactions_and_slow_statements_are_found() {
    let pg = with_server!(Postgres::start(&[]));
    pg.sql("postgres", CREATE_ROLE);
    pg.sql(
        "postgres",
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int);
         INSERT INTO accounts VALUES (1, 100);
         CREATE ROLE victim LOGIN",
    );
    let count = |sql: &str| pg.sql("postgres", sql);
    let mut holder = pg.session("postgres");
    holder.send(
        "SET application_name = 'holder'; BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; ALTER ROLE victim PASSWORD 'S3cret-pw-4711';",
    );
    assert!(wait_until(Duration::from_secs(20), || count(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder' AND state = 'idle in transaction' AND query LIKE 'ALTER ROLE%'"
    ) == "1"));
    let mut w1 = pg.session("postgres");
    w1.send("SET application_name = 'waiter1'; SELECT * FROM accounts;");
    let mut w2 = pg.session("postgres");
    w2.send("SET application_name = 'waiter2'; UPDATE accounts SET balance = 0;");
    assert!(wait_until(Duration::from_secs(20), || count(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    ) == "2"));
    let mut sleeper = pg.session("postgres");
    sleeper.send("SET application_name = 'sleeper'; SELECT pg_sleep(120);");
    assert!(wait_until(Duration::from_secs(20), || count(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sleeper' AND state = 'active' AND now() - query_start > interval '1.2 s'"
    ) == "1"));
    let holder_pid: i64 =
        count("SELECT pid FROM pg_stat_activity WHERE application_name = 'holder'")
            .parse()
            .unwrap();
    let s = pg.settings();

    let locks = run(&s, "locks.blocking", json!({})).unwrap();
    assert_eq!(
        locks["counts"],
        json!({"blocked": 2, "root_blockers": 1}),
        "{locks}"
    );
    let root = &locks["blockers"][0];
    assert_eq!(root["pid"], holder_pid);
    assert_eq!(root["application"], "holder");
    assert_eq!(root["state"], "idle in transaction");
    assert_eq!(root["blocks_total"], 2);
    let waiting: BTreeSet<&str> = locks["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["blocked_by"], json!([holder_pid]), "{b}");
            assert_eq!(b["waiting_for"]["relation"], "accounts", "{b}");
            b["application"].as_str().unwrap()
        })
        .collect();
    assert_eq!(waiting, ["waiter1", "waiter2"].into());
    assert_eq!(locks["chains"][0]["pid"], holder_pid);
    assert_eq!(locks["chains"][0]["blocks"].as_array().unwrap().len(), 2);
    let m = messages(&locks);
    assert!(
        m[0].contains(&format!(
            "session {holder_pid} (postgres on postgres, holder"
        )),
        "{m:?}"
    );
    assert!(m[0].contains("blocks 2 session(s)"), "{m:?}");

    // The holder's last statement set a password: it never comes out.
    let idle = run(
        &s,
        "connections.list",
        json!({"state": "idle_in_transaction"}),
    )
    .unwrap();
    let text = idle.to_string();
    assert!(!text.contains("S3cret"), "{text}");
    assert!(!locks.to_string().contains("S3cret"));
    let sessions = idle["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{idle}");
    assert_eq!(
        sessions[0]["query"],
        "ALTER ROLE victim PASSWORD '[REDACTED]';"
    );
    let waiting = run(&s, "connections.list", json!({"state": "waiting"})).unwrap();
    assert_eq!(waiting["matching"], 2, "{waiting}");
    assert!(
        messages(&waiting)
            .iter()
            .any(|m| m.contains("2 session(s) wait for a lock"))
    );
    let only_other_db = run(
        &s,
        "connections.list",
        json!({"state": "all", "database": "template1"}),
    )
    .unwrap();
    assert_eq!(only_other_db["matching"], 0);

    let running = run(&s, "queries.running", json!({"min_duration_s": 1})).unwrap();
    let apps: BTreeSet<&str> = running["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["application"].as_str().unwrap())
        .collect();
    assert!(
        apps.contains("sleeper") && apps.contains("holder"),
        "{running}"
    );
    let sleep = running["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["application"] == "sleeper")
        .unwrap();
    assert_eq!(sleep["query"], "SELECT pg_sleep(120);");
    assert!(sleep["query_age_s"].as_f64().unwrap() >= 1.0);
    let active_only = run(
        &s,
        "queries.running",
        json!({"min_duration_s": 1, "include_idle_in_transaction": false}),
    )
    .unwrap();
    assert!(
        active_only["queries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["state"] == "active"),
        "{active_only}"
    );
    drop((holder, w1, w2, sleeper));
}

#[test]
fn postgres_streaming_replica_reports_state_and_lag() {
    let primary = with_server!(Postgres::start(&[]));
    primary.sql("postgres", CREATE_ROLE);
    primary.sql("postgres", "CREATE TABLE t (id int)");
    let replica = primary.replica("sonde_standby");
    assert!(wait_until(Duration::from_secs(30), || {
        primary.sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
    ) == "1"
    }));

    let p = run(&primary.settings(), "replication.status", json!({})).unwrap();
    assert_eq!(p["role"], "primary");
    let standby = &p["standbys"][0];
    assert_eq!(standby["state"], "streaming", "{p}");
    assert_eq!(standby["name"], "sonde_replica");
    assert_eq!(standby["client"], "127.0.0.1");
    assert!(standby["replay_lag_bytes"].as_i64().unwrap() >= 0);
    let slot = &p["slots"][0];
    assert_eq!(slot["name"], "sonde_standby");
    assert_eq!(slot["active"], true);
    assert_eq!(slot["wal_status"], "reserved");
    assert!(!messages(&p).iter().any(|m| m.starts_with("error")), "{p}");

    // The role came over with the base backup.
    let r = run(&replica.settings(), "replication.status", json!({})).unwrap();
    assert_eq!(r["role"], "standby", "{r}");
    assert_eq!(r["wal_receiver"]["status"], "streaming");
    assert_eq!(r["wal_receiver"]["slot_name"], "sonde_standby");
    assert_eq!(r["standby"]["replay_paused"], false);

    // Replay paused while the primary writes: the standby falls behind.
    replica.sql("postgres", "SELECT pg_wal_replay_pause()");
    primary.sql("postgres", "INSERT INTO t SELECT generate_series(1, 50000)");
    assert!(wait_until(Duration::from_secs(30), || {
        run(&replica.settings(), "replication.status", json!({}))
            .is_ok_and(|r| r["standby"]["replay_lag_bytes"].as_i64().unwrap_or(0) > 0)
    }));
    let r = run(&replica.settings(), "replication.status", json!({})).unwrap();
    assert_eq!(r["standby"]["replay_paused"], true);
    assert!(
        messages(&r)
            .iter()
            .any(|m| m.contains("WAL replay is paused")),
        "{r}"
    );
    let info = run(&replica.settings(), "server.info", json!({})).unwrap();
    assert_eq!(info["in_recovery"], true);
    let p = run(&primary.settings(), "replication.status", json!({})).unwrap();
    assert!(
        p["standbys"][0]["replay_lag_bytes"].as_i64().unwrap() > 0,
        "{p}"
    );

    // The standby goes away: its slot stays, inactive, and retains WAL.
    drop(replica);
    assert!(wait_until(Duration::from_secs(30), || primary.sql(
        "postgres",
        "SELECT count(*) FROM pg_replication_slots WHERE NOT active"
    ) == "1"));
    primary.sql("postgres", "INSERT INTO t SELECT generate_series(1, 10000)");
    let p = run(&primary.settings(), "replication.status", json!({})).unwrap();
    assert_eq!(p["slots"][0]["active"], false);
    assert!(p["slots"][0]["retained_bytes"].as_i64().unwrap() > 0);
    assert_eq!(p["standbys"], json!([]));
}

#[test]
fn postgres_password_login_over_loopback_and_clear_login_errors() {
    let pg = with_server!(Postgres::start(&[]));
    pg.sql(
        "postgres",
        "CREATE ROLE sonde_pw LOGIN PASSWORD 'pw-Correct-Horse' IN ROLE pg_monitor;
         CREATE ROLE plain LOGIN PASSWORD 'pw-plain'",
    );
    let dir = tempfile::tempdir().unwrap();
    let good = password_file(dir.path(), "good", "pw-Correct-Horse");
    let info = run(
        &pg.tcp_settings("sonde_pw", &good),
        "server.info",
        json!({}),
    )
    .unwrap();
    assert_eq!(info["connected_as"], "sonde_pw");

    let bad = password_file(dir.path(), "bad", "pw-Wrong-Battery");
    let err = run(&pg.tcp_settings("sonde_pw", &bad), "server.info", json!({})).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("refused the login as role \"sonde_pw\""),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        !text.contains("pw-Wrong") && !text.contains("pw-Correct"),
        "{text}"
    );

    // A role without pg_monitor works, and is told what it misses.
    let plain = password_file(dir.path(), "plain", "pw-plain");
    let info = run(&pg.tcp_settings("plain", &plain), "server.info", json!({})).unwrap();
    assert_eq!(info["has_pg_monitor"], false);
    assert!(
        messages(&info)
            .iter()
            .any(|m| m.contains("GRANT pg_monitor TO plain")),
        "{info}"
    );

    // A password file others can read is refused before any connection.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run(
        &pg.tcp_settings("sonde_pw", &good),
        "server.info",
        json!({}),
    )
    .unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err}");

    // Peer authentication for a role the OS user does not map to.
    let s = json!({"dsn": format!("host={} port={} user=nobody_here", pg.socket_dir().display(), pg.port)});
    let err = run(&s, "server.info", json!({})).unwrap_err();
    assert!(
        err.to_string()
            .contains("CREATE ROLE nobody_here LOGIN IN ROLE pg_monitor"),
        "{err}"
    );
    // A database that does not exist.
    let err = run(
        &pg.settings(),
        "tables.health",
        json!({"database": "nosuchdb"}),
    );
    pg.sql("postgres", CREATE_ROLE);
    let err2 = run(
        &pg.settings(),
        "tables.health",
        json!({"database": "nosuchdb"}),
    )
    .unwrap_err();
    assert!(err.is_err());
    assert!(matches!(err2, ProbeError::NotFound(_)), "{err2}");
    assert!(err2.to_string().contains("nosuchdb"), "{err2}");
}

#[test]
fn postgres_absent_or_silent_server_gets_a_clear_error_in_time() {
    // No server at the socket, nothing on the port.
    let dir = tempfile::tempdir().unwrap();
    let s = json!({"dsn": format!("host={} user=sonde", dir.path().display())});
    let err = run(&s, "server.info", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Unsupported(_)), "{err}");
    assert!(
        err.to_string().contains("no PostgreSQL server at socket"),
        "{err}"
    );
    let port = support::databases::free_port();
    let s = json!({"dsn": format!("host=127.0.0.1 port={port} user=sonde")});
    let err = run(&s, "connections.list", json!({})).unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");

    // A server that accepts and then says nothing is cut off at the deadline.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let s = json!({"dsn": format!("host=127.0.0.1 port={port} user=sonde")});
    for probe in ["server.info", "locks.blocking"] {
        let started = Instant::now();
        let err = run_for(&s, probe, json!({}), Duration::from_millis(800)).unwrap_err();
        assert_eq!(err, ProbeError::Timeout, "{probe}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}

/// Every statement the pack's role sent, from the server's own statement
/// log (`log_statement = all`, one `@@user@@` prefix per entry; lines a
/// statement continues on start with a tab).
fn statements_logged_by(log: &str, user: &str) -> Vec<String> {
    let prefix = format!("@@{user}@@ ");
    let mut entries: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix('\t') {
            if let Some(c) = current.as_mut() {
                c.push('\n');
                c.push_str(rest);
            }
            continue;
        }
        if let Some(c) = current.take() {
            entries.push(c);
        }
        if let Some(rest) = line.strip_prefix(&prefix)
            && let Some(msg) = rest.strip_prefix("LOG:  ")
        {
            let text = if let Some(s) = msg.strip_prefix("statement: ") {
                Some(s)
            } else if let Some(s) = msg.strip_prefix("execute ") {
                s.split_once(": ").map(|(_, s)| s)
            } else {
                None
            };
            current = text.map(str::to_owned);
        }
    }
    entries.extend(current);
    entries
}

#[test]
fn postgres_queries_come_from_the_pack_and_parameters_are_bound() {
    let pg = with_server!(Postgres::start(&[
        "log_statement = 'all'",
        "log_line_prefix = '@@%u@@ '",
    ]));
    pg.sql("postgres", CREATE_ROLE);
    pg.sql(
        "postgres",
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE accounts (id int PRIMARY KEY, balance int);
         INSERT INTO accounts VALUES (1, 100);",
    );
    let def = support::pack("postgres");
    let s = pg.settings();
    let mut runs = 0;
    for probe in &def.manifest.probes {
        for params in support::databases::parameter_sets(probe) {
            // Errors are fine (a hostile database name does not exist);
            // a changed query text or a write is not.
            let _ = support::run_with(
                &def,
                &probe.name,
                &params,
                &s,
                &SystemRunner::default(),
                Duration::from_secs(20),
            );
            runs += 1;
        }
    }
    assert!(runs > 100, "only {runs} runs");
    // The log is written asynchronously by the server: wait for our last run.
    std::thread::sleep(Duration::from_millis(300));
    let allowed: BTreeSet<&str> = sonde_packs::postgres::queries().into_iter().collect();
    let sent = statements_logged_by(&pg.log(), "sonde");
    assert!(
        sent.len() > runs,
        "{} statements for {runs} runs",
        sent.len()
    );
    for statement in &sent {
        assert!(
            allowed.contains(statement.as_str()),
            "the pack sent a statement that is not one of its constants:\n{statement}"
        );
    }
    // Nothing was changed by the hostile values.
    assert_eq!(pg.sql("postgres", "SELECT balance FROM accounts"), "100");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'evil'"
        ),
        "0"
    );
}

#[test]
fn postgres_sessions_are_read_only() {
    let pg = with_server!(Postgres::start(&[]));
    pg.sql("postgres", CREATE_ROLE);
    pg.sql(
        "postgres",
        "CREATE TABLE t (id int); GRANT ALL ON t TO sonde",
    );
    let guard = sonde_packs::SecretGuard::standard();
    let settings = pg.settings();
    let ctx = sonde_packs::ProbeContext {
        deadline: Instant::now() + Duration::from_secs(20),
        runner: &SystemRunner::default(),
        settings: &settings,
        secrets: &guard,
    };
    // Even a write the role is granted fails: the session is read-only.
    let err = sonde_packs::postgres::client::session(&ctx, None, async |pg| {
        pg.rows("INSERT INTO t VALUES (1)", &[])
            .await
            .map_err(|e| pg.fail(e))
    })
    .unwrap_err();
    assert!(err.to_string().contains("read-only transaction"), "{err}");
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM t"), "0");
}
