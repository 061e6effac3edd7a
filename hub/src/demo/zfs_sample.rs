//! The demo's sample ZFS pool: whether to serve it, and setting it up.
//!
//! On a machine without a pool the zfs pack would be `unavailable`, and a
//! newcomer could not ask a single ZFS question. So, unless this machine
//! has a pool (or `--no-sample-zfs`), the demo builds a sample pool with
//! `sonde-zfs-fixture sample` (a dataset tree with a realistic history and
//! a fake `zfs`/`zpool` that print what OpenZFS would for it) and points
//! the agent's real zfs pack at it: the fake tools come first on the
//! agent's `command_path`, and `[sample_data] zfs = "…"` in its config
//! labels the pack as sample data wherever it is shown. `--sample-zfs`
//! forces it even when a pool exists.

use anyhow::{Context, bail};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the agent's zfs pack is labelled with when it serves the sample.
pub const LABEL: &str = "generated sample pool `sample` (sonde-hub demo): not this machine's ZFS";

/// The agent's default command path (`sonde_packs::exec::DEFAULT_SEARCH_PATH`),
/// after the sample's fake tools.
pub const DEFAULT_SEARCH_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `--sample-zfs` / `--no-sample-zfs` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Always,
    Never,
}

/// What this machine has, as far as the demo can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pools {
    /// Imported pools, by name.
    Found(Vec<String>),
    /// No pool, and why we know.
    None(String),
    /// ZFS is there but we could not list pools.
    Unknown(String),
}

/// Where a program would be found on `search_path`.
fn find_program(search_path: &str, name: &str) -> Option<PathBuf> {
    search_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Runs `program args…` with a deadline; (success, stdout, stderr).
fn run_bounded(program: &Path, args: &[&str], limit: Duration) -> Option<(bool, String, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Reads what `zpool list -H -o name` said. Messages that mean "ZFS is not
/// running here" count as no pool; other failures are unknown.
pub fn interpret_zpool_list(success: bool, stdout: &str, stderr: &str) -> Pools {
    let names: Vec<String> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "no pools available")
        .map(str::to_owned)
        .collect();
    if success {
        return if names.is_empty() {
            Pools::None("`zpool list` shows no pool".into())
        } else {
            Pools::Found(names)
        };
    }
    let said = stderr.trim();
    let not_running = [
        "no pools available",
        "modules are not loaded",
        "/dev/zfs",
        "failed to initialize the libzfs library",
        "zfs-fuse daemon is running",
        "connect: no such file or directory",
        "connect: connection refused",
    ];
    let lower = said.to_lowercase();
    if not_running.iter().any(|m| lower.contains(m)) {
        Pools::None(format!(
            "ZFS is installed but not running (`zpool list`: {})",
            said.lines().next().unwrap_or("")
        ))
    } else {
        Pools::Unknown(format!(
            "`zpool list` failed: {}",
            said.lines().next().unwrap_or("no message")
        ))
    }
}

/// The pools this machine has: the kernel's per-pool statistics
/// (`/proc/spl/kstat/zfs/<pool>/`, OpenZFS on Linux), else `zpool list`.
pub fn detect(search_path: &str) -> Pools {
    let kstat = Path::new("/proc/spl/kstat/zfs");
    if let Ok(entries) = std::fs::read_dir(kstat) {
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if !names.is_empty() {
            return Pools::Found(names);
        }
    }
    let Some(zpool) = find_program(search_path, "zpool") else {
        return Pools::None("no `zpool` command on this machine".into());
    };
    match run_bounded(
        &zpool,
        &["list", "-H", "-o", "name"],
        Duration::from_secs(10),
    ) {
        Some((ok, out, err)) => interpret_zpool_list(ok, &out, &err),
        None => Pools::Unknown(format!(
            "`{} list` did not answer within 10 s",
            zpool.display()
        )),
    }
}

/// Whether to serve the sample, and the line that tells the user why.
pub fn decide(choice: Choice, pools: &Pools) -> (bool, String) {
    match (choice, pools) {
        (Choice::Never, _) => (false, "Sample ZFS pool: off (--no-sample-zfs).".into()),
        (Choice::Always, Pools::Found(names)) => (
            true,
            format!(
                "Sample ZFS pool: on (--sample-zfs), although this machine has {}: the zfs pack shows the sample instead.",
                names.join(", ")
            ),
        ),
        (Choice::Always, _) => (true, "Sample ZFS pool: on (--sample-zfs).".into()),
        (Choice::Auto, Pools::Found(names)) => (
            false,
            format!(
                "ZFS: this machine has {} {}; the zfs pack reads it (no sample).",
                if names.len() == 1 { "pool" } else { "pools" },
                names.join(", ")
            ),
        ),
        (Choice::Auto, Pools::None(why)) => (
            true,
            format!(
                "No ZFS pool here ({why}): the zfs pack serves a SAMPLE pool so you can try it (--no-sample-zfs turns it off)."
            ),
        ),
        (Choice::Auto, Pools::Unknown(why)) => (
            false,
            format!(
                "Could not tell whether this machine has a ZFS pool ({why}); not using the sample pool (--sample-zfs forces it)."
            ),
        ),
    }
}

/// The sample as the agent sees it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The fake `zfs` / `zpool`: first on the agent's command path.
    pub bin: PathBuf,
}

/// Builds the sample afresh under `agent_root` with `fixture_bin` (the
/// `sonde-zfs-fixture` built with the agent), run as the agent's user so
/// that the agent can read everything in it.
pub fn prepare(
    agent_root: &Path,
    fixture_bin: &Path,
    as_user: impl Fn(&mut Command),
) -> anyhow::Result<Sample> {
    // The agent's user runs its own copy (the build dir may be private).
    let copy = agent_root.join("sonde-zfs-fixture");
    let tmp = agent_root.join(".sonde-zfs-fixture.new");
    std::fs::copy(fixture_bin, &tmp)
        .with_context(|| format!("copying {}", fixture_bin.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &copy)?;
    let dir = agent_root.join("sample-zfs");
    let mut c = Command::new(&copy);
    c.arg("sample").arg(&dir).stdin(Stdio::null());
    as_user(&mut c);
    let out = c
        .output()
        .with_context(|| format!("running {}", copy.display()))?;
    if !out.status.success() {
        bail!(
            "building the sample ZFS pool in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(Sample {
        bin: dir.join("bin"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zpool_answers_are_read_as_pools_none_or_unknown() {
        assert_eq!(
            interpret_zpool_list(true, "tank\nbackup\n", ""),
            Pools::Found(vec!["tank".into(), "backup".into()])
        );
        assert!(matches!(
            interpret_zpool_list(true, "no pools available\n", ""),
            Pools::None(_)
        ));
        assert!(matches!(interpret_zpool_list(true, "", ""), Pools::None(_)));
        for stderr in [
            "The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' as root to load them.",
            "connect: No such file or directory\nPlease make sure that the zfs-fuse daemon is running.\ninternal error: failed to initialize ZFS library",
            "Failed to initialize the libzfs library.",
        ] {
            assert!(
                matches!(interpret_zpool_list(false, "", stderr), Pools::None(_)),
                "{stderr}"
            );
        }
        assert!(matches!(
            interpret_zpool_list(false, "", "permission denied"),
            Pools::Unknown(_)
        ));
    }

    #[test]
    fn the_sample_is_used_only_without_a_pool_unless_forced() {
        let found = Pools::Found(vec!["tank".into()]);
        let none = Pools::None("no `zpool` command on this machine".into());
        let unknown = Pools::Unknown("`zpool list` failed: permission denied".into());
        assert!(!decide(Choice::Auto, &found).0);
        assert!(decide(Choice::Auto, &none).0);
        assert!(!decide(Choice::Auto, &unknown).0);
        assert!(decide(Choice::Always, &found).0);
        assert!(decide(Choice::Always, &unknown).0);
        assert!(!decide(Choice::Never, &none).0);
        // Each line says what happens and how to change it.
        assert!(decide(Choice::Auto, &none).1.contains("--no-sample-zfs"));
        assert!(decide(Choice::Auto, &unknown).1.contains("--sample-zfs"));
        assert!(decide(Choice::Auto, &found).1.contains("tank"));
    }

    #[test]
    fn programs_are_found_on_the_search_path_only() {
        assert!(find_program("/nonexistent:/also-not", "sh").is_none());
        assert!(find_program("/bin:/usr/bin", "sh").is_some());
        assert!(find_program("", "sh").is_none());
    }
}
