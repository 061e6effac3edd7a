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
//! `claude mcp add` line with the line that starts Claude Code trusting the
//! hub CA, a `curl` that calls a tool (absolute, shell-quoted paths: they
//! work from any directory), and how to open the console. Ctrl-C stops the
//! hub and the agent.
//!
//! Before anything starts, the two ports are checked ([`ports`]): a busy
//! one fails at once, naming its holder. Under `cargo run`, the agent, the
//! console and the fake `zfs` are built in the user's environment
//! ([`build`]) so that a re-run compiles nothing. On a machine without a
//! ZFS pool the zfs pack reads a sample pool, labelled as sample data
//! ([`zfs_sample`]).

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

pub mod build;
pub mod ports;
pub mod zfs_sample;

/// Three questions for an assistant about the sample pool (the README's
/// first section shows them too).
pub const SAMPLE_QUESTIONS: [&str; 3] = [
    "On the sample pool, when did nginx/nginx.conf in sample/apps change, and what changed each time?",
    "The photo site on the sample pool answers 502 for /api/ since last week: find the change that broke it and show me the line.",
    "What was deleted or renamed in sample/home over the last two weeks, and what did the deleted website's index.html say?",
];

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
    uzers::get_user_by_name(name).map(|u| RunAs {
        uid: u.uid(),
        gid: u.primary_group_id(),
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

/// Builds the agent, the console and the sample pool's fake `zfs` when
/// the demo runs under `cargo run` (a no-op when they are up to date),
/// with the same profile, in the workspace this binary was built from.
fn build_binaries(exe_dir: &Path) -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let release = exe_dir.file_name().is_some_and(|n| n == "release");
    let target = exe_dir.parent().unwrap_or(exe_dir);
    // Wherever `cargo run` was started (e.g. with --manifest-path).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    say!("Building sonde-agent, sonde-console and the sample pool's fake zfs (if needed)…");
    for args in build::invocations(release) {
        let mut c = build::cargo_command(Path::new(&cargo), target);
        c.args(&args).stdin(Stdio::null());
        if workspace.exists() {
            c.arg("--manifest-path").arg(&workspace);
        }
        let status = c.status().context("running cargo build")?;
        if !status.success() {
            bail!("`cargo {}` failed (see above)", args.join(" "));
        }
    }
    Ok(())
}

/// `name` next to this binary.
fn sibling(exe_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = exe_dir.join(name);
    if !path.exists() {
        bail!(
            "{name} was not found in {}; build it with `cargo build --release -p {}`",
            exe_dir.display(),
            if name == "sonde-zfs-fixture" {
                "sonde-pack-zfs --features fixture --bin sonde-zfs-fixture"
            } else {
                name
            }
        );
    }
    Ok(path)
}

/// Shell-quotes `s` for the commands the demo prints (POSIX `sh`).
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Fails at once when a port is taken, naming who holds it, and suggests
/// `--port-base` with two ports that are free.
fn check_ports(agent_port: u16, mcp_port: u16) -> anyhow::Result<()> {
    let busy = ports::check(&[
        ports::Wanted {
            port: agent_port,
            what: "agent endpoint",
        },
        ports::Wanted {
            port: mcp_port,
            what: "MCP endpoint",
        },
    ]);
    if busy.is_empty() {
        return Ok(());
    }
    let mut msg: Vec<String> = busy.iter().map(|b| b.to_string()).collect();
    let free_base = (1..=50u16)
        .filter_map(|i| agent_port.max(mcp_port).checked_add(i * 2))
        .find(|b| {
            b.checked_add(1).is_some()
                && ports::check(&[
                    ports::Wanted { port: *b, what: "" },
                    ports::Wanted {
                        port: b + 1,
                        what: "",
                    },
                ])
                .is_empty()
        });
    msg.push(match free_base {
        Some(b) => format!(
            "Stop it, or run the demo on other ports: `cargo run --release -p sonde-hub -- demo --port-base {b}` (agents on {b}, MCP on {}).",
            b + 1
        ),
        None => "Stop it, or run the demo on other ports with `--port-base PORT` (agents on PORT, MCP on PORT+1).".into(),
    });
    bail!("{}", msg.join("\n"))
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

/// The agent's config: written by the demo, rewritten when what it should
/// say changed (a change is attestation drift, which the demo accepts).
fn agent_config(agent_root: &Path, sample: Option<&zfs_sample::Sample>) -> String {
    let mut text = format!(
        "# Written by `sonde-hub demo` (rewritten on each run).\ndata_dir = {:?}\npacks_dir = {:?}\n",
        agent_root.join("data").display().to_string(),
        agent_root.join("packs.d").display().to_string()
    );
    if let Some(sample) = sample {
        text.push_str(&format!(
            "\n# No ZFS pool here: the zfs pack reads the demo's sample pool, whose fake\n# `zfs` and `zpool` come first on the command path.\ncommand_path = {:?}\n\n[sample_data]\nzfs = {:?}\n",
            format!(
                "{}:{}",
                sample.bin.display(),
                zfs_sample::DEFAULT_SEARCH_PATH
            ),
            zfs_sample::LABEL
        ));
    }
    text
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Caught from the start: a Ctrl-C or SIGTERM that arrives while the
    // demo starts up stops it cleanly once it is up, instead of killing it
    // and leaving its hub and agent behind.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (agent_port, mcp_port) = args.ports();
    // A busy port fails now, not after a build and a 30 s wait.
    check_ports(agent_port, mcp_port)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let hub_dir = dir.join("hub");
    let exe = std::env::current_exe()?;
    let exe_dir = exe
        .parent()
        .context("no directory for the current executable")?
        .to_path_buf();
    build_binaries(&exe_dir)?;
    let agent_bin_src = sibling(&exe_dir, "sonde-agent")?;
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
    let as_agent = |c: &mut Command| {
        if let Some(id) = who {
            c.uid(id.uid).gid(id.gid);
        }
    };

    // ZFS: this machine's pool, or the sample.
    let choice = if args.sample_zfs {
        zfs_sample::Choice::Always
    } else if args.no_sample_zfs {
        zfs_sample::Choice::Never
    } else {
        zfs_sample::Choice::Auto
    };
    let pools = if choice == zfs_sample::Choice::Never {
        zfs_sample::Pools::Unknown("not checked".into())
    } else {
        zfs_sample::detect(zfs_sample::DEFAULT_SEARCH_PATH)
    };
    let (use_sample, why) = zfs_sample::decide(choice, &pools);
    say!("{why}");
    let sample = if use_sample {
        let built = sibling(&exe_dir, "sonde-zfs-fixture")
            .and_then(|fixture| zfs_sample::prepare(&agent_root, &fixture, as_agent));
        match built {
            Ok(s) => Some(s),
            Err(e) if choice == zfs_sample::Choice::Auto => {
                say!("The sample ZFS pool is not available: {e:#}");
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let old_sample = agent_root.join("sample-zfs");
    if sample.is_none() && old_sample.join("bin/fixture.json").is_file() {
        // A sample from an earlier run is no longer served: remove it.
        if let Err(e) = std::fs::remove_dir_all(&old_sample) {
            tracing::warn!(error = %e, "could not remove {}", old_sample.display());
        }
    }
    let config = agent_root.join("agent.toml");
    let config_text = agent_config(&agent_root, sample.as_ref());
    if std::fs::read_to_string(&config).ok().as_deref() != Some(config_text.as_str()) {
        std::fs::write(&config, &config_text)?;
        chown(&config, who)?;
    }
    let agent_cmd = |sub: &[&str]| {
        let mut c = Command::new(&agent_bin);
        c.arg("--config").arg(&config).args(sub);
        as_agent(&mut c);
        c
    };

    // The hub.
    let mut children = Children(Vec::new());
    let hub_log = dir.join("hub.log");
    let hub = Command::new(&exe)
        .arg("--data")
        .arg(&hub_dir)
        .args([
            "serve",
            "--agent-listen",
            &format!("127.0.0.1:{agent_port}"),
            "--mcp-listen",
            &format!("127.0.0.1:{mcp_port}"),
        ])
        .stdout(log_file(&hub_log)?)
        .stderr(log_file(&hub_log)?)
        .stdin(Stdio::null())
        .spawn()?;
    children.0.push(("the hub", hub));
    let admin = AdminClient::for_data_dir(&hub_dir).with_timeout(Duration::from_secs(30));
    let start = Instant::now();
    let mut hub_exit = None;
    while start.elapsed() < Duration::from_secs(30) {
        if admin.status().await.is_ok() {
            break;
        }
        // A hub that exits (a port taken since the check, a bad data dir)
        // fails the demo now, with its last words.
        if let Some((_, child)) = children.0.first_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            hub_exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if hub_exit.is_some() || admin.status().await.is_err() {
        let log = std::fs::read_to_string(&hub_log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        bail!(
            "the hub {} (agent port {agent_port}, MCP port {mcp_port}); last lines of {}:\n{}",
            match hub_exit {
                Some(s) => format!("exited at start ({s})"),
                None => "did not answer within 30 s".into(),
            },
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
            &format!("localhost:{agent_port}"),
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
    // The demo is the operator: accept a rebuilt or reconfigured agent,
    // approve what is ready.
    if admin
        .agents()
        .await?
        .iter()
        .any(|a| a.name == "local" && a.quarantine_reason.is_some())
    {
        say!(
            "The agent changed since the last run (new build or settings); accepting its new attestation as the operator."
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
        admin
            .decide_pack("local", &pack.name, sonde_admin::api::PackAction::Approve)
            .await?;
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
    let zfs_active = |d: &sonde_admin::api::AgentDetail| {
        d.packs
            .iter()
            .any(|p| p.name == "zfs" && p.state == PackState::Active)
    };
    if sample.is_some() {
        // The approval reaches the agent over its link; the questions below
        // assume the pack answers.
        wait_for(
            Duration::from_secs(30),
            "the zfs pack to become active",
            || async { admin.agent("local").await.is_ok_and(|d| zfs_active(&d)) },
        )
        .await?;
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
    let ca_q = sh_quote(&ca.display().to_string());
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
        ca.display()
    );
    say!();
    say!("Connect Claude Code: add the server, then start Claude Code trusting the hub's CA:");
    say!("  claude mcp add --transport http sonde {url} --header \"Authorization: Bearer {key}\"");
    say!("  NODE_EXTRA_CA_CERTS={ca_q} claude");
    say!();
    say!("Call a tool with curl:");
    say!(
        "  curl -sS --cacert {ca_q} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: list_agents' {url} -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"list_agents\",\"arguments\":{{}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'"
    );
    say!();
    if sample.is_some() {
        say!(
            "SAMPLE DATA: this machine has no ZFS pool, so the zfs pack reads a generated sample pool"
        );
        say!(
            "`sample` (datasets sample/apps and sample/home, 14 daily snapshots): not your data. Ask:"
        );
        for (i, q) in SAMPLE_QUESTIONS.iter().enumerate() {
            say!("  {}. \"{q}\"", i + 1);
        }
        say!();
    } else if admin.agent("local").await.is_ok_and(|d| zfs_active(&d)) {
        say!(
            "Ask about your pool, e.g. \"Is my pool healthy, and are snapshots still being taken?\""
        );
        say!();
    }
    say!("Open the operator console:");
    let console = exe_dir.join("sonde-console");
    say!(
        "  {} --data {}",
        if console.exists() {
            sh_quote(&console.display().to_string())
        } else {
            "sonde-console".into()
        },
        sh_quote(&hub_dir.display().to_string())
    );
    say!();
    say!(
        "Logs: {} and {}. Press Ctrl-C to stop.",
        hub_log.display(),
        agent_log.display()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    // Until Ctrl-C / SIGTERM (caught since the start), or a child dies.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let reason = loop {
        tokio::select! {
            _ = int.recv() => break "stopping".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_paths_are_quoted_for_the_shell() {
        assert_eq!(
            sh_quote("/srv/sonde-demo/hub/ca.crt"),
            "/srv/sonde-demo/hub/ca.crt"
        );
        assert_eq!(
            sh_quote("/home/me/my demo/ca.crt"),
            "'/home/me/my demo/ca.crt'"
        );
        assert_eq!(sh_quote("/tmp/it's"), "'/tmp/it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn the_agent_config_labels_the_sample_and_puts_its_tools_first() {
        let root = Path::new("/var/lib/sonde-demo");
        let plain = agent_config(root, None);
        assert!(!plain.contains("sample_data") && !plain.contains("command_path"));
        let sample = zfs_sample::Sample {
            bin: root.join("sample-zfs/bin"),
        };
        let text = agent_config(root, Some(&sample));
        assert!(text.contains(&format!(
            "command_path = \"/var/lib/sonde-demo/sample-zfs/bin:{}\"",
            zfs_sample::DEFAULT_SEARCH_PATH
        )));
        assert!(text.contains("[sample_data]\nzfs = "));
        let parsed: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            parsed["sample_data"]["zfs"].as_str(),
            Some(zfs_sample::LABEL)
        );
    }
}
