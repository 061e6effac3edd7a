//! No shell, enforced by the kernel: an approved hostile pack tries a dozen
//! ways to reach a shell through a real agent. Each attempt is refused by
//! the agent's checks or fails inside the Landlock sandbox, and is audited;
//! the marker file a shell would create never appears.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sonde_tests::*;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Copies a system program under an innocent name: a wrapper the agent's
/// name list cannot know.
fn gadget(dir: &Path, from: &str, name: &str) {
    let real = std::fs::canonicalize(from).unwrap();
    std::fs::copy(real, dir.join(name)).unwrap();
}

/// (probe name, argv) — every way in this list ends at a shell or an
/// interpreter if nothing stops it.
fn attempts(marker: &str) -> Vec<(&'static str, Vec<String>)> {
    let touch = format!("touch {marker}");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("env_sh", s(&["helper-env", "sh", "-c", &touch])),
        ("env_abs_sh", s(&["helper-env", "/bin/sh", "-c", &touch])),
        (
            "env_relative_dash",
            s(&[
                "helper-env",
                "../../../../../../../../usr/bin/dash",
                "-c",
                &touch,
            ]),
        ),
        ("env_bash", s(&["helper-env", "bash", "-c", &touch])),
        (
            "find_exec",
            s(&[
                "helper-find",
                "/etc/hostname",
                "-exec",
                "sh",
                "-c",
                &touch,
                ";",
            ]),
        ),
        ("xargs_sh", s(&["helper-xargs", "sh", "-c", &touch])),
        (
            "timeout_sh",
            s(&["helper-timeout", "5", "sh", "-c", &touch]),
        ),
        (
            "nice_python",
            s(&[
                "helper-nice",
                "python3",
                "-c",
                &format!("open('{marker}','w')"),
            ]),
        ),
        (
            "env_perl",
            s(&["helper-env", "perl", "-e", &format!("open(F,'>{marker}')")]),
        ),
        (
            "env_env_sh",
            s(&["helper-env", "helper-env", "sh", "-c", &touch]),
        ),
        ("loader_copy", s(&["helper-ld", "sh", "-c", &touch])),
        ("loader_link", s(&["ld-helper", "/bin/sh", "-c", &touch])),
        ("shell_link", s(&["innocent", "-c", &touch])),
        ("script", s(&["helper-script"])),
    ]
}

fn pack_toml(name: &str, probes: &[(&str, Vec<String>)]) -> String {
    let mut t = format!("name = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"hostile\"\n");
    for (probe, argv) in probes {
        t.push_str(&format!(
            "\n[[probes]]\nname = \"{probe}\"\ndescription = \"try\"\ntimeout_ms = 10000\nexec = {}\n",
            serde_json::to_string(argv).unwrap()
        ));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_hostile_pack_cannot_reach_a_shell() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let gadgets = scratch.path().join("gadgets");
    std::fs::create_dir(&gadgets).unwrap();
    gadget(&gadgets, "/usr/bin/env", "helper-env");
    gadget(&gadgets, "/usr/bin/find", "helper-find");
    gadget(&gadgets, "/usr/bin/xargs", "helper-xargs");
    gadget(&gadgets, "/usr/bin/timeout", "helper-timeout");
    gadget(&gadgets, "/usr/bin/nice", "helper-nice");
    gadget(&gadgets, "/lib64/ld-linux-x86-64.so.2", "helper-ld");
    std::os::unix::fs::symlink("/lib64/ld-linux-x86-64.so.2", gadgets.join("ld-helper")).unwrap();
    std::os::unix::fs::symlink("/bin/sh", gadgets.join("innocent")).unwrap();
    let markers = scratch.agent_dir("markers");
    let marker = markers.join("pwned");
    let script = gadgets.join("helper-script");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let probes = attempts(&marker.display().to_string());
    let mut agent = Agent::new(
        &scratch,
        "target",
        &format!(
            "command_path = \"{}:/usr/bin:/bin\"\nrequire_sandbox = true",
            gadgets.display()
        ),
    );
    let mut with_control = probes.clone();
    with_control.push(("control", vec!["helper-env".into()]));
    agent.add_pack("hostile", &pack_toml("hostile", &with_control));
    // The blunt way: a known shell, wrapper or interpreter as the program
    // refuses the whole pack when it loads.
    agent.add_pack(
        "blunt",
        &pack_toml(
            "blunt",
            &[
                (
                    "setarch",
                    vec![
                        "setarch".into(),
                        "x86_64".into(),
                        "/bin/sh".into(),
                        "-c".into(),
                        "id".into(),
                    ],
                ),
                ("awk", vec!["awk".into(), "BEGIN{system(\"id\")}".into()]),
            ],
        ),
    );
    agent.enroll_auto(&hub);
    agent.run();
    assert!(
        agent.wait_state(&hub, "online", T).await,
        "{}",
        agent.log_text()
    );
    hub.approve_pack("target", "hostile").await;
    // The gadgets themselves run (so what stops the attempts below is not
    // a missing file): an unknown wrapper with nothing to wrap.
    let control = admin_probe(&hub, "target", "hostile.control", json!({}))
        .await
        .unwrap();
    assert!(control.ok, "{control:?}");
    let mut by_kernel = 0;
    for (probe, argv) in &probes {
        let r = admin_probe(&hub, "target", &format!("hostile.{probe}"), json!({}))
            .await
            .unwrap();
        assert!(!r.ok, "{probe} ({argv:?}) ran: {r:?}");
        assert!(!marker.exists(), "{probe} created the marker");
        let error = r.error.clone().unwrap_or_default();
        let refused = error.contains("never executed") || error.contains("was not run");
        let kernel = error.contains("Permission denied") || error.contains("cannot open");
        assert!(
            refused || kernel,
            "{probe}: neither refused nor stopped by the kernel: {error}"
        );
        by_kernel += usize::from(kernel && !refused);
    }
    assert!(
        by_kernel >= 8,
        "only {by_kernel} attempts reached the kernel's sandbox"
    );
    // Every attempt is in the agent's chain, as a refusal or a failure.
    let out = agent.output(&["audit", "list", "--limit", "500"]);
    let chain = String::from_utf8_lossy(&out.stdout).into_owned();
    for (probe, _) in &probes {
        assert!(
            chain
                .lines()
                .any(|l| l.contains(&format!("hostile.{probe}"))
                    && (l.contains("probe.failed") || l.contains("probe.refused"))),
            "{probe} is not audited as refused or failed:\n{chain}"
        );
    }
    assert!(chain.contains("pack.refused"), "{chain}");
    let perms = hub.admin().permissions(true).await.unwrap();
    let blunt = perms
        .iter()
        .find(|p| p.pack == "blunt")
        .expect("blunt is reported");
    assert_eq!(blunt.state, sonde_protocol::messages::PackState::Refused);
    assert!(!marker.exists());
    // The attestation says the kernel sandbox is on.
    let detail = hub.admin().agent("target").await.unwrap();
    assert!(
        detail.summary.sandbox.starts_with("landlock-v"),
        "{:?}",
        detail.summary.sandbox
    );
}
