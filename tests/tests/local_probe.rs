//! `sonde-agent probe`: probes by hand, through the same path as hub requests.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sonde_tests::*;

fn local_agent(scratch: &Scratch) -> Agent {
    let agent = Agent::new(scratch, "local", "allow_unsigned_packs = true");
    agent.add_pack("loc", LOCAL_PACK);
    agent.add_pack("e2e", TEST_PACK);
    agent
}

fn run(agent: &Agent, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["probe", "--local"];
    all.extend_from_slice(args);
    let out = agent.output(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_say_ok_bad_input_refused_failed() {
    let scratch = Scratch::new();
    let agent = local_agent(&scratch);
    let (code, v, _) = run(
        &agent,
        &["loc.echo", "--param", "text=hello", "--param", "times=2"],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["text"], "hello\n");
    let (code, v, err) = run(&agent, &["loc.echo", "--params", r#"{"text": 5}"#]);
    assert_eq!(code, 2);
    assert_eq!(v["error"]["code"], "invalid_params");
    assert!(err.contains("parameter `text`"), "{err}");
    let (code, _, err) = run(
        &agent,
        &["loc.echo", "--param", "times=many", "--param", "text=x"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("not an integer"), "{err}");
    let (code, v, _) = run(&agent, &["loc.nope"]);
    assert_eq!(code, 2);
    assert_eq!(v["error"]["code"], "no_such_probe");
    let (code, v, _) = run(&agent, &["e2e.echo", "--param", "text=x"]);
    assert_eq!(code, 3, "a pack waiting for approval is refused: {v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("pending"),
        "{v}"
    );
    let (code, v, _) = run(&agent, &["loc.fail"]);
    assert_eq!(code, 4, "{v}");
    let (code, v, _) = run(&agent, &["loc.secrets", "--format", "pretty"]);
    assert_eq!(code, 0);
    assert_eq!(v["redactions"]["secret_assignment"], 1);
}

#[test]
fn list_shows_registered_probes_with_schemas() {
    let scratch = Scratch::new();
    let agent = local_agent(&scratch);
    let out = agent.output(&["probe", "--local", "--list"]);
    assert!(out.status.success());
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let echo = list
        .iter()
        .find(|p| p["name"] == "loc.echo")
        .expect("loc.echo listed");
    assert_eq!(echo["params"][0]["name"], "text");
    assert!(
        !list.iter().any(|p| p["name"] == "e2e.echo"),
        "pending packs are not registered"
    );
}

#[test]
fn stdio_round_trips_a_thousand_requests_in_order() {
    let scratch = Scratch::new();
    let agent = local_agent(&scratch);
    let requests = (0..1000)
        .map(|i| match i % 10 {
            7 => json!({"id": i, "probe": "loc.echo", "params": {"text": 5}}).to_string(),
            9 => "this is not json".to_owned(),
            _ => json!({"id": i, "probe": "loc.echo", "params": {"text": format!("n{i}")}})
                .to_string(),
        })
        .collect();
    let (status, replies) = agent.probe_stdio(true, requests);
    assert!(status.success());
    assert_eq!(replies.len(), 1000);
    for (i, r) in replies.iter().enumerate() {
        match i % 10 {
            7 => {
                assert_eq!(r["id"], i);
                assert_eq!(r["error"]["code"], "invalid_params");
            }
            9 => assert_eq!(r["error"]["code"], "invalid_request"),
            _ => {
                assert_eq!(r["id"], i, "replies come back in order");
                assert_eq!(r["data"]["text"], format!("n{i}\n"));
            }
        }
    }
}

#[test]
fn local_runs_are_in_the_local_audit_chain() {
    let scratch = Scratch::new();
    let agent = local_agent(&scratch);
    let (code, _, _) = run(&agent, &["loc.echo", "--param", "text=audited"]);
    assert_eq!(code, 0);
    let out = agent.output(&["audit", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("local:") && text.contains("probe.ran") && text.contains("loc.echo"),
        "{text}"
    );
    let out = agent.output(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn without_local_an_unenrolled_agent_says_how() {
    let scratch = Scratch::new();
    let agent = local_agent(&scratch);
    let out = agent.output(&["probe", "loc.echo", "--param", "text=x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--local"));
}

/// One request on a `probe --stdio --local` session, one reply.
fn ask(
    stdin: &mut std::process::ChildStdin,
    stdout: &mut impl std::io::BufRead,
    id: u64,
    text: &str,
) -> Value {
    use std::io::Write;
    let line = json!({"id": id, "probe": "loc.echo", "params": {"text": text}});
    writeln!(stdin, "{line}").unwrap();
    stdin.flush().unwrap();
    let mut reply = String::new();
    stdout.read_line(&mut reply).unwrap();
    serde_json::from_str(reply.trim()).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[test]
fn an_agent_that_cannot_write_its_audit_chain_runs_no_probe() {
    let scratch = Scratch::new();
    let agent = local_agent(&scratch);
    let (code, _, _) = run(&agent, &["loc.echo", "--param", "text=before"]);
    assert_eq!(code, 0);
    let db = agent.data.join("audit.db");
    let break_chain = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER no_room BEFORE INSERT ON audit_entries
                 BEGIN SELECT RAISE(ABORT, 'simulated: disk full'); END;",
            )
            .unwrap();
    };
    let mend_chain = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("DROP TRIGGER no_room")
            .unwrap();
    };
    break_chain();
    let mut child = agent
        .command(&["probe", "--stdio", "--local"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());

    // The first request runs, but its result cannot be recorded: withheld.
    let r = ask(&mut stdin, &mut stdout, 1, "secret-result-1");
    assert_eq!(r["ok"], false, "{r}");
    assert!(r.get("data").is_none_or(Value::is_null), "{r}");
    assert!(!r.to_string().contains("secret-result-1\\n"), "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("withheld") && message.contains("disk full"),
        "{r}"
    );
    // From then on nothing runs, and the reply says why.
    for id in 2..4 {
        let r = ask(&mut stdin, &mut stdout, id, "x");
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], "refused", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("runs no probes") && message.contains("disk full"),
            "{r}"
        );
    }
    // Once the chain takes entries again, probes run again, and the chain
    // says what happened.
    mend_chain();
    let r = ask(&mut stdin, &mut stdout, 4, "after");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["data"]["text"], "after\n");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let out = agent.output(&["audit", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("audit.recovered"), "{text}");
    let out = agent.output(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "the chain stays whole: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
