//! Admin calls off the draw loop: a background thread runs a tokio runtime,
//! takes [`Request`]s over a channel, runs each one as its own task (a slow
//! call never holds up the others) and sends a [`Response`] back.

use sonde_admin::AdminClient;
use sonde_admin::api::*;
use std::sync::mpsc;

/// A credential on its way to the hub: wiped from memory when dropped
/// (and by [`execute`] as soon as it is sent), never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(zeroize::Zeroizing<String>);

impl SecretText {
    /// Takes the typed text as it is (its buffer moves, nothing is copied).
    pub fn new(text: zeroize::Zeroizing<String>) -> SecretText {
        SecretText(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Zeroes the text now.
    pub fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.0);
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// Adding an integration as the console's form gives it: the request, and
/// the local files (a CA to pin, a third-party manifest directory) the
/// worker reads into it — reading files is I/O, kept off the app state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntegrationAddForm {
    pub add: IntegrationAdd,
    /// A PEM file whose CA the integration pins.
    pub ca_file: Option<String>,
    /// A directory holding `integration.toml` and `integration.sig`.
    pub manifest_dir: Option<String>,
}

/// One thing to ask the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    Agents,
    Agent(String),
    Enrollments,
    Permissions,
    /// Drift events: open ones, or (true) all with their decisions.
    Drift(bool),
    /// Every quarantined agent (kept ones too) with its latest drift.
    Quarantined,
    /// Probe traffic per minute over this many minutes.
    Metrics(u32),
    /// An audit page; the number is the console's query generation, so
    /// answers to superseded queries are dropped.
    Audit(AuditQuery, u64),
    AuditEntry(u64),
    AuditVerify,
    Keys,
    Tokens,
    /// MCP clients' OAuth authorization requests (pending ones).
    OAuthRequests,
    OAuthClients,
    Integrations,
    IntegrationAction(String, IntegrationAction),
    /// Run an integration's test probe.
    TestIntegration(String),
    AddIntegration(Box<IntegrationAddForm>),
    /// Set or replace an integration's credential.
    SetCredential(String, SecretText),
    RotateIntegrationKey,
    RevokeAgent(String),
    AcceptBaseline(String),
    KeepQuarantined(String),
    SetTags(String, Vec<String>),
    /// agent, pack, `approve` | `deny` | `revoke`
    DecidePack(String, String, PackAction),
    ApproveEnrollment(String),
    DenyEnrollment(String),
    CreateKey(KeyCreate),
    RevokeKey(String),
    CreateToken(TokenCreate),
    RevokeToken(String),
    /// Approve an OAuth request (id) with the policy the client gets.
    ApproveOAuth(String, OAuthApprove),
    DenyOAuth(String),
    RevokeOAuthClient(String),
    Probe(ProbeRun),
    /// Critical paths with their last runs.
    Paths,
    /// Run a critical path now (as the operator).
    RunPath(String),
    RemovePath(String),
    /// Write a probe result to a new file (never overwrites).
    SaveFile {
        path: String,
        contents: String,
    },
}

impl Request {
    /// A short stable label (in-flight tracking, messages).
    pub fn label(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Agents => "agents",
            Request::Agent(_) => "agent",
            Request::Enrollments => "enrollments",
            Request::Permissions => "permissions",
            Request::Drift(false) => "drift",
            Request::Drift(true) => "drift history",
            Request::Quarantined => "quarantined",
            Request::Metrics(_) => "metrics",
            Request::Audit(..) => "audit",
            Request::AuditEntry(_) => "audit entry",
            Request::AuditVerify => "audit verify",
            Request::Keys => "keys",
            Request::Tokens => "tokens",
            Request::OAuthRequests => "oauth requests",
            Request::OAuthClients => "oauth clients",
            Request::ApproveOAuth(..) => "approve oauth",
            Request::DenyOAuth(_) => "deny oauth",
            Request::RevokeOAuthClient(_) => "revoke oauth client",
            Request::Integrations => "integrations",
            Request::IntegrationAction(..) => "integration",
            Request::TestIntegration(_) => "test integration",
            Request::AddIntegration(_) => "add integration",
            Request::SetCredential(..) => "set credential",
            Request::RotateIntegrationKey => "rotate integration key",
            Request::RevokeAgent(_) => "revoke agent",
            Request::AcceptBaseline(_) => "accept baseline",
            Request::KeepQuarantined(_) => "keep quarantined",
            Request::SetTags(..) => "set tags",
            Request::DecidePack(..) => "pack decision",
            Request::ApproveEnrollment(_) => "approve enrollment",
            Request::DenyEnrollment(_) => "deny enrollment",
            Request::CreateKey(_) => "create key",
            Request::RevokeKey(_) => "revoke key",
            Request::CreateToken(_) => "create token",
            Request::RevokeToken(_) => "revoke token",
            Request::Probe(_) => "probe",
            Request::Paths => "paths",
            Request::RunPath(_) => "run path",
            Request::RemovePath(_) => "remove path",
            Request::SaveFile { .. } => "save",
        }
    }

    /// Reads are refreshed periodically; actions change state.
    pub fn is_action(&self) -> bool {
        !matches!(
            self,
            Request::Status
                | Request::Agents
                | Request::Agent(_)
                | Request::Enrollments
                | Request::Permissions
                | Request::Drift(_)
                | Request::Quarantined
                | Request::Metrics(_)
                | Request::Audit(..)
                | Request::AuditEntry(_)
                | Request::Keys
                | Request::Tokens
                | Request::OAuthRequests
                | Request::OAuthClients
                | Request::Integrations
                | Request::Paths
        )
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(HubStatus),
    Agents(Vec<AgentSummary>),
    Agent(Box<AgentDetail>),
    Enrollments(Vec<EnrollmentInfo>),
    Permissions(Vec<PermissionRequest>),
    Drift(Vec<DriftEvent>),
    Quarantined(Vec<QuarantinedAgent>),
    Metrics(FleetMetrics),
    Audit(AuditPage, u64),
    AuditEntry(Box<AuditEntryDetail>),
    AuditVerify(AuditVerifyReport),
    Keys(Vec<KeyInfo>),
    Tokens(Vec<TokenInfo>),
    OAuthRequests(Vec<OAuthRequestInfo>),
    OAuthClients(Vec<OAuthClientInfo>),
    Integrations(Vec<IntegrationInfo>),
    Paths(Vec<PathInfo>),
    /// An action succeeded; the text says what happened.
    Done(String),
    KeyCreated(Box<KeyCreated>),
    TokenCreated(Box<TokenCreated>),
    Probe(Box<ProbeRunResult>),
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// The hub is not running / not reachable (as opposed to refusing).
    pub unreachable: bool,
}

/// The answer to one [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub request: Request,
    pub result: Result<Reply, Failure>,
}

/// Runs one request against the hub (or, for [`Request::SaveFile`], the
/// local file system).
pub async fn execute(client: &AdminClient, mut request: Request) -> Response {
    if let Request::SaveFile { path, contents } = &request {
        let result = save(path, contents).await.map_err(|message| Failure {
            message,
            unreachable: false,
        });
        return Response { request, result };
    }
    let failure = |e: sonde_admin::AdminError| Failure {
        unreachable: e.is_unreachable(),
        message: e.to_string(),
    };
    let result = match &request {
        Request::AddIntegration(form) => match read_files(form).await {
            Ok(add) => add_integration(client, &add).await.map_err(failure),
            Err(message) => Err(Failure {
                message,
                unreachable: false,
            }),
        },
        _ => run(client, &request).await.map_err(failure),
    };
    // The credential went to the hub: nothing of it comes back with the
    // answer.
    if let Request::SetCredential(_, secret) = &mut request {
        secret.wipe();
    }
    Response { request, result }
}

/// The form's request with the files it names read in.
async fn read_files(form: &IntegrationAddForm) -> Result<IntegrationAdd, String> {
    async fn read(path: &std::path::Path, what: &str) -> Result<String, String> {
        // Bounded: a manifest, a signature and a CA are small text files.
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
        if meta.len() > 1 << 20 {
            return Err(format!(
                "{what} {} is {} bytes; at most 1 MiB is read",
                path.display(),
                meta.len()
            ));
        }
        tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
    }
    let mut add = form.add.clone();
    if let Some(ca) = &form.ca_file {
        add.ca_pem = Some(read(std::path::Path::new(ca), "the CA file").await?);
    }
    if let Some(dir) = &form.manifest_dir {
        let dir = std::path::Path::new(dir);
        add.manifest = Some(read(&dir.join("integration.toml"), "the manifest").await?);
        add.signature = Some(
            read(&dir.join("integration.sig"), "the publisher signature")
                .await
                .map_err(|e| {
                    format!(
                        "{e} (sign the manifest with `sonde-hub integrations sign DIR --key KEY`)"
                    )
                })?,
        );
    }
    Ok(add)
}

/// Adds an integration (its files already read in).
async fn add_integration(
    client: &AdminClient,
    add: &IntegrationAdd,
) -> Result<Reply, sonde_admin::AdminError> {
    let i = client.add_integration(add).await?;
    Ok(Reply::Done(format!(
        "added integration {} ({}): pending — a approves it{}",
        i.name,
        i.kind,
        if i.kind == "prometheus" || i.kind == "alertmanager" {
            ""
        } else {
            ", e sets its credential"
        }
    )))
}

/// Writes `contents` to a new file at `path` (an existing file is never
/// replaced: the operator picks another name).
async fn save(path: &str, contents: &str) -> Result<Reply, String> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{path} already exists; choose another name")
            }
            _ => format!("cannot create {path}: {e}"),
        })?;
    file.write_all(contents.as_bytes())
        .await
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    file.flush()
        .await
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(Reply::Done(format!(
        "saved the result to {path} ({} bytes)",
        contents.len()
    )))
}

async fn run(client: &AdminClient, request: &Request) -> Result<Reply, sonde_admin::AdminError> {
    Ok(match request {
        Request::Status => Reply::Status(client.status().await?),
        Request::Agents => Reply::Agents(client.agents().await?),
        Request::Agent(name) => Reply::Agent(Box::new(client.agent(name).await?)),
        Request::Enrollments => Reply::Enrollments(client.enrollments(false).await?),
        // Every pack (approved ones too, so they can be revoked); the
        // screen puts pending ones first.
        Request::Permissions => Reply::Permissions(client.permissions(true).await?),
        Request::Drift(all) => Reply::Drift(client.drift(*all).await?),
        Request::Quarantined => Reply::Quarantined(client.quarantined().await?),
        Request::Metrics(minutes) => Reply::Metrics(
            client
                .metrics(MetricsQuery {
                    minutes: Some(*minutes),
                })
                .await?,
        ),
        Request::Audit(query, generation) => Reply::Audit(client.audit(query).await?, *generation),
        Request::AuditEntry(seq) => Reply::AuditEntry(Box::new(client.audit_entry(*seq).await?)),
        Request::AuditVerify => Reply::AuditVerify(client.audit_verify().await?),
        Request::Keys => Reply::Keys(client.keys().await?),
        Request::Tokens => Reply::Tokens(client.tokens().await?),
        Request::OAuthRequests => Reply::OAuthRequests(client.oauth_requests(false).await?),
        Request::OAuthClients => Reply::OAuthClients(client.oauth_clients().await?),
        Request::ApproveOAuth(id, policy) => {
            let r = client.approve_oauth(id, policy).await?;
            Reply::Done(format!(
                "approved {} for {}; its browser is sent back to {}",
                r.id,
                crate::text::clean(&r.client_name),
                crate::text::clean(&r.redirect_host)
            ))
        }
        Request::DenyOAuth(id) => {
            let r = client.deny_oauth(id).await?;
            Reply::Done(format!(
                "denied {} for {}",
                r.id,
                crate::text::clean(&r.client_name)
            ))
        }
        Request::RevokeOAuthClient(id) => {
            let c = client.revoke_oauth_client(id).await?;
            Reply::Done(format!(
                "revoked OAuth client {} ({}); its tokens no longer work",
                crate::text::clean(&c.name),
                c.client_id
            ))
        }
        Request::Integrations => Reply::Integrations(client.integrations().await?),
        Request::TestIntegration(name) => {
            Reply::Probe(Box::new(client.test_integration(name).await?))
        }
        Request::IntegrationAction(name, action) => {
            let i = client.integration_action(name, *action).await?;
            Reply::Done(match action {
                IntegrationAction::ClearCredential => {
                    format!("cleared the credential of integration {}", i.name)
                }
                _ => format!("{action}: integration {} ({})", i.name, i.state),
            })
        }
        // `execute` reads the form's files first; a form without them is
        // the same request.
        Request::AddIntegration(form) => return add_integration(client, &form.add).await,
        Request::SetCredential(name, secret) => {
            let mut body = CredentialSet {
                secret: secret.expose().to_owned(),
            };
            let result = client.set_integration_credential(name, &body).await;
            zeroize::Zeroize::zeroize(&mut body.secret);
            let i = result?;
            Reply::Done(format!(
                "credential of {} set ({}); it is never shown again",
                i.name,
                i.credential
                    .map(|c| c.fingerprint)
                    .unwrap_or_else(|| "?".into())
            ))
        }
        Request::RotateIntegrationKey => {
            let r = client.rotate_integration_key().await?;
            Reply::Done(format!(
                "re-encrypted {} credential(s) under key {}",
                r.credentials, r.key_id
            ))
        }
        Request::RevokeAgent(name) => {
            client.revoke_agent(name).await?;
            Reply::Done(format!("revoked agent {name}"))
        }
        Request::AcceptBaseline(name) => {
            client.accept_baseline(name).await?;
            Reply::Done(format!("accepted the new baseline of {name}"))
        }
        Request::KeepQuarantined(name) => {
            client.keep_quarantined(name).await?;
            Reply::Done(format!("{name} stays quarantined (drift closed as kept)"))
        }
        Request::SetTags(name, tags) => {
            client.set_tags(name, tags.clone()).await?;
            Reply::Done(format!("tags of {name} set"))
        }
        Request::DecidePack(agent, pack, action) => {
            let p = client.decide_pack(agent, pack, *action).await?;
            Reply::Done(format!("{action}: pack {} on {}", p.pack, p.agent_name))
        }
        Request::ApproveEnrollment(name) => {
            client.approve_enrollment(name).await?;
            Reply::Done(format!("approved enrollment of {name}"))
        }
        Request::DenyEnrollment(name) => {
            client.deny_enrollment(name).await?;
            Reply::Done(format!("denied enrollment of {name}"))
        }
        Request::CreateKey(k) => Reply::KeyCreated(Box::new(client.create_key(k).await?)),
        Request::RevokeKey(id) => {
            let k = client.revoke_key(id).await?;
            Reply::Done(format!("revoked key {}", k.name))
        }
        Request::CreateToken(t) => Reply::TokenCreated(Box::new(client.create_token(t).await?)),
        Request::RevokeToken(id) => {
            let t = client.revoke_token(id).await?;
            Reply::Done(format!("revoked token {}", t.label))
        }
        Request::Probe(run) => Reply::Probe(Box::new(client.probe(run).await?)),
        Request::Paths => Reply::Paths(client.paths().await?),
        Request::RunPath(name) => {
            let report = client.run_path(name).await?;
            Reply::Done(format!(
                "path {name}: {}",
                report["summary"].as_str().unwrap_or("ran")
            ))
        }
        Request::RemovePath(name) => {
            client.remove_path(name).await?;
            Reply::Done(format!("removed critical path {name}"))
        }
        Request::SaveFile { path, .. } => {
            return Err(sonde_admin::AdminError::Protocol(format!(
                "{path}: files are saved locally, not by the hub"
            )));
        }
    })
}

/// Longest wait for a read (status, lists, audit pages).
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The background thread and its two channels.
#[derive(Debug)]
pub struct Worker {
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    responses: mpsc::Receiver<Response>,
}

/// The worker thread could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the admin worker thread: {0}")]
pub struct WorkerError(#[from] std::io::Error);

impl Worker {
    /// Starts the thread (`client`'s timeout applies to actions; reads use
    /// [`READ_TIMEOUT`]). It ends when the [`Worker`] is dropped (calls
    /// still running are abandoned with the process).
    pub fn spawn(client: AdminClient) -> Result<Worker, WorkerError> {
        let (req_tx, mut req_rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let (resp_tx, resp_rx) = mpsc::channel::<Response>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sonde-console-admin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(request) = req_rx.recv().await {
                        // A hub that accepts but does not answer must not
                        // hold up the periodic reads for long; actions
                        // (verify, probes) may legitimately take a while.
                        let client = if request.is_action() {
                            client.clone()
                        } else {
                            client.clone().with_timeout(READ_TIMEOUT)
                        };
                        let tx = resp_tx.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(execute(&client, request).await);
                        });
                    }
                });
            })?;
        Ok(Worker {
            requests: req_tx,
            responses: resp_rx,
        })
    }

    pub fn send(&self, request: Request) {
        let _ = self.requests.send(request);
    }

    /// The next answer, if one is ready (never blocks).
    pub fn try_recv(&self) -> Option<Response> {
        self.responses.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn unreachable_hub_comes_back_as_a_failure_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let worker = Worker::spawn(AdminClient::for_data_dir(dir.path())).unwrap();
        worker.send(Request::Status);
        let start = Instant::now();
        let response = loop {
            if let Some(r) = worker.try_recv() {
                break r;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no answer");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(response.request, Request::Status);
        let failure = response.result.unwrap_err();
        assert!(failure.unreachable);
        assert!(
            failure.message.contains("admin.sock"),
            "{}",
            failure.message
        );
    }

    #[tokio::test]
    async fn the_add_form_files_are_read_into_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("integration.toml"), "[integration]\n").unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let form = IntegrationAddForm {
            add: IntegrationAdd {
                name: "x".into(),
                base_url: "https://x.lan".into(),
                ..Default::default()
            },
            ca_file: Some(ca.display().to_string()),
            manifest_dir: Some(m.display().to_string()),
        };
        // No signature: refused before the hub is asked, saying how to sign.
        let e = read_files(&form).await.unwrap_err();
        assert!(
            e.contains("integration.sig") && e.contains("sonde-hub integrations sign"),
            "{e}"
        );
        std::fs::write(m.join("integration.sig"), "key = \"k\"\n").unwrap();
        let add = read_files(&form).await.unwrap();
        assert_eq!(add.manifest.as_deref(), Some("[integration]\n"));
        assert_eq!(add.signature.as_deref(), Some("key = \"k\"\n"));
        assert_eq!(add.ca_pem.as_deref(), Some("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(add.name, "x");
        // Through `execute`: a missing file is a local failure, not "unreachable".
        let client = AdminClient::for_data_dir(dir.path());
        let mut bad = form.clone();
        bad.ca_file = Some(dir.path().join("nope.pem").display().to_string());
        let r = execute(&client, Request::AddIntegration(Box::new(bad))).await;
        let f = r.result.unwrap_err();
        assert!(!f.unreachable && f.message.contains("nope.pem"), "{f:?}");
    }

    #[tokio::test]
    async fn a_credential_is_wiped_from_the_request_once_sent() {
        let dir = tempfile::tempdir().unwrap();
        let client = AdminClient::for_data_dir(dir.path());
        let secret = SecretText::new(zeroize::Zeroizing::new("tok-secret".to_owned()));
        let r = execute(&client, Request::SetCredential("prom".into(), secret)).await;
        let Request::SetCredential(name, s) = &r.request else {
            panic!("{r:?}");
        };
        assert_eq!(name, "prom");
        assert!(s.is_empty(), "the answer carries no credential");
        assert!(r.result.unwrap_err().unreachable);
    }

    #[tokio::test]
    async fn saving_writes_a_new_file_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json").display().to_string();
        let client = AdminClient::for_data_dir(dir.path());
        let save = |contents: &str| Request::SaveFile {
            path: path.clone(),
            contents: contents.into(),
        };
        let r = execute(&client, save("{}")).await;
        assert!(
            matches!(&r.result, Ok(Reply::Done(t)) if t.contains("2 bytes")),
            "{r:?}"
        );
        let again = execute(&client, save("other")).await.result.unwrap_err();
        assert!(
            again.message.contains("already exists"),
            "{}",
            again.message
        );
        assert!(!again.unreachable);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    }
}
