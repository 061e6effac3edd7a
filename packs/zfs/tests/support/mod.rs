//! Shared helpers for the zfs pack's tests: a fixture (a dataset-like tree
//! with `.zfs/snapshot` and the fake `zfs`/`zpool`), a runner that records
//! every argv and runs it against the fake tools, and a way to call a probe
//! the way the agent does (schema validation first).
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Map, Value, json};
use sonde_pack_zfs::fixture::{Fixture, State};
use sonde_packs::exec::{Argv, CommandRunner, ExecLimits, ExecOutput, SystemRunner};
use sonde_packs::handler::{PackDef, ProbeContext, ProbeError};
use sonde_packs::testing::RecordingRunner;
use sonde_protocol::schema::validate;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The fake `zfs`/`zpool` binary built with this crate.
pub fn fake_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sonde-zfs-fixture"))
}

/// A recording runner whose answers come from running the argv for real
/// against `search_path` (the fixture's fake tools first).
pub fn recording(search_path: &str) -> RecordingRunner {
    let real = SystemRunner::new(search_path);
    RecordingRunner::replying(move |argv: &Argv| {
        let limits = ExecLimits {
            max_stdout: 64 << 20,
            ..ExecLimits::until(Instant::now() + Duration::from_secs(30))
        };
        real.run(argv, &limits).unwrap_or_else(|e| ExecOutput {
            code: Some(127),
            stderr: e.to_string().into_bytes(),
            ..ExecOutput::default()
        })
    })
}

/// A recording runner that answers from the fake tools' logic in this
/// process (no subprocess: fast enough to run thousands of probe calls).
pub fn recording_in_process(state: State) -> RecordingRunner {
    RecordingRunner::replying(move |argv: &Argv| {
        let args: Vec<String> = argv
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let reply = sonde_pack_zfs::fixture::fake::answer(&state, &argv.program, &args);
        ExecOutput {
            code: Some(i32::from(reply.code)),
            stdout: reply.stdout,
            stderr: reply.stderr,
            ..ExecOutput::default()
        }
    })
}

/// A fixture, the pack, a recording runner and the pack's settings.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub fixture: Fixture,
    pub pack: PackDef,
    pub runner: RecordingRunner,
    pub settings: Value,
}

/// The standard fixture (see `sonde_pack_zfs::fixture::standard_trees`).
pub fn standard() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::standard(dir.path(), &fake_binary()).unwrap();
    Env::new(dir, fixture)
}

impl Env {
    pub fn new(dir: tempfile::TempDir, fixture: Fixture) -> Env {
        let runner = recording(&fixture.search_path());
        Env {
            dir,
            fixture,
            pack: sonde_pack_zfs::pack().unwrap(),
            runner,
            settings: Value::Null,
        }
    }

    /// The standard fixture with the fake tools answering in process.
    pub fn standard_in_process() -> Env {
        let mut env = standard();
        env.runner = recording_in_process(env.fixture.state.clone());
        env
    }

    /// Changes what the in-process fake tools serve (a fresh runner, and a
    /// fresh pack: what the pack kept between calls is forgotten, as when
    /// the agent restarts).
    pub fn change_state_in_process(&mut self, f: impl FnOnce(&mut State)) {
        self.change_state_in_process_keeping_model(f);
        self.pack = sonde_pack_zfs::pack().unwrap();
    }

    /// Changes what the in-process fake tools serve, keeping the pack and
    /// the model it keeps between calls (a change the pack must notice).
    pub fn change_state_in_process_keeping_model(&mut self, f: impl FnOnce(&mut State)) {
        f(&mut self.fixture.state);
        self.runner = recording_in_process(self.fixture.state.clone());
    }

    /// Runs a probe as the agent does: the schema first, then the handler.
    pub fn run(&self, probe: &str, params: Value) -> Result<(Value, bool), ProbeError> {
        self.run_for(probe, params, Duration::from_secs(60))
    }

    pub fn run_for(
        &self,
        probe: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<(Value, bool), ProbeError> {
        let spec = self
            .pack
            .manifest
            .probe(probe)
            .unwrap_or_else(|| panic!("no probe {probe}"));
        let map: Map<String, Value> = params.as_object().cloned().unwrap();
        let validated =
            validate(&spec.params, &map).map_err(|e| ProbeError::InvalidInput(e.to_string()))?;
        let ctx = ProbeContext {
            deadline: Instant::now() + timeout,
            runner: &self.runner,
            settings: &self.settings,
            secrets: &sonde_packs::SecretGuard::standard(),
        };
        self.pack.handlers[probe]
            .run(&ctx, &validated)
            .map(|o| (o.data, o.truncated))
    }

    /// The result of a probe that must succeed.
    pub fn ok(&self, probe: &str, params: Value) -> Value {
        match self.run(probe, params.clone()) {
            Ok((v, _)) => v,
            Err(e) => panic!("zfs.{probe} {params}: {e:?}"),
        }
    }

    /// The error of a probe that must fail.
    pub fn err(&self, probe: &str, params: Value) -> ProbeError {
        match self.run(probe, params.clone()) {
            Ok((v, _)) => panic!("zfs.{probe} {params} should fail, got {v}"),
            Err(e) => e,
        }
    }

    /// Every argv run so far.
    pub fn calls(&self) -> Vec<Argv> {
        self.runner.calls()
    }

    /// Changes what the fake tools serve (and starts a fresh pack, see
    /// [`Env::change_state_in_process`]).
    pub fn change_state(&mut self, f: impl FnOnce(&mut State)) {
        self.change_state_keeping_model(f);
        self.pack = sonde_pack_zfs::pack().unwrap();
    }

    /// Changes what the fake tools serve, keeping the pack's model.
    pub fn change_state_keeping_model(&mut self, f: impl FnOnce(&mut State)) {
        f(&mut self.fixture.state);
        self.fixture.save().unwrap();
    }

    /// Where `tank/home`'s live files are.
    pub fn home(&self) -> PathBuf {
        self.fixture.mountpoint("tank/home")
    }
}

/// `{"dataset": "tank/home", …extra}`.
pub fn home(extra: Value) -> Value {
    let mut v = json!({"dataset": "tank/home"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// The entries of a JSON array field, or a panic naming it.
pub fn list<'a>(v: &'a Value, field: &str) -> &'a Vec<Value> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("no array {field} in {v}"))
}
