//! The docker pack against recorded-format Docker Engine API answers
//! (`fixtures/docker`, see fixtures/README.md) served by a Unix-socket
//! HTTP server in this file: no Docker engine runs here. The server keeps
//! every request line, so the tests also prove that only `GET` is sent and
//! that a parameter stays inside one URL path segment.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Map, Value, json};
use sonde_packs::exec::SystemRunner;
use sonde_packs::handler::ProbeError;
use sonde_protocol::schema::{ParamKind, ParamSpec, validate};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake Docker daemon on a Unix socket in a temporary directory.
struct Daemon {
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Daemon { dir, requests }
    }

    fn settings(&self) -> Value {
        json!({"socket": self.dir.path().join("docker.sock")})
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn run(&self, probe: &str, params: Value) -> Result<Value, ProbeError> {
        let def = support::pack("docker");
        support::run_with(
            &def,
            probe,
            params.as_object().unwrap(),
            &self.settings(),
            &SystemRunner::default(),
            Duration::from_secs(10),
        )
        .map(|o| o.data)
    }
}

/// A multiplexed-stream frame: `[stream, 0, 0, 0, len (u32 BE)]` + bytes.
fn frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut f = vec![stream, 0, 0, 0];
    f.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    f.extend_from_slice(bytes);
    f
}

/// `fixtures/docker/logs-web.txt` (`TIME STREAM TEXT` lines) as the
/// multiplexed stream the daemon sends with `timestamps=1`, plus one line
/// that is not UTF-8.
fn multiplexed_logs() -> Vec<u8> {
    let mut body = Vec::new();
    for line in support::fixture_text("docker/logs-web.txt").lines() {
        let (time, rest) = line.split_once(' ').unwrap();
        let (stream, text) = rest.split_once(' ').unwrap();
        let n = if stream == "stderr" { 2 } else { 1 };
        body.extend(frame(n, format!("{time} {text}\n").as_bytes()));
    }
    body.extend(frame(
        2,
        b"2024-05-01T10:00:03.000000000Z upload of \xff\xfe.bin failed\n",
    ));
    body
}

enum Body {
    Length(Vec<u8>),
    Chunked(Vec<u8>),
}

fn answer(target: &str) -> (&'static str, &'static str, Body) {
    let json = "application/json";
    let fixture = |f: &str| support::fixture(&format!("docker/{f}"));
    match target {
        "/containers/json?all=1" => (
            "200 OK",
            json,
            Body::Chunked(fixture("containers-json-all.json")),
        ),
        "/containers/json" => (
            "200 OK",
            json,
            Body::Length(fixture("containers-json.json")),
        ),
        "/containers/web/json" => (
            "200 OK",
            json,
            Body::Length(fixture("container-inspect-web.json")),
        ),
        "/images/json" => ("200 OK", json, Body::Length(fixture("images-json.json"))),
        "/info" => ("200 OK", json, Body::Chunked(fixture("info.json"))),
        // 9 MiB: more than the pack reads.
        "/containers/huge/json" => ("200 OK", json, Body::Length(vec![b' '; 9 << 20])),
        "/containers/broken/json" => (
            "500 Internal Server Error",
            json,
            Body::Length(
                br#"{"message":"error while reading container state: unexpected EOF"}"#.to_vec(),
            ),
        ),
        "/containers/notjson/json" => {
            ("200 OK", json, Body::Length(b"<html>proxy</html>".to_vec()))
        }
        t if t.starts_with("/containers/web/logs?") => (
            "200 OK",
            "application/vnd.docker.multiplexed-stream",
            Body::Chunked(multiplexed_logs()),
        ),
        t if t.starts_with("/containers/console/logs?") => (
            "200 OK",
            "application/vnd.docker.raw-stream",
            Body::Length(b"2024-05-01T10:00:00.000000000Z login: \r\n".to_vec()),
        ),
        t => {
            let name = t.split('/').nth(2).unwrap_or_default().to_owned();
            let body = format!("{{\"message\":\"No such container: {name}\"}}").into_bytes();
            ("404 Not Found", json, Body::Length(body))
        }
    }
}

fn serve(mut stream: UnixStream, log: &Mutex<Vec<String>>) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&req)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    log.lock().unwrap().push(line.clone());
    let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let (status, content_type, body) = answer(&target);
    let mut out = format!("HTTP/1.1 {status}\r\nApi-Version: 1.43\r\nContent-Type: {content_type}\r\nDocker-Experimental: false\r\nServer: Docker/24.0.7 (linux)\r\n").into_bytes();
    match body {
        Body::Length(b) => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            out.extend_from_slice(&b);
        }
        Body::Chunked(b) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in b.chunks(700) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let _ = stream.write_all(&out);
}

#[test]
fn containers_list_summarises_and_flags_trouble() {
    let d = Daemon::start();
    let all = d.run("containers.list", json!({"all": true})).unwrap();
    assert_eq!(all["counts"], json!({"total": 4, "running": 2}));
    let web = &all["containers"][0];
    assert_eq!(web["names"], json!(["web"]));
    assert_eq!(web["id"], "8dfafdbc3a40");
    assert_eq!(web["created_ms"], 1_714_550_400_000i64);
    assert_eq!(
        web["ports"][0],
        json!({"ip": "0.0.0.0", "public_port": 8080, "private_port": 80, "protocol": "tcp"})
    );
    let messages: Vec<&str> = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("db keeps restarting"));
    assert!(messages[1].contains("backup exited with code 137"));
    assert!(messages[2].contains("jellyfin is unhealthy"));
    let running = d.run("containers.list", json!({})).unwrap();
    assert_eq!(running["counts"], json!({"total": 2, "running": 2}));
    assert_eq!(
        d.requests(),
        [
            "GET /containers/json?all=1 HTTP/1.1",
            "GET /containers/json HTTP/1.1"
        ]
    );
}

#[test]
fn container_inspect_keeps_what_diagnosis_needs() {
    let d = Daemon::start();
    let web = d
        .run("container.inspect", json!({"container": "web"}))
        .unwrap();
    assert_eq!(web["name"], "web");
    assert_eq!(web["state"]["health"], "healthy");
    assert_eq!(web["state"]["last_health_check"]["exit_code"], 0);
    assert_eq!(web["restart_policy"], "unless-stopped");
    assert_eq!(web["restart_count"], 2);
    assert_eq!(web["memory_limit_bytes"], 268_435_456);
    assert_eq!(
        web["networks"],
        json!([{"name": "homelab_default", "ip": "172.18.0.2"}])
    );
    assert_eq!(web["mounts"][0]["rw"], false);
    assert_eq!(
        web["command"]["entrypoint"],
        json!(["/docker-entrypoint.sh"])
    );
    // The env goes out as the daemon gives it; the agent's scrubber
    // redacts DB_PASSWORD's value before the reply leaves the machine.
    assert_eq!(web["env"][2], "DB_PASSWORD=hunter2");
    assert_eq!(web["findings"], json!([]));
}

#[test]
fn logs_tail_demultiplexes_stdout_and_stderr() {
    let d = Daemon::start();
    let logs = d
        .run(
            "logs.tail",
            json!({"container": "web", "lines": 10, "since_s": 3600}),
        )
        .unwrap();
    let lines = logs["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(lines[0]["time"], "2024-05-01T10:00:00.000000000Z");
    assert!(
        lines[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("172.18.0.1 - - ")
    );
    assert_eq!(lines[1]["stream"], "stderr");
    assert!(lines[1]["text"].as_str().unwrap().contains("favicon.ico"));
    assert_eq!(
        lines[3]["text"]["display"],
        "upload of \u{fffd}\u{fffd}.bin failed"
    );
    assert!(
        lines[3]["text"]["base64"].is_string(),
        "non-UTF-8 text is kept exactly"
    );
    assert_eq!(logs["note"], Value::Null);
    // Only the last `lines` are kept.
    let two = d
        .run("logs.tail", json!({"container": "web", "lines": 2}))
        .unwrap();
    assert_eq!(two["lines"].as_array().unwrap().len(), 2);
    assert_eq!(two["lines"][1]["stream"], "stderr");
    // A TTY container's stream is raw, not framed.
    let tty = d.run("logs.tail", json!({"container": "console"})).unwrap();
    assert_eq!(
        tty["lines"],
        json!([{"stream": "tty", "time": "2024-05-01T10:00:00.000000000Z", "text": "login: "}])
    );
    let requests = d.requests();
    assert!(
        requests[0]
            .starts_with("GET /containers/web/logs?stdout=1&stderr=1&timestamps=1&tail=10&since="),
        "{requests:?}"
    );
}

#[test]
fn images_and_daemon_info() {
    let d = Daemon::start();
    let images = d.run("images.list", json!({})).unwrap();
    assert_eq!(images["counts"], json!({"total": 3, "dangling": 1}));
    assert_eq!(
        images["images"][0]["tags"],
        json!(["nginx:1.25", "nginx:latest"])
    );
    assert_eq!(images["images"][2]["tags"], json!([]));
    assert_eq!(
        images["images"][0]["containers"],
        Value::Null,
        "-1 means not computed"
    );
    assert_eq!(
        images["total_size_bytes"],
        187_694_648i64 + 431_872_323 + 72_000_000
    );
    let info = d.run("daemon.info", json!({})).unwrap();
    assert_eq!(info["server_version"], "24.0.7");
    assert_eq!(info["running"], 2);
    assert_eq!(info["cgroup_version"], "2");
    assert_eq!(
        info["findings"],
        json!([{"severity": "warning", "message": "WARNING: No swap limit support"}])
    );
}

#[test]
fn api_errors_name_what_failed() {
    let d = Daemon::start();
    let missing = d
        .run("container.inspect", json!({"container": "nope"}))
        .unwrap_err();
    assert!(
        matches!(missing, ProbeError::NotFound(ref m) if m.contains("No such container: nope")),
        "{missing:?}"
    );
    let missing = d
        .run("logs.tail", json!({"container": "nope"}))
        .unwrap_err();
    assert!(matches!(missing, ProbeError::NotFound(_)), "{missing:?}");
    let broken = d
        .run("container.inspect", json!({"container": "broken"}))
        .unwrap_err();
    assert!(
        matches!(broken, ProbeError::Failed(ref m) if m.contains("answered 500") && m.contains("unexpected EOF")),
        "{broken:?}"
    );
    let huge = d
        .run("container.inspect", json!({"container": "huge"}))
        .unwrap_err();
    assert!(
        matches!(huge, ProbeError::Failed(ref m) if m.contains("larger than 8 MiB")),
        "{huge:?}"
    );
    let not_json = d
        .run("container.inspect", json!({"container": "notjson"}))
        .unwrap_err();
    assert!(
        matches!(not_json, ProbeError::Failed(ref m) if m.contains("not JSON")),
        "{not_json:?}"
    );
}

#[test]
fn only_get_requests_are_ever_sent() {
    let d = Daemon::start();
    let def = support::pack("docker");
    for probe in &def.manifest.probes {
        for example in &probe.examples {
            let _ = d.run(&probe.name, Value::Object(example.clone()));
        }
    }
    let requests = d.requests();
    assert!(requests.len() >= def.manifest.probes.len(), "{requests:?}");
    for r in &requests {
        let mut parts = r.split(' ');
        assert_eq!(parts.next(), Some("GET"), "{r}");
        assert!(parts.next().is_some_and(|t| t.starts_with('/')), "{r}");
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{r}");
        assert_eq!(parts.next(), None, "{r}");
    }
}

/// Percent-decodes a path segment.
fn decode(segment: &str) -> Vec<u8> {
    let b = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&segment[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn docker_parameters_stay_inside_one_url_path_segment() {
    // Even with a schema that let anything through (a future loosening, a
    // bug), a container name is one encoded segment: it cannot climb to
    // another endpoint, add a query, or inject a header or a request.
    let loose: Vec<ParamSpec> = serde_json::from_value(json!([
        {"name": "container", "type": "string", "max_len": 4096},
        {"name": "lines", "type": "integer", "min": 1, "max": 5000},
    ]))
    .unwrap();
    let nasty = [
        "../../info",
        "web/../../images/json?all=1",
        "web json",
        "web\r\nX-Injected: 1",
        "web HTTP/1.1\r\n\r\nDELETE /containers/web",
        "web?force=1",
        "web#x",
        "%2e%2e",
        "..",
        ".",
        "-x",
        "Ω",
    ];
    let d = Daemon::start();
    let def = support::pack("docker");
    let settings = d.settings();
    let runner = SystemRunner::default();
    for name in nasty {
        for probe in ["container.inspect", "logs.tail"] {
            let mut params = Map::new();
            params.insert("container".into(), json!(name));
            let validated = validate(&loose, &params).unwrap();
            let ctx = sonde_packs::ProbeContext {
                deadline: Instant::now() + Duration::from_secs(5),
                runner: &runner,
                settings: &settings,
                secrets: &sonde_packs::SecretGuard::standard(),
            };
            let _ = def.handlers[probe].run(&ctx, &validated);
        }
    }
    let requests = d.requests();
    assert_eq!(requests.len(), nasty.len() * 2, "{requests:?}");
    for (i, r) in requests.iter().enumerate() {
        let name = nasty[i / 2];
        let parts: Vec<&str> = r.split(' ').collect();
        assert_eq!(parts.len(), 3, "request line split: {r:?}");
        assert_eq!(parts[0], "GET");
        let (path, _query) = parts[1].split_once('?').unwrap_or((parts[1], ""));
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        assert_eq!(segments.len(), 3, "{r}");
        assert_eq!(segments[0], "containers");
        assert!(["json", "logs"].contains(&segments[2]), "{r}");
        assert!(!["..", "."].contains(&segments[1]), "{r}");
        assert_eq!(decode(segments[1]), name.as_bytes(), "{r}");
    }
    // And the schema itself refuses all of them but the plain ones.
    let spec = &support::spec(&def, "container.inspect").params;
    for name in nasty {
        let ok = validate(spec, json!({"container": name}).as_object().unwrap()).is_ok();
        assert!(
            !ok || name.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{name:?} passes the schema"
        );
    }
    assert!(matches!(
        &spec[0].kind,
        ParamKind::String {
            pattern: Some(_),
            ..
        }
    ));
}

#[test]
fn an_absent_or_forbidden_daemon_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let def = support::pack("docker");
    let runner = SystemRunner::default();
    let run = |settings: Value| {
        support::run_with(
            &def,
            "daemon.info",
            &Map::new(),
            &settings,
            &runner,
            Duration::from_secs(5),
        )
        .unwrap_err()
    };
    let missing = run(json!({"socket": dir.path().join("missing.sock")}));
    assert!(
        matches!(missing, ProbeError::Unsupported(ref m) if m.contains("is Docker installed and running") && m.contains("[packs.docker]")),
        "{missing:?}"
    );
    // A socket file with nothing listening: Docker stopped.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let refused = run(json!({"socket": stale}));
    assert!(
        matches!(refused, ProbeError::Failed(ref m) if m.contains("not running")),
        "{refused:?}"
    );
    // The default socket is used when there are no settings.
    let default = run(Value::Null);
    assert!(
        default.to_string().contains("/var/run/docker.sock"),
        "{default}"
    );
}

#[test]
fn a_silent_daemon_is_cut_off_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts, reads, never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let def = support::pack("docker");
    let start = Instant::now();
    let err = support::run_with(
        &def,
        "images.list",
        &Map::new(),
        &json!({"socket": path}),
        &SystemRunner::default(),
        Duration::from_millis(400),
    )
    .unwrap_err();
    assert_eq!(err, ProbeError::Timeout);
    assert!(start.elapsed() < Duration::from_secs(3));
}
