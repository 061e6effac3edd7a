//! The only way the proxmox pack runs a program: `pvesh get PATH
//! [--NAME VALUE]… --output-format json`, with every argv checked against a
//! table of read-only API paths before anything is executed (the same
//! discipline as the zfs pack's `check_argv`).
//!
//! Only the `get` verb is ever sent: `pvesh create|set|delete|usage|ls`
//! and every other word are refused, and so are `qm` and `pct` as programs.
//! Decision: `qm`/`pct` read-only subcommands (`config`, `pending`,
//! `status`, `listsnapshot`) are thin wrappers of the very API calls
//! `pvesh get` makes (same handlers, text instead of JSON, and for the local
//! node only), so the pack asks `pvesh get` for all of it and the table
//! allows neither program: one verb to check instead of dozens of
//! subcommands, some of which (`qm guest cmd`, `qm monitor`,
//! `pct exec`/`enter`) would run things inside a guest.
//!
//! Each path is matched segment by segment against [`PATHS`]: literal
//! segments must match exactly, placeholders must be a node name, a VMID or
//! a task UPID, and every `--NAME VALUE` option must be one the table lists
//! for that path with a value of its declared form. Nothing from a
//! parameter reaches the argv except as a checked placeholder or option
//! value.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::exec::{Argv, ExecError, ExecLimits};
use crate::handler::{ProbeContext, ProbeError};

/// Longest one `pvesh` call may take (never past the probe's deadline).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(25);
/// Most output kept from one call (`/cluster/resources` of a large cluster
/// is a few hundred KiB).
pub const MAX_OUTPUT: usize = 8 << 20;

/// The `pvesh` verbs that change something (or that the pack never needs):
/// never in an argv the pack builds (the guarantee tests check every argv).
pub const MUTATING: &[&str] = &[
    "create",
    "set",
    "delete",
    "put",
    "post",
    "usage",
    "ls",
    "help",
    "start",
    "stop",
    "shutdown",
    "reboot",
    "reset",
    "suspend",
    "resume",
    "migrate",
    "destroy",
    "rollback",
    "clone",
    "resize",
    "move-disk",
    "move_volume",
    "unlock",
    "template",
    "vncproxy",
    "termproxy",
    "exec",
    "enter",
];

/// A placeholder in a path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Lit(&'static str),
    /// `{node}`: a node name (a host name label).
    Node,
    /// `{vmid}`: 100 … 999999999.
    Vmid,
    /// `{upid}`: a task id, `UPID:node:pid:pstart:starttime:type:id:user:`.
    Upid,
}

/// The form an option value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptValue {
    /// One of these words.
    Words(&'static [&'static str]),
    /// An unsigned integer ≤ the bound.
    UpTo(u64),
    /// `0` or `1`.
    Flag,
}

/// One read-only API path the pack reads, with the options it may pass.
#[derive(Debug, Clone, Copy)]
pub struct PathSpec {
    pub template: &'static [Segment],
    pub options: &'static [(&'static str, OptValue)],
    /// What it answers (for the README and the guarantee tests).
    pub what: &'static str,
}

use Segment::{Lit, Node, Upid, Vmid};

/// Every API path the pack may `get`. All are GET handlers of the
/// Proxmox VE API (pve.proxmox.com/pve-docs/api-viewer) that need only
/// `Sys.Audit`/`VM.Audit`/`Datastore.Audit` (the PVEAuditor role).
pub const PATHS: &[PathSpec] = &[
    PathSpec {
        template: &[Lit("version")],
        options: &[],
        what: "the Proxmox VE version",
    },
    PathSpec {
        template: &[Lit("cluster"), Lit("resources")],
        options: &[("type", OptValue::Words(&["vm", "storage", "node"]))],
        what: "guests, storage and nodes of the whole cluster with state and usage",
    },
    PathSpec {
        template: &[Lit("cluster"), Lit("status")],
        options: &[],
        what: "cluster name, quorum, nodes online",
    },
    PathSpec {
        template: &[Lit("cluster"), Lit("ha"), Lit("status"), Lit("current")],
        options: &[],
        what: "HA manager, LRM and service states",
    },
    PathSpec {
        template: &[Lit("cluster"), Lit("ha"), Lit("resources")],
        options: &[],
        what: "HA-managed resources and their requested state",
    },
    PathSpec {
        template: &[Lit("cluster"), Lit("tasks")],
        options: &[],
        what: "recent tasks of every node",
    },
    PathSpec {
        template: &[Lit("cluster"), Lit("ceph"), Lit("status")],
        options: &[],
        what: "Ceph status (health, mons, OSDs, PGs)",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("tasks")],
        options: &[
            ("errors", OptValue::Flag),
            ("limit", OptValue::UpTo(500)),
            ("typefilter", OptValue::Words(&["vzdump"])),
            ("source", OptValue::Words(&["archive", "active", "all"])),
        ],
        what: "a node's task history (failed tasks, backups)",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("tasks"), Upid, Lit("log")],
        options: &[
            ("limit", OptValue::UpTo(1000)),
            ("start", OptValue::UpTo(1_000_000)),
        ],
        what: "one task's log",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("qemu"), Vmid, Lit("config")],
        options: &[("current", OptValue::Flag)],
        what: "a VM's configuration",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("lxc"), Vmid, Lit("config")],
        options: &[("current", OptValue::Flag)],
        what: "a container's configuration",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("qemu"), Vmid, Lit("pending")],
        options: &[],
        what: "a VM's pending configuration changes",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("lxc"), Vmid, Lit("pending")],
        options: &[],
        what: "a container's pending configuration changes",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("qemu"), Vmid, Lit("snapshot")],
        options: &[],
        what: "a VM's snapshots",
    },
    PathSpec {
        template: &[Lit("nodes"), Node, Lit("lxc"), Vmid, Lit("snapshot")],
        options: &[],
        what: "a container's snapshots",
    },
];

/// Why an argv was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to run `{argv}`: {reason}")]
pub struct Refused {
    pub argv: String,
    pub reason: String,
}

/// A node name: a host name label (letters, digits, `-`), ≤ 63 bytes.
pub fn is_node(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A VMID: 100 … 999999999, no sign, no leading zero.
pub fn is_vmid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 9
        && !s.starts_with('0')
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u32>().is_ok_and(|n| n >= 100)
}

/// A task UPID as Proxmox VE prints it:
/// `UPID:{node}:{pid hex}:{pstart hex}:{starttime hex}:{type}:{id}:{user}:`.
pub fn is_upid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("UPID:") else {
        return false;
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let hex = |p: &str| !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_hexdigit());
    let word = |p: &str, extra: &[u8]| {
        p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    s.len() <= 200
        && parts.len() == 8
        && parts[7].is_empty()
        && is_node(parts[0])
        && hex(parts[1])
        && hex(parts[2])
        && hex(parts[3])
        && !parts[4].is_empty()
        && word(parts[4], b"_-")
        && word(parts[5], b"_-.")
        && !parts[6].is_empty()
        && word(parts[6], b"@_-.!")
}

fn option_ok(v: OptValue, s: &str) -> bool {
    match v {
        OptValue::Words(w) => w.contains(&s),
        OptValue::UpTo(max) => {
            !s.is_empty()
                && s.len() <= 10
                && s.bytes().all(|b| b.is_ascii_digit())
                && s.parse::<u64>().is_ok_and(|n| n <= max)
        }
        OptValue::Flag => s == "0" || s == "1",
    }
}

/// The table entry `path` matches, if any.
pub fn match_path(path: &str) -> Option<&'static PathSpec> {
    let rest = path.strip_prefix('/')?;
    let segs: Vec<&str> = rest.split('/').collect();
    PATHS.iter().find(|spec| {
        spec.template.len() == segs.len()
            && spec.template.iter().zip(&segs).all(|(t, s)| match t {
                Lit(l) => l == s,
                Node => is_node(s),
                Vmid => is_vmid(s),
                Upid => is_upid(s),
            })
    })
}

/// Checks an argv (after the program name) against the table.
pub fn check_argv(program: &str, args: &[&str]) -> Result<&'static PathSpec, Refused> {
    let refuse = |reason: String| Refused {
        argv: std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        reason,
    };
    if program != "pvesh" {
        return Err(refuse(format!(
            "the proxmox pack runs only `pvesh get`, never {program:?}"
        )));
    }
    let (verb, path, rest) = match args {
        [verb, path, rest @ ..] => (*verb, *path, rest),
        _ => return Err(refuse("expected `get PATH … --output-format json`".into())),
    };
    if verb != "get" {
        return Err(refuse(format!(
            "{verb:?} is not `get`: the pack only ever reads the API"
        )));
    }
    let spec = match_path(path)
        .ok_or_else(|| refuse(format!("{path:?} is not an API path the pack reads")))?;
    let Some(opts) = rest.strip_suffix(&["--output-format", "json"]) else {
        return Err(refuse(
            "the argv must end with `--output-format json`".into(),
        ));
    };
    if opts.len() % 2 != 0 {
        return Err(refuse("options come as `--NAME VALUE` pairs".into()));
    }
    let mut seen = Vec::new();
    for pair in opts.chunks(2) {
        let name = pair[0]
            .strip_prefix("--")
            .ok_or_else(|| refuse(format!("{:?} is not an option", pair[0])))?;
        let (_, form) = spec
            .options
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| {
                refuse(format!(
                    "--{name} is not an option the pack passes to {path}"
                ))
            })?;
        if seen.contains(&name) {
            return Err(refuse(format!("--{name} given twice")));
        }
        seen.push(name);
        if !option_ok(*form, pair[1]) {
            return Err(refuse(format!("{:?} is not a valid --{name}", pair[1])));
        }
    }
    Ok(spec)
}

/// The argv of `pvesh get path` with `options`.
pub fn argv(path: &str, options: &[(&str, String)]) -> Vec<String> {
    let mut a = vec!["get".to_owned(), path.to_owned()];
    for (n, v) in options {
        a.push(format!("--{n}"));
        a.push(v.clone());
    }
    a.push("--output-format".into());
    a.push("json".into());
    a
}

/// How `pvesh` answered a read.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The API's data, as JSON.
    Data(Value),
    /// The API refused or failed: its message (stderr), e.g.
    /// `Configuration file 'nodes/pve1/qemu-server/105.conf' does not exist`.
    ApiError(String),
}

/// Runs a checked `pvesh get` (or, with `transport = "api"`, the same
/// checked read as an HTTPS GET, [`super::api::get`]). Refusals, a missing or unrunnable `pvesh`,
/// a timeout and output that is not JSON are errors; an API error is an
/// [`Answer::ApiError`] for the caller to interpret.
pub fn get(
    ctx: &ProbeContext<'_>,
    path: &str,
    options: &[(&str, String)],
) -> Result<Answer, ProbeError> {
    let args = argv(path, options);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    check_argv("pvesh", &refs).map_err(|e| ProbeError::Denied(e.to_string()))?;
    let settings: super::Settings = ctx.settings_as()?;
    if settings.transport == super::Transport::Api {
        // The same checked path and options, as an HTTPS GET.
        return super::api::get(ctx, &settings, path, options);
    }
    let limits = ExecLimits {
        deadline: ctx.deadline.min(Instant::now() + COMMAND_TIMEOUT),
        max_stdout: MAX_OUTPUT,
        max_stderr: 64 << 10,
    };
    let out = ctx
        .runner
        .run(&Argv::new("pvesh").args(&refs), &limits)
        .map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(
                "`pvesh` is not installed: this is not a Proxmox VE node (the pack reads a node through its own pvesh)".into(),
            ),
            ExecError::Forbidden { .. } => ProbeError::Unsupported(
                "the agent refused to run `pvesh`: on Proxmox VE it is a Perl script, and the agent runs only native programs (never an interpreter); set transport = \"api\" with a read-only API token under [packs.proxmox] (packs/proxmox/README.md)".into(),
            ),
            other => ProbeError::Failed(other.to_string()),
        })?;
    if out.timed_out {
        return Err(ProbeError::Failed(format!(
            "`pvesh get {path}` did not finish within {} s (is pve-cluster running and /etc/pve mounted?)",
            COMMAND_TIMEOUT.as_secs()
        )));
    }
    if out.stdout_truncated {
        return Err(ProbeError::Failed(format!(
            "`pvesh get {path}` answered more than {} MiB",
            MAX_OUTPUT >> 20
        )));
    }
    if !out.success() {
        let err = out.stderr_text().trim().to_owned();
        if err.contains("please run as root") || err.contains("permission denied") {
            return Err(ProbeError::Denied(format!(
                "`pvesh get {path}`: {err}: pvesh needs root on Proxmox VE, and the agent never runs as root; set transport = \"api\" with a read-only API token under [packs.proxmox] (packs/proxmox/README.md)"
            )));
        }
        if err.contains("ipcc_send_rec") || err.contains("Connection refused") {
            return Err(ProbeError::Failed(format!(
                "`pvesh get {path}`: {err}: pve-cluster (pmxcfs) is not answering: `systemctl status pve-cluster`"
            )));
        }
        return Ok(Answer::ApiError(if err.is_empty() {
            format!("exit status {:?}", out.code)
        } else {
            err.chars().take(2000).collect()
        }));
    }
    let text = out.stdout;
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::Data(Value::Null));
    }
    serde_json::from_slice(&text)
        .map(Answer::Data)
        .map_err(|e| ProbeError::Failed(format!("`pvesh get {path}` did not answer JSON: {e}")))
}

/// [`get`], with an API error turned into a failure naming the path.
pub fn get_data(
    ctx: &ProbeContext<'_>,
    path: &str,
    options: &[(&str, String)],
) -> Result<Value, ProbeError> {
    match get(ctx, path, options)? {
        Answer::Data(v) => Ok(v),
        Answer::ApiError(e) if e.contains("does not exist") || e.contains("no such") => {
            Err(ProbeError::NotFound(format!("`pvesh get {path}`: {e}")))
        }
        Answer::ApiError(e) => Err(ProbeError::Failed(format!("`pvesh get {path}`: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPID: &str = "UPID:pve1:000A1B2C:0123ABCD:6751F0A0:vzdump:105:root@pam:";

    #[test]
    fn only_table_paths_with_table_options_pass() {
        for ok in [
            argv("/cluster/resources", &[]),
            argv("/cluster/resources", &[("type", "vm".into())]),
            argv("/cluster/ha/status/current", &[]),
            argv("/nodes/pve1/qemu/100/config", &[]),
            argv(
                "/nodes/pve-2/lxc/999999999/config",
                &[("current", "1".into())],
            ),
            argv(
                "/nodes/pve1/tasks",
                &[
                    ("errors", "1".into()),
                    ("limit", "50".into()),
                    ("typefilter", "vzdump".into()),
                ],
            ),
            argv(
                &format!("/nodes/pve1/tasks/{UPID}/log"),
                &[("limit", "200".into())],
            ),
        ] {
            let refs: Vec<&str> = ok.iter().map(String::as_str).collect();
            assert!(check_argv("pvesh", &refs).is_ok(), "{refs:?}");
        }
        for bad in [
            &[
                "set",
                "/nodes/pve1/qemu/100/config",
                "--output-format",
                "json",
            ][..],
            &[
                "create",
                "/nodes/pve1/qemu/100/status/start",
                "--output-format",
                "json",
            ],
            &["delete", "/nodes/pve1/qemu/100", "--output-format", "json"],
            &[
                "get",
                "/nodes/pve1/qemu/100/status/start",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/nodes/pve1/qemu/100/agent/exec",
                "--output-format",
                "json",
            ],
            &["get", "/access/users", "--output-format", "json"],
            &["get", "/storage", "--output-format", "json"],
            &[
                "get",
                "/nodes/pve1/qemu/99/config",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/nodes/pve1/qemu/0100/config",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/nodes/../qemu/100/config",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/nodes/pve1/qemu/100/config/",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "nodes/pve1/qemu/100/config",
                "--output-format",
                "json",
            ],
            &["get", "/nodes/pve1/qemu/100/config"],
            &[
                "get",
                "/nodes/pve1/qemu/100/config",
                "--output-format",
                "text",
            ],
            &[
                "get",
                "/cluster/resources",
                "--type",
                "all",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/cluster/resources",
                "--type",
                "vm",
                "--type",
                "vm",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/cluster/resources",
                "--noborder",
                "1",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/cluster/resources",
                "--type",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/nodes/pve1/tasks",
                "--limit",
                "100000",
                "--output-format",
                "json",
            ],
            &[
                "get",
                "/nodes/pve1/tasks/UPID:x/log",
                "--output-format",
                "json",
            ],
            &["get"],
            &[],
        ] {
            assert!(check_argv("pvesh", bad).is_err(), "{bad:?}");
        }
        for program in ["qm", "pct", "pvecm", "ha-manager", "/usr/bin/pvesh"] {
            assert!(
                check_argv(
                    program,
                    &["get", "/cluster/status", "--output-format", "json"]
                )
                .is_err()
            );
        }
    }

    #[test]
    fn placeholders() {
        assert!(is_upid(UPID));
        assert!(is_upid(
            "UPID:pve1:00001234:00ABCDEF:67520000:qmstart:100:alice@pve!token:"
        ));
        for bad in [
            "UPID:pve1:x:1:1:vzdump:105:root@pam:",
            "UPID:pve1:1:1:1:vzdump:105:root@pam",
            "UPID:../:1:1:1:a:b:c:",
            "upid",
        ] {
            assert!(!is_upid(bad), "{bad}");
        }
        for ok in ["100", "999999999", "4242"] {
            assert!(is_vmid(ok));
        }
        for bad in ["99", "1000000000", "-100", "+100", "0100", "1e3", ""] {
            assert!(!is_vmid(bad), "{bad}");
        }
        for bad in ["", "-pve", "pve.local", "pve/1", &"a".repeat(64)] {
            assert!(!is_node(bad), "{bad}");
        }
    }
}
