//! The only way the smart pack runs a program: `smartctl`, with every argv
//! checked against a table of read-only forms before anything is executed.
//!
//! Allowed: `--version`; `--json --scan` and `--json --scan-open`;
//! `--json --all|--xall [--nocheck standby|never] [--device TYPE] DEVICE`.
//! Refused: every other option — in particular the ones that change a
//! disk's state: `-s/--smart` (SMART on/off), `-o/--offlineauto`,
//! `-S/--saveauto`, `-t/--test` (start a self-test), `-X/--abort`,
//! `-C/--captive`, `--set` (APM, AAM, standby timers, write cache, …) —
//! and any device that is not a disk node the pack knows.

use std::time::{Duration, Instant};

use crate::exec::{Argv, ExecError, ExecLimits, ExecOutput};
use crate::handler::{ProbeContext, ProbeError};

/// Longest one `smartctl` call may take (never past the probe's deadline).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(25);
/// Most output kept from one call (`--xall` of a disk is ~100 KiB).
pub const MAX_OUTPUT: usize = 4 << 20;

/// Options that change something on a disk (or run a test on it): never
/// in an argv the pack builds (the guarantee tests check every argv).
pub const MUTATING: &[&str] = &[
    "-s",
    "--smart",
    "-o",
    "--offlineauto",
    "-S",
    "--saveauto",
    "-t",
    "--test",
    "-X",
    "--abort",
    "-C",
    "--captive",
    "--set",
    "-g",
    "--get",
    "-B",
    "--drivedb",
    "-F",
    "--firmwarebug",
    "-r",
    "--report",
];

/// The forms the pack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `smartctl --version` (text; to name an installed version too old
    /// for `--json`).
    Version,
    /// `smartctl --json --scan`: device names and types, nothing opened.
    Scan,
    /// `smartctl --json --scan-open`: the same, each device opened to tell
    /// its type.
    ScanOpen,
    /// `smartctl --json --all …`: health, attributes, logs of one device.
    All,
    /// `smartctl --json --xall …`: everything, with extended logs.
    Xall,
}

/// Why an argv was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to run `{argv}`: {reason}")]
pub struct Refused {
    pub argv: String,
    pub reason: String,
}

/// A disk node the pack may name: `/dev/sdX`, `/dev/sgN`, `/dev/nvmeN`,
/// `/dev/nvmeNnM`, or a `/dev/disk/by-id|by-path/…` link.
pub fn is_device(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/dev/") else {
        return false;
    };
    let all = |s: &str, f: fn(u8) -> bool| !s.is_empty() && s.bytes().all(f);
    let digits = |s: &str| all(s, |b| b.is_ascii_digit()) && s.len() <= 4;
    if let Some(letters) = rest.strip_prefix("sd") {
        return letters.len() <= 3 && all(letters, |b| b.is_ascii_lowercase());
    }
    if let Some(n) = rest.strip_prefix("sg") {
        return digits(n);
    }
    if let Some(n) = rest.strip_prefix("nvme") {
        return match n.split_once('n') {
            Some((c, ns)) => digits(c) && digits(ns),
            None => digits(n),
        };
    }
    for dir in ["disk/by-id/", "disk/by-path/"] {
        if let Some(name) = rest.strip_prefix(dir) {
            return name.len() <= 200
                && !name.starts_with('.')
                && !name.starts_with('-')
                && all(name, |b| b.is_ascii_alphanumeric() || b"_.:+-".contains(&b));
        }
    }
    false
}

/// A `--device` type: `sat`, `nvme`, `scsi`, `ata`, `auto`, `sat,12`,
/// `megaraid,3`, `usbjmicron,0`, …
pub fn is_device_type(t: &str) -> bool {
    t.len() <= 32
        && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b",+_".contains(&b))
}

/// Checks an argv (after the program name) against the forms.
pub fn check_argv(program: &str, args: &[&str]) -> Result<Form, Refused> {
    let refuse = |reason: String| Refused {
        argv: std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        reason,
    };
    if program != "smartctl" {
        return Err(refuse(format!(
            "the smart pack runs only `smartctl`, never {program:?}"
        )));
    }
    if let Some(word) = args.iter().find(|a| {
        MUTATING.contains(a)
            || MUTATING
                .iter()
                .any(|m| m.starts_with("--") && a.starts_with(&format!("{m}=")))
    }) {
        return Err(refuse(format!(
            "{word:?} changes a disk's settings or runs a test; the pack never sends it"
        )));
    }
    match args {
        ["--version"] => return Ok(Form::Version),
        ["--json", "--scan"] => return Ok(Form::Scan),
        ["--json", "--scan-open"] => return Ok(Form::ScanOpen),
        _ => {}
    }
    let (form, mut rest) = match args {
        ["--json", "--all", rest @ ..] => (Form::All, rest),
        ["--json", "--xall", rest @ ..] => (Form::Xall, rest),
        _ => {
            return Err(refuse(
                "not one of the read-only forms (--version; --json --scan[-open]; --json --all|--xall [--nocheck standby|never] [--device TYPE] DEVICE)".into(),
            ));
        }
    };
    if let ["--nocheck", mode, more @ ..] = rest {
        if !matches!(*mode, "standby" | "never") {
            return Err(refuse(format!("--nocheck {mode:?} is not allowed")));
        }
        rest = more;
    }
    if let ["--device", t, more @ ..] = rest {
        if !is_device_type(t) {
            return Err(refuse(format!("{t:?} is not a device type")));
        }
        rest = more;
    }
    match rest {
        [device] if is_device(device) => Ok(form),
        [device] => Err(refuse(format!(
            "{device:?} is not a disk device the pack reads (/dev/sdX, /dev/sgN, /dev/nvmeN[nM], /dev/disk/by-id/…)"
        ))),
        _ => Err(refuse("exactly one device comes last".into())),
    }
}

/// The argv of `form` for `device` (forms that take one).
pub fn argv(
    form: Form,
    device: Option<&str>,
    device_type: Option<&str>,
    wake: bool,
) -> Vec<String> {
    let mut a: Vec<String> = match form {
        Form::Version => return vec!["--version".into()],
        Form::Scan => return vec!["--json".into(), "--scan".into()],
        Form::ScanOpen => return vec!["--json".into(), "--scan-open".into()],
        Form::All => vec!["--json".into(), "--all".into()],
        Form::Xall => vec!["--json".into(), "--xall".into()],
    };
    // A disk that is spun down stays down unless asked to wake it.
    a.push("--nocheck".into());
    a.push(if wake { "never" } else { "standby" }.into());
    if let Some(t) = device_type {
        a.push("--device".into());
        a.push(t.into());
    }
    if let Some(d) = device {
        a.push(d.into());
    }
    a
}

/// Runs a checked argv. A timeout is an error; the exit status is left to
/// the caller (smartctl's status is a bit mask of findings).
pub fn run(ctx: &ProbeContext<'_>, args: &[String]) -> Result<ExecOutput, ProbeError> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    check_argv("smartctl", &refs).map_err(|e| ProbeError::Denied(e.to_string()))?;
    let limits = ExecLimits {
        deadline: ctx.deadline.min(Instant::now() + COMMAND_TIMEOUT),
        max_stdout: MAX_OUTPUT,
        max_stderr: 64 << 10,
    };
    let out = ctx
        .runner
        .run(&Argv::new("smartctl").args(&refs), &limits)
        .map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(
                "`smartctl` is not installed: install smartmontools (`apt install smartmontools`)"
                    .into(),
            ),
            other => ProbeError::Failed(other.to_string()),
        })?;
    if out.timed_out {
        return Err(ProbeError::Failed(format!(
            "`smartctl {}` did not finish within {} s",
            refs.join(" "),
            COMMAND_TIMEOUT.as_secs()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_forms_pass() {
        for (args, form) in [
            (&["--version"][..], Form::Version),
            (&["--json", "--scan"], Form::Scan),
            (&["--json", "--scan-open"], Form::ScanOpen),
            (&["--json", "--all", "/dev/sda"], Form::All),
            (
                &[
                    "--json",
                    "--xall",
                    "--nocheck",
                    "standby",
                    "--device",
                    "sat",
                    "/dev/sdb",
                ],
                Form::Xall,
            ),
            (
                &["--json", "--all", "--nocheck", "never", "/dev/nvme0"],
                Form::All,
            ),
            (
                &["--json", "--all", "--device", "megaraid,3", "/dev/sg2"],
                Form::All,
            ),
            (
                &[
                    "--json",
                    "--all",
                    "/dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567",
                ],
                Form::All,
            ),
        ] {
            assert_eq!(check_argv("smartctl", args), Ok(form), "{args:?}");
        }
        for bad in [
            &["-t", "long", "/dev/sda"][..],
            &["--json", "--all", "-t", "short", "/dev/sda"],
            &["--json", "--all", "--test=long", "/dev/sda"],
            &["--json", "--all", "--set=standby,now", "/dev/sda"],
            &["--json", "--all", "-s", "off", "/dev/sda"],
            &["--json", "--all", "--nocheck", "idle", "/dev/sda"],
            &["--json", "--all", "--device", "SAT", "/dev/sda"],
            &["--json", "--all", "/dev/mem"],
            &["--json", "--all", "/dev/sda1x"],
            &["--json", "--all", "/dev/../etc/shadow"],
            &["--json", "--all", "/dev/disk/by-id/../../sda"],
            &["--json", "--all", "/dev/sda", "/dev/sdb"],
            &["--json", "--all"],
            &["--json", "--all", "--nocheck", "standby"],
            &["-a", "/dev/sda"],
            &["--json", "--scan", "--all"],
            &[],
        ] {
            assert!(check_argv("smartctl", bad).is_err(), "{bad:?}");
        }
        assert!(check_argv("hdparm", &["--version"]).is_err());
        let a = argv(Form::All, Some("/dev/sda"), Some("sat"), false);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_eq!(
            refs,
            [
                "--json",
                "--all",
                "--nocheck",
                "standby",
                "--device",
                "sat",
                "/dev/sda"
            ]
        );
        assert_eq!(check_argv("smartctl", &refs), Ok(Form::All));
    }

    #[test]
    fn device_names() {
        for ok in [
            "/dev/sda",
            "/dev/sdaa",
            "/dev/sg0",
            "/dev/nvme0",
            "/dev/nvme10n1",
            "/dev/disk/by-path/pci-0000:00:17.0-ata-1",
        ] {
            assert!(is_device(ok), "{ok}");
        }
        for bad in [
            "/dev/sda1",
            "/dev/sd",
            "/dev/nvme",
            "/dev/nvme0n",
            "/dev/nvme0n1p1",
            "/dev/mem",
            "/dev/disk/by-id/",
            "/dev/disk/by-id/-x",
            "/dev/disk/by-uuid/x",
            "sda",
            "/dev/sdA",
        ] {
            assert!(!is_device(bad), "{bad}");
        }
    }
}
