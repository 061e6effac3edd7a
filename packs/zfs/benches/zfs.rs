//! The zfs pack on a large history: `file_history`, `find_deleted`,
//! `size_breakdown` and `bisect_change` over a generated dataset of
//! 10,000 files with 1,000 daily snapshots (about 0.8% of the files change
//! between two snapshots; unchanged files are hard links, as ZFS shares
//! unchanged blocks).
//!
//! The fixture is built once and kept in `target/sonde-zfs-bench-<S>x<F>`
//! (building the full size takes a few minutes and ~1 GB of directory
//! entries). Smaller runs: `SONDE_ZFS_BENCH_SNAPSHOTS=100
//! SONDE_ZFS_BENCH_FILES=1000 cargo bench -p sonde-pack-zfs`.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use sonde_pack_zfs::fixture::{Fixture, GENERATED_MARKER, GENERATED_PROBE_FILE};
use sonde_pack_zfs::probes::history::bisect_bound;
use sonde_packs::exec::SystemRunner;
use sonde_packs::handler::{PackDef, ProbeContext};
use sonde_protocol::schema::validate;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixture() -> Fixture {
    let snapshots = size("SONDE_ZFS_BENCH_SNAPSHOTS", 1000);
    let files = size("SONDE_ZFS_BENCH_FILES", 10_000);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(format!("sonde-zfs-bench-{snapshots}x{files}"));
    let done = dir.join("complete");
    if done.exists()
        && let Ok(f) = Fixture::load(&dir)
    {
        return f;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let start = Instant::now();
    eprintln!(
        "building the fixture: {snapshots} snapshots of {files} files in {}",
        dir.display()
    );
    let fake = PathBuf::from(env!("CARGO_BIN_EXE_sonde-zfs-fixture"));
    let f = Fixture::generated(&dir, &fake, snapshots, files, 42).unwrap();
    std::fs::write(&done, b"").unwrap();
    eprintln!("built in {:.1} s", start.elapsed().as_secs_f64());
    f
}

fn run(pack: &PackDef, runner: &SystemRunner, probe: &str, params: Value) -> (Value, bool) {
    let spec = pack.manifest.probe(probe).unwrap();
    let map: Map<String, Value> = params.as_object().cloned().unwrap();
    let validated = validate(&spec.params, &map).unwrap();
    let settings = Value::Null;
    let ctx = ProbeContext {
        deadline: Instant::now() + Duration::from_secs(600),
        runner,
        settings: &settings,
        secrets: &sonde_packs::SecretGuard::standard(),
    };
    let out = pack.handlers[probe].run(&ctx, &validated).unwrap();
    (out.data, out.truncated)
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let pack = sonde_pack_zfs::pack().unwrap();
    let runner = SystemRunner::new(&f.search_path());
    let snapshots = f.state.snapshots.len();
    let data = |extra: Value| {
        let mut v = json!({"dataset": "tank/data"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };

    // One look at each result, so the figures are of real work.
    let (history, _) = run(
        &pack,
        &runner,
        "file_history",
        data(json!({"path": GENERATED_PROBE_FILE})),
    );
    assert_eq!(history["snapshots_examined"], snapshots + 1);
    let (deleted, truncated) = run(
        &pack,
        &runner,
        "find_deleted",
        data(json!({"limit": 10_000})),
    );
    eprintln!(
        "find_deleted: {} entries, {} directories listed, {} unchanged, truncated: {truncated}",
        deleted["count"], deleted["directories_listed"], deleted["directories_unchanged"]
    );
    let (bisect, _) = run(
        &pack,
        &runner,
        "bisect_change",
        data(
            json!({"path": GENERATED_PROBE_FILE, "predicate": "contains", "value": GENERATED_MARKER}),
        ),
    );
    assert_eq!(bisect["changed"], true);
    let reads = bisect["snapshots_read"].as_u64().unwrap() as usize;
    assert!(reads <= bisect_bound(snapshots), "{bisect}");
    eprintln!(
        "bisect_change: read {reads} of {snapshots} snapshots; change between {} and {}",
        bisect["last_before_change"]["name"], bisect["first_after_change"]["name"]
    );

    let mut g = c.benchmark_group(format!("zfs_{snapshots}_snapshots"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("file_history", |b| {
        b.iter(|| {
            run(
                &pack,
                &runner,
                "file_history",
                data(json!({"path": GENERATED_PROBE_FILE})),
            )
        })
    });
    g.bench_function("find_deleted", |b| {
        b.iter(|| {
            run(
                &pack,
                &runner,
                "find_deleted",
                data(json!({"limit": 10_000})),
            )
        })
    });
    g.bench_function("size_breakdown", |b| {
        b.iter(|| run(&pack, &runner, "size_breakdown", data(json!({}))))
    });
    g.bench_function("size_breakdown_oldest_snapshot", |b| {
        b.iter(|| {
            run(
                &pack,
                &runner,
                "size_breakdown",
                data(json!({"snapshot": "oldest"})),
            )
        })
    });
    g.bench_function("bisect_change", |b| {
        b.iter(|| {
            run(
                &pack,
                &runner,
                "bisect_change",
                data(json!({"path": GENERATED_PROBE_FILE, "predicate": "contains", "value": GENERATED_MARKER})),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
