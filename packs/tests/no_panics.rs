//! Nothing a probe reads can make it panic: every parser of the built-in
//! packs gets arbitrary bytes (and, for JSON summaries, arbitrary JSON
//! documents, and recorded fixtures with bytes flipped).
#![allow(clippy::unwrap_used)]

mod support;

use proptest::prelude::*;
use serde_json::Value;
use sonde_packs::docker;
use sonde_packs::http_client::{self, ApiPath, Endpoint, Get};
use sonde_packs::system::{cpu, disk, journal, logs, memory, network};
use sonde_packs::systemd;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
        // Keys the parsers look for, as values too.
        prop::sample::select(vec![
            "running",
            "exited",
            "Exited (1) 2 s ago",
            "(unhealthy)",
            "@12",
            "-1"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let keys = prop::sample::select(vec![
            "Id",
            "Names",
            "State",
            "Status",
            "Ports",
            "Created",
            "Health",
            "Log",
            "Config",
            "Env",
            "HostConfig",
            "RestartPolicy",
            "Mounts",
            "NetworkSettings",
            "Networks",
            "RepoTags",
            "Size",
            "Warnings",
            "message",
            "dmesg",
            "pri",
            "time",
            "msg",
            "ifname",
            "addr_info",
            "MESSAGE",
            "__REALTIME_TIMESTAMP",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

/// A recorded fixture with some bytes replaced.
fn mangled(fixture: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let original = support::fixture(fixture);
    let len = original.len().max(1);
    prop::collection::vec((0..len, any::<u8>()), 0..20).prop_map(move |edits| {
        let mut b = original.clone();
        for (i, v) in edits {
            if let Some(x) = b.get_mut(i) {
                *x = v;
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = disk::parse_mountinfo(&bytes);
        let _ = disk::unescape(&bytes);
        let _ = memory::summarise(&text);
        let _ = cpu::summarise(&text, &text, &text);
        let _ = network::parse_net_dev(&text);
        let _ = network::parse_ip_addr(&bytes);
        let _ = network::parse_ping(&text);
        let _ = journal::parse_reversed(&bytes);
        let _ = logs::dmesg_json(&bytes);
        let _ = logs::dmesg_lines(&bytes);
        let _ = logs::tail_bytes(&bytes, bytes.first().is_some_and(|b| b % 2 == 0), 10, bytes.get(..2));
        let _ = systemd::parse_units(&text);
        let _ = systemd::status_from(&systemd::parse_show(&text));
        let frames = docker::demux(&bytes, None);
        let _ = docker::log_lines(&frames);
        let frames = docker::demux(&bytes, Some("application/vnd.docker.multiplexed-stream"));
        let _ = docker::log_lines(&frames);
    }

    #[test]
    fn recorded_output_with_flipped_bytes_never_panics(
        stat in mangled("system/proc-stat-2.txt"),
        mountinfo in mangled("system/proc-self-mountinfo.txt"),
        journal_bytes in mangled("system/journalctl-reverse.jsonl"),
        dmesg in mangled("system/dmesg-json.json"),
        units in mangled("systemd/list-units-service-all.txt"),
    ) {
        let first = support::fixture_text("system/proc-stat-1.txt");
        let _ = cpu::summarise(&first, &String::from_utf8_lossy(&stat), "0.1 0.2 0.3 1/100 42");
        let _ = disk::select_mounts(disk::parse_mountinfo(&mountinfo), None, false);
        let _ = journal::parse_reversed(&journal_bytes);
        let _ = logs::dmesg_json(&dmesg);
        let _ = systemd::parse_units(&String::from_utf8_lossy(&units));
    }

    #[test]
    fn docker_summaries_never_panic(v in json_value()) {
        let _ = docker::containers_from(&v);
        let _ = docker::inspect_from(&v);
        let _ = docker::images_from(&v);
        let _ = docker::info_from(&v);
        let _ = journal::journal_entry(v.to_string().as_bytes());
        let _ = logs::dmesg_json(v.to_string().as_bytes());
        let _ = network::parse_ip_addr(v.to_string().as_bytes());
    }
}

proptest! {
    // Each case starts a socket server: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_http_client_never_panics_on_what_a_server_sends(
        head in prop::sample::select(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut answer = head.as_bytes().to_vec();
        answer.extend_from_slice(&tail);
        let server = std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
            }
        });
        let target = ApiPath::new(["info"]);
        let get = Get {
            host: "docker",
            target: target.as_str(),
            headers: &[],
            max_body: 1 << 16,
        };
        let r = http_client::get(
            &Endpoint::Unix(&path),
            &get,
            Instant::now() + Duration::from_secs(2),
        );
        if let Ok(resp) = r {
            prop_assert!(resp.body.len() <= 1 << 16);
        }
        server.join().unwrap();
    }
}
