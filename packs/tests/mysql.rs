//! The mysql pack against a real MariaDB server (Debian's
//! `mariadb-server`), started in a temporary directory by
//! `support::databases`, with the account exactly as the README creates it
//! and real activity: a row lock held by an open transaction with a
//! statement waiting behind it, long `SLEEP` statements, digests in
//! performance_schema, binary logging.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_packs::exec::SystemRunner;
use sonde_packs::handler::ProbeError;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use support::databases::{MariaDb, finding_messages as messages, password_file, wait_until};

/// The account lines of packs/mysql/README.md (`PASSWORD` replaced).
const ACCOUNT: &[&str] = &[
    "CREATE USER 'sonde'@'localhost' IDENTIFIED BY 'PASSWORD'",
    "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SHOW DATABASES ON *.* TO 'sonde'@'localhost'",
    "GRANT SELECT ON performance_schema.* TO 'sonde'@'localhost'",
    "GRANT SELECT ON mysql.innodb_table_stats TO 'sonde'@'localhost'",
];
const PASSWORD: &str = "Sonde-Pw-8812";

fn create_account(db: &MariaDb, host: &str) {
    for line in ACCOUNT {
        db.sql(
            &line
                .replace("PASSWORD", PASSWORD)
                .replace("'localhost'", &format!("'{host}'")),
        );
    }
}

fn run(settings: &Value, probe: &str, params: Value) -> Result<Value, ProbeError> {
    run_for(settings, probe, params, Duration::from_secs(20))
}

fn run_for(
    settings: &Value,
    probe: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, ProbeError> {
    support::databases::run_pack("mysql", settings, probe, params, timeout)
}

fn settings(db: &MariaDb, dir: &Path) -> Value {
    db.settings("sonde", &password_file(dir, "mysql.pw", PASSWORD))
}

#[test]
fn mysql_probes_answer_against_a_real_server() {
    let db = with_server!(MariaDb::start(&[]));
    create_account(&db, "localhost");
    db.sql(
        "SET SESSION max_recursive_iterations = 100000;
         CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(200)) ENGINE=InnoDB;
         INSERT INTO shop.orders WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) SELECT n, REPEAT('x', 150) FROM s;
         ANALYZE TABLE shop.orders;",
    );
    for _ in 0..3 {
        db.sql("SELECT SLEEP(0.3)");
    }
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&db, dir.path());

    let info = run(&s, "server.info", json!({})).unwrap();
    assert_eq!(info["flavor"], "mariadb", "{info}");
    assert!(info["version"].as_str().unwrap().contains("MariaDB"));
    assert_eq!(info["connected_as"], "sonde@localhost");
    assert_eq!(info["variables"]["performance_schema"], "ON");
    assert_eq!(info["variables"]["log_bin"], "ON");
    assert!(info["status"]["Threads_connected"].as_i64().unwrap() >= 1);
    assert!(info["derived"]["connections_percent"].as_f64().unwrap() > 0.0);
    assert!(info["uptime_s"].as_f64().unwrap() >= 0.0);

    let threads = run(&s, "status.variables", json!({"name": "threads_"})).unwrap();
    let names: Vec<&String> = threads["values"].as_object().unwrap().keys().collect();
    assert!(
        names.iter().all(|n| n.to_lowercase().contains("threads_")),
        "{threads}"
    );
    assert!(names.iter().any(|n| *n == "Threads_connected"));
    let vars = run(
        &s,
        "status.variables",
        json!({"kind": "variables", "name": "max_connections"}),
    )
    .unwrap();
    assert_eq!(vars["values"]["max_connections"], 151, "{vars}");

    // The account cannot see shop's tables (no SELECT on them): the sizes
    // come from InnoDB's persistent statistics.
    let dbs = run(&s, "databases.list", json!({})).unwrap();
    let shop = dbs["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "shop")
        .unwrap_or_else(|| panic!("{dbs}"));
    assert_eq!(shop["tables"], 1, "{shop}");
    assert!(shop["size_bytes"].as_i64().unwrap() > 1_000_000, "{shop}");
    assert_eq!(shop["size_source"], "innodb_table_stats (estimate)");
    assert!(!dbs.to_string().contains("performance_schema"), "{dbs}");
    let with_system = run(&s, "databases.list", json!({"include_system": true})).unwrap();
    assert!(with_system["count"].as_u64().unwrap() > dbs["count"].as_u64().unwrap());

    let digest = run(&s, "queries.digest", json!({"order_by": "mean_time"})).unwrap();
    assert_eq!(digest["available"], true, "{digest}");
    let sleep = digest["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().unwrap().contains("SLEEP"))
        .unwrap_or_else(|| panic!("{digest}"));
    assert!(sleep["calls"].as_i64().unwrap() >= 3, "{sleep}");
    assert!(sleep["mean_ms"].as_f64().unwrap() >= 250.0, "{sleep}");
    let only_shop = run(&s, "queries.digest", json!({"database": "shop"})).unwrap();
    assert!(
        only_shop["statements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["db"] == "shop"),
        "{only_shop}"
    );

    let repl = run(&s, "replication.status", json!({})).unwrap();
    assert_eq!(repl["role"], "standalone", "{repl}");
    assert_eq!(repl["channels"], json!([]));
    assert!(
        repl["binary_log"]["File"]
            .as_str()
            .unwrap()
            .starts_with("binlog."),
        "{repl}"
    );

    let innodb = run(&s, "innodb.status", json!({})).unwrap();
    assert!(
        innodb["engine"]["history_list_length"].as_i64().is_some(),
        "{innodb}"
    );
    assert!(innodb["engine"]["checkpoint_age_bytes"].as_i64().unwrap() >= 0);
    assert_eq!(innodb["lock_waits"], 0);
}

#[test]
fn mysql_lock_waits_long_statements_and_processlist_are_found() {
    let db = with_server!(MariaDb::start(&[]));
    create_account(&db, "localhost");
    db.sql(
        "CREATE DATABASE bank;
         CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance INT) ENGINE=InnoDB;
         INSERT INTO bank.accounts VALUES (1, 100), (2, 200);",
    );
    let mut holder = db.session();
    holder.send("BEGIN; SELECT * FROM bank.accounts WHERE id = 1 FOR UPDATE;");
    assert!(wait_until(Duration::from_secs(20), || db.sql(
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_rows_locked > 0"
    ) == "1"));
    let mut waiter = db.session();
    waiter.send("UPDATE bank.accounts SET balance = 0 WHERE id = 1;");
    assert!(wait_until(Duration::from_secs(20), || db.sql(
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
    ) == "1"));
    let mut sleeper = db.session();
    sleeper.send("SELECT SLEEP(120) /* ALTER USER x IDENTIFIED BY 'S3cret-in-comment' */;");
    assert!(wait_until(Duration::from_secs(20), || {
        db.sql(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(120)%' AND TIME >= 1"
    ) == "1"
    }));
    let holder_thread: i64 = db
        .sql("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_state = 'RUNNING'")
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&db, dir.path());

    let innodb = run(&s, "innodb.status", json!({})).unwrap();
    assert_eq!(innodb["lock_waits"], 1, "{innodb}");
    let trx = innodb["transactions"].as_array().unwrap();
    let waiting = trx
        .iter()
        .find(|t| t["state"] == "LOCK WAIT")
        .unwrap_or_else(|| panic!("{innodb}"));
    assert_eq!(
        waiting["blocked_by_thread"],
        json!([holder_thread]),
        "{waiting}"
    );
    assert!(
        waiting["query"]
            .as_str()
            .unwrap()
            .starts_with("UPDATE bank.accounts")
    );
    let m = messages(&innodb);
    assert!(
        m.iter()
            .any(|m| m.contains(&format!("(thread {holder_thread}, open"))
                && m.contains("blocks 1 transaction(s)")
                && m.contains(&format!("KILL {holder_thread}"))),
        "{m:?}"
    );

    let procs = run(&s, "processlist", json!({"min_time_s": 1})).unwrap();
    let text = procs.to_string();
    assert!(!text.contains("S3cret"), "{text}");
    let sleep = procs["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["query"]
                .as_str()
                .is_some_and(|q| q.starts_with("SELECT SLEEP(120)"))
        })
        .unwrap_or_else(|| panic!("{procs}"));
    assert_eq!(
        sleep["query"],
        "SELECT SLEEP(120) /* ALTER USER x IDENTIFIED BY '[REDACTED]' */"
    );
    assert_eq!(sleep["command"], "Query");
    assert!(sleep["time_s"].as_i64().unwrap() >= 1);
    assert!(
        procs["by_command"]["Query"].as_i64().unwrap() >= 2,
        "{procs}"
    );
    // The holder is idle (Sleep): listed only when asked for.
    let ids = |v: &Value| -> BTreeSet<i64> {
        v["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert!(!ids(&procs).contains(&holder_thread));
    let all = run(&s, "processlist", json!({"include_sleeping": true})).unwrap();
    assert!(ids(&all).contains(&holder_thread), "{all}");
    let admin_only = run(
        &s,
        "processlist",
        json!({"include_sleeping": true, "user": "nobody"}),
    )
    .unwrap();
    assert_eq!(admin_only["count"], 0);
    drop((holder, waiter, sleeper));
}

#[test]
fn mysql_logins_grants_and_clear_errors() {
    let db = with_server!(MariaDb::start(&[]));
    create_account(&db, "localhost");
    create_account(&db, "127.0.0.1");
    db.sql("CREATE USER 'plain'@'localhost' IDENTIFIED BY 'pw-plain'");
    let dir = tempfile::tempdir().unwrap();
    let good = password_file(dir.path(), "good", PASSWORD);

    // Over loopback TCP.
    let info = run(&db.tcp_settings("sonde", &good), "server.info", json!({})).unwrap();
    assert_eq!(info["connected_as"], "sonde@127.0.0.1");

    // MariaDB's unix_socket authentication (no password anywhere): the
    // test's own Unix user administers this server that way.
    let admin = if rustix::process::geteuid().is_root() {
        "root".to_owned()
    } else {
        support::databases::my_user_name()
    };
    let socket_auth = json!({"socket": db.socket(), "user": admin});
    let info = run(&socket_auth, "server.info", json!({})).unwrap();
    assert!(
        info["connected_as"].as_str().unwrap().starts_with(&admin),
        "{info}"
    );

    let bad = password_file(dir.path(), "bad", "Wrong-Pw-1");
    let err = run(&db.settings("sonde", &bad), "server.info", json!({})).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("refused the login as \"sonde\""), "{text}");
    assert!(
        !text.contains("Wrong-Pw") && !text.contains(PASSWORD),
        "{text}"
    );

    // An account without the grants: told what it lacks.
    let plain = password_file(dir.path(), "plain", "pw-plain");
    let err = run(&db.settings("plain", &plain), "innodb.status", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err}");
    assert!(err.to_string().contains("GRANT PROCESS"), "{err}");
    let procs = run(&db.settings("plain", &plain), "processlist", json!({})).unwrap();
    assert!(
        messages(&procs)
            .iter()
            .any(|m| m.contains("PROCESS privilege")),
        "{procs}"
    );
    let digest = run(&db.settings("plain", &plain), "queries.digest", json!({})).unwrap();
    assert_eq!(digest["available"], false);
    assert!(
        messages(&digest)[0].contains("GRANT SELECT ON performance_schema"),
        "{digest}"
    );

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run(&db.settings("sonde", &good), "server.info", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err}");
}

#[test]
fn mysql_performance_schema_off_is_explained() {
    let db = with_server!(MariaDb::start(&["--performance-schema=OFF"]));
    create_account(&db, "localhost");
    let dir = tempfile::tempdir().unwrap();
    let digest = run(&settings(&db, dir.path()), "queries.digest", json!({})).unwrap();
    assert_eq!(digest["available"], false);
    assert!(
        messages(&digest)[0].contains("performance_schema = ON"),
        "{digest}"
    );
}

#[test]
fn mysql_absent_or_silent_server_gets_a_clear_error_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = json!({"socket": dir.path().join("mysqld.sock")});
    let err = run(&s, "server.info", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Unsupported(_)), "{err}");
    assert!(
        err.to_string()
            .contains("no MySQL/MariaDB server at socket"),
        "{err}"
    );
    let port = support::databases::free_port();
    let s = json!({"address": format!("127.0.0.1:{port}")});
    let err = run(&s, "processlist", json!({})).unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let s = json!({"address": format!("127.0.0.1:{port}")});
    for probe in ["server.info", "innodb.status"] {
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

/// Statements (`Query` and `Prepare` entries; `Execute` shows values
/// substituted) of the connections that logged in as `user`, from
/// MariaDB's general query log.
fn statements_logged_by(log: &str, user: &str) -> Vec<String> {
    let entry =
        regex::Regex::new(r"^(?:\d{6}\s+\d{1,2}:\d{2}:\d{2})?\s+(\d+) ([A-Za-z ]+?)\t(.*)$")
            .unwrap();
    let mut ids = BTreeSet::new();
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in log.lines() {
        if let Some(c) = entry.captures(line) {
            let (id, command, arg) = (c[1].to_owned(), c[2].to_owned(), c[3].to_owned());
            if command == "Connect" && arg.starts_with(&format!("{user}@")) {
                ids.insert(id.clone());
            }
            out.push((id, command, arg));
        } else if let Some(last) = out.last_mut() {
            last.2.push('\n');
            last.2.push_str(line);
        }
    }
    out.into_iter()
        .filter(|(id, command, _)| ids.contains(id) && (command == "Query" || command == "Prepare"))
        .map(|(_, _, arg)| arg)
        .collect()
}

#[test]
fn mysql_queries_come_from_the_pack_and_parameters_are_bound() {
    let db = with_server!(MariaDb::start(&[
        "--general-log=1",
        "--general-log-file=general.log"
    ]));
    create_account(&db, "localhost");
    db.sql(
        "CREATE DATABASE bank;
         CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance INT);
         INSERT INTO bank.accounts VALUES (1, 100);",
    );
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&db, dir.path());
    let def = support::pack("mysql");
    let mut runs = 0;
    for probe in &def.manifest.probes {
        for params in support::databases::parameter_sets(probe) {
            let r = support::run_with(
                &def,
                &probe.name,
                &params,
                &s,
                &SystemRunner::default(),
                Duration::from_secs(20),
            );
            assert!(r.is_ok(), "{}: {params:?}: {r:?}", probe.name);
            runs += 1;
        }
    }
    assert!(runs > 50, "only {runs} runs");
    let log = std::fs::read_to_string(db.dir.path().join("data/general.log")).unwrap();
    let sent = statements_logged_by(&log, "sonde");
    assert!(
        sent.len() > runs,
        "{} statements for {runs} runs",
        sent.len()
    );
    let allowed: BTreeSet<&str> = sonde_packs::mysql::queries().into_iter().collect();
    for statement in &sent {
        assert!(
            allowed.contains(statement.as_str()),
            "the pack sent a statement that is not one of its constants:\n{statement}"
        );
    }
    assert_eq!(db.sql("SELECT balance FROM bank.accounts"), "100");
}

#[test]
fn mysql_sessions_are_read_only() {
    let db = with_server!(MariaDb::start(&[]));
    create_account(&db, "localhost");
    db.sql(
        "CREATE DATABASE bank;
         CREATE TABLE bank.t (id INT);
         GRANT INSERT ON bank.t TO 'sonde'@'localhost';",
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&db, dir.path());
    let guard = sonde_packs::SecretGuard::standard();
    let ctx = sonde_packs::ProbeContext {
        deadline: Instant::now() + Duration::from_secs(20),
        runner: &SystemRunner::default(),
        settings: &settings,
        secrets: &guard,
    };
    // Even a write the account is granted fails: the session is read-only.
    let err = sonde_packs::mysql::client::session(&ctx, async |mut my| {
        my.query("INSERT INTO bank.t VALUES (1)")
            .await
            .map_err(|e| my.fail(e))
    })
    .unwrap_err();
    assert!(err.to_string().contains("READ ONLY"), "{err}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM bank.t"), "0");
}

#[test]
fn mysql_replica_threads_and_errors_are_reported() {
    let source = with_server!(MariaDb::start(&[]));
    create_account(&source, "localhost");
    source.sql(
        "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'Repl-Pw-1';
         GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';",
    );
    let replica = with_server!(MariaDb::start(&["--server-id=2", "--read-only=ON"]));
    create_account(&replica, "localhost");
    // The replica starts from the source's current position.
    let pos = source.sql("SELECT @@GLOBAL.gtid_binlog_pos");
    replica.sql(&format!(
        "SET GLOBAL gtid_slave_pos = '{pos}';
         CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'repl',
           MASTER_PASSWORD = 'Repl-Pw-1', MASTER_USE_GTID = slave_pos;
         START SLAVE;",
        source.port
    ));
    source.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY);");
    assert!(
        wait_until(Duration::from_secs(30), || replica
            .query("SELECT COUNT(*) FROM app.t")
            .is_ok_and(|n| n == "0")),
        "replication did not start: {}",
        replica.sql("SHOW SLAVE STATUS\\G")
    );
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        &settings(&replica, dir.path()),
        "replication.status",
        json!({}),
    )
    .unwrap();
    assert_eq!(r["role"], "replica", "{r}");
    let ch = &r["channels"][0];
    assert_eq!(ch["io_running"], "Yes", "{ch}");
    assert_eq!(ch["sql_running"], "Yes");
    assert_eq!(ch["source_port"], source.port);
    assert_eq!(ch["source_user"], "repl");
    assert_eq!(ch["seconds_behind"], 0);
    assert_eq!(messages(&r), Vec::<String>::new(), "{r}");
    assert!(!r.to_string().contains("Repl-Pw-1"));

    let s = run(
        &settings(&source, dir.path()),
        "replication.status",
        json!({}),
    )
    .unwrap();
    assert_eq!(s["role"], "source", "{s}");
    assert_eq!(s["replicas"][0]["user"], "repl");

    // A row written on the replica directly, then on the source: the SQL
    // thread stops on the duplicate key, and the finding quotes the error.
    replica.sql("INSERT INTO app.t VALUES (1)");
    source.sql("INSERT INTO app.t VALUES (1)");
    assert!(wait_until(Duration::from_secs(30), || {
        run(
            &settings(&replica, dir.path()),
            "replication.status",
            json!({}),
        )
        .is_ok_and(|r| r["channels"][0]["sql_running"] == "No")
    }));
    let r = run(
        &settings(&replica, dir.path()),
        "replication.status",
        json!({}),
    )
    .unwrap();
    let m = messages(&r);
    assert!(
        m.iter()
            .any(|m| m.starts_with("error: replication from 127.0.0.1:")
                && m.contains("the SQL thread is No")
                && m.contains("Duplicate entry")),
        "{m:?}"
    );
}
