//! The zfs pack on a large history.
//!
//! `session`: twenty mixed questions an assistant asks about one dataset
//! with 1,000 snapshots (200 files), with a fake `zfs` that costs 50 ms a
//! command (as a real one does on a box with thousands of snapshots):
//! with the model kept between calls (`cached`) and listed on every call
//! (`uncached`, as before), with the number of commands each makes.
//!
//! `zfs_1000_snapshots`: `file_history`, `find_deleted`, `size_breakdown`
//! and `bisect_change` over a generated dataset of 10,000 files with 1,000
//! daily snapshots (about 0.8% of the files change between two snapshots;
//! unchanged files are hard links, as ZFS shares unchanged blocks).
//! `large_files_8_GiB`: `versions_of`, `bisect_change` by hash and 4 MiB
//! reads (at the start and 7 GiB in) of sparse 8–9 GiB files.
//! `SONDE_ZFS_BENCH_ONLY=session` runs only these two,
//! `SONDE_ZFS_BENCH_ONLY=history` only the last.
//!
//! The fixture is built once and kept in `target/sonde-zfs-bench-<S>x<F>`
//! (building the full size takes a few minutes and ~1 GB of directory
//! entries). Smaller runs: `SONDE_ZFS_BENCH_SNAPSHOTS=100
//! SONDE_ZFS_BENCH_FILES=1000 cargo bench -p sonde-pack-zfs`.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use sonde_pack_zfs::cache::ModelCache;
use sonde_pack_zfs::fixture::{Fixture, GENERATED_MARKER, GENERATED_PROBE_FILE};
use sonde_pack_zfs::probes::history::bisect_bound;
use sonde_packs::exec::{Argv, CommandRunner, ExecError, ExecLimits, ExecOutput, SystemRunner};
use sonde_packs::handler::{PackDef, ProbeContext};
use sonde_protocol::schema::validate;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    built(snapshots, files)
}

/// The generated fixture of that size, built once in `target/`.
fn built(snapshots: usize, files: usize) -> Fixture {
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

/// Runs commands for real, counting them: listings (`zfs list`, and
/// `zfs get` of the listing columns on old ZFS) and the others.
struct Counting {
    real: SystemRunner,
    listings: AtomicUsize,
    others: AtomicUsize,
}

impl Counting {
    fn new(path: &str) -> Counting {
        Counting {
            real: SystemRunner::new(path),
            listings: AtomicUsize::new(0),
            others: AtomicUsize::new(0),
        }
    }

    fn take(&self) -> (usize, usize) {
        (
            self.listings.swap(0, Ordering::SeqCst),
            self.others.swap(0, Ordering::SeqCst),
        )
    }
}

impl CommandRunner for Counting {
    fn run(&self, argv: &Argv, limits: &ExecLimits) -> Result<ExecOutput, ExecError> {
        let args: Vec<String> = argv
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let listing = argv.program == "zfs"
            && (args.first().is_some_and(|a| a == "list")
                || args.iter().any(|a| a.contains("createtxg")));
        if listing {
            self.listings.fetch_add(1, Ordering::SeqCst);
        } else {
            self.others.fetch_add(1, Ordering::SeqCst);
        }
        self.real.run(argv, limits)
    }

    fn resolve(&self, program: &str) -> Option<PathBuf> {
        self.real.resolve(program)
    }
}

/// Twenty questions an assistant might ask about `tank/data`.
fn session_questions() -> Vec<(&'static str, Value)> {
    let probe = GENERATED_PROBE_FILE;
    let q = |probe: &'static str, extra: Value| {
        let mut v = json!({"dataset": "tank/data"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        (probe, v)
    };
    vec![
        q("list_snapshots", json!({"limit": 50})),
        q("snapshot_cadence", json!({})),
        q("list_dir", json!({"path": "d0000"})),
        q("read_file", json!({"path": probe})),
        q(
            "read_file",
            json!({"path": probe, "snapshot": "auto-00100"}),
        ),
        q("file_history", json!({"path": probe})),
        q("versions_of", json!({"path": probe})),
        q(
            "file_diff",
            json!({"path": probe, "from": "auto-00300", "to": "auto-00400"}),
        ),
        q(
            "bisect_change",
            json!({"path": probe, "predicate": "contains", "value": GENERATED_MARKER}),
        ),
        q("first_appearance", json!({"path": "d0001/f0000150.txt"})),
        q("last_appearance", json!({"path": "d0000/f0000010.txt"})),
        q(
            "snapshots_containing",
            json!({"path": "d0000/f0000020.txt", "limit": 20}),
        ),
        q(
            "read_file",
            json!({"path": probe, "snapshot": "2021-01-01"}),
        ),
        q("list_dir", json!({"path": "d0001", "snapshot": "oldest"})),
        q("find_files", json!({"name": "probe*"})),
        q(
            "content_grep",
            json!({"path": probe, "text": GENERATED_MARKER}),
        ),
        q("size_delta", json!({"from": "auto-00500"})),
        q(
            "diff_snapshots",
            json!({"from": "auto-00998", "to": "auto-00999"}),
        ),
        q("size_breakdown", json!({"path": "d0000"})),
        q(
            "stale_snapshots",
            json!({"older_than": "2021-01-01", "limit": 20}),
        ),
    ]
}

fn bench_session(c: &mut Criterion) {
    let f = built(1000, 200);
    f.set_command_delay(Duration::from_millis(50)).unwrap();
    let runner = Counting::new(&f.search_path());
    let cached = Arc::new(ModelCache::default());
    let uncached = Arc::new(ModelCache::new(Duration::ZERO));
    let packs = [
        (
            "cached",
            sonde_pack_zfs::pack_with_cache(cached.clone()).unwrap(),
            cached,
        ),
        (
            "uncached",
            sonde_pack_zfs::pack_with_cache(uncached.clone()).unwrap(),
            uncached,
        ),
    ];
    let session = |pack: &PackDef, cache: &ModelCache| {
        // Each session starts with nothing kept.
        cache.clear();
        for (probe, params) in session_questions() {
            run(pack, &runner, probe, params);
        }
    };
    for (name, pack, cache) in &packs {
        runner.take();
        let start = Instant::now();
        session(pack, cache);
        let (listings, others) = runner.take();
        eprintln!(
            "session {name}: {listings} listings and {others} other commands for 20 questions, {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    let mut g = c.benchmark_group("session_1000_snapshots_50ms_per_command");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    for (name, pack, cache) in &packs {
        g.bench_function(*name, |b| b.iter(|| session(pack, cache)));
    }
    g.finish();
    f.set_command_delay(Duration::ZERO).unwrap();
}

fn run(pack: &PackDef, runner: &dyn CommandRunner, probe: &str, params: Value) -> (Value, bool) {
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
    let out = pack.handlers[probe]
        .run(&ctx, &validated)
        .unwrap_or_else(|e| panic!("zfs.{probe} {params}: {e:?}"));
    (out.data, out.truncated)
}

/// Multi-GiB sparse files (`Fixture::large_files`): what versions_of,
/// bisect_change by hash and a 4 MiB read cost when the file is 8 GiB.
fn bench_large_files(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/sonde-zfs-bench-large");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fake = PathBuf::from(env!("CARGO_BIN_EXE_sonde-zfs-fixture"));
    let f = Fixture::large_files(&dir, &fake).unwrap();
    let pack = sonde_pack_zfs::pack().unwrap();
    let runner = SystemRunner::new(&f.search_path());
    let big = |extra: Value| {
        let mut v = json!({"dataset": "tank/big"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let (v, _) = run(
        &pack,
        &runner,
        "versions_of",
        big(json!({"path": "disk.img"})),
    );
    eprintln!(
        "versions_of disk.img (8-9 GiB): {} versions, {} bytes hashed",
        v["distinct_versions"], v["bytes_hashed"]
    );
    let (b, _) = run(
        &pack,
        &runner,
        "bisect_change",
        big(json!({"path": "disk.img", "predicate": "hash"})),
    );
    eprintln!(
        "bisect_change hash disk.img: change before {}, {} bytes hashed",
        b["first_after_change"]["name"], b["bytes_hashed"]
    );
    let mut g = c.benchmark_group("large_files_8_GiB");
    g.sample_size(10);
    g.bench_function("versions_of", |b| {
        b.iter(|| {
            run(
                &pack,
                &runner,
                "versions_of",
                big(json!({"path": "disk.img"})),
            )
        })
    });
    g.bench_function("bisect_change_hash", |b| {
        b.iter(|| {
            run(
                &pack,
                &runner,
                "bisect_change",
                big(json!({"path": "disk.img", "predicate": "hash"})),
            )
        })
    });
    for (name, offset) in [
        ("read_file_4MiB_at_0", 0u64),
        ("read_file_4MiB_at_7GiB", 7 << 30),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                run(
                    &pack,
                    &runner,
                    "read_file",
                    big(json!({"path": "disk.img", "snapshot": "day-1", "offset": offset, "max_bytes": 4 << 20})),
                )
            })
        });
    }
    g.finish();
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

fn bench(c: &mut Criterion) {
    let only = std::env::var("SONDE_ZFS_BENCH_ONLY").unwrap_or_default();
    if only != "history" {
        bench_session(c);
        bench_large_files(c);
    }
    if only == "session" {
        return;
    }
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
