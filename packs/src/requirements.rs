//! Does this machine, for the agent's user, have what a pack needs?
//!
//! Requirements are checked for the running process (its user and its
//! actual groups, as systemd's `SupplementaryGroups=` sets them), and each
//! missing one comes with the command that fixes it.

use std::path::Path;

use crate::exec::CommandRunner;
use crate::manifest::{Detect, Requirements};

/// Who the agent runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: u32,
    /// Real, effective and supplementary group ids of this process.
    pub gids: Vec<u32>,
}

impl Identity {
    /// The running process, from `/proc/self/status` and the user database.
    pub fn current() -> Identity {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = field("Uid:")
            .first()
            .copied()
            .unwrap_or_else(|| rustix::process::getuid().as_raw());
        let mut gids = field("Gid:");
        gids.extend(field("Groups:"));
        gids.sort_unstable();
        gids.dedup();
        let user = user_name(uid).unwrap_or_else(|| uid.to_string());
        Identity { user, uid, gids }
    }
}

/// The name of user `uid`, through the C library (so NSS users — LDAP,
/// systemd `DynamicUser` — are found too).
pub fn user_name(uid: u32) -> Option<String> {
    uzers::get_user_by_uid(uid).map(|u| u.name().to_string_lossy().into_owned())
}

/// The gid of group `name`, through the C library.
pub fn group_id(name: &str) -> Option<u32> {
    uzers::get_group_by_name(name).map(|g| g.gid())
}

/// The result of checking a pack's requirements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequirementCheck {
    /// Each missing requirement, with what to do about it.
    pub missing: Vec<String>,
    /// What the pack is granted when approved, in OS terms.
    pub grants: Vec<String>,
}

impl RequirementCheck {
    pub fn satisfied(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Checks `req` for `who`; commands are looked up with `runner`.
pub fn check(req: &Requirements, who: &Identity, runner: &dyn CommandRunner) -> RequirementCheck {
    let mut out = RequirementCheck::default();
    let hint = |key: &str, default: String| req.hints.get(key).cloned().unwrap_or(default);
    for group in &req.groups {
        out.grants.push(format!("membership of group `{group}`"));
        match group_id(group) {
            None => out.missing.push(hint(
                group,
                format!("group `{group}`: it does not exist on this machine (is the software installed?)"),
            )),
            Some(gid) if !who.gids.contains(&gid) => out.missing.push(hint(
                group,
                format!(
                    "group `{group}`: run `usermod -aG {group} {user}` (or add `SupplementaryGroups={group}` to the sonde-agent unit), then restart sonde-agent",
                    user = who.user
                ),
            )),
            Some(_) => {}
        }
    }
    for file in &req.files {
        out.grants.push(format!("read access to `{file}`"));
        if !accessible(file, rustix::fs::Access::READ_OK) {
            let why = if Path::new(file).exists() {
                "is not readable by"
            } else {
                "does not exist for"
            };
            out.missing.push(hint(
                file,
                format!("file `{file}` {why} user `{}`", who.user),
            ));
        }
    }
    for socket in &req.sockets {
        out.grants
            .push(format!("read/write access to socket `{socket}`"));
        if !accessible(
            socket,
            rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
        ) {
            let why = if Path::new(socket).exists() {
                "is not read/writable by"
            } else {
                "does not exist for"
            };
            out.missing.push(hint(
                socket,
                format!("socket `{socket}` {why} user `{}`", who.user),
            ));
        }
    }
    for command in &req.commands {
        out.grants
            .push(format!("running `{command}` (read-only subcommands only)"));
        if runner.resolve(command).is_none() {
            out.missing.push(hint(
                command,
                format!("command `{command}` is not installed (not found on the command path)"),
            ));
        }
    }
    out
}

fn accessible(path: &str, access: rustix::fs::Access) -> bool {
    rustix::fs::access(path, access).is_ok()
}

/// True if anything in `detect` is present: the pack is worth suggesting.
pub fn detect(detect: &Detect, runner: &dyn CommandRunner) -> bool {
    const UNIT_DIRS: &[&str] = &[
        "/etc/systemd/system",
        "/run/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ];
    detect.commands.iter().any(|c| runner.resolve(c).is_some())
        || detect.files.iter().any(|f| Path::new(f).exists())
        || detect
            .units
            .iter()
            .any(|u| UNIT_DIRS.iter().any(|d| Path::new(d).join(u).exists()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::SystemRunner;

    fn me() -> Identity {
        Identity::current()
    }

    #[test]
    fn current_identity_is_read() {
        let who = me();
        assert_eq!(who.uid, rustix::process::getuid().as_raw());
        assert!(!who.user.is_empty());
        assert!(who.gids.contains(&rustix::process::getgid().as_raw()));
    }

    #[test]
    fn missing_requirements_say_what_to_do() {
        let req = Requirements {
            groups: vec!["sonde-no-such-group".into()],
            files: vec!["/nonexistent/file".into()],
            sockets: vec!["/nonexistent/sock".into()],
            commands: vec!["sonde-no-such-command".into(), "ls".into()],
            hints: [(
                "/nonexistent/file".to_owned(),
                "install the thing".to_owned(),
            )]
            .into(),
        };
        let result = check(&req, &me(), &SystemRunner::default());
        assert!(!result.satisfied());
        assert_eq!(result.missing.len(), 4, "{:?}", result.missing);
        assert!(result.missing[0].contains("does not exist"));
        assert_eq!(result.missing[1], "install the thing");
        assert!(result.missing[3].contains("sonde-no-such-command"));
        assert_eq!(result.grants.len(), 5);
    }

    #[test]
    fn a_group_we_lack_names_usermod() {
        // `nogroup` exists on Debian and the test process is not in it.
        if group_id("nogroup").is_none() || me().gids.contains(&group_id("nogroup").unwrap()) {
            return;
        }
        let req = Requirements {
            groups: vec!["nogroup".into()],
            ..Requirements::default()
        };
        let result = check(&req, &me(), &SystemRunner::default());
        assert!(
            result.missing[0].contains("usermod -aG nogroup"),
            "{:?}",
            result.missing
        );
    }

    #[test]
    fn satisfied_requirements() {
        let req = Requirements {
            files: vec!["/etc/passwd".into()],
            commands: vec!["ls".into()],
            ..Requirements::default()
        };
        assert!(check(&req, &me(), &SystemRunner::default()).satisfied());
    }

    #[test]
    fn detection() {
        let runner = SystemRunner::default();
        assert!(detect(
            &Detect {
                commands: vec!["ls".into()],
                ..Detect::default()
            },
            &runner
        ));
        assert!(!detect(
            &Detect {
                files: vec!["/nonexistent".into()],
                ..Detect::default()
            },
            &runner
        ));
    }
}
