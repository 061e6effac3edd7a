//! The hub's per-call costs in its store and fleet:
//!
//! - finding an agent and its probe: the in-memory fleet (a hash lookup)
//!   against decoding the agent's catalog from JSON, which the hub did up to
//!   three times per call before (`catalog.json` is a real agent's pack list:
//!   system, systemd, docker and zfs, 43 KiB);
//! - interning a hello's catalog (once per connection);
//! - checking an API key (pooled reader, cached statement);
//! - recording one audit entry (group commit, `synchronous=FULL`) from 1 and
//!   8 concurrent callers.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use sonde_hub::fleet::Fleet;
use sonde_hub::store::{self, ApiKey, EnrollOutcome, EnrollmentToken, HubStore, IssuedCert};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::{EnrollmentStatus, PackReport};
use std::time::{Duration, Instant};

const CATALOG: &str = include_str!("catalog.json");
const PROBE: &str = "system.disk.usage";

fn attestation() -> sonde_protocol::attestation::Attestation {
    serde_json::from_value(serde_json::json!({
        "os_release": "Debian GNU/Linux 13", "kernel": "6.12", "arch": "x86_64",
        "binary_sha256": sonde_protocol::Digest::of(b"bin"), "packs": [],
        "config_sha256": sonde_protocol::Digest::of(b"cfg"), "machine_id": "m"
    }))
    .unwrap()
}

/// A store in a temp dir with `n` enrolled agents reporting the catalog.
async fn fleet(dir: &tempfile::TempDir, n: usize) -> (HubStore, Fleet, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let store = HubStore::open(&dir.path().join("hub.db"), key, 1000).unwrap();
    let packs: Vec<PackReport> = serde_json::from_str(CATALOG).unwrap();
    let mut last = String::new();
    for i in 0..n {
        let secret = store::tokens::new_secret();
        store
            .create_token(
                EnrollmentToken {
                    id: store::new_id("tok-", 5),
                    label: String::new(),
                    auto_approve: true,
                    created_at_ms: 0,
                    expires_at_ms: i64::MAX,
                    used_at_ms: None,
                    revoked_at_ms: None,
                },
                secret.clone(),
                "bench",
            )
            .await
            .unwrap();
        let name = format!("agent-{i:05}");
        let outcome = store
            .enroll(
                store::enrollments::NewEnrollment {
                    enrollment: store::Enrollment {
                        id: store::new_id("enr-", 6),
                        name: name.clone(),
                        hostname: name.clone(),
                        remote_addr: "127.0.0.1:1".into(),
                        token_id: String::new(),
                        token_label: String::new(),
                        csr_pem: String::new(),
                        tls_key_sha256: String::new(),
                        signing_key: String::new(),
                        attestation: attestation(),
                        auto_approved: false,
                        requested_at_ms: 0,
                        status: EnrollmentStatus::Pending,
                        decided_at_ms: None,
                        decided_by: None,
                        agent_id: None,
                    },
                    agent_id: store::new_id("agt-", 6),
                    preissued: IssuedCert {
                        pem: String::new(),
                        sha256: sonde_protocol::Digest::of(name.as_bytes()),
                        expires_ms: i64::MAX,
                    },
                },
                secret,
                1,
            )
            .await
            .unwrap();
        let EnrollOutcome::Approved(_, agent) = outcome else {
            panic!("not approved")
        };
        let catalog = store.catalog(packs.clone());
        store
            .packs_reported(&agent.id, catalog, Default::default())
            .await
            .unwrap();
        last = name;
    }
    let fleet = Fleet::load(store.clone()).await.unwrap();
    (store, fleet, last)
}

fn per_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, fleet, name) = rt.block_on(fleet(&dir, 1000));
    let mut g = c.benchmark_group("per_call");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("fleet_lookup_of_1000_agents_and_probe", |b| {
        b.iter(|| {
            let live = fleet.find(&name).unwrap();
            let agent = live.agent();
            assert!(agent.catalog.probe(PROBE).is_some());
        })
    });
    g.bench_function("decode_catalog_json_as_before", |b| {
        b.iter(|| {
            let packs: Vec<PackReport> = serde_json::from_str(CATALOG).unwrap();
            assert!(
                packs
                    .iter()
                    .flat_map(|p| p.probes.iter())
                    .any(|s| s.name == PROBE)
            );
        })
    });
    g.bench_function("intern_a_hello_catalog_once_per_connection", |b| {
        let packs: Vec<PackReport> = serde_json::from_str(CATALOG).unwrap();
        b.iter(|| store.catalog(packs.clone()))
    });
    let (secret, prefix) = store::keys::new_key();
    rt.block_on(store.create_key(
        ApiKey {
            id: "key-1".into(),
            name: "bench".into(),
            prefix: prefix.clone(),
            agents: vec![],
            probes: vec![],
            tools: vec![],
            max_capability: sonde_protocol::Capability::Observe,
            created_at_ms: 0,
            expires_at_ms: None,
            last_used_at_ms: None,
            revoked_at_ms: None,
        },
        secret,
        "bench",
    ))
    .unwrap();
    g.bench_function("api_key_check_pooled_reader", |b| {
        b.iter(|| rt.block_on(store.key_by_prefix(&prefix)).unwrap().unwrap())
    });
    for callers in [1u64, 8] {
        g.bench_function(format!("audit_entry_{callers}_callers_per_entry"), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(callers).max(1);
                let started = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..callers)
                        .map(|t| {
                            let store = store.clone();
                            tokio::spawn(async move {
                                for i in 0..per {
                                    store
                                        .record(
                                            NewEntry::new("api-key:sk_1", AuditAction::Probe, "ok")
                                                .agent("agt-1")
                                                .probe(PROBE)
                                                .detail("i", t * 1_000_000 + i),
                                        )
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per * callers) as f64)
            })
        });
    }
    g.finish();
    let (batches, changes) = store.writer_stats();
    eprintln!(
        "{changes} changes in {batches} commits ({:.1} per fsync)",
        changes as f64 / batches.max(1) as f64
    );
}

criterion_group!(benches, per_call);
criterion_main!(benches);
