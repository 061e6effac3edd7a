//! Criterion benchmarks for the protocol crate:
//! - sign + verify of an envelope with a 1 KiB payload;
//! - append and verify of a 1,000,000-entry audit chain.
#![allow(clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use serde_json::json;
use sonde_protocol::audit::{AuditAction, ChainHead, Checkpoint, NewEntry, verify_chain};
use sonde_protocol::envelope::{Envelope, Kind, MessageId, PeerVerifier, VerifyPolicy};
use sonde_protocol::{Digest, time::now_ms};

fn envelope_1k() -> Envelope {
    Envelope {
        id: MessageId::random(),
        kind: Kind::ProbeResponse,
        sender: "agent-0123456789abcdef".into(),
        seq: 1,
        timestamp_ms: now_ms(),
        payload: json!({"request_id": "r-1", "data": {"text": "x".repeat(1000)}}),
    }
}

fn sign_verify(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let env = envelope_1k();
    let frame = env.sign(&key).unwrap();
    let mut group = c.benchmark_group("envelope_1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| env.sign(&key).unwrap()));
    group.bench_function("verify", |b| {
        b.iter_batched(
            || PeerVerifier::new(&env.sender, key.verifying_key(), VerifyPolicy::default()),
            |mut v| v.verify(&frame, env.timestamp_ms).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("sign+verify", |b| {
        b.iter_batched(
            || PeerVerifier::new(&env.sender, key.verifying_key(), VerifyPolicy::default()),
            |mut v| {
                let f = env.sign(&key).unwrap();
                v.verify(&f, env.timestamp_ms).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn chain(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let key = SigningKey::from_bytes(&[8; 32]);
    let entry = |i: u64| {
        NewEntry::new("api-key:sk_ab12", AuditAction::Probe, "ok")
            .agent("agent-1")
            .probe("zfs.file_history")
            .params_digest(Digest::of(&i.to_be_bytes()))
            .result_digest(Digest::of(b"result"))
    };
    let mut group = c.benchmark_group("audit_chain_1M");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N));
    group.bench_function("append", |b| {
        b.iter(|| {
            let mut head = ChainHead::genesis();
            let mut last = None;
            for i in 0..N {
                last = Some(head.append(entry(i), 1_700_000_000_000 + i as i64));
            }
            last
        })
    });
    let mut head = ChainHead::genesis();
    let entries: Vec<_> = (0..N)
        .map(|i| head.append(entry(i), 1_700_000_000_000 + i as i64))
        .collect();
    let checkpoints = vec![Checkpoint::sign(head, 0, &key)];
    group.bench_function("verify", |b| {
        b.iter_batched(
            || entries.clone(),
            |e| verify_chain(e, &checkpoints, &key.verifying_key()).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, sign_verify, chain);
criterion_main!(benches);
