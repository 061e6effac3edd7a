//! The console end to end, in a real terminal (tmux): a real hub, an agent
//! enrollment waiting for approval, approved with keystrokes; then the agent
//! online in Fleet, the approval in Audit, "verify" OK, and a probe run from
//! "Try it". Skipped (with a message) only when tmux is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sonde_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    fn capture(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", "console"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        *self.last.borrow_mut() = text.clone();
        text
    }

    /// Polls the screen until `pred` holds (bounded), or fails with the screen.
    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let ok = wait_until(Duration::from_secs(30), || pred(&self.capture()));
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
        eprintln!("SKIPPED: tmux is not installed (the console end-to-end test needs it)");
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
    // The status bar counts the pending request.
    tmux.wait_text("enrollments 1");

    // Enrollments: the request is listed; `a` approves it.
    tmux.keys(&["2"]);
    tmux.wait_screen("the pending enrollment of nas1", |s| {
        s.contains("Pending enrollments") && s.contains("nas1")
    });
    tmux.keys(&["a"]);
    let approved = wait_until(Duration::from_secs(30), || {
        matches!(enroll.try_wait(), Ok(Some(_)))
    });
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
        s.lines()
            .any(|l| l.contains("enrollment.approved") && l.contains("operator:"))
    });
    tmux.keys(&["v"]);
    tmux.wait_text("Audit chain OK");
    tmux.keys(&["Escape"]);

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

    // Out of the form (where `q` would be typed), then quit: the console exits cleanly.
    tmux.keys(&["Escape"]);
    tmux.wait_text("▶ Probes");
    tmux.keys(&["q"]);
    let exited = wait_until(Duration::from_secs(10), || !tmux.alive());
    assert!(
        exited,
        "the console did not quit; screen:\n{}",
        tmux.capture()
    );
    let stderr = std::fs::read_to_string(&err_log).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "console stderr:\n{stderr}");
    hub.assert_audit_ok();
}
