//! The nginx pack against a REAL nginx started in a temp dir on 127.0.0.1
//! as an unprivileged user with its own configuration (a stub_status
//! location, a custom log_format, secrets in directives, an include
//! outside the configuration root), and a log full of requests this test
//! makes: 2xx, 404s, 5xx, a refused upstream, and requests carrying a
//! token in the query string and a JWT in the path, which must come back
//! redacted and must not be findable by any filter.
#![allow(clippy::unwrap_used)]

#[path = "support/ops_servers.rs"]
mod ops_servers;
mod support;

use ops_servers::Nginx;
use serde_json::{Value, json};
use sonde_packs::ProbeError;
use sonde_packs::exec::SystemRunner;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cr3tT0kenValue123";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ";

fn run_with_settings(settings: &Value, probe: &str, params: Value) -> Result<Value, ProbeError> {
    let def = support::pack("nginx");
    support::run_with(
        &def,
        probe,
        params.as_object().unwrap(),
        settings,
        &SystemRunner::default(),
        Duration::from_secs(20),
    )
    .map(|o| o.data)
}

fn run(n: &Nginx, probe: &str, params: Value) -> Result<Value, ProbeError> {
    run_with_settings(&n.settings(), probe, params)
}

fn findings(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f["severity"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// Makes the traffic; returns how many requests were sent.
fn traffic(n: &Nginx) -> usize {
    let mut sent = 0;
    let mut get = |target: &str, agent: &str, expect: u16| {
        assert_eq!(n.get(target, agent), expect, "{target}");
        sent += 1;
    };
    for _ in 0..20 {
        get("/", "probe-test/1.0", 200);
    }
    for i in 0..5 {
        get(&format!("/missing-{i}"), "curl/8.0", 404);
    }
    for _ in 0..6 {
        get("/fail", "curl/8.0", 500);
    }
    for _ in 0..3 {
        get("/unavailable", "curl/8.0", 503);
    }
    for _ in 0..2 {
        get("/app/x", "curl/8.0", 502);
    }
    for _ in 0..4 {
        get("/api/items", "curl/8.0", 200);
    }
    get(
        &format!("/api/login?token={TOKEN}&user=bob"),
        "curl/8.0",
        200,
    );
    get(&format!("/reset/{JWT}"), "curl/8.0", 404);
    sent
}

#[test]
fn logs_summary_status_and_config_from_a_real_nginx() {
    let Some(n) = Nginx::start("") else {
        return;
    };
    let sent = traffic(&n);
    n.wait_for_access_lines(sent);

    // The tail, parsed with the configuration's own log_format.
    let tail = run(&n, "access_log", json!({"lines": 1000})).unwrap();
    assert_eq!(tail["entries"].as_array().unwrap().len(), sent, "{tail}");
    assert_eq!(
        tail["format_source"],
        "the nginx configuration's log_format"
    );
    assert_eq!(tail["format"], ops_servers::TIMED_FORMAT);
    let first = &tail["entries"][0];
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/");
    assert_eq!(first["status"], 200);
    assert_eq!(first["user_agent"], "probe-test/1.0");
    assert!(first["request_time_s"].is_number(), "{first}");
    let login = tail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/api/login")
        .unwrap();
    assert!(
        login["query"].as_str().unwrap().contains("[REDACTED:"),
        "{login}"
    );
    // The secrets appear nowhere in any answer.
    let text = tail.to_string();
    assert!(!text.contains(TOKEN) && !text.contains(JWT), "{text}");

    // Filters see only scrubbed text: the token and the JWT find nothing.
    for params in [
        json!({"path_contains": "s3cr3t"}),
        json!({"grep": TOKEN}),
        json!({"grep": "T0ken"}),
        json!({"path_contains": "eyJzdWIi"}),
    ] {
        let v = run(&n, "access_log", params.clone()).unwrap();
        assert_eq!(v["entries"], json!([]), "{params}: {v}");
    }
    let v = run(&n, "access_log", json!({"path_contains": "/api/login"})).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    let v = run(&n, "access_log", json!({"status": "5xx"})).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 11, "{v}");
    let v = run(&n, "access_log", json!({"status": "404", "lines": 3})).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);

    // The summary over the last hour.
    let s = run(&n, "access_summary", json!({"window_s": 3600, "top": 5})).unwrap();
    assert_eq!(s["requests"], sent as u64, "{s}");
    assert_eq!(s["covered"], true);
    let class = |c: &str| {
        s["status_classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["class"] == c)
            .map(|x| x["requests"].as_u64().unwrap())
    };
    assert_eq!(class("2xx"), Some(25));
    assert_eq!(class("4xx"), Some(6));
    assert_eq!(class("5xx"), Some(11));
    assert_eq!(s["top_paths"][0]["path"], "/");
    assert_eq!(s["top_paths"][0]["requests"], 20);
    assert_eq!(s["top_paths"][1]["path"], "/fail");
    assert_eq!(s["top_paths"][1]["errors_5xx"], 6);
    assert_eq!(s["top_clients"][0]["client"], "127.0.0.1");
    let rate = s["error_rate_5xx_percent"].as_f64().unwrap();
    assert!((rate - 11.0 * 100.0 / sent as f64).abs() < 0.01, "{rate}");
    assert!(
        findings(&s)
            .iter()
            .any(|f| f.starts_with("error:") && f.contains("5xx")),
        "{:?}",
        findings(&s)
    );
    assert!(!s.to_string().contains(TOKEN) && !s.to_string().contains(JWT));
    // A path filter over the summary cannot find the token either.
    let s = run(&n, "access_summary", json!({"path_contains": TOKEN})).unwrap();
    assert_eq!(s["requests"], 0);

    // The error log: the refused upstream, as an error with a finding.
    assert!(ops_servers::wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(n.path("logs/error.log"))
            .is_ok_and(|t| t.contains("connect() failed"))
    }));
    let e = run(&n, "error_log", json!({"level": "error"})).unwrap();
    let entries = e["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{e}");
    assert!(
        entries
            .iter()
            .all(|x| x["level"] == "error" || x["level"] == "crit")
    );
    let refused = entries
        .iter()
        .find(|x| x["message"].as_str().unwrap().contains("connect() failed"))
        .unwrap();
    assert_eq!(refused["client"], "127.0.0.1");
    assert_eq!(refused["request"], "GET /app/x HTTP/1.1");
    assert!(
        refused["upstream"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9")
    );
    assert!(
        findings(&e).iter().any(|f| f.contains("connect() failed")),
        "{:?}",
        findings(&e)
    );
    let all = run(&n, "error_log", json!({"lines": 5000})).unwrap();
    assert!(
        all["counts_by_level"]["notice"].as_u64().unwrap() >= 1,
        "{all}"
    );

    // stub_status, once and sampled.
    let st = run(&n, "stub_status", json!({})).unwrap();
    assert_eq!(st["configured"], true);
    assert!(st["active"].as_u64().unwrap() >= 1);
    assert!(st["requests"].as_u64().unwrap() >= sent as u64);
    assert_eq!(st["dropped"], 0);
    let st = run(&n, "stub_status", json!({"sample_ms": 300})).unwrap();
    assert!(
        st["rates"]["requests_per_s"].as_f64().unwrap() > 0.0,
        "{st}"
    );

    // The configuration tree, read in-process and confined to its root.
    let c = run(&n, "config", json!({})).unwrap();
    let files: Vec<&str> = c["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with("conf/nginx.conf") && files[1].ends_with("conf/sites/extra.conf"));
    let skipped = &c["skipped"][0];
    assert!(
        skipped["include"]
            .as_str()
            .unwrap()
            .ends_with("outside.conf")
    );
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("outside the configuration root")
    );
    let main = c["files"][0]["content"].as_str().unwrap();
    assert!(
        main.contains("fastcgi_param DB_PASSWORD [REDACTED:nginx_secret];"),
        "{main}"
    );
    assert!(!c.to_string().contains("hunter2secretvalue"));
    assert!(!c.to_string().contains("c29uZGU6c2VjcmV0cGFzc3dvcmQ="));
    assert!(main.contains("proxy_set_header Host $host;"));
    assert_eq!(
        c["redacted_values"], 2,
        "DB_PASSWORD and the quoted Authorization value"
    );
    let one = run(&n, "config", json!({"file": files[1]})).unwrap();
    assert_eq!(one["files"].as_array().unwrap().len(), 1);
    let err = run(&n, "config", json!({"file": "/etc/passwd"})).unwrap_err();
    assert!(matches!(err, ProbeError::NotFound(_)), "{err:?}");

    let sv = run(&n, "config.servers", json!({})).unwrap();
    assert_eq!(sv["servers"].as_array().unwrap().len(), 2);
    assert_eq!(sv["servers"][0]["server_name"], json!(["test.local"]));
    assert_eq!(sv["global"]["worker_connections"], 64);
    assert!(
        sv["log_formats"]["timed"]
            .as_str()
            .unwrap()
            .contains("rt=$request_time")
    );
    assert_eq!(sv["stub_status_locations"][0]["location"], "/nginx_status");
    let app = sv["servers"][0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["match"] == "/app/")
        .unwrap();
    assert_eq!(app["proxy_pass"], "http://127.0.0.1:9/");
    let f = findings(&sv);
    assert!(
        f.iter().any(|x| x.contains("conflicting server name")),
        "{f:?}"
    );
    assert!(f.iter().any(|x| x.contains("outside.conf")), "{f:?}");

    // logs.list shows both logs.
    let l = run(&n, "logs.list", json!({})).unwrap();
    assert_eq!(l["files"].as_array().unwrap().len(), 2, "{l}");
}

#[test]
fn the_window_counts_only_recent_requests_of_any_log() {
    let Some(n) = Nginx::start("") else {
        return;
    };
    let now_s = sonde_protocol::time::now_ms() / 1000;
    let stamp = |ago: i64| sonde_protocol::time::format_utc(now_s - ago, "%d/%b/%Y:%H:%M:%S +0000");
    let mut text = String::new();
    for (ago, status) in [(7200, 500), (5000, 500), (1200, 200), (600, 404), (60, 200)] {
        text.push_str(&format!(
            "10.0.0.{} - - [{}] \"GET /x HTTP/1.1\" {status} 5 \"-\" \"t\"\n",
            ago % 250,
            stamp(ago)
        ));
    }
    text.push_str("not a log line\n");
    let old = n.path("logs/old.log");
    std::fs::write(&old, text).unwrap();
    let s = run(
        &n,
        "access_summary",
        json!({"path": old.to_str().unwrap(), "window_s": 3600}),
    )
    .unwrap();
    assert_eq!(s["format_source"], "combined (nginx's default)");
    assert_eq!(s["requests"], 3, "{s}");
    assert_eq!(s["covered"], true);
    assert_eq!(s["error_rate_5xx_percent"], 0.0);
    assert_eq!(s["unparsed_lines"], 1);
    let s = run(
        &n,
        "access_summary",
        json!({"path": old.to_str().unwrap(), "window_s": 86400}),
    )
    .unwrap();
    assert_eq!(s["requests"], 5);
}

#[test]
fn only_allowlisted_regular_files_are_read() {
    let Some(n) = Nginx::start("") else {
        return;
    };
    let logs = n.path("logs");
    std::os::unix::fs::symlink("/etc/hostname", logs.join("link.log")).unwrap();
    let fifo = logs.join("fifo.log");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let cases = [
        ("/etc/passwd".to_owned(), "not an allowlisted"),
        (logs.join("link.log").display().to_string(), "symbolic link"),
        (
            logs.join("fifo.log").display().to_string(),
            "not a regular file",
        ),
        (
            logs.join("../conf/nginx.conf").display().to_string(),
            "not an allowlisted",
        ),
        (
            logs.join("nope.log").display().to_string(),
            "does not exist",
        ),
    ];
    for (path, why) in cases {
        for probe in ["access_log", "error_log", "access_summary"] {
            let start = Instant::now();
            let err = run(&n, probe, json!({"path": path})).unwrap_err();
            assert!(err.to_string().contains(why), "{probe} {path}: {err}");
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{probe} {path} hung"
            );
        }
    }
}

#[test]
fn stub_status_absent_or_silent_is_a_clear_answer() {
    // Not configured: an answer, not an error (the runbook runs it).
    let v = run_with_settings(&json!({}), "stub_status", json!({})).unwrap();
    assert_eq!(v["configured"], false);
    assert!(v["note"].as_str().unwrap().contains("stub_status_url"));
    // Nothing listening.
    let port = ops_servers::free_port();
    let err = run_with_settings(
        &json!({"stub_status_url": format!("http://127.0.0.1:{port}/s")}),
        "stub_status",
        json!({}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nothing answers"), "{err}");
    // A server that accepts and never answers is cut off at the deadline.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let def = support::pack("nginx");
    let start = Instant::now();
    let err = support::run_with(
        &def,
        "stub_status",
        json!({}).as_object().unwrap(),
        &json!({"stub_status_url": format!("http://127.0.0.1:{port}/s")}),
        &SystemRunner::default(),
        Duration::from_millis(1500),
    )
    .unwrap_err();
    assert!(err.to_string().contains("did not answer in time"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[test]
fn configuration_reading_stays_beneath_its_root_in_the_sandbox() {
    let Some(n) = Nginx::start("") else {
        return;
    };
    // A symlink inside the root that points outside it, and one inside.
    let conf = n.path("conf");
    std::os::unix::fs::symlink("/etc/hostname", conf.join("sites/escape.conf")).unwrap();
    std::fs::write(conf.join("inner.conf"), "# inner\n").unwrap();
    std::os::unix::fs::symlink(conf.join("inner.conf"), conf.join("sites/inner.conf")).unwrap();
    let def = support::pack("nginx");
    let out = ops_servers::run_confined(
        &def,
        "config",
        json!({}).as_object().unwrap(),
        &n.settings(),
        Duration::from_secs(20),
    )
    .unwrap();
    let c = out.data;
    let files: Vec<String> = c["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("sites/inner.conf")),
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.ends_with("escape.conf")),
        "{files:?}"
    );
    let reasons: Vec<String> = c["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["include"], s["reason"]))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("escape.conf") && r.contains("outside")),
        "{reasons:?}"
    );
    // read_config = false turns it off.
    let mut settings = n.settings();
    settings["read_config"] = json!(false);
    let err = run_with_settings(&settings, "config.servers", json!({})).unwrap_err();
    assert!(matches!(err, ProbeError::Denied(_)), "{err:?}");
}
