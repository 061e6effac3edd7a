//! No secret leaves a machine, through a real agent: a log holding a PEM
//! key split over lines, a password on a line that is not UTF-8 and a
//! cloud key comes back with none of them in any encoding the result uses;
//! `grep` cannot find a redacted value; a log "file" that is a link to the
//! agent's own signing key is refused (judged on the opened file).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::{Value, json};
use sonde_tests::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

const PEM_BODY: [&str; 3] = [
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    "QyNTUxOQAAACDk2fQ9Yj0p3kM0Ll4Zx1Vq8Zr7sTnQ2a6W1B8xX2y3FAAAAJgXq1r3F6ta",
    "9wAAAAtzc2gtZWQyNTUxOQAAACDk2fQ9Yj0p3kM0Ll4Zx1Vq8Zr7sTnQ2a6W1B8xX2y3FA",
];

/// Every string in `v` and what each base64-looking one decodes to.
fn texts(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::String(s) => {
            out.push(s.clone().into_bytes());
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s) {
                out.push(b);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone().into_bytes());
            texts(x, out);
        }),
        _ => {}
    }
}

fn leaks(v: &Value, secrets: &[&str]) -> Vec<String> {
    let mut all = Vec::new();
    texts(v, &mut all);
    let mut found = Vec::new();
    for t in &all {
        for s in secrets {
            if t.windows(s.len()).any(|w| w == s.as_bytes()) {
                found.push(s.to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_secrets_never_leave_the_machine_in_any_encoding_or_by_grep() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let logs = scratch.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut log = b"Dec  1 10:00:00 nas app[1]: starting\n".to_vec();
    log.extend_from_slice(
        b"Dec  1 10:00:01 nas app[1]: key follows\n-----BEGIN OPENSSH PRIVATE KEY-----\n",
    );
    for line in PEM_BODY {
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
    }
    log.extend_from_slice(b"-----END OPENSSH PRIVATE KEY-----\n");
    log.extend_from_slice(
        b"Dec  1 10:00:02 nas app[1]: caf\xe9 \xff DB_PASSWORD=Tr0ub4dor3xyz ok\n",
    );
    log.extend_from_slice(b"Dec  1 10:00:03 nas app[1]: using AKIAIOSFODNN7EXAMPLE for backups\n");
    log.extend_from_slice(b"Dec  1 10:00:04 nas app[1]: done\n");
    std::fs::write(logs.join("app.log"), &log).unwrap();
    chown(&logs);
    chown(&logs.join("app.log"));

    let name = "leaky";
    let agent_dir = scratch.agent_dir(name);
    let key_link = logs.join("key.log");
    std::os::unix::fs::symlink(agent_dir.join("data").join("signing.key"), &key_link).unwrap();
    let extra = format!(
        "[packs.system]\nlog_files = [{:?}, {:?}]\n",
        format!("{}/", logs.display()),
        key_link.display().to_string()
    );
    let agent = online_agent(&scratch, &hub, name, &extra).await;
    assert!(agent.data.join("signing.key").exists());
    let key_text = std::fs::read_to_string(agent.data.join("signing.key")).unwrap();
    let key_tail: String = key_text
        .trim()
        .chars()
        .rev()
        .take(24)
        .collect::<String>()
        .chars()
        .rev()
        .collect();

    let secrets = [
        PEM_BODY[0],
        PEM_BODY[1],
        PEM_BODY[2],
        "Tr0ub4dor3xyz",
        "AKIAIOSFODNN7EXAMPLE",
    ];
    let path = logs.join("app.log").display().to_string();
    let r = admin_probe(
        &hub,
        name,
        "system.logs.tail",
        json!({"path": path, "lines": 50}),
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    let data = r.data.clone().unwrap();
    assert_eq!(leaks(&data, &secrets), Vec::<String>::new(), "{data}");
    // Everything else is still there, and the redactions are counted.
    let shown = data.to_string();
    assert!(
        shown.contains("key follows") && shown.contains("for backups"),
        "{shown}"
    );
    assert!(
        r.redactions.get("pem_private_key").copied().unwrap_or(0) >= 1,
        "{:?}",
        r.redactions
    );
    assert!(
        r.redactions.contains_key("secret_assignment"),
        "{:?}",
        r.redactions
    );
    assert!(
        r.redactions.contains_key("aws_access_key"),
        "{:?}",
        r.redactions
    );

    // A filter sees only what would leave the machine.
    for guess in ["Tr0ub4", "AKIAIOSF", &PEM_BODY[1][..20], "hunter"] {
        let r = admin_probe(
            &hub,
            name,
            "system.logs.tail",
            json!({"path": path, "lines": 50, "grep": guess}),
        )
        .await
        .unwrap();
        let lines = r.data.unwrap()["lines"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(lines.is_empty(), "grep {guess:?} matched {lines:?}");
    }
    // A visible word still matches.
    let r = admin_probe(
        &hub,
        name,
        "system.logs.tail",
        json!({"path": path, "grep": "backups"}),
    )
    .await
    .unwrap();
    assert_eq!(r.data.unwrap()["lines"].as_array().unwrap().len(), 1);

    // The agent's own key, through an allowlisted link: refused, never read.
    let r = admin_probe(
        &hub,
        name,
        "system.logs.tail",
        json!({"path": key_link.display().to_string()}),
    )
    .await
    .unwrap();
    assert!(!r.ok, "the agent's key came back: {r:?}");
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.contains(&key_tail), "{all}");
    let _ = T;
}
