//! `sonde-hub demo`: Sonde on this machine in one command.
//!
//! Creates (or reuses) `./sonde-demo`: a hub on loopback with its SQLite
//! file, and a local agent enrolled with an auto-approved token. The agent
//! runs unprivileged: as the invoking user, or — when started as root — as
//! the `sonde` system user (created if missing), with its own copy of the
//! agent binary and its data under `/var/lib/sonde-demo` when the demo
//! directory is not reachable by other users. The demo acts as the operator:
//! it approves the packs whose requirements are met and, on a rerun after a
//! rebuild, accepts the agent's new attestation. It then prints the MCP URL,
//! an API key (kept in `sonde-demo/mcp-key`, 0600, and reused), the
//! `claude mcp add` line, a `curl` that calls a tool, and how to open the
//! console. Ctrl-C stops the hub and the agent.

use anyhow::{Context, bail};
use sonde_admin::AdminClient;
use sonde_admin::api::{KeyCreate, TokenCreate};
use sonde_protocol::messages::PackState;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::DemoArgs;

/// Prints a line; a closed stdout (e.g. a pipe whose reader left) is not
/// worth dying for.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The system user the demo agent runs as when the demo is started as root.
pub const DEMO_USER: &str = "sonde";

#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| {
            Some(RunAs {
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })?
    })
}

/// The identity the agent runs as: `sonde` when we are root, else us.
fn agent_identity() -> anyhow::Result<Option<RunAs>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    if let Some(id) = lookup_user(DEMO_USER) {
        return Ok(Some(id));
    }
    say!("Creating the system user `{DEMO_USER}` for the agent (it never runs as root)…");
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            DEMO_USER,
        ])
        .status()
        .context("running useradd")?;
    if !status.success() {
        bail!(
            "could not create the `{DEMO_USER}` user with useradd; create it yourself and run the demo again"
        );
    }
    lookup_user(DEMO_USER)
        .map(Some)
        .context("the sonde user was created but cannot be found")
}

/// True if every ancestor of `path` can be traversed by other users.
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors().skip(1).all(|p| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

fn chown(path: &Path, id: Option<RunAs>) -> anyhow::Result<()> {
    if let Some(id) = id {
        std::os::unix::fs::chown(path, Some(id.uid), Some(id.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Finds `sonde-agent` next to this binary, building it when run by cargo.
fn agent_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("no directory for the current executable")?;
    let agent = dir.join("sonde-agent");
    if let Some(cargo) = std::env::var_os("CARGO") {
        // Running under `cargo run`: make sure the agent and console are built
        // with the same profile (a no-op when they are up to date).
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "--quiet",
            "-p",
            "sonde-agent",
            "-p",
            "sonde-console",
        ]);
        if release {
            c.arg("--release");
        }
        // The workspace this binary was built from, wherever `cargo run`
        // was started (e.g. with --manifest-path from another directory).
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        if workspace.exists() {
            c.arg("--manifest-path").arg(workspace);
        }
        say!("Building sonde-agent and sonde-console…");
        let status = c.status().context("running cargo build")?;
        if !status.success() {
            bail!("building sonde-agent failed");
        }
    }
    if !agent.exists() {
        bail!(
            "sonde-agent was not found next to {}; build it with `cargo build --release -p sonde-agent`",
            exe.display()
        );
    }
    Ok(agent)
}

struct Children(Vec<(&'static str, Child)>);

impl Children {
    fn stop_all(&mut self) {
        for (name, child) in self.0.iter_mut().rev() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(40) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                tracing::warn!("{name} did not stop in time; killing it");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?)
}

async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("timed out waiting for {what}")
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let hub_dir = dir.join("hub");
    let agent_bin_src = agent_binary()?;
    let who = agent_identity()?;
    let agent_root = if who.is_some() && !reachable_by_others(&dir) {
        PathBuf::from("/var/lib/sonde-demo")
    } else {
        dir.join("agent")
    };
    // First run: a hub on loopback.
    if !hub_dir.join("hub.db").exists() {
        say!("Creating the demo hub in {}…", hub_dir.display());
        crate::init::init(&hub_dir, &["localhost".into()], &[])?;
    }
    std::fs::create_dir_all(&agent_root)?;
    std::fs::set_permissions(&agent_root, std::fs::Permissions::from_mode(0o755))?;
    chown(&agent_root, who)?;
    // The agent runs its own copy of the binary, readable by its user.
    let agent_bin = agent_root.join("sonde-agent");
    let tmp = agent_root.join(".sonde-agent.new");
    std::fs::copy(&agent_bin_src, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &agent_bin)?;
    let config = agent_root.join("agent.toml");
    if !config.exists() {
        std::fs::write(
            &config,
            format!(
                "# Written by `sonde-hub demo`.\ndata_dir = {:?}\npacks_dir = {:?}\n",
                agent_root.join("data").display().to_string(),
                agent_root.join("packs.d").display().to_string()
            ),
        )?;
        chown(&config, who)?;
    }
    let agent_cmd = |sub: &[&str]| {
        let mut c = Command::new(&agent_bin);
        c.arg("--config").arg(&config).args(sub);
        if let Some(id) = who {
            c.uid(id.uid).gid(id.gid);
        }
        c
    };

    // The hub.
    let me = std::env::current_exe()?;
    let mut children = Children(Vec::new());
    let hub_log = dir.join("hub.log");
    let hub = Command::new(&me)
        .arg("--data")
        .arg(&hub_dir)
        .args([
            "serve",
            "--agent-listen",
            &format!("127.0.0.1:{}", args.agent_port),
            "--mcp-listen",
            &format!("127.0.0.1:{}", args.mcp_port),
        ])
        .stdout(log_file(&hub_log)?)
        .stderr(log_file(&hub_log)?)
        .stdin(Stdio::null())
        .spawn()?;
    children.0.push(("the hub", hub));
    let admin = AdminClient::for_data_dir(&hub_dir).with_timeout(Duration::from_secs(30));
    let started = wait_for(Duration::from_secs(30), "the hub to start", || async {
        admin.status().await.is_ok()
    })
    .await;
    if started.is_err() {
        let log = std::fs::read_to_string(&hub_log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        bail!(
            "the hub did not start (ports {} and {} free?); last lines of {}:\n{}",
            args.agent_port,
            args.mcp_port,
            hub_log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let status = admin.status().await?;

    // The agent: enroll once, then run.
    if !agent_root.join("data/hub.json").exists() {
        say!("Enrolling the local agent…");
        let token = admin
            .create_token(&TokenCreate {
                ttl_s: Some(600),
                label: Some("demo".into()),
                auto_approve: true,
            })
            .await?;
        let out = agent_cmd(&[
            "enroll",
            "--hub",
            &format!("localhost:{}", args.agent_port),
            "--token",
            &token.token,
            "--ca-sha256",
            &token.ca_sha256,
            "--name",
            "local",
        ])
        .output()?;
        if !out.status.success() {
            bail!(
                "enrolling the local agent failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let agent_log = dir.join("agent.log");
    let agent = agent_cmd(&["run"])
        .stdout(log_file(&agent_log)?)
        .stderr(log_file(&agent_log)?)
        .stdin(Stdio::null())
        .spawn()?;
    children.0.push(("the agent", agent));
    wait_for(Duration::from_secs(60), "the agent to connect", || async {
        admin
            .agents()
            .await
            .map(|a| a.iter().any(|a| a.name == "local" && a.connected))
            .unwrap_or(false)
    })
    .await
    .with_context(|| format!("see {}", agent_log.display()))?;
    // The demo is the operator: accept a rebuilt agent, approve what is ready.
    if admin
        .agents()
        .await?
        .iter()
        .any(|a| a.name == "local" && a.quarantine_reason.is_some())
    {
        say!(
            "The agent changed since the last run (new build?); accepting its new attestation as the operator."
        );
        admin.accept_baseline("local").await?;
        wait_for(
            Duration::from_secs(60),
            "the agent to reconnect",
            || async {
                admin
                    .agents()
                    .await
                    .map(|a| {
                        a.iter().any(|a| {
                            a.name == "local" && a.connected && a.quarantine_reason.is_none()
                        })
                    })
                    .unwrap_or(false)
            },
        )
        .await?;
    }
    let detail = admin.agent("local").await?;
    for pack in detail
        .packs
        .iter()
        .filter(|p| p.state == PackState::Pending)
    {
        admin.decide_pack("local", &pack.name, "approve").await?;
        say!("Approved pack {} on the local agent.", pack.name);
    }
    for pack in detail
        .packs
        .iter()
        .filter(|p| p.state == PackState::Unavailable && p.detected)
    {
        say!(
            "Pack {} is unavailable: {}",
            pack.name,
            pack.missing.join("; ")
        );
    }

    // An API key, kept for the next run.
    let key_file = dir.join("mcp-key");
    let existing = std::fs::read_to_string(&key_file)
        .ok()
        .map(|k| k.trim().to_owned());
    let keys = admin.keys().await?;
    let usable = existing.filter(|k| {
        crate::store::keys::prefix_of(k).is_some_and(|p| {
            keys.iter()
                .any(|i| i.prefix == p && i.revoked_at_ms.is_none())
        })
    });
    let key = match usable {
        Some(k) => k,
        None => {
            let created = admin
                .create_key(&KeyCreate {
                    name: "demo".into(),
                    agents: vec![],
                    probes: vec![],
                    tools: vec![],
                    max_capability: Default::default(),
                    expires_in_s: None,
                })
                .await?;
            let _ = std::fs::remove_file(&key_file);
            crate::datadir::write_private(&key_file, created.key.as_bytes())?;
            created.key
        }
    };
    let url = status
        .mcp_url
        .clone()
        .context("the hub has no MCP endpoint")?;
    let ca = hub_dir.join("ca.crt");
    let shown = |p: &Path| {
        p.strip_prefix(std::env::current_dir().unwrap_or_default())
            .map(|r| format!("./{}", r.display()))
            .unwrap_or_else(|_| p.display().to_string())
    };
    say!();
    say!(
        "Sonde is running: a hub and a local agent ({}).",
        if who.is_some() {
            format!("agent as user `{DEMO_USER}`")
        } else {
            "agent as you".into()
        }
    );
    say!();
    say!("  MCP URL   {url}");
    say!("  API key   {key}");
    say!(
        "  Hub CA    {}   (the MCP endpoint's TLS certificate is issued by it)",
        shown(&ca)
    );
    say!();
    say!(
        "Connect Claude Code (it must trust the hub CA: start it with NODE_EXTRA_CA_CERTS={}):",
        shown(&ca)
    );
    say!("  claude mcp add sonde --transport http {url} --header \"Authorization: Bearer {key}\"");
    say!();
    say!("Call a tool with curl:");
    say!(
        "  curl -s --cacert {} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: list_agents' {url} -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"list_agents\",\"arguments\":{{}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'",
        shown(&ca)
    );
    say!();
    say!("Open the operator console:");
    say!(
        "  cargo run --release -p sonde-console -- --data {}",
        shown(&hub_dir)
    );
    say!();
    say!(
        "Logs: {} and {}. Press Ctrl-C to stop.",
        shown(&hub_log),
        shown(&agent_log)
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    // Until Ctrl-C / SIGTERM, or a child dies.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let reason = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break "stopping".to_owned(),
            _ = term.recv() => break "stopping".to_owned(),
            _ = tick.tick() => {
                let dead = children.0.iter_mut().find_map(|(name, c)| matches!(c.try_wait(), Ok(Some(_))).then_some(*name));
                if let Some(name) = dead {
                    break format!("{name} exited unexpectedly; see the logs");
                }
            }
        }
    };
    say!("{reason}: shutting down the agent and the hub…");
    tokio::task::spawn_blocking(move || children.stop_all()).await?;
    say!("Stopped. Run the same command again to pick up where you left off.");
    Ok(())
}
