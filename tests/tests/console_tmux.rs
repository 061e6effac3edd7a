//! The console end to end, in a real terminal (tmux), against a real hub
//! and real agents:
//!
//! - an enrollment approved with its confirmation (`a` shows the machine,
//!   `y` approves), the agent online in Fleet, the audit chain verified, a
//!   probe run from Try it;
//! - a pack approved with its confirmation, attestation drift kept
//!   quarantined and then released from the console, an API key copied
//!   with OSC 52 (read back from tmux's paste buffer, `set-clipboard on`)
//!   and shown plainly for the mouse (one logical line), the audit
//!   filtered by agent *name*, and the command palette.
//!
//! - an integration added from the console's form (a refusal shown in
//!   it), its credential set through the masked input, approved with its
//!   confirmation; the hub's list agrees and the secret is nowhere on
//!   screen, in the audit chain or the logs.
//!
//! Skipped (with a message) only when tmux is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sonde_protocol::messages::PackState;
use sonde_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const T: Duration = Duration::from_secs(30);

/// A private tmux server (its own socket name), killed on drop.
struct Tmux {
    socket: String,
    last: std::cell::RefCell<String>,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The console at 160×45 in a detached session; tmux keeps what the
    /// console copies with OSC 52 as a paste buffer (`set-clipboard on`).
    fn start(data: &Path, err_log: &Path) -> Tmux {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tmux = Tmux {
            socket: format!("sonde-console-e2e-{}-{nanos}", std::process::id()),
            last: Default::default(),
        };
        let command = format!(
            "TERM=xterm-256color '{}' --data '{}' 2>'{}'",
            bin("sonde-console").display(),
            data.display(),
            err_log.display()
        );
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "45",
            "-s",
            "console",
            &command,
            ";",
            "set-option",
            "-g",
            "set-clipboard",
            "on",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys {keys:?}");
    }

    /// Literal text (no key-name lookup).
    fn type_text(&self, text: &str) {
        let out = self.cmd(&["send-keys", "-t", "console", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text:?}");
    }

    /// The screen, with lines the terminal wrapped softly joined (`-J`).
    fn capture(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-J", "-t", "console"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        *self.last.borrow_mut() = text.clone();
        text
    }

    /// What the console last copied (tmux's newest paste buffer).
    fn clipboard(&self) -> String {
        let out = self.cmd(&["show-buffer"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_clipboard(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let ok = wait_until(T, || pred(&self.clipboard()));
        assert!(
            ok,
            "the clipboard never held {what}; it holds {:?}; screen:\n{}",
            self.clipboard(),
            self.capture()
        );
        self.clipboard()
    }

    /// Polls the screen until `pred` holds (bounded), or fails with the screen.
    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let ok = wait_until(T, || pred(&self.capture()));
        assert!(
            ok,
            "the console never showed {what}; screen:\n{}",
            self.last.borrow()
        );
    }

    fn wait_text(&self, text: &str) {
        self.wait_screen(&format!("{text:?}"), |s| s.contains(text));
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "console"]).status.success()
    }

    /// `q`, and the console is gone without a panic.
    fn quit(&self, err_log: &Path) {
        self.keys(&["q"]);
        let exited = wait_until(Duration::from_secs(10), || !self.alive());
        assert!(
            exited,
            "the console did not quit; screen:\n{}",
            self.capture()
        );
        let stderr = std::fs::read_to_string(err_log).unwrap_or_default();
        assert!(!stderr.contains("panicked"), "console stderr:\n{stderr}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_installed() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_approves_an_enrollment_and_verifies_the_audit_chain() {
    if !tmux_installed() {
        skip_unless_ci("tmux is not installed (the console end-to-end test needs it)");
        return;
    }
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut agent = Agent::new(&scratch, "nas1", "");
    let (token, ca) = hub.token(false);
    let mut enroll = agent.spawn_enroll(&hub, &token, &ca);
    assert!(
        hub.wait_pending_enrollments(1).await,
        "no pending enrollment; enroll log:\n{}",
        agent.enroll_log()
    );

    let err_log = scratch.path().join("console.err");
    let tmux = Tmux::start(&hub.data, &err_log);
    tmux.wait_text("1 Fleet");
    // The status bar counts the pending request; Fleet points to it.
    tmux.wait_text("enrollments 1");
    tmux.wait_text("1 enrollment request(s) are waiting for you");

    // Enrollments: `a` shows the machine and asks; only `y` approves.
    tmux.keys(&["2"]);
    tmux.wait_screen("the pending enrollment of nas1", |s| {
        s.contains("Pending enrollments") && s.contains("nas1")
    });
    tmux.keys(&["a"]);
    tmux.wait_text("Approve the enrollment of nas1");
    tmux.wait_text("client certificate");
    assert!(
        matches!(enroll.try_wait(), Ok(None)),
        "approved before y was pressed"
    );
    tmux.keys(&["y"]);
    let approved = wait_until(T, || matches!(enroll.try_wait(), Ok(Some(_))));
    assert!(
        approved,
        "the enroll command is still waiting; screen:\n{}\nenroll log:\n{}",
        tmux.capture(),
        agent.enroll_log()
    );
    assert!(
        enroll.wait().unwrap().success(),
        "enroll failed:\n{}",
        agent.enroll_log()
    );
    tmux.wait_text("approved enrollment of nas1");

    // Fleet: the agent comes online.
    agent.run();
    tmux.keys(&["1"]);
    tmux.wait_screen("nas1 online in Fleet", |s| {
        s.lines()
            .any(|l| l.contains("nas1") && l.contains("online"))
    });

    // Audit: the approval, by the operator; verify says OK.
    tmux.keys(&["5"]);
    tmux.wait_screen("the approval in the audit log", |s| {
        s.lines().any(|l| {
            l.contains("enrollment.approved")
                && l.contains("operator:")
                && l.contains("machine nas1")
        })
    });
    tmux.keys(&["v"]);
    tmux.wait_text("Audit chain OK");
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the verification closed", |s| {
        !s.contains("Verify the audit chain — Esc closes")
    });

    // Try it: run system.uptime on nas1 through the hub.
    tmux.keys(&["7"]);
    tmux.wait_text("Online agents");
    tmux.wait_screen("nas1 among the online agents", |s| {
        s.lines().any(|l| l.contains("nas1"))
    });
    tmux.keys(&["Enter"]);
    tmux.wait_text("system.uptime");
    tmux.keys(&["/"]);
    tmux.type_text("uptime");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("only the uptime probe", |s| {
        s.contains("system.uptime") && !s.contains("system.memory.usage")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_text("This probe takes no parameters");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the probe result", |s| {
        s.contains("duration") && s.contains("redactions") && s.contains("audit entry")
    });
    // Audited with the operator as the actor.
    let runs: Vec<_> = hub
        .audit_actions("probe")
        .into_iter()
        .filter(|e| e["probe"] == "system.uptime")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0]["actor"].as_str().unwrap().starts_with("operator:"),
        "{runs:?}"
    );
    assert_eq!(runs[0]["outcome"], "ok", "{runs:?}");

    // Back out of the result and the form (where `q` would be typed), then quit.
    tmux.keys(&["Escape"]);
    tmux.wait_text("Enter run");
    tmux.keys(&["Escape"]);
    tmux.wait_text("▶ Probes");
    tmux.quit(&err_log);
    hub.assert_audit_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_approves_a_pack_releases_a_kept_quarantine_copies_a_key_filters_by_name_and_runs_commands()
 {
    if !tmux_installed() {
        skip_unless_ci("tmux is not installed (the console end-to-end test needs it)");
        return;
    }
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let admin = hub.admin();
    // nas1 brings a pack that needs the operator; web2 is just there.
    let mut nas = Agent::new(&scratch, "nas1", "");
    nas.add_pack("e2e", TEST_PACK);
    nas.enroll_auto(&hub);
    nas.run();
    assert!(
        nas.wait_state(&hub, "online", T).await,
        "{}",
        nas.log_text()
    );
    let _web = online_agent(&scratch, &hub, "web2", "").await;

    let err_log = scratch.path().join("console.err");
    let tmux = Tmux::start(&hub.data, &err_log);
    tmux.wait_text("1 Fleet");

    // Permissions: the e2e pack, approved only after its grants are shown and y.
    tmux.keys(&["3"]);
    tmux.keys(&["/"]);
    tmux.type_text("e2e");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("e2e pending on nas1", |s| {
        s.lines()
            .any(|l| l.contains("nas1") && l.contains("e2e") && l.contains("PENDING"))
    });
    tmux.wait_text("filter \"e2e\"");
    tmux.keys(&["a"]);
    tmux.wait_text("Approve pack e2e 1.0.0 on nas1?");
    tmux.wait_text("capability");
    tmux.keys(&["y"]);
    let active = wait_for(T, || async {
        admin
            .agent("nas1")
            .await
            .map(|d| {
                d.packs
                    .iter()
                    .any(|p| p.name == "e2e" && p.state == PackState::Active)
            })
            .unwrap_or(false)
    })
    .await;
    assert!(
        active,
        "e2e never became active; screen:\n{}",
        tmux.capture()
    );
    tmux.wait_screen("e2e active", |s| {
        s.lines()
            .any(|l| l.contains("e2e") && l.contains("active") && l.contains("approved"))
    });
    // The cursor stayed on e2e: a second `a` asks nothing and sends nothing.
    tmux.keys(&["a"]);
    tmux.wait_text("already approved");
    assert_eq!(hub.audit_actions("pack.approved").len(), 1);

    // Drift: a new pack appears; the agent is quarantined.
    nas.stop();
    nas.add_pack(
        "extra",
        &TEST_PACK.replace("name = \"e2e\"", "name = \"extra\""),
    );
    nas.run();
    assert!(
        nas.wait_state(&hub, "quarantined", T).await,
        "hub log:\n{}",
        hub.log_text()
    );
    // Attestation: what changed, in words; `n` keeps it quarantined...
    tmux.keys(&["4"]);
    tmux.wait_screen("the open drift of nas1", |s| {
        s.lines()
            .any(|l| l.contains("nas1") && l.contains("OPEN drift"))
    });
    tmux.wait_text("pack extra added: 1.0.0");
    tmux.keys(&["n"]);
    // ...and it stays listed, reachable: no dead end.
    tmux.wait_screen("nas1 kept quarantined, still listed", |s| {
        s.lines()
            .any(|l| l.contains("nas1") && l.contains("KEPT quarantined by operator:"))
    });
    assert_eq!(hub.audit_actions("attestation.kept_quarantined").len(), 1);
    // Released from the console: accept the new baseline (with y).
    tmux.keys(&["a"]);
    tmux.wait_text("Accept the current attestation of nas1");
    tmux.keys(&["y"]);
    assert!(
        nas.wait_state(&hub, "online", T).await,
        "nas1 was not released; screen:\n{}",
        tmux.capture()
    );
    tmux.wait_text("Nothing needs you");

    // Keys: a new key, copied whole with OSC 52 (tmux keeps it as a buffer).
    tmux.keys(&["6"]);
    tmux.wait_text("API keys");
    tmux.keys(&["c"]);
    tmux.wait_text("Create an API key");
    tmux.type_text("laptop");
    tmux.keys(&["Enter"]);
    tmux.wait_text("New API key — shown once");
    let prefix = admin
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "laptop")
        .unwrap()
        .prefix;
    tmux.keys(&["y"]);
    let key = tmux.wait_clipboard("the API key", |c| c.starts_with("sonde_sk_"));
    assert!(key.starts_with(&format!("sonde_{prefix}_")), "{key}");
    assert_eq!(key.len(), "sonde_sk_12345678_".len() + 40, "{key:?}");
    assert!(
        tmux.capture().contains(&key),
        "the copied key is the one shown"
    );
    // The claude line, whole, and the CA trust line next to it.
    tmux.keys(&["j", "y"]);
    let claude = tmux.wait_clipboard("the claude mcp add line", |c| {
        c.starts_with("claude mcp add")
    });
    assert!(claude.ends_with(&format!("Bearer {key}\"")), "{claude}");
    tmux.keys(&["j", "y"]);
    let trust = tmux.wait_clipboard("the CA trust line", |c| {
        c.starts_with("export NODE_EXTRA_CA_CERTS=")
    });
    assert_eq!(
        trust,
        format!(
            "export NODE_EXTRA_CA_CERTS={}",
            hub.data.join("ca.crt").display()
        )
    );
    // Shown plainly for the mouse: each line one logical line, unbroken.
    tmux.keys(&["p"]);
    tmux.wait_screen("the claude line on one line", |s| {
        s.lines().any(|l| l.trim_end() == claude)
    });
    tmux.keys(&["Enter"]);
    tmux.wait_text("New API key — shown once");
    tmux.keys(&["Escape"]);
    // Closed before the next key: an Esc followed at once by `5` would
    // reach the console as Alt-5.
    tmux.wait_screen("the key listed, the secret closed", |s| {
        s.contains(&prefix) && !s.contains("shown once")
    });

    // Audit: filtered by the agent's *name*; rows name agents and packs.
    tmux.keys(&["5"]);
    tmux.keys(&["/"]);
    tmux.type_text("agent:nas1");
    tmux.keys(&["Enter"]);
    tmux.wait_text("filter \"agent:nas1\"");
    tmux.wait_screen("only nas1's entries, the pack approval by name", |s| {
        s.lines()
            .any(|l| l.contains("pack.approved") && l.contains("nas1") && l.contains("pack e2e"))
            && s.contains("attestation.kept_quarantined")
            && !s.contains("web2")
            && !s.contains("key.created")
    });

    // The palette: an agent by name (Fleet, its detail), then a screen.
    tmux.keys(&[":"]);
    tmux.wait_text("Command — Enter runs");
    tmux.type_text("agent web2");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("web2's detail in Fleet", |s| {
        s.contains("Agent web2") && s.contains("Fleet (")
    });
    tmux.keys(&[":"]);
    tmux.type_text("perm");
    tmux.keys(&["Enter"]);
    tmux.wait_text("Pack permissions");

    tmux.quit(&err_log);
    hub.assert_audit_ok();
}

/// The whole pane history (not only what is on screen now).
fn history(tmux: &Tmux) -> String {
    let out = tmux.cmd(&["capture-pane", "-p", "-J", "-S", "-", "-t", "console"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_adds_an_integration_sets_its_credential_masked_and_approves_it() {
    if !tmux_installed() {
        skip_unless_ci("tmux is not installed (the console end-to-end test needs it)");
        return;
    }
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let err_log = scratch.path().join("console.err");
    let tmux = Tmux::start(&hub.data, &err_log);
    tmux.wait_text("1 Fleet");
    tmux.keys(&["9"]);
    tmux.wait_text("c adds one");

    // The add form: exactly what `integrations add` takes.
    let fill = |name: &str| {
        tmux.keys(&["c"]);
        tmux.wait_text("Add an integration");
        tmux.type_text(name);
        tmux.keys(&["Tab"]);
        tmux.type_text("prometheus");
        tmux.keys(&["Tab"]);
        tmux.type_text("http://127.0.0.1:9");
        // fingerprint, ca_file, then queries.
        tmux.keys(&["Tab", "Tab", "Tab"]);
        tmux.type_text("node_count=count(up{job=\"node\"})");
        tmux.wait_text("ready: Enter adds it");
        tmux.keys(&["Enter"]);
    };
    fill("prom-e2e");
    tmux.wait_text("added integration prom-e2e");
    tmux.wait_screen("prom-e2e pending", |s| {
        s.lines()
            .any(|l| l.contains("prom-e2e") && l.contains("pending"))
    });
    // The same name again: the hub's refusal, word for word, in the form.
    fill("prom-e2e");
    tmux.wait_text("the hub refused it: integration \"prom-e2e\" exists");
    tmux.keys(&["Escape"]);
    tmux.wait_text("cancelled: nothing was added");

    // The credential: typed into a masked input, never drawn.
    let secret = "Zq9-e2e-bearer-Xv7Lw3Kp";
    tmux.keys(&["e"]);
    tmux.wait_text("Credential of prom-e2e");
    tmux.type_text(secret);
    tmux.wait_text(&format!("{} character(s) typed, not shown", secret.len()));
    let screen = tmux.capture();
    assert!(
        !screen.contains(secret) && !screen.contains("Xv7Lw3Kp"),
        "{screen}"
    );
    tmux.keys(&["Enter"]);
    tmux.wait_text("credential of prom-e2e set");
    tmux.wait_screen("the credential's fingerprint", |s| {
        s.lines()
            .any(|l| l.contains("prom-e2e") && l.contains("fp:"))
    });

    // Approve: shows what it reaches, asks y.
    tmux.keys(&["a"]);
    tmux.wait_text("Approve integration prom-e2e (prometheus)?");
    tmux.keys(&["y"]);
    tmux.wait_screen("prom-e2e approved", |s| {
        s.lines()
            .any(|l| l.contains("prom-e2e") && l.contains("approved"))
    });

    // The hub agrees.
    let listed = hub.cli_json(&["integrations", "list"]);
    let list = listed.as_array().unwrap();
    assert_eq!(list.len(), 1, "{listed}");
    let i = &list[0];
    assert_eq!(i["name"], "prom-e2e", "{i}");
    assert_eq!(i["kind"], "prometheus", "{i}");
    assert_eq!(i["state"], "approved", "{i}");
    assert_eq!(i["base_url"], "http://127.0.0.1:9/", "{i}");
    assert_eq!(
        i["settings"]["queries"]["node_count"], "count(up{job=\"node\"})",
        "{i}"
    );
    assert!(
        i["credential"]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("fp:")),
        "{i}"
    );
    assert_eq!(i["credential"]["set_by"], i["created_by"], "{i}");
    for action in [
        "integration.added",
        "integration.credential_set",
        "integration.approved",
    ] {
        assert_eq!(hub.audit_actions(action).len(), 1, "{action}");
    }

    // Nowhere: the whole pane history, the audit chain, the hub's log,
    // the console's stderr, the database.
    assert!(!history(&tmux).contains(secret));
    assert!(
        !serde_json::to_string(&hub.audit_entries())
            .unwrap()
            .contains(secret)
    );
    assert!(!hub.log_text().contains(secret));
    assert!(
        !std::fs::read_to_string(&err_log)
            .unwrap_or_default()
            .contains(secret)
    );
    for f in ["hub.db", "hub.db-wal"] {
        let bytes = std::fs::read(hub.data.join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{f} holds the credential"
        );
    }

    // Clearing asks first.
    tmux.keys(&["E"]);
    tmux.wait_text("Clear the credential of prom-e2e?");
    tmux.keys(&["y"]);
    tmux.wait_text("cleared the credential of integration prom-e2e");
    let listed = hub.cli_json(&["integrations", "list"]);
    assert!(listed[0]["credential"].is_null(), "{listed}");
    assert_eq!(hub.audit_actions("integration.credential_cleared").len(), 1);
    tmux.quit(&err_log);
    hub.assert_audit_ok();
}
