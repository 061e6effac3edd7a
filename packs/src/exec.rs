//! The only way a probe runs an external program.
//!
//! - **argv only**: a program and a list of arguments; no shell ever parses
//!   anything, so a parameter can only ever be one whole argument;
//! - **no shells, interpreters, exec-wrappers or loaders** as the program
//!   ([`is_forbidden_program`]), checked on the name asked for *and* on the
//!   file it resolves to (so `/usr/bin/sh → dash` is caught); the file must
//!   be a native ELF program whose interpreter is a dynamic loader (a `#!`
//!   script is refused: it would run an interpreter), and no argument may
//!   name such a program by path (`setarch x86_64 /bin/sh`,
//!   `ld.so /bin/sh`, `--rsh=/bin/bash`: [`check_arguments`]);
//! - **the kernel's sandbox** ([`crate::sandbox`]): a runner made with
//!   [`SystemRunner::confined`] starts each program from a thread confined
//!   by Landlock, so the program can execute only itself and its loader —
//!   a wrapper that the name list misses still cannot reach a shell;
//! - **clean environment**: only `PATH` (the runner's search path) and
//!   `LC_ALL=C`, stdin is `/dev/null`;
//! - **deadline**: the child runs in its own process group, and the whole
//!   group is killed (SIGKILL) when the deadline passes;
//! - **bounded output**: at most `max_stdout`/`max_stderr` bytes are kept;
//!   past that the group is killed and the output marked truncated.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::sandbox::{PackSandbox, Sandbox};

thread_local! {
    /// The cancellation of the probe this thread runs, if any.
    static CANCEL: std::cell::RefCell<Option<Arc<AtomicBool>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a probe handler, on its own thread) with `cancelled` as its
/// cancellation: once the flag is set, every program `f` runs through a
/// [`SystemRunner`] is treated as past its deadline, so its whole process
/// group is killed (`timed_out` in its output). The agent sets the flag
/// when the hub sends `probe.cancel`.
pub fn with_cancellation<R>(cancelled: Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    let previous = CANCEL.with(|c| c.replace(Some(cancelled)));
    let r = f();
    CANCEL.with(|c| c.replace(previous));
    r
}

/// This thread's cancellation flag (see [`with_cancellation`]).
fn current_cancellation() -> Option<Arc<AtomicBool>> {
    CANCEL.with(|c| c.borrow().clone())
}

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    pub program: String,
    pub args: Vec<OsString>,
}

impl Argv {
    pub fn new(program: &str) -> Self {
        Argv {
            program: program.to_owned(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// For logs and audit: arguments shown lossily, space-separated.
    pub fn display(&self) -> String {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    pub deadline: Instant,
    pub max_stdout: usize,
    pub max_stderr: usize,
}

impl ExecLimits {
    /// 4 MiB of stdout, 64 KiB of stderr, until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        ExecLimits {
            deadline,
            max_stdout: 4 << 20,
            max_stderr: 64 << 10,
        }
    }
}

/// What a finished (or killed) program produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub timed_out: bool,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Standard error as text, trimmed, for error messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

/// Why a program could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("`{program}` is not on the command path ({path})")]
    NotFound { program: String, path: String },
    #[error(
        "refusing to run `{program}`: shells, interpreters and programs that run other programs are never executed"
    )]
    Forbidden { program: String },
    #[error("could not start `{program}`: {reason}")]
    Spawn { program: String, reason: String },
    #[error("`{program}` was not run: {reason}")]
    Sandbox { program: String, reason: String },
}

/// Runs argv vectors. The agent uses [`SystemRunner`]; tests can record.
pub trait CommandRunner: Send + Sync {
    fn run(&self, argv: &Argv, limits: &ExecLimits) -> Result<ExecOutput, ExecError>;

    /// Whether `program` can be found (used for requirement checks).
    fn resolve(&self, program: &str) -> Option<PathBuf>;
}

/// Programs that are never executed: shells, interpreters, and programs whose
/// job is to run another program or that can be told to run one.
pub const FORBIDDEN_PROGRAMS: &[&str] = &[
    // shells
    "sh",
    "bash",
    "dash",
    "ash",
    "zsh",
    "ksh",
    "mksh",
    "pdksh",
    "fish",
    "csh",
    "tcsh",
    "rc",
    "es",
    "busybox",
    "toybox",
    // interpreters
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "deno",
    "bun",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "expect",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "sed",
    "osascript",
    "pwsh",
    "guile",
    "racket",
    "ghci",
    "irb",
    // wrappers that execute their arguments
    "env",
    "xargs",
    "nice",
    "ionice",
    "nohup",
    "timeout",
    "stdbuf",
    "setsid",
    "chroot",
    "sudo",
    "su",
    "doas",
    "runuser",
    "setpriv",
    "unshare",
    "nsenter",
    "flock",
    "time",
    "strace",
    "ltrace",
    "gdb",
    "watch",
    "script",
    "systemd-run",
    "pkexec",
    "chrt",
    "taskset",
    "capsh",
    "firejail",
    "bwrap",
    "ssh",
    "find",
    "make",
    "m4",
    "vi",
    "vim",
    "ex",
    "ed",
    "less",
    "more",
    "man",
    "git",
    "tar",
    "rsync",
    "crontab",
    "at",
    "batch",
    "parallel",
    // more wrappers and programs that run what they are given
    "setarch",
    "linux32",
    "linux64",
    "i386",
    "x86_64",
    "prlimit",
    "cgexec",
    "numactl",
    "schedtool",
    "sudoedit",
    "run-parts",
    "start-stop-daemon",
    "dbus-run-session",
    "xvfb-run",
    "fakeroot",
    "fakechroot",
    "proot",
    "valgrind",
    "perf",
    "catchsegv",
    "lldb",
    "rlwrap",
    "socat",
    "nc",
    "ncat",
    "netcat",
    "ftp",
    "sftp",
    "scp",
    "zip",
    "tcpdump",
    "logrotate",
    "tmux",
    "screen",
    "emacs",
    "nano",
    "view",
    "rview",
    "rvim",
    "pager",
    "editor",
    "sensible-editor",
    "sensible-pager",
    "xdg-open",
    "run-mailcap",
    "mutt",
    "mail",
    "nmap",
    "dpkg",
    "apt",
    "apt-get",
    "pip",
    "pip3",
    "npm",
    "npx",
    "cargo",
    "cc",
    "gcc",
    "java",
    "jshell",
    "jjs",
    "R",
    "Rscript",
    "julia",
    "octave",
    "erl",
    "escript",
    "elixir",
    "iex",
    "ocaml",
    "scala",
    "groovy",
    "dotnet",
    "mono",
    "sqlite3",
    "psql",
    "mysql",
    "mariadb",
    "redis-cli",
    "openssl",
    "ld.so",
];

/// Dynamic loaders: run as a program they map and run any other program.
fn is_loader_name(base: &str) -> bool {
    base.starts_with("ld-linux")
        || base.starts_with("ld.so")
        || base.starts_with("ld-musl")
        || base.starts_with("ld64.so")
        || (base.starts_with("ld-") && base.contains(".so"))
}

/// True if `program` (a name or path) is a shell, interpreter or exec-wrapper,
/// including versioned names like `python3.11` or `perl5.36`.
pub fn is_forbidden_program(program: &str) -> bool {
    let base = Path::new(program)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or(program);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    FORBIDDEN_PROGRAMS.contains(&base) || FORBIDDEN_PROGRAMS.contains(&stem) || is_loader_name(base)
}

/// Checks the file a program name resolved to: not a forbidden program by
/// its real name, a native ELF program, and its interpreter a dynamic
/// loader. Returns the real path and the interpreter (what the sandbox
/// lets the kernel execute).
pub fn check_program(asked: &str, path: &Path) -> Result<(PathBuf, Option<PathBuf>), ExecError> {
    let forbidden = |why: String| ExecError::Forbidden {
        program: format!("{asked} ({why})"),
    };
    let real = std::fs::canonicalize(path)
        .map_err(|e| forbidden(format!("cannot resolve {}: {e}", path.display())))?;
    if is_forbidden_program(&real.to_string_lossy()) {
        return Err(forbidden(format!("→ {}", real.display())));
    }
    let interpreter = crate::sandbox::elf_interpreter(&real).map_err(forbidden)?;
    let interpreter = match interpreter {
        None => None,
        Some(i) => {
            let base = i.file_name().and_then(OsStr::to_str).unwrap_or_default();
            if !is_loader_name(base) {
                return Err(forbidden(format!(
                    "its ELF interpreter {} is not a dynamic loader",
                    i.display()
                )));
            }
            Some(std::fs::canonicalize(&i).map_err(|e| {
                forbidden(format!(
                    "its loader {} cannot be resolved: {e}",
                    i.display()
                ))
            })?)
        }
    };
    Ok((real, interpreter))
}

/// Refuses arguments that name a program that would run something else: any
/// path inside an argument (`/bin/sh`, `--rsh=/bin/bash`,
/// `-oProxyCommand=/usr/bin/nc …`, `../../usr/bin/dash`) that is a shell,
/// interpreter, wrapper or loader by name or by what it resolves to, or an
/// executable script.
/// (Bare names are left to the kernel's sandbox: `ssh` may well be a unit
/// name, and a wrapper that runs `sh` by name is refused execution.)
pub fn check_arguments(argv: &Argv) -> Result<(), ExecError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    for arg in &argv.args {
        let tokens = arg.as_bytes().split(|b| {
            matches!(
                b,
                b'=' | b',' | b':' | b';' | b' ' | b'\t' | b'\n' | b'\'' | b'"' | b'(' | b'`'
            )
        });
        for token in tokens.filter(|t| t.contains(&b'/')) {
            let path = Path::new(OsStr::from_bytes(token));
            let refused = |why: &str| ExecError::Forbidden {
                program: format!("{} (its argument {} {why})", argv.program, path.display()),
            };
            if path.is_absolute() && is_forbidden_program(&path.to_string_lossy()) {
                return Err(refused("names a shell, interpreter, wrapper or loader"));
            }
            let Ok(real) = std::fs::canonicalize(path) else {
                continue;
            };
            if is_forbidden_program(&real.to_string_lossy()) {
                return Err(refused(&format!(
                    "is a shell, interpreter, wrapper or loader ({})",
                    real.display()
                )));
            }
            let executable = std::fs::metadata(&real)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable && crate::sandbox::elf_interpreter(&real).is_err() {
                return Err(refused("is an executable script"));
            }
        }
    }
    Ok(())
}

/// The default command search path for probes.
pub const DEFAULT_SEARCH_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs programs for real, under the rules in the module docs.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    search_path: Vec<PathBuf>,
    /// The kernel sandbox each program starts in, with its pack's allowances.
    sandbox: Option<(Arc<Sandbox>, Arc<PackSandbox>)>,
}

impl Default for SystemRunner {
    fn default() -> Self {
        SystemRunner::new(DEFAULT_SEARCH_PATH)
    }
}

impl SystemRunner {
    /// `search_path` is `:`-separated, like `PATH`.
    pub fn new(search_path: &str) -> Self {
        SystemRunner {
            search_path: search_path
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
            sandbox: None,
        }
    }

    /// The same runner, starting every program in `sandbox` with `pack`'s
    /// allowances (devices, TCP ports).
    pub fn confined(&self, sandbox: Arc<Sandbox>, pack: PackSandbox) -> SystemRunner {
        SystemRunner {
            search_path: self.search_path.clone(),
            sandbox: Some((sandbox, Arc::new(pack))),
        }
    }

    pub fn search_path(&self) -> String {
        self.search_path
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl CommandRunner for SystemRunner {
    fn resolve(&self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            let p = PathBuf::from(program);
            return (p.is_absolute() && is_executable(&p)).then_some(p);
        }
        self.search_path
            .iter()
            .map(|dir| dir.join(program))
            .find(|p| is_executable(p))
    }

    fn run(&self, argv: &Argv, limits: &ExecLimits) -> Result<ExecOutput, ExecError> {
        let program = &argv.program;
        if is_forbidden_program(program) {
            return Err(ExecError::Forbidden {
                program: program.clone(),
            });
        }
        let path = self.resolve(program).ok_or_else(|| ExecError::NotFound {
            program: program.clone(),
            path: self.search_path(),
        })?;
        let (real, interpreter) = check_program(program, &path)?;
        check_arguments(argv)?;
        // Read on the caller's thread: the program may start on another.
        let cancelled = current_cancellation();
        let spawn = || -> Result<ExecOutput, ExecError> {
            if let Some((sandbox, pack)) = &self.sandbox {
                sandbox
                    .confine_exec(pack, &real, interpreter.as_deref())
                    .map_err(|e| ExecError::Sandbox {
                        program: program.clone(),
                        reason: e.to_string(),
                    })?;
            }
            let mut child = Command::new(&path)
                .args(&argv.args)
                .env_clear()
                .env("PATH", self.search_path())
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .map_err(|e| ExecError::Spawn {
                    program: program.clone(),
                    reason: e.to_string(),
                })?;
            Ok(supervise(&mut child, limits, cancelled.as_deref()))
        };
        if self.sandbox.is_none() {
            return spawn();
        }
        // Landlock confines a thread and what it starts: a thread of its own
        // for each program keeps the agent's other threads free.
        thread::scope(|scope| {
            scope.spawn(spawn).join().unwrap_or_else(|_| {
                Err(ExecError::Spawn {
                    program: program.clone(),
                    reason: "the thread that starts it panicked".into(),
                })
            })
        })
    }
}

/// Collects output under the limits, and kills the process group on
/// deadline or overflow.
fn supervise(child: &mut Child, limits: &ExecLimits, cancelled: Option<&AtomicBool>) -> ExecOutput {
    let past_deadline =
        || Instant::now() >= limits.deadline || cancelled.is_some_and(|c| c.load(Ordering::SeqCst));
    let overflow = Arc::new(AtomicBool::new(false));
    let reader = |pipe: Option<Box<dyn Read + Send>>, max: usize| {
        let overflow = Arc::clone(&overflow);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut truncated = false;
            if let Some(mut pipe) = pipe {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let room = max.saturating_sub(kept.len());
                            kept.extend_from_slice(&buf[..n.min(room)]);
                            if n > room {
                                truncated = true;
                                overflow.store(true, Ordering::SeqCst);
                                break;
                            }
                        }
                    }
                }
            }
            let _ = tx.send((kept, truncated));
        });
        rx
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        limits.max_stdout,
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        limits.max_stderr,
    );
    let pgid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let kill_group = || {
        if let Some(pgid) = pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    };
    let mut timed_out = false;
    let status = loop {
        // Kill before reaping, so the group id cannot have been reused.
        if overflow.load(Ordering::SeqCst) {
            kill_group();
        } else if past_deadline() {
            timed_out = true;
            kill_group();
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    // Output is complete when the pipes close. A leftover grandchild can keep
    // them open: it still holds the process group (so its id cannot have been
    // reused), and the group is killed at the deadline.
    let mut collect = |rx: mpsc::Receiver<(Vec<u8>, bool)>| {
        let wait = limits.deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(out) => out,
            Err(_) => {
                timed_out = true;
                kill_group();
                rx.recv().unwrap_or_default()
            }
        }
    };
    let (stdout, stdout_truncated) = collect(stdout);
    let (stderr, stderr_truncated) = collect(stderr);
    ExecOutput {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> ExecLimits {
        ExecLimits::until(Instant::now() + Duration::from_millis(ms))
    }

    #[test]
    fn runs_argv_with_a_clean_environment() {
        let out = SystemRunner::default()
            .run(&Argv::new("printenv"), &soon(5000))
            .unwrap();
        assert!(out.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let mut names: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["LC_ALL", "PATH"]);
    }

    #[test]
    fn arguments_are_never_parsed_by_a_shell() {
        let nasty = "$(touch /tmp/sonde-pwned); `id` | cat > /tmp/x && echo hi";
        let out = SystemRunner::default()
            .run(&Argv::new("echo").arg(nasty), &soon(5000))
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{nasty}\n"));
    }

    #[test]
    fn shells_and_wrappers_are_refused_by_name_and_by_target() {
        for p in [
            "sh",
            "/bin/bash",
            "python3.11",
            "perl5.36",
            "env",
            "xargs",
            "busybox",
            "sed",
        ] {
            assert!(is_forbidden_program(p), "{p}");
        }
        for p in ["zfs", "zpool", "journalctl", "systemctl", "ping", "df"] {
            assert!(!is_forbidden_program(p), "{p}");
        }
        let err = SystemRunner::default()
            .run(&Argv::new("sh").arg("-c").arg("id"), &soon(1000))
            .unwrap_err();
        assert!(matches!(err, ExecError::Forbidden { .. }));
        // A harmless-looking name that is really a shell.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/bin/sh", dir.path().join("harmless")).unwrap();
        let runner = SystemRunner::new(&dir.path().to_string_lossy());
        let err = runner.run(&Argv::new("harmless"), &soon(1000)).unwrap_err();
        assert!(matches!(err, ExecError::Forbidden { .. }), "{err:?}");
    }

    #[test]
    fn deadline_kills_the_whole_process_group() {
        let start = Instant::now();
        let out = SystemRunner::default()
            .run(&Argv::new("sleep").arg("30"), &soon(200))
            .unwrap();
        assert!(out.timed_out);
        assert!(!out.success());
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the child was not killed"
        );
    }

    #[test]
    fn cancellation_kills_the_whole_process_group_before_the_deadline() {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = Arc::clone(&flag);
        let start = Instant::now();
        let trigger = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            setter.store(true, Ordering::SeqCst);
        });
        let out = with_cancellation(Arc::clone(&flag), || {
            SystemRunner::default().run(&Argv::new("sleep").arg("30"), &soon(60_000))
        })
        .unwrap();
        trigger.join().unwrap();
        assert!(
            out.timed_out,
            "a cancelled program is reported like one past its deadline"
        );
        assert_eq!(out.signal, Some(9), "killed by SIGKILL");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the child was not killed"
        );
        // The flag is this thread's only while the handler runs.
        let out = SystemRunner::default()
            .run(&Argv::new("true"), &soon(10_000))
            .unwrap();
        assert!(out.success());
    }

    #[test]
    fn output_is_bounded() {
        let limits = ExecLimits {
            max_stdout: 1000,
            ..soon(10_000)
        };
        let out = SystemRunner::default()
            .run(&Argv::new("yes"), &limits)
            .unwrap();
        assert!(out.stdout_truncated);
        assert_eq!(out.stdout.len(), 1000);
    }

    #[test]
    fn missing_programs_are_named() {
        let err = SystemRunner::new("/nonexistent")
            .run(&Argv::new("zfs"), &soon(1000))
            .unwrap_err();
        assert!(
            err.to_string().contains("`zfs` is not on the command path"),
            "{err}"
        );
        let err = SystemRunner::default()
            .run(&Argv::new("relative/prog"), &soon(1000))
            .unwrap_err();
        assert!(matches!(err, ExecError::NotFound { .. }));
    }
}
