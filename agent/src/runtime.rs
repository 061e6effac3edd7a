//! The agent's core, shared by the daemon (requests from the hub) and
//! `sonde-agent probe` (requests typed on this machine): packs and their
//! states, the executor table, scrubbing, the local audit chain.
//!
//! The executor table is rebuilt from scratch whenever grants change: it
//! holds exactly the probes of *active* packs whose capability is within
//! `max_capability`. Anything else is "unknown probe" — a probe above the
//! ceiling is indistinguishable from one that does not exist.
//!
//! Each probe runs on a thread of its own, confined by the kernel sandbox
//! before the handler starts (`sonde_packs::sandbox`), with a runner that
//! starts every program in its pack's tighter sandbox, and a
//! `SecretGuard` that refuses the agent's own files and scrubs what
//! filters look at. The result is scrubbed whole before it is digested.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;
use sonde_packs::exec::SystemRunner;
use sonde_packs::handler::{ProbeContext, ProbeError, ProbeHandler};
use sonde_packs::requirements::Identity;
use sonde_packs::sandbox::{PackSandbox, Sandbox, SandboxLevel};
use sonde_packs::scrub::Scrubber;
use sonde_packs::secrets::{ProtectedFiles, SecretGuard};
use sonde_protocol::audit::{AuditAction, ChainHead, NewEntry};
use sonde_protocol::messages::{
    AgentHello, PackGrant, PackReport, PackState, ProbeErrorCode, ProbeSummary,
};
use sonde_protocol::schema::validate;
use sonde_protocol::{Digest, ProbeDescriptor};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use crate::audit::LocalAudit;
use crate::config::AgentConfig;
use crate::identity::{DataDir, HubInfo, read_json, replace_private};
use crate::pack_states::{self, LoadedPack, PackInputs};

/// Largest result the agent sends (the link's frame limit is 16 MiB; the
/// rest is headroom for the envelope).
pub const MAX_RESULT_BYTES: usize = 15 << 20;

/// A probe in the executor table.
#[derive(Clone)]
pub struct Registered {
    pub pack: String,
    pub summary: ProbeSummary,
    pub handler: Arc<dyn ProbeHandler>,
    pub settings: Value,
    /// What the pack's probes may touch beyond reading.
    pub sandbox: PackSandbox,
    /// Starts the pack's programs in their sandbox.
    pub runner: Arc<SystemRunner>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("pack", &self.pack)
            .field("probe", &self.summary.name)
            .finish_non_exhaustive()
    }
}

/// Packs and the table built from them.
#[derive(Clone, Default, Debug)]
pub struct Loaded {
    pub packs: Vec<LoadedPack>,
    pub table: HashMap<String, Registered>,
}

/// A finished request.
#[derive(Debug, Clone)]
pub enum Execution {
    Ran {
        data: Value,
        truncated: bool,
        redactions: BTreeMap<String, u64>,
        digest: Digest,
        duration_ms: u64,
        head: ChainHead,
    },
    Failed {
        code: ProbeErrorCode,
        message: String,
        duration_ms: u64,
        head: ChainHead,
    },
}

pub struct Runtime {
    pub config: AgentConfig,
    pub data: DataDir,
    pub signing_key: SigningKey,
    pub hub: Option<HubInfo>,
    pub hub_key: Option<VerifyingKey>,
    pub runner: Arc<SystemRunner>,
    pub scrubber: Arc<Scrubber>,
    pub sandbox: Arc<Sandbox>,
    /// The agent's own files: never returned by any probe.
    protected_roots: Vec<PathBuf>,
    pub audit: LocalAudit,
    pub identity: Identity,
    pub binary_sha256: Digest,
    loaded: RwLock<Arc<Loaded>>,
    grants: Mutex<Vec<PackGrant>>,
    slots: Arc<Semaphore>,
    quarantined: AtomicBool,
    /// Refused packs already recorded in the audit chain (name, identity).
    refusals_recorded: Mutex<std::collections::HashSet<(String, Digest)>>,
    /// Why the audit chain last failed to take an entry, while it still
    /// does: no probe runs until an entry can be written again.
    audit_trouble: Mutex<Option<AuditTrouble>>,
    /// Audit appends that failed since start (logged with each failure).
    audit_failures: AtomicU64,
    /// Probes running now, by request id, with their cancellation (set by
    /// the hub's `probe.cancel`).
    running: Mutex<HashMap<String, Running>>,
}

/// The audit chain could not be written.
#[derive(Debug, Clone)]
struct AuditTrouble {
    error: String,
    since_ms: i64,
    /// Requests refused because of it.
    refused: u64,
}

/// A running probe's cancellation: the flag the command runner checks (so
/// its programs' process groups are killed) and a token that ends the wait.
#[derive(Debug, Clone, Default)]
struct Running {
    flag: Arc<AtomicBool>,
    token: tokio_util::sync::CancellationToken,
    reason: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data", &self.data)
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Opens the data dir (creating the signing key and audit chain if
    /// needed) and loads the packs.
    pub fn open(config: AgentConfig) -> anyhow::Result<Runtime> {
        let data = DataDir::new(&config.data_dir);
        data.ensure()?;
        let signing_key = data.signing_key_or_create()?;
        let hub = data.hub()?;
        let hub_key = data.hub_key()?;
        let audit = LocalAudit::open(&data.audit_db(), signing_key.clone())?;
        let scrubber = Arc::new(crate::scrub::agent_scrubber(&config, &data, &signing_key)?);
        let mut protected_roots = vec![config.data_dir.clone()];
        protected_roots.extend(config.source.clone());
        protected_roots.extend(config.hide_paths.iter().cloned());
        let sandbox = Sandbox::new(protected_roots.clone());
        match sandbox.level() {
            SandboxLevel::Full { abi } => {
                tracing::info!(landlock_abi = abi, "probes run in the Landlock sandbox")
            }
            SandboxLevel::Partial { abi } => tracing::warn!(
                landlock_abi = abi,
                "this kernel enforces only part of the probe sandbox (Landlock ABI {abi}; 6 or newer enforces all of it)"
            ),
            SandboxLevel::None => tracing::warn!(
                "this kernel has no Landlock: probes run without the kernel sandbox, with the agent's own checks only (attested as sandbox: none); enable Landlock (lsm=landlock,… on the kernel command line) or set require_sandbox = true to refuse this"
            ),
        }
        if config.require_sandbox && !sandbox.level().is_full() {
            anyhow::bail!(
                "require_sandbox = true, but this kernel cannot enforce the whole probe sandbox (found: {}); run a kernel with Landlock ABI 6 or newer (Linux 6.12+) with Landlock enabled, or set require_sandbox = false",
                sandbox.level()
            );
        }
        let stored: Vec<PackGrant> = read_json(&data.grants())?.unwrap_or_default();
        let grants = match (&hub_key, &hub) {
            (Some(key), Some(h)) => {
                let (good, bad) = pack_states::verified_grants(stored, key, &h.agent_id);
                if bad > 0 {
                    tracing::warn!(
                        bad,
                        "ignoring stored grants that do not verify with the hub key"
                    );
                }
                good
            }
            _ => Vec::new(),
        };
        let runtime = Runtime {
            runner: Arc::new(SystemRunner::new(&config.command_path)),
            slots: Arc::new(Semaphore::new(config.max_concurrent_probes)),
            config,
            data,
            signing_key,
            hub,
            hub_key,
            scrubber,
            sandbox,
            protected_roots,
            audit,
            identity: Identity::current(),
            binary_sha256: crate::attest::binary_sha256(),
            loaded: RwLock::new(Arc::new(Loaded::default())),
            grants: Mutex::new(grants),
            quarantined: AtomicBool::new(false),
            refusals_recorded: Mutex::new(Default::default()),
            audit_trouble: Mutex::new(None),
            audit_failures: AtomicU64::new(0),
            running: Mutex::new(HashMap::new()),
        };
        runtime.reload();
        Ok(runtime)
    }

    /// The agent id (or a local name before enrollment).
    pub fn agent_id(&self) -> String {
        self.hub
            .as_ref()
            .map(|h| h.agent_id.clone())
            .unwrap_or_else(|| "local".into())
    }

    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .map(|l| Arc::clone(&l))
            .unwrap_or_default()
    }

    /// Recomputes pack states and the executor table.
    pub fn reload(&self) {
        let grants = self.grants.lock().map(|g| g.clone()).unwrap_or_default();
        let packs = pack_states::load(&PackInputs {
            config: &self.config,
            grants: &grants,
            runner: self.runner.as_ref(),
            identity: &self.identity,
        });
        self.record_refusals(&packs);
        let mut table = HashMap::new();
        for p in packs.iter().filter(|p| p.state == PackState::Active) {
            let Some(def) = &p.def else { continue };
            let settings = self.config.pack_settings(&p.name);
            let sandbox = def.sandbox(&settings).to_pack_sandbox();
            let runner = Arc::new(
                self.runner
                    .confined(Arc::clone(&self.sandbox), sandbox.clone()),
            );
            for summary in p
                .report(self.config.max_capability)
                .probes
                .into_iter()
                .filter(|s| s.registered)
            {
                let local = summary
                    .name
                    .split_once('.')
                    .map(|(_, l)| l.to_owned())
                    .unwrap_or_default();
                if let Some(handler) = def.handlers.get(&local) {
                    table.insert(
                        summary.name.clone(),
                        Registered {
                            pack: p.name.clone(),
                            summary,
                            handler: Arc::clone(handler),
                            settings: settings.clone(),
                            sandbox: sandbox.clone(),
                            runner: Arc::clone(&runner),
                        },
                    );
                }
            }
        }
        tracing::info!(
            active = packs.iter().filter(|p| p.state == PackState::Active).count(),
            probes = table.len(),
            ceiling = %self.config.max_capability,
            "executor table built"
        );
        if let Ok(mut l) = self.loaded.write() {
            *l = Arc::new(Loaded { packs, table });
        }
    }

    /// Records each refused pack (a shell as its program, a bad signature,
    /// a broken manifest) in the audit chain, once per pack identity.
    fn record_refusals(&self, packs: &[LoadedPack]) {
        for p in packs.iter().filter(|p| p.state == PackState::Refused) {
            let key = (p.name.clone(), p.manifest_sha256);
            let new = self
                .refusals_recorded
                .lock()
                .map(|mut seen| seen.insert(key))
                .unwrap_or(false);
            if new {
                tracing::warn!(pack = %p.name, reason = %p.missing.join("; "), "refused a pack");
                let entry = NewEntry::new("agent", AuditAction::PackRefused, "refused")
                    .agent(self.agent_id())
                    .detail("pack", p.name.clone())
                    .detail("manifest_sha256", p.manifest_sha256.to_hex())
                    .detail("reason", p.missing.join("; "));
                self.record_event(entry);
            }
        }
    }

    /// Replaces the grants with a verified set from the hub and rebuilds.
    /// Returns `Err` (and changes nothing) if any grant fails verification.
    pub fn apply_grants(&self, grants: Vec<PackGrant>) -> Result<(), String> {
        let (Some(key), Some(hub)) = (&self.hub_key, &self.hub) else {
            return Err("not enrolled: no hub key to verify grants with".into());
        };
        let total = grants.len();
        let (good, bad) = pack_states::verified_grants(grants, key, &hub.agent_id);
        if bad > 0 {
            return Err(format!(
                "{bad} of {total} grants do not verify with the hub key pinned at enrollment"
            ));
        }
        let text = serde_json::to_vec_pretty(&good).map_err(|e| e.to_string())?;
        if let Err(e) = replace_private(&self.data.grants(), &text) {
            tracing::error!(error = %e, "could not store grants (they apply until restart)");
        }
        if let Ok(mut g) = self.grants.lock() {
            *g = good;
        }
        self.reload();
        Ok(())
    }

    pub fn set_quarantined(&self, q: bool) {
        self.quarantined.store(q, Ordering::SeqCst);
    }

    pub fn pack_reports(&self) -> Vec<PackReport> {
        self.loaded()
            .packs
            .iter()
            .map(|p| p.report(self.config.max_capability))
            .collect()
    }

    pub fn attestation(&self) -> sonde_protocol::attestation::Attestation {
        crate::attest::attest(
            &self.config,
            pack_states::attested(&self.loaded().packs),
            self.binary_sha256,
            self.sandbox.level(),
        )
    }

    /// The hello that answers the hub's `challenge` with this agent's
    /// fresh `nonce`.
    pub fn hello(
        &self,
        challenge: &sonde_protocol::envelope::Nonce,
        nonce: &sonde_protocol::envelope::Nonce,
    ) -> anyhow::Result<AgentHello> {
        Ok(AgentHello {
            challenge: challenge.to_hex(),
            nonce: nonce.to_hex(),
            agent_id: self.agent_id(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: crate::attest::hostname(),
            attestation: self.attestation(),
            max_capability: self.config.max_capability,
            packs: self.pack_reports(),
            audit_head: self.audit.head()?,
        })
    }

    async fn failed(
        &self,
        code: ProbeErrorCode,
        mut message: String,
        started: Instant,
        entry: NewEntry,
    ) -> Execution {
        let entry = entry
            .detail("error_code", code.as_str())
            .detail("error", message.clone());
        let head = match self.record(entry).await {
            Ok(head) => head,
            Err(e) => {
                message.push_str(&format!(
                    "; and the agent could not record this in its audit chain: {e}"
                ));
                self.last_head()
            }
        };
        Execution::Failed {
            code,
            message,
            duration_ms: started.elapsed().as_millis() as u64,
            head,
        }
    }

    /// One entry per request (its verdict), committed before the reply
    /// leaves; concurrent requests share the commit. A failure is counted,
    /// logged, and stops probes from running until the chain takes an
    /// entry again ([`Self::audit_ready`]).
    async fn record(&self, entry: NewEntry) -> Result<ChainHead, String> {
        match self.audit.append_async(entry).await {
            Ok(e) => Ok(e.head()),
            Err(e) => Err(self.audit_failed(&e)),
        }
    }

    /// Counts and logs a failed append and remembers it; returns its text.
    fn audit_failed(&self, e: &dyn std::fmt::Display) -> String {
        let error = e.to_string();
        let total = self.audit_failures.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::error!(
            error = %error,
            failures = total,
            path = %self.data.audit_db().display(),
            "could not write to the local audit chain: no probe runs until it can be written"
        );
        if let Ok(mut trouble) = self.audit_trouble.lock() {
            let since_ms = trouble
                .as_ref()
                .map_or_else(sonde_protocol::time::now_ms, |t| t.since_ms);
            let refused = trouble.as_ref().map_or(0, |t| t.refused);
            *trouble = Some(AuditTrouble {
                error: error.clone(),
                since_ms,
                refused,
            });
        }
        error
    }

    /// Records an event that is not a request's verdict (a rejected frame,
    /// a renewed certificate, …); a failure is counted, logged and stops
    /// probes like any other.
    pub fn record_event(&self, entry: NewEntry) {
        if let Err(e) = self.audit.append(entry) {
            self.audit_failed(&e);
        }
    }

    /// Audit appends that failed since the agent started.
    pub fn audit_failures(&self) -> u64 {
        self.audit_failures.load(Ordering::SeqCst)
    }

    fn last_head(&self) -> ChainHead {
        self.audit.head().unwrap_or_else(|_| ChainHead::genesis())
    }

    /// `Ok` when the audit chain takes entries. After a failure, each
    /// request first tries to record `audit.recovered` (what failed, since
    /// when, how many requests were refused); until that works, requests
    /// are refused with the reason, before anything runs.
    async fn audit_ready(&self) -> Result<(), String> {
        let trouble = match self.audit_trouble.lock() {
            Ok(t) => t.clone(),
            Err(_) => return Err("the agent's audit state is poisoned; restart it".into()),
        };
        let Some(trouble) = trouble else {
            return Ok(());
        };
        let entry = NewEntry::new("agent", AuditAction::AuditRecovered, "ok")
            .agent(self.agent_id())
            .detail("error", trouble.error.clone())
            .detail("since_ms", trouble.since_ms)
            .detail("refused_requests", trouble.refused);
        match self.audit.append_async(entry).await {
            Ok(_) => {
                tracing::info!(
                    refused = trouble.refused,
                    "the local audit chain takes entries again; probes run again"
                );
                if let Ok(mut t) = self.audit_trouble.lock() {
                    *t = None;
                }
                Ok(())
            }
            Err(e) => {
                let error = self.audit_failed(&e);
                if let Ok(mut t) = self.audit_trouble.lock()
                    && let Some(t) = t.as_mut()
                {
                    t.refused += 1;
                }
                Err(format!(
                    "this agent cannot write its audit chain ({error}), so it runs no probes until it can: check free space and permissions of {} and the agent's log",
                    self.data.audit_db().display()
                ))
            }
        }
    }

    /// The hub's `probe.cancel` for `request_id`: cuts the running probe's
    /// deadline short (its programs' process groups are killed by the
    /// runner, an in-process handler is no longer waited for) and records
    /// `probe.cancel` (outcome `ok`, or `not_running` when it had already
    /// ended). The probe's own entry then says `cancelled`.
    pub async fn cancel(&self, actor: &str, request_id: &str, reason: &str) -> bool {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(request_id)
            .cloned();
        if let Some(r) = &running {
            *r.reason.lock().unwrap_or_else(|p| p.into_inner()) = reason.to_owned();
            r.flag.store(true, Ordering::SeqCst);
            r.token.cancel();
        }
        // A failure is logged and counted there, and stops further probes.
        let _ = self
            .record(
                NewEntry::new(
                    actor,
                    AuditAction::ProbeCancel,
                    if running.is_some() {
                        "ok"
                    } else {
                        "not_running"
                    },
                )
                .agent(self.agent_id())
                .detail("request_id", request_id)
                .detail("reason", reason),
            )
            .await;
        running.is_some()
    }

    /// Runs one request through the whole path: look up, validate, run
    /// under a deadline, scrub, digest, record the verdict.
    pub async fn execute(
        &self,
        actor: &str,
        request_id: &str,
        descriptor: &ProbeDescriptor,
        timeout: Duration,
    ) -> Execution {
        let started = Instant::now();
        let probe = descriptor.probe.as_str().to_owned();
        let params_digest = Digest::of_json(&Value::Object(descriptor.params.clone()));
        let received_at_ms = sonde_protocol::time::now_ms();
        let base = || {
            NewEntry::new(actor, AuditAction::ProbeDone, "ok")
                .agent(self.agent_id())
                .probe(probe.clone())
                .params_digest(params_digest)
                .detail("request_id", request_id)
                .detail("received_at_ms", received_at_ms)
        };
        let refused = |outcome: &str| NewEntry {
            action: AuditAction::ProbeRefused,
            outcome: outcome.into(),
            ..base()
        };
        if let Err(message) = self.audit_ready().await {
            return Execution::Failed {
                code: ProbeErrorCode::Refused,
                message,
                duration_ms: started.elapsed().as_millis() as u64,
                head: self.last_head(),
            };
        }
        if self.quarantined.load(Ordering::SeqCst) {
            return self
                .failed(
                    ProbeErrorCode::Refused,
                    "this agent is quarantined by the hub".into(),
                    started,
                    refused("refused"),
                )
                .await;
        }
        let loaded = self.loaded();
        let Some(reg) = loaded.table.get(&probe).cloned() else {
            return self
                .failed(
                    ProbeErrorCode::UnknownProbe,
                    format!("unknown probe {probe:?}"),
                    started,
                    refused("refused"),
                )
                .await;
        };
        let params = match validate(&reg.summary.params, &descriptor.params) {
            Ok(p) => p,
            Err(e) => {
                return self
                    .failed(
                        ProbeErrorCode::InvalidParams,
                        e.to_string(),
                        started,
                        refused("invalid"),
                    )
                    .await;
            }
        };
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            return self
                .failed(
                    ProbeErrorCode::Busy,
                    format!(
                        "the agent is already running {} probes; try again shortly",
                        self.config.max_concurrent_probes
                    ),
                    started,
                    refused("busy"),
                )
                .await;
        };
        let limit = timeout
            .min(Duration::from_millis(reg.summary.timeout_ms))
            .max(Duration::from_millis(1));
        let deadline = Instant::now() + limit;
        let guard = Arc::new(SecretGuard::new(
            Arc::clone(&self.scrubber),
            ProtectedFiles::scan(self.protected_roots.clone()),
        ));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sandbox = Arc::clone(&self.sandbox);
        let job_guard = Arc::clone(&guard);
        let cancel = Running::default();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request_id.to_owned(), cancel.clone());
        let job_flag = Arc::clone(&cancel.flag);
        // A thread of its own: the sandbox confines it for good.
        let spawned = std::thread::Builder::new()
            .name(format!("probe {probe}"))
            .spawn(move || {
                let _permit = permit;
                let result = match sandbox.confine_handler(&reg.sandbox) {
                    Err(e) => Err(ProbeError::Failed(e.to_string())),
                    Ok(()) => {
                        let ctx = ProbeContext {
                            deadline,
                            runner: reg.runner.as_ref(),
                            settings: &reg.settings,
                            secrets: &job_guard,
                        };
                        sonde_packs::exec::with_cancellation(job_flag, || {
                            reg.handler.run(&ctx, &params)
                        })
                    }
                };
                let _ = tx.send(result);
            });
        // The handler sees the deadline; this outer limit only catches one
        // that ignores it (its thread is left to finish on its own).
        let outcome = match spawned {
            Err(e) => Err(ProbeError::Failed(format!(
                "could not start the probe's thread: {e}"
            ))),
            Ok(_) => tokio::select! {
                waited = tokio::time::timeout(limit + Duration::from_secs(2), rx) => match waited {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err(ProbeError::Failed("the probe crashed".into())),
                    Err(_) => Err(ProbeError::Timeout),
                },
                // An in-process handler may not look at the flag: stop
                // waiting (its thread ends at its own deadline).
                () = cancel.token.cancelled() => Err(ProbeError::Timeout),
            },
        };
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request_id);
        let failed_entry = |outcome: &str| NewEntry {
            action: AuditAction::ProbeFailed,
            outcome: outcome.into(),
            ..base()
        };
        if cancel.flag.load(Ordering::SeqCst) {
            let reason = cancel
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            return self
                .failed(
                    ProbeErrorCode::Cancelled,
                    format!(
                        "cancelled by the hub after {} ms ({reason}); its programs were killed",
                        started.elapsed().as_millis()
                    ),
                    started,
                    failed_entry("cancelled"),
                )
                .await;
        }
        let output = match outcome {
            Ok(o) => o,
            Err(ProbeError::Timeout) => {
                return self
                    .failed(
                        ProbeErrorCode::Timeout,
                        format!("timed out after {} ms", limit.as_millis()),
                        started,
                        failed_entry("timeout"),
                    )
                    .await;
            }
            Err(e) => {
                return self
                    .failed(e.code(), e.to_string(), started, failed_entry("error"))
                    .await;
            }
        };
        let mut data = output.data;
        guard.scrub_value(&mut data);
        let redactions = guard.take_counts();
        let size = sonde_protocol::canonical::to_vec(&data).len();
        if size > MAX_RESULT_BYTES {
            return self.failed(
                ProbeErrorCode::TooLarge,
                format!("the result is {size} bytes, over the {MAX_RESULT_BYTES}-byte limit; ask for less (smaller limits or a narrower path)"),
                started,
                failed_entry("too_large"),
            )
            .await;
        }
        let digest = Digest::of_json(&data);
        let duration_ms = started.elapsed().as_millis() as u64;
        let recorded = self
            .record(
                NewEntry {
                    action: AuditAction::ProbeRan,
                    ..base()
                }
                .result_digest(digest)
                .detail("duration_ms", duration_ms)
                .detail("truncated", output.truncated)
                .detail(
                    "redactions",
                    serde_json::to_value(&redactions).unwrap_or_default(),
                ),
            )
            .await;
        // A result that is not in the chain never leaves the agent.
        let head = match recorded {
            Ok(head) => head,
            Err(e) => {
                return Execution::Failed {
                    code: ProbeErrorCode::Failed,
                    message: format!(
                        "the result is withheld: the agent could not record it in its audit chain ({e}); no probe runs until the chain can be written (check free space and permissions of {})",
                        self.data.audit_db().display()
                    ),
                    duration_ms,
                    head: self.last_head(),
                };
            }
        };
        Execution::Ran {
            data,
            truncated: output.truncated,
            redactions,
            digest,
            duration_ms,
            head,
        }
    }
}
