//! The only way the ups pack runs a program: NUT's `upsc`, with an argv
//! checked against a table of the forms the pack uses.
//!
//! `upsc` is NUT's read-only client (changing anything takes `upscmd` or
//! `upsrw`, which the pack never runs), and [`check_argv`] still refuses,
//! before anything is executed, any program other than `upsc`, any option
//! other than `-l`, `-L` and `-c`, and any operand that is not
//! `UPS@HOST[:PORT]` or `HOST[:PORT]` with a validated UPS name and the
//! host and port from the settings. A parameter can only ever be the UPS
//! name, one whole argument after validation.

use std::time::{Duration, Instant};

use crate::exec::{Argv, ExecError, ExecLimits, ExecOutput};
use crate::handler::{ProbeContext, ProbeError};

use super::Settings;

/// Longest one `upsc` call may take (never past the probe's deadline).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most output kept from one call (a UPS has a few hundred variables).
pub const MAX_OUTPUT: usize = 1 << 20;

/// Programs of NUT that change something: never run, and never an argv
/// element (a guarantee test checks every argv the pack builds).
pub const MUTATING: &[&str] = &[
    "upscmd",
    "upsrw",
    "upsmon",
    "upsdrvctl",
    "upsd",
    "upssched",
    "upslog",
];

/// The forms of `upsc` the pack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `upsc -L HOST:PORT`: the UPS names upsd serves, with descriptions.
    List,
    /// `upsc UPS@HOST:PORT`: every variable of one UPS.
    Variables,
    /// `upsc -c UPS@HOST:PORT`: the clients (upsmon) logged in to one UPS.
    Clients,
}

/// Why an argv was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to run `{argv}`: {reason}")]
pub struct Refused {
    pub argv: String,
    pub reason: String,
}

/// A UPS name as `ups.conf` sections name them.
pub fn is_ups_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A host name, IPv4 address, or IPv6 address in brackets.
pub fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let mut bytes = host.bytes();
    host.len() <= 253
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// `HOST:PORT` with a valid host and a port.
fn is_server(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    is_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Checks `args` (after the program name `upsc`) against the forms the
/// pack runs.
pub fn check_argv(program: &str, args: &[&str]) -> Result<Form, Refused> {
    let refuse = |reason: String| Refused {
        argv: std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        reason,
    };
    if program != "upsc" {
        return Err(refuse(format!(
            "the ups pack runs only `upsc`, never {program:?}"
        )));
    }
    if let Some(word) = args.iter().find(|a| MUTATING.contains(a)) {
        return Err(refuse(format!(
            "{word:?} names a NUT program that changes things"
        )));
    }
    let ups_at = |operand: &str| {
        operand
            .split_once('@')
            .is_some_and(|(ups, server)| is_ups_name(ups) && is_server(server))
    };
    match args {
        ["-L", server] if is_server(server) => Ok(Form::List),
        ["-c", operand] if ups_at(operand) => Ok(Form::Clients),
        [operand] if ups_at(operand) => Ok(Form::Variables),
        _ => Err(refuse(
            "not one of `upsc -L HOST:PORT`, `upsc UPS@HOST:PORT`, `upsc -c UPS@HOST:PORT` with a validated UPS name".into(),
        )),
    }
}

/// What one `upsc` call said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It printed its answer.
    Ok(String),
    /// upsd answered with an error (`Error: Unknown UPS`, `Error: Data
    /// stale`, …): the text after `Error: `.
    UpsdError(String),
}

/// Runs `upsc` in `form` (with `ups` for the forms that name one) against
/// the configured upsd.
pub fn run(
    ctx: &ProbeContext<'_>,
    settings: &Settings,
    form: Form,
    ups: Option<&str>,
) -> Result<Answer, ProbeError> {
    let server = settings.server();
    let target = |name: &str| format!("{name}@{server}");
    let args: Vec<String> = match (form, ups) {
        (Form::List, _) => vec!["-L".into(), server.clone()],
        (Form::Variables, Some(u)) => vec![target(u)],
        (Form::Clients, Some(u)) => vec!["-c".into(), target(u)],
        (_, None) => {
            return Err(ProbeError::InvalidInput(
                "a UPS name is needed for this question".into(),
            ));
        }
    };
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    check_argv("upsc", &refs).map_err(|e| ProbeError::Denied(e.to_string()))?;
    let limits = ExecLimits {
        deadline: ctx.deadline.min(Instant::now() + COMMAND_TIMEOUT),
        max_stdout: MAX_OUTPUT,
        max_stderr: 64 << 10,
    };
    let out = ctx
        .runner
        .run(&Argv::new("upsc").args(&refs), &limits)
        .map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(
                "`upsc` is not installed: install NUT's client (`apt install nut-client`)".into(),
            ),
            other => ProbeError::Failed(other.to_string()),
        })?;
    interpret(&out, &server)
}

/// Turns `upsc`'s exit status and output into an answer or an error that
/// says what to do.
pub fn interpret(out: &ExecOutput, server: &str) -> Result<Answer, ProbeError> {
    if out.timed_out {
        return Err(ProbeError::Failed(format!(
            "upsd at {server} did not answer within {} s",
            COMMAND_TIMEOUT.as_secs()
        )));
    }
    if out.success() {
        return Ok(Answer::Ok(
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    // upsc says "Init SSL without certificate database" on every run.
    let stderr = out.stderr_text();
    let error = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Error: "))
        .unwrap_or(stderr.as_str())
        .trim()
        .to_owned();
    if error.starts_with("Connection failure") || error.contains("Connection refused") {
        return Err(ProbeError::Failed(format!(
            "upsd does not answer at {server} ({error}): is NUT's server running (`systemctl status nut-server`)? If it listens elsewhere, set host and port under [packs.ups] in agent.toml"
        )));
    }
    if error.contains("Access denied") || error.contains("Permission denied") {
        return Err(ProbeError::Failed(format!(
            "upsd at {server} refused the agent ({error}): allow this host in upsd.conf (LISTEN) and check the firewall"
        )));
    }
    if error.is_empty() {
        return Err(ProbeError::Failed(format!(
            "upsc failed (exit {:?}) without saying why",
            out.code
        )));
    }
    Ok(Answer::UpsdError(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_read_forms_pass() {
        assert_eq!(
            check_argv("upsc", &["-L", "127.0.0.1:3493"]),
            Ok(Form::List)
        );
        assert_eq!(
            check_argv("upsc", &["myups@localhost:3493"]),
            Ok(Form::Variables)
        );
        assert_eq!(
            check_argv("upsc", &["-c", "ups_2.a-b@[::1]:3493"]),
            Ok(Form::Clients)
        );
        for bad in [
            &["-l"][..],
            &["myups@localhost"],
            &["myups@localhost:0"],
            &["-myups@localhost:3493"],
            &["my ups@localhost:3493"],
            &["myups@local;host:3493"],
            &["myups@localhost:3493", "ups.status"],
            &["-L", "127.0.0.1:3493", "-c"],
            &["-h"],
            &["upsrw"],
            &[],
        ] {
            assert!(check_argv("upsc", bad).is_err(), "{bad:?}");
        }
        assert!(check_argv("upscmd", &["-l", "myups@localhost:3493"]).is_err());
        assert!(check_argv("upsrw", &["myups@localhost:3493"]).is_err());
    }

    #[test]
    fn upsd_errors_are_named() {
        let failed = |stderr: &str| ExecOutput {
            code: Some(1),
            stderr: stderr.as_bytes().to_vec(),
            ..Default::default()
        };
        let refused = interpret(
            &failed("Init SSL without certificate database\nError: Connection failure: Connection refused\n"),
            "127.0.0.1:3493",
        )
        .unwrap_err();
        assert!(refused.to_string().contains("nut-server"), "{refused}");
        assert_eq!(
            interpret(
                &failed("Init SSL without certificate database\nError: Unknown UPS\n"),
                "h:1"
            ),
            Ok(Answer::UpsdError("Unknown UPS".into()))
        );
        assert_eq!(
            interpret(&failed("Error: Data stale\n"), "h:1"),
            Ok(Answer::UpsdError("Data stale".into()))
        );
        let timed_out = ExecOutput {
            timed_out: true,
            ..Default::default()
        };
        assert!(interpret(&timed_out, "h:1").is_err());
    }
}
