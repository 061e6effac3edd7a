//! Test doubles for pack code: a command runner that records every argv and
//! answers with canned output, so tests can assert exactly which programs a
//! probe would run (e.g. that no ZFS probe can build a mutating command).

use std::path::PathBuf;
use std::sync::Mutex;

use crate::exec::{Argv, CommandRunner, ExecError, ExecLimits, ExecOutput, is_forbidden_program};

type Reply = Box<dyn Fn(&Argv) -> ExecOutput + Send + Sync>;

/// Records argv vectors instead of running them.
pub struct RecordingRunner {
    calls: Mutex<Vec<Argv>>,
    reply: Reply,
}

impl std::fmt::Debug for RecordingRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingRunner")
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl RecordingRunner {
    /// Answers every call with `reply(argv)`.
    pub fn replying(reply: impl Fn(&Argv) -> ExecOutput + Send + Sync + 'static) -> Self {
        RecordingRunner {
            calls: Mutex::new(Vec::new()),
            reply: Box::new(reply),
        }
    }

    /// Every argv run so far.
    pub fn calls(&self) -> Vec<Argv> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl CommandRunner for RecordingRunner {
    fn run(&self, argv: &Argv, _limits: &ExecLimits) -> Result<ExecOutput, ExecError> {
        if is_forbidden_program(&argv.program) {
            return Err(ExecError::Forbidden {
                program: argv.program.clone(),
            });
        }
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(argv.clone());
        }
        Ok((self.reply)(argv))
    }

    fn resolve(&self, program: &str) -> Option<PathBuf> {
        Some(PathBuf::from("/usr/bin").join(program))
    }
}
