//! Scrubbing speed: MB/s on a realistic log without secrets (the common
//! case: one prefilter pass), with a few secrets, and as a JSON result of
//! many lines (the whole-result layout). `cargo bench -p sonde-packs --bench scrub`.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use sonde_packs::scrub::Scrubber;
use std::hint::black_box;

/// ~4 MiB of syslog/nginx-like lines, no secrets.
fn clean_log() -> String {
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < 4 << 20 {
        i += 1;
        s.push_str(&format!(
            "Dec  1 12:{:02}:{:02} nas nginx[1234]: 192.168.1.{} - - \"GET /api/v1/items?page={} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt=0.{:03} uct=0.000\n",
            i % 60,
            (i * 7) % 60,
            i % 250,
            i % 97,
            1000 + i % 5000,
            i % 1000
        ));
        if i.is_multiple_of(10) {
            s.push_str("Dec  1 12:00:00 nas systemd[1]: Started Session 42 of user alice; token cache refreshed, key rotation ok\n");
        }
    }
    s
}

fn with_secrets(clean: &str) -> String {
    let mut s = String::new();
    for (n, line) in clean.lines().enumerate() {
        s.push_str(line);
        s.push('\n');
        if n.is_multiple_of(5000) {
            s.push_str("app: DB_PASSWORD=hunter2 connecting to postgres://app:Pa55w0rd@db/x\n");
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let scrubber = Scrubber::default_rules();
    let clean = clean_log();
    let dirty = with_secrets(&clean);
    for (name, t) in scrubber.time_rules(clean.as_bytes()) {
        eprintln!(
            "rule {name}: {:.1} ms over {} KiB",
            t.as_secs_f64() * 1000.0,
            clean.len() / 1024
        );
    }
    let mut g = c.benchmark_group("scrub");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("clean_text_4MiB", |b| {
        b.iter(|| {
            let mut counts = Default::default();
            black_box(scrubber.scrub_bytes(black_box(clean.as_bytes()), &mut counts))
        })
    });
    g.throughput(Throughput::Bytes(dirty.len() as u64));
    g.bench_function("text_with_secrets_4MiB", |b| {
        b.iter(|| {
            let mut counts = Default::default();
            black_box(scrubber.scrub_bytes(black_box(dirty.as_bytes()), &mut counts))
        })
    });
    let lines: Vec<Value> = clean.lines().map(|l| json!(l)).collect();
    let result = json!({"path": "/var/log/syslog", "lines": lines});
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("json_result_of_lines_4MiB", |b| {
        b.iter_batched(
            || result.clone(),
            |mut v| black_box(scrubber.scrub_value(&mut v)),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
