//! Support for the end-to-end tests: real `sonde-hub` and `sonde-agent`
//! processes, in temp dirs, on 127.0.0.1, with real TLS; a real MCP client;
//! and a man-in-the-middle proxy for the tampering tests.
//!
//! When the tests run as root (CI), agents run as the unprivileged system
//! user [`TEST_USER`] (created once); otherwise as the current user.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

pub mod proxy;
pub mod replay;

use anyhow::{Context, bail};
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use sonde_admin::AdminClient;

/// The user agents run as when the tests run as root.
pub const TEST_USER: &str = "sonde-test";

/// Directory holding the workspace's binaries (built once per test process;
/// `SONDE_BIN_DIR` points elsewhere, e.g. at an older build for the load
/// tool's side-by-side runs).
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SONDE_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // target/<profile>/deps/<test> or target/<profile>/<tool> → target/<profile>
        let exe = std::env::current_exe().expect("current exe");
        let mut dir = exe.parent().expect("exe dir").to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        // Built already: by the nextest setup script
        // (`.config/build-test-binaries.sh`) for this very directory, or by
        // hand (`SONDE_TEST_NO_BUILD`).
        let built = std::env::var_os("SONDE_TEST_BINARIES_BUILT")
            .and_then(|d| std::fs::canonicalize(d).ok())
            .is_some_and(|d| std::fs::canonicalize(&dir).is_ok_and(|mine| mine == d));
        if !built && std::env::var_os("SONDE_TEST_NO_BUILD").is_none() {
            let mut build = cargo_command();
            build.arg("build");
            if dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build
                .args([
                    "--quiet",
                    "--bins",
                    "-p",
                    "sonde-hub",
                    "-p",
                    "sonde-agent",
                    "-p",
                    "sonde-console",
                    "-p",
                    "sonde-pack-zfs",
                    "-p",
                    "sonde-mcp-bridge",
                    // The fake `zfs`/`zpool` is test support, behind a feature.
                    "--features",
                    "sonde-pack-zfs/fixture",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the sonde binaries failed");
        }
        dir
    })
    .clone()
}

/// A `cargo` command with the environment of a plain shell: without the
/// variables cargo sets for the test process (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, cargo's `LD_LIBRARY_PATH` entries). Build scripts such as
/// `ring`'s watch some of them (`rerun-if-env-changed`), so a nested build
/// that inherits them rebuilds what the outer one just built, and the
/// next build from a shell rebuilds it again (the same rule as
/// `sonde-hub demo`'s nested build, hub/src/demo/build.rs).
pub fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut c = Command::new(&cargo);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO",
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
                "NEXTEST",
                "NEXTEST_RUN_ID",
                "NEXTEST_EXECUTION_MODE",
            ]
            .contains(&name)
        {
            c.env_remove(name);
        }
    }
    if let Some(value) = std::env::var_os("LD_LIBRARY_PATH") {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
        let target = std::fs::canonicalize(&target).unwrap_or(target);
        let toolchain = Path::new(&cargo)
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let kept: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| {
                let cargos = p.starts_with(&target)
                    || (toolchain.components().count() > 1 && p.starts_with(&toolchain));
                !cargos
            })
            .collect();
        if kept.is_empty() {
            c.env_remove("LD_LIBRARY_PATH");
        } else if let Ok(v) = std::env::join_paths(kept) {
            c.env("LD_LIBRARY_PATH", v);
        }
    }
    c
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Async variant of [`wait_until`].
pub async fn wait_for<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f().await
}

/// Says why a test cannot run here and lets it skip — except in CI
/// (`SONDE_CI`, set by `.ci/run`), where a missing prerequisite is a
/// failure: a test must not pass there by skipping.
pub fn skip_unless_ci(why: &str) {
    assert!(
        std::env::var_os("SONDE_CI").is_none(),
        "{why}; CI must run this test (SONDE_CI is set): install or provide what it needs"
    );
    eprintln!("skipped: {why}");
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// uid/gid agents run as.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// The unprivileged identity for agents (created when running as root).
pub fn agent_identity() -> Option<RunAs> {
    static ID: OnceLock<Option<RunAs>> = OnceLock::new();
    *ID.get_or_init(|| {
        if !is_root() {
            return None;
        }
        let lookup = || {
            let out = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
            let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            let out = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
            let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            Some(RunAs { uid, gid })
        };
        if let Some(id) = lookup() {
            return Some(id);
        }
        // Several test processes may race here; useradd fails harmlessly for the losers.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .stderr(Stdio::null())
            .status();
        Some(lookup().expect("create the sonde-test user (useradd)"))
    })
}

/// A temp dir others can traverse (agents run as another user).
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("sonde-e2e-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A directory owned by the agent identity.
    pub fn agent_dir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        chown(&p);
        p
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

pub fn chown(path: &Path) {
    if let Some(id) = agent_identity() {
        std::os::unix::fs::chown(path, Some(id.uid), Some(id.gid)).unwrap();
    }
}

fn output_text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `run.json` of a running hub.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RunInfo {
    pub pid: u32,
    pub agent_listen: std::net::SocketAddr,
    pub mcp_url: Option<String>,
    pub ca_sha256: String,
}

/// A `sonde-hub serve` process.
pub struct Hub {
    pub data: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub run: RunInfo,
    agent_listen: String,
    mcp_listen: String,
}

impl Hub {
    /// `init` + `serve` on ephemeral loopback ports.
    pub fn start(scratch: &Scratch) -> Hub {
        Hub::start_with(scratch, "")
    }

    /// Same, with extra `hub.toml` content.
    pub fn start_with(scratch: &Scratch, hub_toml: &str) -> Hub {
        let data = scratch.path().join("hub");
        let out = Command::new(bin("sonde-hub"))
            .arg("--data")
            .arg(&data)
            .args(["init", "--hostname", "localhost"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sonde-hub init failed: {}",
            output_text(&out)
        );
        if !hub_toml.is_empty() {
            std::fs::write(data.join("hub.toml"), hub_toml).unwrap();
        }
        let mut hub = Hub {
            log: scratch.path().join("hub.log"),
            data,
            child: None,
            run: RunInfo {
                pid: 0,
                agent_listen: "127.0.0.1:0".parse().unwrap(),
                mcp_url: None,
                ca_sha256: String::new(),
            },
            agent_listen: "127.0.0.1:0".into(),
            mcp_listen: "127.0.0.1:0".into(),
        };
        hub.spawn();
        // Keep the same ports across restarts.
        hub.agent_listen = hub.run.agent_listen.to_string();
        hub.mcp_listen = hub
            .run
            .mcp_url
            .as_deref()
            .and_then(|u| u.rsplit(':').next())
            .map(|p| format!("127.0.0.1:{}", p.trim_end_matches("/mcp")))
            .unwrap_or_default();
        hub
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data.join("run.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin("sonde-hub"))
            .arg("--data")
            .arg(&self.data)
            .args([
                "serve",
                "--agent-listen",
                &self.agent_listen,
                "--mcp-listen",
                &self.mcp_listen,
            ])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let run_json = self.data.join("run.json");
        let ok = wait_until(Duration::from_secs(20), || {
            run_json.exists() && self.data.join("admin.sock").exists()
        });
        assert!(ok, "the hub did not start; log:\n{}", self.log_text());
        self.run = serde_json::from_str(&std::fs::read_to_string(&run_json).unwrap()).unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `sonde-hub --data DIR ARGS…`
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("sonde-hub"))
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "sonde-hub {args:?} failed: {}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a CLI command with `--json` and parses stdout.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.cli_ok(&all)).unwrap()
    }

    pub fn admin(&self) -> AdminClient {
        AdminClient::for_data_dir(&self.data)
    }

    /// A fresh enrollment token: (token, CA fingerprint).
    pub fn token(&self, auto_approve: bool) -> (String, String) {
        let mut args = vec!["token", "create", "--label", "e2e"];
        if auto_approve {
            args.push("--auto-approve");
        }
        let v = self.cli_json(&args);
        (
            v["token"].as_str().unwrap().to_owned(),
            v["ca_sha256"].as_str().unwrap().to_owned(),
        )
    }

    /// Waits (20 s at most) until exactly `n` enrollments are pending.
    pub async fn wait_pending_enrollments(&self, n: usize) -> bool {
        let admin = self.admin();
        wait_for(Duration::from_secs(20), || async {
            admin
                .enrollments(false)
                .await
                .map(|e| e.len() == n)
                .unwrap_or(false)
        })
        .await
    }

    /// Approves `pack` on `agent` (CLI) and waits until the hub sees it active.
    pub async fn approve_pack(&self, agent: &str, pack: &str) {
        self.cli_ok(&["packs", "approve", agent, pack]);
        let admin = self.admin();
        let ok = wait_for(Duration::from_secs(30), || async {
            admin
                .agent(agent)
                .await
                .map(|d| {
                    d.packs.iter().any(|p| {
                        p.name == pack && p.state == sonde_protocol::messages::PackState::Active
                    })
                })
                .unwrap_or(false)
        })
        .await;
        assert!(ok, "pack {pack} did not become active on {agent}");
    }

    /// `127.0.0.1:PORT` of the agent endpoint.
    pub fn agent_addr(&self) -> String {
        self.run.agent_listen.to_string()
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data.join("ca.crt")).unwrap()
    }

    /// SIGTERM, then wait (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = wait_child(&mut child, Duration::from_secs(40));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts `serve` again on the same ports.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// An API key with the given `keys create` arguments.
    pub fn api_key(&self, args: &[&str]) -> String {
        let mut all = vec!["keys", "create"];
        all.extend_from_slice(args);
        self.cli_json(&all)["key"].as_str().unwrap().to_owned()
    }

    /// Rows of the audit chain, oldest first (reads the DB directly).
    pub fn audit_entries(&self) -> Vec<Value> {
        let out = self.cli(&["--json", "audit", "list", "--limit", "1000"]);
        assert!(out.status.success(), "{}", output_text(&out));
        let mut v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        v.reverse();
        v
    }

    /// Waits up to `timeout` until the hub has audited an entry with
    /// `action` (and, with `detail`, whose detail field holds that text),
    /// asking through the admin API.
    pub async fn wait_audited(
        &self,
        action: &str,
        detail: Option<(&str, &str)>,
        timeout: Duration,
    ) -> bool {
        let admin = self.admin();
        wait_for(timeout, || async {
            let query = sonde_admin::api::AuditQuery {
                action: Some(action.into()),
                ..Default::default()
            };
            admin.audit(&query).await.is_ok_and(|page| {
                page.entries.iter().any(|e| match detail {
                    None => true,
                    Some((key, text)) => e.detail[key].as_str().unwrap_or("").contains(text),
                })
            })
        })
        .await
    }

    /// Audit entries with this action.
    pub fn audit_actions(&self, action: &str) -> Vec<Value> {
        self.audit_entries()
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect()
    }

    /// `sonde-hub audit verify` must say OK.
    pub fn assert_audit_ok(&self) {
        let out = self.cli(&["audit", "verify"]);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("OK"),
            "audit verify failed: {}",
            output_text(&out)
        );
    }

    /// Resident memory of the hub process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("running hub");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            return child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An agent (its config, data dir and process).
pub struct Agent {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    pub binary: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// An agent config in `scratch/<name>/agent.toml` with `extra` settings.
    pub fn new(scratch: &Scratch, name: &str, extra: &str) -> Agent {
        let dir = scratch.agent_dir(name);
        let data = dir.join("data");
        let config = dir.join("agent.toml");
        let packs = dir.join("packs.d");
        std::fs::create_dir_all(&packs).unwrap();
        chown(&packs);
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\npacks_dir = {:?}\n{extra}\n",
                data.display().to_string(),
                packs.display().to_string()
            ),
        )
        .unwrap();
        chown(&config);
        Agent {
            name: name.into(),
            log: dir.join("agent.log"),
            dir,
            config,
            data,
            binary: bin("sonde-agent"),
            child: None,
        }
    }

    pub fn packs_dir(&self) -> PathBuf {
        self.dir.join("packs.d")
    }

    /// Adds a declarative pack `packs.d/<name>/pack.toml`.
    pub fn add_pack(&self, name: &str, manifest: &str) {
        let d = self.packs_dir().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("pack.toml"), manifest).unwrap();
        chown(&d);
        chown(&d.join("pack.toml"));
    }

    /// A command running this agent binary as the agent identity.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "info");
        if let Some(id) = agent_identity() {
            c.uid(id.uid).gid(id.gid);
        }
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Makes a publisher key with `sonde-agent packs keygen` (as the
    /// agent's user, as a publisher would): (secret key file, public key).
    pub fn publisher_key(&self) -> (PathBuf, String) {
        let key = self.dir.join("publisher.key");
        let out = self.output(&["packs", "keygen", key.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (key, String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Enrolls in the background (it waits for approval).
    pub fn spawn_enroll(&self, hub: &Hub, token: &str, ca: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("enroll.log"))
            .unwrap();
        self.command(&[
            "enroll",
            "--hub",
            &hub.agent_addr(),
            "--token",
            token,
            "--ca-sha256",
            ca,
            "--name",
            &self.name,
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
    }

    pub fn enroll_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("enroll.log")).unwrap_or_default()
    }

    /// Enrolls with an auto-approved token; panics on failure.
    pub fn enroll_auto(&self, hub: &Hub) {
        let (token, ca) = hub.token(true);
        let out = self.output(&[
            "enroll",
            "--hub",
            &hub.agent_addr(),
            "--token",
            &token,
            "--ca-sha256",
            &ca,
            "--name",
            &self.name,
        ]);
        assert!(out.status.success(), "enroll failed: {}", output_text(&out));
    }

    /// Starts `sonde-agent run`.
    pub fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut c = self.command(&["run"]);
        c.stdout(log.try_clone().unwrap()).stderr(log);
        self.child = Some(c.spawn().unwrap());
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Has the process exited? (its status if so)
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = wait_child(&mut child, Duration::from_secs(20));
        }
    }

    /// Waits until the hub lists this agent with `state`.
    pub async fn wait_state(&self, hub: &Hub, state: &str, timeout: Duration) -> bool {
        let admin = hub.admin();
        wait_for(timeout, || {
            let admin = admin.clone();
            let name = self.name.clone();
            let state = state.to_owned();
            async move {
                admin
                    .agents()
                    .await
                    .map(|l| {
                        l.iter()
                            .any(|a| a.name == name && a.state.as_str() == state)
                    })
                    .unwrap_or(false)
            }
        })
        .await
    }

    /// `sonde-agent probe --stdio [--local]`: writes `requests` (one per
    /// line, from another thread), returns the exit status and the replies.
    pub fn probe_stdio(
        &self,
        local: bool,
        requests: Vec<String>,
    ) -> (std::process::ExitStatus, Vec<Value>) {
        let mut args = vec!["probe", "--stdio"];
        if local {
            args.push("--local");
        }
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            for line in requests {
                writeln!(stdin, "{line}").unwrap();
            }
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let replies = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (out.status, replies)
    }

    /// Agent id from the data dir.
    pub fn agent_id(&self) -> String {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(self.data.join("hub.json")).unwrap())
                .unwrap();
        v["agent_id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Enrolls (auto-approved) and starts an agent, waiting until it is online.
pub async fn online_agent(scratch: &Scratch, hub: &Hub, name: &str, extra: &str) -> Agent {
    let mut agent = Agent::new(scratch, name, extra);
    agent.enroll_auto(hub);
    agent.run();
    assert!(
        agent
            .wait_state(hub, "online", Duration::from_secs(30))
            .await,
        "agent {name} did not come online; agent log:\n{}\nhub log:\n{}",
        agent.log_text(),
        hub.log_text()
    );
    agent
}

/// The zfs pack's standard fixture dataset in `scratch/zfs`, and the agent
/// config line that puts its fake `zfs`/`zpool` first on the command path.
pub fn zfs_fixture(scratch: &Scratch) -> (sonde_pack_zfs::fixture::Fixture, String) {
    let fixture = sonde_pack_zfs::fixture::Fixture::standard(
        &scratch.path().join("zfs"),
        &bin("sonde-zfs-fixture"),
    )
    .unwrap();
    let config = format!("command_path = {:?}\n", fixture.search_path());
    (fixture, config)
}

/// A declarative test pack with harmless probes (echo, sleep) and one
/// `interact` probe, for the tests that need packs without depending on
/// the machine.
pub const TEST_PACK: &str = r#"
name = "e2e"
version = "1.0.0"
description = "End-to-end test probes"
approval = "operator"

[[probes]]
name = "echo"
description = "Prints its argument"
exec = ["echo", "{text}"]
parse = "text"
[[probes.params]]
name = "text"
type = "string"
max_len = 200
required = true

[[probes]]
name = "secrets"
description = "Prints things that look like secrets"
exec = ["echo", "DB_PASSWORD=hunter2 aws=AKIAIOSFODNN7EXAMPLE"]
parse = "text"

[[probes]]
name = "sleep"
description = "Sleeps"
exec = ["sleep", "{seconds}"]
parse = "text"
timeout_ms = 60000
[[probes.params]]
name = "seconds"
type = "integer"
min = 0
max = 30
required = true

[[probes]]
name = "restart"
description = "Pretends to restart something (needs interact)"
capability = "interact"
exec = ["true"]
parse = "text"

[[runbooks]]
category = "e2e"
description = "End-to-end runbook"
steps = [{ probe = "echo", params = { text = "from the runbook" } }, { probe = "secrets" }]
"#;

/// A test pack that needs no approval (all `observe`), for `sonde-agent
/// probe --local`.
pub const LOCAL_PACK: &str = r#"
name = "loc"
version = "1.0.0"
description = "Local test probes"
approval = "auto"

[[probes]]
name = "echo"
description = "Prints its argument"
exec = ["echo", "{text}"]
parse = "text"
[[probes.params]]
name = "text"
type = "string"
max_len = 200
required = true
[[probes.params]]
name = "times"
type = "integer"
min = 1
max = 3

[[probes]]
name = "fail"
description = "Always fails"
exec = ["false"]
parse = "text"

[[probes]]
name = "secrets"
description = "Prints things that look like secrets"
exec = ["echo", "api_key=abc123"]
parse = "text"
"#;

/// Writes a file as the agent identity would own it.
pub fn write_owned(path: &Path, contents: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(contents).unwrap();
    chown(path);
}

/// Runs a probe through the admin API.
pub async fn admin_probe(
    hub: &Hub,
    agent: &str,
    probe: &str,
    params: Value,
) -> anyhow::Result<sonde_admin::api::ProbeRunResult> {
    let run = sonde_admin::api::ProbeRun {
        agent: agent.into(),
        probe: probe.into(),
        params: params.as_object().cloned().unwrap_or_default(),
    };
    Ok(hub.admin().probe(&run).await?)
}

/// An rmcp client connected to the hub's MCP endpoint with `key`.
pub async fn mcp_client(hub: &Hub, key: &str) -> anyhow::Result<McpClient> {
    let url = hub
        .run
        .mcp_url
        .clone()
        .context("the hub has no MCP endpoint")?;
    mcp_client_at(&url, &hub.ca_pem(), key).await
}

/// A connected rmcp client.
pub type McpClient = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// An rmcp client for an MCP URL whose TLS certificate comes from `ca_pem`.
pub async fn mcp_client_at(url: &str, ca_pem: &str, key: &str) -> anyhow::Result<McpClient> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        .build()?;
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(key.to_owned()),
    );
    match ().serve(transport).await {
        Ok(c) => Ok(c),
        Err(e) => bail!("MCP initialize failed: {e}"),
    }
}

/// Calls an MCP tool; returns (is_error, structured content).
pub async fn call_tool(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    args: Value,
) -> (bool, Value) {
    let params = rmcp::model::CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("call_tool {tool}: {e}"));
    (
        r.is_error.unwrap_or(false),
        r.structured_content.unwrap_or(Value::Null),
    )
}

/// A raw HTTPS request to the MCP URL (for tests of what clients must not get).
pub async fn mcp_raw(
    hub: &Hub,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes())?)
        .build()?;
    let mut req = client
        .post(hub.run.mcp_url.clone().context("no MCP URL")?)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}
