//! The `docker` pack: the Docker Engine API over its Unix socket, `GET`
//! requests only ([`crate::http_client`]). Parameters reach the API only as
//! percent-encoded path segments or query values ([`ApiPath`]).
//!
//! Settings (`[packs.docker]` in agent.toml):
//! - `socket = "/var/run/docker.sock"`: where the daemon listens.

use serde::Deserialize;
use serde_json::{Value, json};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::path::PathBuf;
use std::sync::Arc;

use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use crate::http_client::{self, ApiPath, Endpoint, Get, HttpError};
use crate::manifest::{ManifestError, Requirements};
use crate::system::finding;

pub const MANIFEST: &str = include_str!("../../docker/pack.toml");

/// Largest API answer read (JSON answers beyond it are refused, logs cut).
pub const MAX_BODY: usize = 8 << 20;

/// `[packs.docker]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The daemon's Unix socket.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            socket: default_socket(),
        }
    }
}

fn default_socket() -> PathBuf {
    PathBuf::from("/var/run/docker.sock")
}

/// Refuses unknown keys and a socket that is not an absolute path.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    if !s.socket.is_absolute() {
        return Err(format!(
            "socket: {:?} is not an absolute path (the default is /var/run/docker.sock)",
            s.socket.display().to_string()
        ));
    }
    Ok(())
}

fn connect_error(socket: &str, reason: &str, kind: std::io::ErrorKind) -> ProbeError {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::NotFound => ProbeError::Unsupported(format!(
            "there is no Docker socket at {socket}: is Docker installed and running? If the daemon listens elsewhere, set `socket` under [packs.docker] in agent.toml"
        )),
        ErrorKind::PermissionDenied => ProbeError::Failed(format!(
            "the agent's user may not use {socket} ({reason}): run `usermod -aG docker sonde` (or add SupplementaryGroups=docker to the sonde-agent unit), then restart sonde-agent"
        )),
        ErrorKind::ConnectionRefused => ProbeError::Failed(format!(
            "nothing answers on {socket} ({reason}): the Docker daemon is not running; check `systemctl status docker`"
        )),
        _ => ProbeError::Failed(format!(
            "cannot reach the Docker daemon at {socket}: {reason}"
        )),
    }
}

/// `GET target`, with errors that say what to do.
fn request(ctx: &ProbeContext<'_>, target: &ApiPath) -> Result<http_client::Response, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let get = Get {
        host: "docker",
        target: target.as_str(),
        headers: &[("Accept", "application/json")],
        max_body: MAX_BODY,
    };
    let r = http_client::get(&Endpoint::Unix(&settings.socket), &get, ctx.deadline).map_err(
        |e| match e {
            HttpError::Timeout => ProbeError::Timeout,
            HttpError::Connect { addr, reason, kind } => connect_error(&addr, &reason, kind),
            other => ProbeError::Failed(format!("the Docker API: {other}")),
        },
    )?;
    if r.status == 200 {
        return Ok(r);
    }
    // Error answers are `{"message": "…"}`.
    let message = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                .trim()
                .to_owned()
        });
    Err(match r.status {
        404 => ProbeError::NotFound(format!("the Docker daemon says: {message}")),
        400 => {
            ProbeError::InvalidInput(format!("the Docker daemon refused the request: {message}"))
        }
        s => ProbeError::Failed(format!("the Docker API answered {s}: {message}")),
    })
}

/// `GET target` → parsed JSON.
fn api(ctx: &ProbeContext<'_>, target: &ApiPath) -> Result<Value, ProbeError> {
    let r = request(ctx, target)?;
    if r.truncated {
        return Err(ProbeError::Failed(format!(
            "the Docker API's answer to {} is larger than {} MiB; not read",
            target.as_str(),
            MAX_BODY >> 20
        )));
    }
    serde_json::from_slice(&r.body).map_err(|e| {
        ProbeError::Failed(format!(
            "the Docker API's answer to {} is not JSON: {e}",
            target.as_str()
        ))
    })
}

fn container_param(params: &ValidatedParams) -> Result<&str, ProbeError> {
    params
        .str("container")
        .ok_or_else(|| ProbeError::InvalidInput("container is required".into()))
}

/// `"Exited (137) 5 minutes ago"` → 137.
fn exit_code_of(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// Summarises `GET /containers/json` items.
pub fn containers_from(list: &Value) -> (Vec<Value>, Vec<Value>) {
    let mut containers = Vec::new();
    let mut findings = Vec::new();
    for c in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        let names: Vec<&str> = c["Names"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.trim_start_matches('/'))
                    .collect()
            })
            .unwrap_or_default();
        let name = names
            .first()
            .copied()
            .or_else(|| c["Id"].as_str())
            .unwrap_or("?")
            .to_owned();
        let state = c["State"].as_str().unwrap_or_default();
        let status = c["Status"].as_str().unwrap_or_default();
        let ports: Vec<Value> = c["Ports"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| {
                        json!({
                            "ip": p["IP"],
                            "public_port": p["PublicPort"],
                            "private_port": p["PrivatePort"],
                            "protocol": p["Type"],
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if status.contains("(unhealthy)") {
            findings.push(finding(
                "warning",
                format!("container {name} is unhealthy ({status})"),
            ));
        }
        if state == "restarting" {
            findings.push(finding(
                "warning",
                format!("container {name} keeps restarting ({status})"),
            ));
        }
        if state == "dead" {
            findings.push(finding("error", format!("container {name} is dead")));
        }
        if state == "exited"
            && let Some(code) = exit_code_of(status).filter(|c| *c != 0)
        {
            findings.push(finding(
                "warning",
                format!("container {name} exited with code {code} ({status})"),
            ));
        }
        containers.push(json!({
            "id": c["Id"].as_str().map(|s| s.chars().take(12).collect::<String>()),
            "names": names,
            "image": c["Image"],
            "command": c["Command"],
            "state": c["State"],
            "status": c["Status"],
            "created_ms": c["Created"].as_i64().map(|s| s.saturating_mul(1000)),
            "ports": ports,
        }));
    }
    (containers, findings)
}

fn list(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let mut target = ApiPath::new(["containers", "json"]);
    if params.bool("all").unwrap_or(false) {
        target = target.query("all", "1");
    }
    let body = api(ctx, &target)?;
    let (containers, findings) = containers_from(&body);
    let running = containers
        .iter()
        .filter(|c| c["state"] == "running")
        .count();
    Ok(ProbeOutput::new(json!({
        "containers": containers,
        "counts": {"total": containers.len(), "running": running},
        "findings": findings,
    })))
}

/// Summarises `GET /containers/{id}/json`.
pub fn inspect_from(c: &Value) -> Value {
    let state = &c["State"];
    let health = &state["Health"];
    let last_check = health["Log"].as_array().and_then(|l| l.last());
    let name = c["Name"]
        .as_str()
        .map(|s| s.trim_start_matches('/'))
        .unwrap_or("?");
    let mut findings = Vec::new();
    if health["Status"] == "unhealthy" {
        findings.push(finding(
            "warning",
            format!(
                "container {name} is unhealthy: {} failed checks in a row",
                health["FailingStreak"]
            ),
        ));
    }
    if state["OOMKilled"] == true {
        findings.push(finding(
            "error",
            format!("container {name} was killed for lack of memory"),
        ));
    }
    if state["Restarting"] == true {
        findings.push(finding(
            "warning",
            format!("container {name} is restarting"),
        ));
    }
    json!({
        "id": c["Id"],
        "name": name,
        "image": c["Config"]["Image"],
        "created": c["Created"],
        "command": {"entrypoint": c["Config"]["Entrypoint"], "cmd": c["Config"]["Cmd"]},
        "state": {
            "status": state["Status"],
            "running": state["Running"],
            "restarting": state["Restarting"],
            "exit_code": state["ExitCode"],
            "error": state["Error"],
            "started_at": state["StartedAt"],
            "finished_at": state["FinishedAt"],
            "oom_killed": state["OOMKilled"],
            "health": health["Status"],
            "failing_streak": health["FailingStreak"],
            "last_health_check": last_check.map(|l| json!({
                "exit_code": l["ExitCode"],
                "end": l["End"],
                "output": l["Output"].as_str().map(|o| o.chars().take(1000).collect::<String>()),
            })),
        },
        "restart_count": c["RestartCount"],
        "restart_policy": c["HostConfig"]["RestartPolicy"]["Name"],
        "memory_limit_bytes": c["HostConfig"]["Memory"],
        "mounts": c["Mounts"].as_array().map(|m| m.iter().map(|x| json!({"type": x["Type"], "source": x["Source"], "destination": x["Destination"], "rw": x["RW"]})).collect::<Vec<_>>()),
        "networks": c["NetworkSettings"]["Networks"].as_object().map(|n| n.iter().map(|(k, v)| json!({"name": k, "ip": v["IPAddress"]})).collect::<Vec<_>>()),
        "ports": c["NetworkSettings"]["Ports"],
        "labels": c["Config"]["Labels"],
        // Values that look like secrets are redacted by the agent's scrubber
        // before the reply leaves the machine.
        "env": c["Config"]["Env"],
        "findings": findings,
    })
}

fn inspect(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let name = container_param(params)?;
    let c = api(ctx, &ApiPath::new(["containers", name, "json"]))?;
    Ok(ProbeOutput::new(inspect_from(&c)))
}

/// One frame of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// `stdout`, `stderr`, `stdin`, or `tty` for a TTY container's raw stream.
    pub stream: &'static str,
    pub bytes: &'a [u8],
}

/// Splits Docker's log stream into frames. A multiplexed stream (non-TTY
/// containers) is a sequence of 8-byte headers `[stream, 0, 0, 0, len
/// (u32 big-endian)]` each followed by `len` bytes; a TTY container's stream
/// is raw. `content_type` (API 1.42+) says which; older daemons call both
/// `raw-stream`, so the first header is checked as well. A frame that claims
/// more than is there is cut at the end of the data.
pub fn demux<'a>(data: &'a [u8], content_type: Option<&str>) -> Vec<Frame<'a>> {
    let declared_multiplexed = content_type.is_some_and(|t| t.contains("multiplexed"));
    let looks_multiplexed = data.len() >= 8 && data[0] <= 2 && data[1..4] == [0, 0, 0];
    if !(declared_multiplexed || looks_multiplexed) {
        return if data.is_empty() {
            Vec::new()
        } else {
            vec![Frame {
                stream: "tty",
                bytes: data,
            }]
        };
    }
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let stream = match rest[0] {
            0 => "stdin",
            1 => "stdout",
            2 => "stderr",
            _ => "unknown",
        };
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = len.saturating_add(8).min(rest.len());
        out.push(Frame {
            stream,
            bytes: &rest[8..end],
        });
        rest = &rest[end..];
    }
    out
}

/// Frames → `{stream, time, text}` lines (`timestamps=1` puts an RFC 3339
/// time and a space before each line).
pub fn log_lines(frames: &[Frame<'_>]) -> Vec<Value> {
    let mut out = Vec::new();
    for f in frames {
        for line in f.bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (time, text) = match line.iter().position(|b| *b == b' ') {
                Some(i)
                    if i >= 20
                        && line[..i].iter().all(|b| {
                            b.is_ascii_digit()
                                || matches!(b, b'-' | b':' | b'.' | b'T' | b'Z' | b'+')
                        })
                        && line[..i].contains(&b'T') =>
                {
                    (
                        Some(String::from_utf8_lossy(&line[..i]).into_owned()),
                        &line[i + 1..],
                    )
                }
                _ => (None, line),
            };
            out.push(
                json!({"stream": f.stream, "time": time, "text": PathBytes::from(text).to_json()}),
            );
        }
    }
    out
}

fn logs(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let name = container_param(params)?;
    let lines = params.i64("lines").unwrap_or(100);
    let mut target = ApiPath::new(["containers", name, "logs"])
        .query("stdout", "1")
        .query("stderr", "1")
        .query("timestamps", "1")
        .query("tail", &lines.to_string());
    if let Some(since) = params.i64("since_s") {
        let from = sonde_protocol::time::now_ms() / 1000 - since;
        target = target.query("since", &from.to_string());
    }
    let r = request(ctx, &target)?;
    let mut out = log_lines(&demux(&r.body, r.content_type.as_deref()));
    // Docker sends `tail` lines, but a frame may hold several.
    let skip = out.len().saturating_sub(lines.max(1) as usize);
    out.drain(..skip);
    let note = r.truncated.then(|| {
        format!(
            "the logs were larger than {} MiB and were cut; ask for fewer lines",
            MAX_BODY >> 20
        )
    });
    ProbeOutput::from_serialize(
        &json!({"container": name, "lines": out, "note": note}),
        r.truncated,
    )
}

/// Summarises `GET /images/json`.
pub fn images_from(list: &Value) -> Value {
    let images: Vec<Value> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let tags: Vec<&str> = i["RepoTags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .filter(|t| *t != "<none>:<none>")
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "id": i["Id"],
                "tags": tags,
                "dangling": tags.is_empty(),
                "size_bytes": i["Size"],
                "containers": i["Containers"].as_i64().filter(|n| *n >= 0),
                "created_ms": i["Created"].as_i64().map(|s| s.saturating_mul(1000)),
            })
        })
        .collect();
    let total: i64 = images.iter().filter_map(|i| i["size_bytes"].as_i64()).sum();
    let dangling = images.iter().filter(|i| i["dangling"] == true).count();
    json!({"images": images, "counts": {"total": images.len(), "dangling": dangling}, "total_size_bytes": total})
}

fn images(ctx: &ProbeContext<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let body = api(ctx, &ApiPath::new(["images", "json"]))?;
    Ok(ProbeOutput::new(images_from(&body)))
}

/// Summarises `GET /info`.
pub fn info_from(i: &Value) -> Value {
    let warnings: Vec<Value> = i["Warnings"].as_array().cloned().unwrap_or_default();
    let findings: Vec<Value> = warnings
        .iter()
        .filter_map(Value::as_str)
        .map(|w| finding("warning", w))
        .collect();
    json!({
        "server_version": i["ServerVersion"],
        "containers": i["Containers"],
        "running": i["ContainersRunning"],
        "paused": i["ContainersPaused"],
        "stopped": i["ContainersStopped"],
        "images": i["Images"],
        "driver": i["Driver"],
        "logging_driver": i["LoggingDriver"],
        "cgroup_driver": i["CgroupDriver"],
        "cgroup_version": i["CgroupVersion"],
        "kernel": i["KernelVersion"],
        "os": i["OperatingSystem"],
        "architecture": i["Architecture"],
        "cpus": i["NCPU"],
        "memory_bytes": i["MemTotal"],
        "root_dir": i["DockerRootDir"],
        "warnings": warnings,
        "findings": findings,
    })
}

fn info(ctx: &ProbeContext<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let body = api(ctx, &ApiPath::new(["info"]))?;
    Ok(ProbeOutput::new(info_from(&body)))
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("containers.list", Arc::new(list)),
        ("container.inspect", Arc::new(inspect)),
        ("logs.tail", Arc::new(logs)),
        ("images.list", Arc::new(images)),
        ("daemon.info", Arc::new(info)),
    ];
    Ok(PackDef::builtin(MANIFEST, handlers, Some(check_settings))?
        .with_requirements_hook(socket_requirement))
}

/// The pack needs the socket its settings name: when `socket` is set, it
/// replaces the default in the requirements, with the same hint.
fn socket_requirement(requires: &Requirements, settings: &Value) -> Requirements {
    let mut out = requires.clone();
    let Ok(s) = serde_json::from_value::<Settings>(settings.clone()) else {
        return out;
    };
    let default = default_socket().display().to_string();
    let chosen = s.socket.display().to_string();
    if chosen != default {
        for socket in &mut out.sockets {
            if *socket == default {
                socket.clone_from(&chosen);
            }
        }
        if let Some(hint) = out.hints.remove(&default) {
            out.hints
                .insert(chosen.clone(), hint.replace(&default, &chosen));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        f.extend_from_slice(bytes);
        f
    }

    #[test]
    fn demux_frames_and_raw_tty_streams() {
        let mut data = frame(1, b"hello\n");
        data.extend(frame(2, b"oops"));
        let frames = demux(&data, Some("application/vnd.docker.multiplexed-stream"));
        assert_eq!(
            frames,
            vec![
                Frame {
                    stream: "stdout",
                    bytes: b"hello\n"
                },
                Frame {
                    stream: "stderr",
                    bytes: b"oops"
                }
            ]
        );
        // Older daemons label both kinds raw-stream: the header decides.
        assert_eq!(
            demux(&data, Some("application/vnd.docker.raw-stream")).len(),
            2
        );
        assert_eq!(
            demux(
                b"plain tty output\n",
                Some("application/vnd.docker.raw-stream")
            ),
            vec![Frame {
                stream: "tty",
                bytes: b"plain tty output\n"
            }]
        );
        assert!(demux(b"", None).is_empty());
        // A frame claiming more than is there is cut, not a panic.
        assert_eq!(
            demux(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, b'x'], None),
            vec![Frame {
                stream: "stdout",
                bytes: b"x"
            }]
        );
    }

    #[test]
    fn log_lines_split_timestamps_only_when_they_are_timestamps() {
        let data = frame(
            1,
            b"2024-01-01T10:00:00.123456789Z first\n2024-01-01T10:00:01.000000000Z second\r\n",
        );
        let lines = log_lines(&demux(&data, None));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"], "2024-01-01T10:00:00.123456789Z");
        assert_eq!(lines[1]["text"], "second");
        let lines = log_lines(&[Frame {
            stream: "tty",
            bytes: b"GET /index.html HTTP/1.1\n",
        }]);
        assert_eq!(lines[0]["time"], Value::Null);
        assert_eq!(lines[0]["text"], "GET /index.html HTTP/1.1");
    }

    #[test]
    fn settings_are_checked() {
        assert!(check_settings(&Value::Null).is_ok());
        assert!(check_settings(&json!({"socket": "/run/docker.sock"})).is_ok());
        let err = check_settings(&json!({"socket": "docker.sock"})).unwrap_err();
        assert!(err.contains("socket") && err.contains("absolute"), "{err}");
        let err = check_settings(&json!({"sock": "/x"})).unwrap_err();
        assert!(err.contains("sock"), "{err}");
        assert!(check_settings(&json!({"socket": 5})).is_err());
    }

    #[test]
    fn the_required_socket_follows_the_settings() {
        let def = pack().unwrap();
        let default = def.requirements(&Value::Null);
        assert_eq!(default.sockets, vec!["/var/run/docker.sock".to_owned()]);
        let moved = def.requirements(&json!({"socket": "/run/user/1000/docker.sock"}));
        assert_eq!(moved.sockets, vec!["/run/user/1000/docker.sock".to_owned()]);
        assert!(moved.hints["/run/user/1000/docker.sock"].contains("start Docker"));
        assert!(!moved.hints.contains_key("/var/run/docker.sock"));
        assert_eq!(moved.groups, default.groups);
    }

    #[test]
    fn exited_containers_with_errors_are_findings() {
        let (list, findings) = containers_from(&json!([
            {"Id": "a", "Names": ["/ok"], "State": "exited", "Status": "Exited (0) 1 hour ago"},
            {"Id": "b", "Names": ["/bad"], "State": "exited", "Status": "Exited (137) 5 minutes ago"},
            {"Id": "c", "Names": [], "State": "running", "Status": "Up 3 days (unhealthy)"},
        ]));
        assert_eq!(list.len(), 3);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[0]["message"].as_str().unwrap().contains("137"));
        assert!(
            findings[1]["message"]
                .as_str()
                .unwrap()
                .contains("c is unhealthy")
        );
        // Not a list at all: nothing, not a panic.
        assert_eq!(containers_from(&json!({"message": "x"})).0.len(), 0);
    }
}
