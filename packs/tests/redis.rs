//! The redis pack against a real Redis server (Debian's `redis-server`),
//! started in a temporary directory by `support::databases`, with the ACL
//! user exactly as the README creates it and real activity: keys in
//! several databases, a slowlog (every command logged, a `DEBUG SLEEP`, a
//! `CONFIG SET masterauth` whose secret never comes out), a failing
//! background save.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_packs::exec::SystemRunner;
use sonde_packs::handler::ProbeError;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use support::databases::{Redis, finding_messages as messages, password_file, wait_until};

/// The ACL line of packs/redis/README.md (`PASSWORD` replaced).
const ACL: &str = "ACL SETUSER sonde on >PASSWORD resetchannels -@all +info +slowlog|get +slowlog|len +client|list +select +scan +type %R~*";
const PASSWORD: &str = "Sonde-Redis-Pw-5521";

fn create_user(r: &Redis) {
    let line = ACL.replace("PASSWORD", PASSWORD);
    let args: Vec<&str> = line.split(' ').collect();
    assert_eq!(r.run(&args), "OK");
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
    support::databases::run_pack("redis", settings, probe, params, timeout)
}

fn settings(r: &Redis, dir: &Path) -> Value {
    r.settings("sonde", &password_file(dir, "redis.pw", PASSWORD))
}

fn fill(r: &Redis) {
    for i in 0..30 {
        r.run(&["SET", &format!("user:{i}"), "x"]);
    }
    r.run(&["SET", "order:1", "x", "EX", "3600"]);
    r.run(&["-n", "1", "HSET", "session:a", "f", "v"]);
    r.run(&["-n", "1", "SET", "session:b", "v"]);
    r.run(&["-n", "3", "LPUSH", "queue", "a", "b"]);
}

#[test]
fn redis_probes_answer_against_a_real_server() {
    let r = with_server!(Redis::start(&[]));
    create_user(&r);
    fill(&r);
    r.run(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    r.run(&["CONFIG", "SET", "masterauth", "S3cret-Master-Pw"]);
    r.run(&["DEBUG", "SLEEP", "0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&r, dir.path());

    let info = run(&s, "info", json!({"section": "server"})).unwrap();
    assert!(
        info["sections"]["server"]["redis_version"].is_string(),
        "{info}"
    );
    assert_eq!(info["sections"]["server"]["redis_mode"], "standalone");
    assert_eq!(info["sections"]["server"]["tcp_port"], r.port);
    assert_eq!(info["sections"].as_object().unwrap().len(), 1);
    let all = run(&s, "info", json!({})).unwrap();
    assert!(all["sections"]["memory"]["used_memory"].as_i64().unwrap() > 0);
    assert_eq!(all["sections"]["keyspace"]["db1"]["keys"], 2, "{all}");

    let mem = run(&s, "memory.status", json!({})).unwrap();
    assert!(mem["used_bytes"].as_i64().unwrap() > 0, "{mem}");
    assert_eq!(mem["maxmemory_bytes"], 0);
    assert_eq!(mem["maxmemory_policy"], "noeviction");
    assert!(mem["fragmentation_ratio"].as_f64().is_some());

    let ks = run(&s, "keyspace", json!({})).unwrap();
    assert_eq!(
        ks["databases"],
        json!([
            {"db": 0, "keys": 31, "expires": 1, "avg_ttl_ms": ks["databases"][0]["avg_ttl_ms"]},
            {"db": 1, "keys": 2, "expires": 0, "avg_ttl_ms": 0},
            {"db": 3, "keys": 1, "expires": 0, "avg_ttl_ms": 0},
        ]),
        "{ks}"
    );
    assert!(ks["databases"][0]["avg_ttl_ms"].as_i64().unwrap() > 3_000_000);
    assert_eq!(ks["total_keys"], 34);

    let slow = run(&s, "slowlog", json!({"limit": 128})).unwrap();
    let text = slow.to_string();
    assert!(!text.contains("S3cret"), "{text}");
    let entries = slow["entries"].as_array().unwrap();
    let config = entries
        .iter()
        .find(|e| e["args"].get(2) == Some(&json!("masterauth")))
        .unwrap_or_else(|| panic!("{slow}"));
    assert_eq!(
        config["args"],
        json!(["CONFIG", "SET", "masterauth", "[REDACTED]"])
    );
    let sleep = entries.iter().find(|e| e["command"] == "DEBUG").unwrap();
    assert!(sleep["duration_us"].as_i64().unwrap() >= 190_000, "{sleep}");
    assert!(
        messages(&slow)
            .iter()
            .any(|m| m.contains("DEBUG took up to")),
        "{slow}"
    );
    assert!(slow["slowlog_length"].as_i64().unwrap() >= 2);

    let clients = run(&s, "clients.list", json!({})).unwrap();
    assert_eq!(clients["connected"], 1, "{clients}");
    assert_eq!(clients["clients"][0]["user"], "sonde");
    assert_eq!(clients["clients"][0]["cmd"], "client|list");
    assert_eq!(clients["maxclients"], 10000);

    let repl = run(&s, "replication.status", json!({})).unwrap();
    assert_eq!(repl["role"], "master");
    assert_eq!(repl["connected_replicas"], 0);

    let p = run(&s, "persistence.status", json!({})).unwrap();
    assert_eq!(p["rdb"]["last_bgsave_status"], "ok", "{p}");
    assert_eq!(p["aof"]["enabled"], 0);

    // Key listing is off until the operator turns it on.
    let err = run(&s, "keys.scan", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err}");
    assert!(err.to_string().contains("key_scan = true"));
}

#[test]
fn redis_key_scan_is_bounded_and_matches_scrubbed_names() {
    let r = with_server!(Redis::start(&[]));
    create_user(&r);
    fill(&r);
    let token = format!("ghp_{}", "A1b2C3d4".repeat(5));
    r.run(&["SET", &format!("cache:{token}"), "x"]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&r, dir.path());
    s["key_scan"] = json!(true);

    let users = run(&s, "keys.scan", json!({"pattern": "user:[12]*"})).unwrap();
    let keys: BTreeSet<&str> = users["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    let want: BTreeSet<String> = (0..30)
        .map(|i| format!("user:{i}"))
        .filter(|k| k.starts_with("user:1") || k.starts_with("user:2"))
        .collect();
    assert_eq!(keys, want.iter().map(String::as_str).collect(), "{users}");
    assert_eq!(users["complete"], true);
    assert_eq!(users["scanned"], 32);

    let limited = run(&s, "keys.scan", json!({"pattern": "user:*", "limit": 5})).unwrap();
    assert_eq!(limited["count"], 5);
    assert_eq!(limited["stopped_by"], "limit");
    assert_eq!(limited["complete"], false);

    let typed = run(&s, "keys.scan", json!({"db": 1, "types": true})).unwrap();
    let types: BTreeSet<(String, String)> = typed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("session:a".to_owned(), "hash".to_owned()),
            ("session:b".to_owned(), "string".to_owned())
        ]
        .into()
    );

    // A key that matches only because of the secret in its name is no match,
    // and the secret never comes out.
    let secret = run(&s, "keys.scan", json!({"pattern": "*ghp_*"})).unwrap();
    assert_eq!(secret["count"], 0, "{secret}");
    let cache = run(&s, "keys.scan", json!({"pattern": "cache:*"})).unwrap();
    assert_eq!(cache["count"], 1);
    assert!(!cache.to_string().contains(&token), "{cache}");

    let err = run(&s, "keys.scan", json!({"db": 999})).unwrap_err();
    assert!(matches!(err, ProbeError::NotFound(_)), "{err}");
}

#[test]
fn redis_persistence_failures_and_missing_permissions_are_explained() {
    let r = with_server!(Redis::start(&[]));
    create_user(&r);
    r.run(&["SET", "k", "v"]);
    // The dump directory becomes read-only for the server: BGSAVE fails.
    use std::os::unix::fs::PermissionsExt;
    let data = r.dir.path().join("data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    r.run(&["BGSAVE"]);
    assert!(wait_until(Duration::from_secs(20), || r
        .run(&["INFO", "persistence"])
        .contains("rdb_last_bgsave_status:err")));
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&r, dir.path());
    let p = run(&s, "persistence.status", json!({})).unwrap();
    assert_eq!(p["rdb"]["last_bgsave_status"], "err");
    assert!(
        messages(&p)[0].starts_with("error: the last background save (RDB) failed"),
        "{p}"
    );
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A user without +slowlog|get is told exactly what it lacks.
    let pw = password_file(dir.path(), "limited.pw", "limited-pw");
    r.run(&["ACL", "SETUSER", "limited", "on", ">limited-pw", "+info"]);
    let limited = r.settings("limited", &pw);
    assert!(run(&limited, "memory.status", json!({})).is_ok());
    let err = run(&limited, "slowlog", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err}");
    assert!(err.to_string().contains("+slowlog|get"), "{err}");

    let bad = password_file(dir.path(), "bad.pw", "wrong-one");
    let err = run(&r.settings("sonde", &bad), "info", json!({})).unwrap_err();
    assert!(
        err.to_string().contains("refused the login as \"sonde\""),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-one"));
}

#[test]
fn redis_absent_or_silent_server_gets_a_clear_error_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = json!({"socket": dir.path().join("redis.sock")});
    let err = run(&s, "info", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Unsupported(_)), "{err}");
    assert!(
        err.to_string().contains("no Redis server at socket"),
        "{err}"
    );
    let port = support::databases::free_port();
    let s = json!({"address": format!("127.0.0.1:{port}")});
    let err = run(&s, "memory.status", json!({})).unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let s = json!({"address": format!("127.0.0.1:{port}"), "user": "sonde", "password_file": "/nonexistent"});
    // The password file is read first: a clear error before any connection.
    let err = run(&s, "info", json!({})).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let s = json!({"address": format!("127.0.0.1:{port}")});
    for probe in ["info", "slowlog"] {
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

#[test]
fn redis_commands_come_from_the_fixed_table() {
    let r = with_server!(Redis::start(&[]));
    create_user(&r);
    fill(&r);
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&r, dir.path());
    s["key_scan"] = json!(true);
    let def = support::pack("redis");
    let monitor = r.monitor();
    let mut runs = 0;
    for probe in &def.manifest.probes {
        for params in support::databases::parameter_sets(probe) {
            let out = support::run_with(
                &def,
                &probe.name,
                &params,
                &s,
                &SystemRunner::default(),
                Duration::from_secs(20),
            );
            if let Err(e) = out {
                // Only a database number beyond the server's is refused.
                assert!(
                    matches!(e, ProbeError::NotFound(_)),
                    "{}: {params:?}: {e}",
                    probe.name
                );
            }
            runs += 1;
        }
    }
    assert!(runs > 30, "only {runs} runs");
    let log = monitor.stop();
    let line = regex::Regex::new(r#"^\d+\.\d+ \[\d+ [^\]]+\] (.*)$"#).unwrap();
    let arg = regex::Regex::new(r#""((?:[^"\\]|\\.)*)""#).unwrap();
    let mut seen = 0;
    for l in log.lines().skip(1) {
        let c = line
            .captures(l)
            .unwrap_or_else(|| panic!("MONITOR line {l:?}"));
        let args: Vec<String> = arg
            .captures_iter(&c[1])
            .map(|a| a[1].to_uppercase())
            .collect();
        let name = args[0].as_str();
        let with_sub = format!("{name} {}", args.get(1).map_or("", String::as_str));
        assert!(
            sonde_packs::redis::client::COMMAND_TABLE.contains(&name)
                || sonde_packs::redis::client::COMMAND_TABLE.contains(&with_sub.as_str()),
            "a command outside the table: {l}"
        );
        for hostile in ["FLUSHALL", "CONFIG", "SHUTDOWN", "DROP", "EVIL"] {
            assert!(!args.iter().any(|a| a.contains(hostile)), "{l}");
        }
        seen += 1;
    }
    assert!(seen > runs, "{seen} commands for {runs} runs");
    assert_eq!(r.run(&["DBSIZE"]), "31");
}

#[test]
fn redis_replica_link_and_its_loss_are_reported() {
    let master = with_server!(Redis::start(&[]));
    create_user(&master);
    master.run(&["SET", "k", "v"]);
    let replica = with_server!(Redis::start(&[&format!(
        "replicaof 127.0.0.1 {}",
        master.port
    )]));
    create_user(&replica);
    assert!(wait_until(Duration::from_secs(30), || replica
        .run(&["INFO", "replication"])
        .contains("master_link_status:up")));
    let dir = tempfile::tempdir().unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        run(
            &settings(&master, dir.path()),
            "replication.status",
            json!({}),
        )
        .is_ok_and(|m| m["replicas"][0]["state"] == "online")
    }));
    let m = run(
        &settings(&master, dir.path()),
        "replication.status",
        json!({}),
    )
    .unwrap();
    assert_eq!(m["role"], "master");
    assert_eq!(m["connected_replicas"], 1);
    assert_eq!(m["replicas"][0]["port"], replica.port, "{m}");
    let r = run(
        &settings(&replica, dir.path()),
        "replication.status",
        json!({}),
    )
    .unwrap();
    assert_eq!(r["role"], "slave");
    assert_eq!(r["master"]["link_status"], "up", "{r}");
    assert_eq!(r["master"]["port"], master.port);
    assert_eq!(messages(&r), Vec::<String>::new());

    // The master goes away: the replica's link is down, and says so.
    drop(master);
    assert!(wait_until(Duration::from_secs(30), || replica
        .run(&["INFO", "replication"])
        .contains("master_link_status:down")));
    let r = run(
        &settings(&replica, dir.path()),
        "replication.status",
        json!({}),
    )
    .unwrap();
    assert_eq!(r["master"]["link_status"], "down");
    assert!(
        messages(&r)[0].starts_with("error: this replica's link to its master 127.0.0.1:"),
        "{r}"
    );
}
