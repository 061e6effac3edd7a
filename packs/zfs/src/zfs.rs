//! The only way the pack runs `zfs` and `zpool`: a table of read-only
//! subcommands with the options each may take, checked on every call.
//!
//! [`Zfs::run`] refuses — before anything is executed — any subcommand that
//! is not in [`READ_ONLY`], any option not listed for it, and any operand
//! that is not a validated pool, dataset or snapshot name, a property list
//! or a number. No `destroy`, `rollback`, `snapshot`, `set`, `send`… can be
//! built, whatever a probe or a parameter does; the guarantee tests also
//! run every probe and assert that no argv holds a word of [`MUTATING`].
//!
//! Each command gets at most [`COMMAND_TIMEOUT`] (and never past the
//! probe's deadline); the runner kills its process group after that.

use sonde_packs::exec::{Argv, ExecError, ExecLimits, ExecOutput};
use sonde_packs::handler::{ProbeContext, ProbeError};
use sonde_protocol::schema::{DATASET, SNAPSHOT};
use std::time::{Duration, Instant};

use crate::parse::error_text;

/// One read-only subcommand and the options it may be given.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly {
    pub program: &'static str,
    pub subcommand: &'static str,
    /// Options without a value.
    pub flags: &'static [&'static str],
    /// Options whose value is the next argument.
    pub valued: &'static [&'static str],
}

/// Every command the pack can run. Nothing else is ever executed.
pub const READ_ONLY: &[ReadOnly] = &[
    ReadOnly {
        program: "zfs",
        subcommand: "list",
        flags: &["-H", "-p", "-r"],
        valued: &["-o", "-t", "-d"],
    },
    ReadOnly {
        program: "zfs",
        subcommand: "get",
        flags: &["-H", "-p", "-r"],
        valued: &["-o", "-d"],
    },
    ReadOnly {
        program: "zfs",
        subcommand: "diff",
        flags: &["-H", "-F"],
        valued: &[],
    },
    ReadOnly {
        program: "zfs",
        subcommand: "version",
        flags: &[],
        valued: &[],
    },
    ReadOnly {
        program: "zpool",
        subcommand: "list",
        flags: &["-H", "-p"],
        valued: &["-o"],
    },
    ReadOnly {
        program: "zpool",
        subcommand: "status",
        flags: &[],
        valued: &[],
    },
];

/// Subcommands (of `zfs` and `zpool`) that change something, or run
/// programs, or hand out data streams. None of these words may appear as
/// any element of an argv the pack builds ([`check_argv`] refuses them).
/// (`sync` is not here: it is also a dataset property, and `zpool sync`
/// is not in [`READ_ONLY`] either.)
pub const MUTATING: &[&str] = &[
    "destroy",
    "rollback",
    "snapshot",
    "snap",
    "clone",
    "promote",
    "rename",
    "set",
    "inherit",
    "mount",
    "unmount",
    "umount",
    "send",
    "receive",
    "recv",
    "allow",
    "unallow",
    "create",
    "upgrade",
    "hold",
    "release",
    "share",
    "unshare",
    "bookmark",
    "redact",
    "load-key",
    "unload-key",
    "change-key",
    "program",
    "channel",
    "add",
    "remove",
    "attach",
    "detach",
    "replace",
    "offline",
    "online",
    "clear",
    "scrub",
    "trim",
    "resilver",
    "import",
    "export",
    "labelclear",
    "initialize",
    "split",
    "reguid",
    "reopen",
    "checkpoint",
    "wait",
    "events",
    "history",
];

/// Longest a single `zfs`/`zpool` command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Most standard output kept from one command (a listing of 100,000
/// snapshots fits); past it the output is marked truncated.
pub const MAX_OUTPUT: usize = 64 << 20;

/// When one command must be done: [`COMMAND_TIMEOUT`] from `now`, and never
/// after the probe's deadline.
pub fn command_deadline(probe_deadline: Instant, now: Instant) -> Instant {
    probe_deadline.min(now + COMMAND_TIMEOUT)
}

/// Why an argv was refused by [`check_argv`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to run `{program} {subcommand}`: {reason}")]
pub struct Refused {
    pub program: String,
    pub subcommand: String,
    pub reason: String,
}

/// A property list operand: `used,available`, `all`, `written@snap`,
/// `com.sun:auto-snapshot`. Lower case first, so never an option.
fn is_property_list(text: &str) -> bool {
    !text.is_empty()
        && text.split(',').all(|prop| {
            let (name, at) = match prop.split_once('@') {
                Some((n, a)) => (n, Some(a)),
                None => (prop, None),
            };
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:.+-".contains(c))
                && at.is_none_or(|a| {
                    !a.is_empty()
                        && !a.starts_with('-')
                        && a.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.:+-".contains(c))
                })
        })
}

/// A field or type list (`name,used`, `filesystem,volume`).
fn is_word_list(text: &str) -> bool {
    !text.is_empty()
        && text
            .split(',')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'@'))
}

/// Checks an argv against [`READ_ONLY`]: the subcommand is listed, every
/// option is one it may take, every option value and operand is safe.
pub fn check_argv(program: &str, subcommand: &str, args: &[&str]) -> Result<(), Refused> {
    let refuse = |reason: String| Refused {
        program: program.to_owned(),
        subcommand: subcommand.to_owned(),
        reason,
    };
    if let Some(word) = std::iter::once(&subcommand)
        .chain(args)
        .find(|a| MUTATING.contains(a))
    {
        return Err(refuse(format!(
            "{word:?} is a mutating subcommand's name and never appears in a command the pack runs"
        )));
    }
    let entry = READ_ONLY
        .iter()
        .find(|c| c.program == program && c.subcommand == subcommand)
        .ok_or_else(|| refuse("not a read-only command; the zfs pack never runs it".into()))?;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        if entry.flags.contains(&arg) {
            i += 1;
            continue;
        }
        if entry.valued.contains(&arg) {
            let value = args
                .get(i + 1)
                .ok_or_else(|| refuse(format!("option {arg} needs a value")))?;
            let ok = match arg {
                "-d" => value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty(),
                _ => is_word_list(value),
            };
            if !ok {
                return Err(refuse(format!("bad value {value:?} for {arg}")));
            }
            i += 2;
            continue;
        }
        if arg.starts_with('-') {
            return Err(refuse(format!("option {arg:?} is not allowed")));
        }
        let operand_ok = DATASET.validate(arg).is_ok()
            || SNAPSHOT.validate(arg).is_ok()
            || is_property_list(arg);
        if !operand_ok {
            return Err(refuse(format!(
                "{arg:?} is not a validated pool, dataset, snapshot or property name"
            )));
        }
        i += 1;
    }
    Ok(())
}

/// Runs read-only `zfs`/`zpool` commands for one probe call.
#[derive(Debug)]
pub struct Zfs<'a> {
    ctx: &'a ProbeContext<'a>,
}

impl<'a> Zfs<'a> {
    pub fn new(ctx: &'a ProbeContext<'a>) -> Self {
        Zfs { ctx }
    }

    /// Runs `program subcommand args…` after [`check_argv`]. The exit status
    /// is not checked (see [`Zfs::ok`]); a timeout is an error.
    pub fn run(
        &self,
        program: &str,
        subcommand: &str,
        args: &[&str],
    ) -> Result<ExecOutput, ProbeError> {
        check_argv(program, subcommand, args).map_err(|e| ProbeError::Denied(e.to_string()))?;
        let argv = Argv::new(program).arg(subcommand).args(args);
        let deadline = command_deadline(self.ctx.deadline, Instant::now());
        let limits = ExecLimits {
            max_stdout: MAX_OUTPUT,
            ..ExecLimits::until(deadline)
        };
        let out = self.ctx.runner.run(&argv, &limits).map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(format!(
                "`{program}` is not installed (not on the agent's command path): this machine has no ZFS tools; install zfsutils-linux"
            )),
            other => ProbeError::Failed(other.to_string()),
        })?;
        if out.timed_out {
            return Err(ProbeError::Timeout);
        }
        Ok(out)
    }

    /// Like [`Zfs::run`], but a failed command is an error that names it.
    pub fn ok(
        &self,
        program: &str,
        subcommand: &str,
        args: &[&str],
    ) -> Result<ExecOutput, ProbeError> {
        let out = self.run(program, subcommand, args)?;
        if !out.success() {
            return Err(command_error(program, subcommand, &out));
        }
        Ok(out)
    }
}

/// True if the command failed because this ZFS lacks the subcommand or an
/// option (zfs-fuse: no `zfs diff`, no `zfs list -p`, no `zfs version`).
pub fn is_unsupported(out: &ExecOutput) -> bool {
    if out.success() {
        return false;
    }
    let err = error_text(&out.stderr);
    err.contains("unrecognized command")
        || err.contains("invalid option")
        || err.contains("bad property list")
        || err.contains("invalid property")
}

/// The agent's user, for delegation hints.
pub fn agent_user() -> String {
    sonde_packs::requirements::Identity::current().user
}

/// A typed error for a failed command, naming it and what to do.
pub fn command_error(program: &str, subcommand: &str, out: &ExecOutput) -> ProbeError {
    let err = error_text(&out.stderr);
    let lower = err.to_ascii_lowercase();
    if lower.contains("permission denied")
        || lower.contains("privilege")
        || lower.contains("must be root")
        || lower.contains("not permitted")
    {
        let perm = if subcommand == "diff" { "diff" } else { "" };
        let hint = if perm.is_empty() {
            format!(
                "the agent's user `{}` lacks the rights for it; see the zfs pack README for the ZFS delegation to grant",
                agent_user()
            )
        } else {
            format!(
                "grant it with `zfs allow -u {} {perm} POOL_OR_DATASET` (as root)",
                agent_user()
            )
        };
        return ProbeError::Denied(format!(
            "`{program} {subcommand}` was refused: {err}; {hint}"
        ));
    }
    if lower.contains("does not exist")
        || lower.contains("no such pool")
        || lower.contains("no such dataset")
        || lower.contains("could not find")
    {
        return ProbeError::NotFound(err);
    }
    if is_unsupported(out) {
        return ProbeError::Unsupported(format!(
            "this ZFS has no `{program} {subcommand}` in the form the pack uses ({err}); it is an older implementation (such as zfs-fuse)"
        ));
    }
    let status = match (out.code, out.signal) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".to_owned(),
    };
    ProbeError::Failed(format!(
        "`{program} {subcommand}` failed with {status}: {}",
        if err.is_empty() {
            "no error message"
        } else {
            &err
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_subcommands_and_options_pass() {
        assert!(
            check_argv(
                "zfs",
                "get",
                &["-H", "-p", "-o", "name,property,value", "used", "tank/home"]
            )
            .is_ok()
        );
        assert!(
            check_argv(
                "zfs",
                "list",
                &[
                    "-H",
                    "-p",
                    "-t",
                    "all",
                    "-d",
                    "1",
                    "-o",
                    "name,creation",
                    "tank/home"
                ]
            )
            .is_ok()
        );
        assert!(check_argv("zfs", "diff", &["-H", "-F", "tank/home@a", "tank/home"]).is_ok());
        // Even where it would be harmless, a mutating word is refused.
        assert!(check_argv("zfs", "list", &["-t", "snapshot"]).is_err());
        assert!(check_argv("zfs", "get", &["-H", "destroy", "tank"]).is_err());
        assert!(check_argv("zfs", "get", &["-H", "all", "send"]).is_err());
        assert!(
            check_argv(
                "zfs",
                "get",
                &[
                    "-H",
                    "-p",
                    "-o",
                    "value",
                    "written@autosnap_2024-01-01",
                    "tank/home@b"
                ]
            )
            .is_ok()
        );
        for sub in MUTATING {
            assert!(check_argv("zfs", sub, &["tank"]).is_err(), "{sub}");
            assert!(check_argv("zpool", sub, &["tank"]).is_err(), "{sub}");
        }
        let refused = |args: &[&str]| check_argv("zfs", "get", args).unwrap_err().reason;
        assert!(refused(&["-r", "-s", "local", "all"]).contains("-s"));
        assert!(refused(&["all", "-rf"]).contains("-rf"));
        assert!(refused(&["-d", "1; rm", "all"]).contains("bad value"));
        assert!(refused(&["-o", "-x", "all"]).contains("bad value"));
        assert!(refused(&["-d"]).contains("needs a value"));
        assert!(refused(&["all", "tank; rm -rf /"]).contains("not a validated"));
        assert!(refused(&["all", "../etc"]).contains("not a validated"));
        assert!(refused(&["written@-r", "tank"]).contains("not a validated"));
        assert!(check_argv("zpool", "status", &["-v"]).is_err());
        assert!(check_argv("sh", "-c", &["id"]).is_err());
    }

    #[test]
    fn each_command_gets_at_most_thirty_seconds() {
        let now = Instant::now();
        assert_eq!(
            command_deadline(now + Duration::from_secs(600), now),
            now + Duration::from_secs(30)
        );
        assert_eq!(
            command_deadline(now + Duration::from_secs(5), now),
            now + Duration::from_secs(5)
        );
    }

    #[test]
    fn property_lists() {
        for ok in [
            "all",
            "used,available",
            "com.sun:auto-snapshot",
            "written@snap_1",
            "userused@alice",
        ] {
            assert!(is_property_list(ok), "{ok}");
        }
        for bad in ["", "-r", "Used", "a,,b", "a b", "written@", "x@-d", "a;b"] {
            assert!(!is_property_list(bad), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_command_and_the_fix() {
        let out = |stderr: &str| ExecOutput {
            code: Some(1),
            stderr: stderr.as_bytes().to_vec(),
            ..ExecOutput::default()
        };
        let denied = command_error(
            "zfs",
            "diff",
            &out("Permission denied the 'diff' permission is needed"),
        );
        assert!(
            matches!(denied, ProbeError::Denied(ref m) if m.contains("zfs allow -u") && m.contains(" diff ")),
            "{denied:?}"
        );
        let missing = command_error(
            "zfs",
            "get",
            &out("cannot open 'no/such': dataset does not exist"),
        );
        assert!(matches!(missing, ProbeError::NotFound(ref m) if m.contains("no/such")));
        let old = command_error(
            "zfs",
            "diff",
            &out("unrecognized command 'diff'\nusage: zfs command args ..."),
        );
        assert!(
            matches!(old, ProbeError::Unsupported(ref m) if m.contains("zfs-fuse") && !m.contains("usage")),
            "{old:?}"
        );
        let other = command_error("zpool", "status", &out(""));
        assert!(matches!(other, ProbeError::Failed(ref m) if m.contains("exit status 1")));
    }
}
