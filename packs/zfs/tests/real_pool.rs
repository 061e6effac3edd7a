//! The zfs pack against a real pool: Debian's zfs-fuse, on a file. It is an
//! old ZFS (no `zfs diff`, no `.zfs` directory, no `zfs list -p`, no
//! `zfs version`), so these tests cover pools, datasets, snapshots,
//! properties, pool status and live files, and check that everything else
//! degrades with a message that says why.
//!
//! They need root and a running zfs-fuse daemon (`zfs-fuse` as root); when
//! either is missing they print why and pass without checking anything.
//! Each test makes its own pool on a sparse file in a temp dir and destroys
//! it when done (a drop guard, so a failing assertion cleans up too).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use sonde_pack_zfs::fixture::real_pool::TestPool;
use sonde_packs::exec::{CommandRunner, SystemRunner};
use sonde_packs::handler::{PackDef, ProbeContext, ProbeError};
use sonde_protocol::schema::validate;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::list;

/// A throwaway pool, destroyed on drop.
struct Pool {
    name: String,
    dir: tempfile::TempDir,
    image: PathBuf,
}

fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Pool {
    /// A new pool with `<pool>/home` mounted under the temp dir, or why not.
    fn create() -> Result<Pool, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not running as root".into());
        }
        if SystemRunner::default().resolve("zpool").is_none() {
            return Err("zpool is not installed (apt-get install zfs-fuse)".into());
        }
        sh("zpool", &["list"]).map_err(|e| {
            format!("the ZFS daemon does not answer (start it with `zfs-fuse` as root): {e}")
        })?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sondet{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("pool.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(128 << 20))
            .map_err(|e| e.to_string())?;
        let mnt = dir.path().join("mnt");
        sh(
            "zpool",
            &[
                "create",
                "-m",
                mnt.to_str().unwrap(),
                &name,
                image.to_str().unwrap(),
            ],
        )?;
        let pool = Pool { name, dir, image };
        sh("zfs", &["create", &pool.ds("home")])?;
        Ok(pool)
    }

    fn ds(&self, child: &str) -> String {
        format!("{}/{child}", self.name)
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("mnt/home")
    }

    fn snapshot(&self, name: &str) {
        sh("zfs", &["snapshot", &format!("{}@{name}", self.ds("home"))]).unwrap();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // zfs-fuse calls a pool busy for a moment after its file systems
        // were used: retry for a while.
        let mut last = String::new();
        for _ in 0..100 {
            match sh("zpool", &["destroy", "-f", &self.name]) {
                Ok(_) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("could not destroy test pool {}: {last}", self.name);
    }
}

/// Runs a probe with the real tools, seeing only this pool.
fn run(pack: &PackDef, pool: &Pool, probe: &str, params: Value) -> Result<Value, ProbeError> {
    let spec = pack.manifest.probe(probe).unwrap();
    let validated = validate(&spec.params, params.as_object().unwrap())
        .map_err(|e| ProbeError::InvalidInput(e.to_string()))?;
    let runner = SystemRunner::default();
    let settings = json!({"datasets": [pool.name]});
    let ctx = ProbeContext {
        deadline: Instant::now() + Duration::from_secs(60),
        runner: &runner,
        settings: &settings,
        secrets: &sonde_packs::SecretGuard::standard(),
    };
    pack.handlers[probe].run(&ctx, &validated).map(|o| o.data)
}

macro_rules! pool_or_skip {
    () => {
        match Pool::create() {
            Ok(p) => p,
            Err(why) => {
                // CI sets this once zfs-fuse is running: then a pool that
                // cannot be made is a failure, not a silent skip.
                if std::env::var_os("SONDE_REQUIRE_REAL_POOL").is_some() {
                    panic!("a real pool is required (SONDE_REQUIRE_REAL_POOL) but: {why}");
                }
                eprintln!("SKIPPED (no real pool): {why}");
                return;
            }
        }
    };
}

#[test]
fn pools_datasets_snapshots_and_properties_on_zfs_fuse() {
    let pool = pool_or_skip!();
    let pack = sonde_pack_zfs::pack().unwrap();
    let home = pool.ds("home");
    std::fs::write(pool.home().join("a.txt"), "first\n").unwrap();
    pool.snapshot("daily-1");
    std::fs::write(pool.home().join("a.txt"), "second\n").unwrap();
    std::fs::write(pool.home().join("b.bin"), vec![0u8; 300_000]).unwrap();
    pool.snapshot("daily-2");
    pool.snapshot("daily-3");
    sh("zfs", &["set", "compression=on", &home]).unwrap();
    sh("zfs", &["set", "com.sonde:purpose=test", &home]).unwrap();
    let ok = |probe: &str, params: Value| {
        run(&pack, &pool, probe, params.clone())
            .unwrap_or_else(|e| panic!("zfs.{probe} {params}: {e:?}"))
    };

    let info = ok("agent_info", json!({}));
    assert_eq!(info["features"]["zfs_diff"], false, "{info}");
    assert_eq!(info["features"]["snapshot_contents"], false);
    assert!(
        info["implementation"]
            .as_str()
            .unwrap()
            .contains("zfs-fuse")
    );
    assert_eq!(info["pools"], json!([pool.name]));

    let pools = ok("list_pools", json!({}));
    let p = &list(&pools, "pools")[0];
    assert_eq!(p["name"], pool.name.as_str());
    assert_eq!(p["health"], "ONLINE");
    assert_eq!(p["approximate"], true, "zfs-fuse has no zpool list -p");
    let size = p["size_bytes"].as_u64().unwrap();
    assert!((100 << 20..=130 << 20).contains(&size), "{p}");

    let status = ok("pool_status", json!({"pool": pool.name}));
    let s = &list(&status, "pools")[0];
    assert_eq!(s["state"], "ONLINE");
    assert_eq!(s["scan"], "none requested");
    assert_eq!(s["vdevs"][1]["name"], pool.image.to_str().unwrap());
    assert_eq!(s["vdevs"][1]["checksum_errors"], 0);
    assert!(
        list(&status, "findings").iter().any(|f| f["message"]
            .as_str()
            .unwrap()
            .contains("no completed scrub")),
        "{status}"
    );

    let datasets = ok("list_datasets", json!({"root": pool.name}));
    let names: Vec<&str> = list(&datasets, "datasets")
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [pool.name.as_str(), home.as_str()]);
    assert_eq!(
        datasets["datasets"][1]["mountpoint"],
        pool.home().to_str().unwrap()
    );
    assert_eq!(datasets["datasets"][1]["mounted"], true);
    assert!(
        datasets["datasets"][1]["referenced_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );

    let props = ok(
        "dataset_properties",
        json!({"dataset": home, "properties": ["compression", "com.sonde:purpose", "snapdir"]}),
    );
    assert_eq!(
        props["properties"]["compression"],
        json!({"value": "on", "source": "local"})
    );
    assert_eq!(props["properties"]["com.sonde:purpose"]["value"], "test");
    assert_eq!(props["properties"]["snapdir"]["value"], "hidden");
    assert!(
        ok("dataset_properties", json!({"dataset": home}))["count"]
            .as_u64()
            .unwrap()
            > 30
    );
    assert!(matches!(
        run(
            &pack,
            &pool,
            "dataset_properties",
            json!({"dataset": home, "properties": ["written"]})
        ),
        Err(ProbeError::InvalidInput(_))
    ));

    // Three snapshots taken within a second: ordered by createtxg.
    let snaps = ok("list_snapshots", json!({"dataset": home}));
    let names: Vec<&str> = list(&snaps, "snapshots")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["daily-1", "daily-2", "daily-3"]);
    assert_eq!(snaps["total"], 3);
    let cadence = ok("snapshot_cadence", json!({"dataset": home}));
    assert_eq!(cadence["datasets"][0]["classes"][0]["class"], "daily-*");
    assert_eq!(cadence["datasets"][0]["classes"][0]["count"], 3);
    let all = ok("snapshot_cadence", json!({}));
    assert_eq!(all["datasets_without_snapshots"], json!([pool.name]));
    let stale = ok("stale_snapshots", json!({"older_than": "2099-01-01"}));
    assert_eq!(stale["count"], 3);
    assert_eq!(ok("stale_snapshots", json!({}))["count"], 0);
    let delta = ok(
        "size_delta",
        json!({"dataset": home, "from": "daily-1", "to": "daily-3"}),
    );
    assert_eq!(delta["snapshots_between"], 1);
    assert!(
        delta["referenced_delta_bytes"].as_i64().unwrap() > 0,
        "{delta}"
    );
    assert_eq!(delta["written_since_from_bytes"], Value::Null);
    assert!(delta["written_note"].as_str().unwrap().contains("written@"));
    let selected = ok(
        "list_snapshots",
        json!({"dataset": home, "since": "1 hour ago"}),
    );
    assert_eq!(selected["total"], 3);
}

#[test]
fn live_files_and_clear_messages_for_what_zfs_fuse_lacks() {
    let pool = pool_or_skip!();
    let pack = sonde_pack_zfs::pack().unwrap();
    let home = pool.ds("home");
    std::fs::create_dir(pool.home().join("etc")).unwrap();
    std::fs::write(pool.home().join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(pool.home().join("name with space\n.txt"), "odd\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", pool.home().join("escape")).unwrap();
    pool.snapshot("s1");
    let ok = |probe: &str, params: Value| {
        run(&pack, &pool, probe, params.clone())
            .unwrap_or_else(|e| panic!("zfs.{probe} {params}: {e:?}"))
    };

    let file = ok("read_file", json!({"dataset": home, "path": "etc/hosts"}));
    assert_eq!(file["content"], "127.0.0.1 localhost\n");
    let link = ok("read_file", json!({"dataset": home, "path": "escape"}));
    assert_eq!(link["type"], "symlink");
    assert_eq!(link["symlink_target"], "/etc/passwd");
    let dir = ok("list_dir", json!({"dataset": home}));
    let names: Vec<&Value> = list(&dir, "entries").iter().map(|e| &e["name"]).collect();
    assert!(
        names.contains(&&json!("name with space\n.txt")),
        "{names:?}"
    );
    let found = ok("find_files", json!({"dataset": home, "name": "host*"}));
    assert_eq!(found["matches"][0]["path"], "etc/hosts");
    let grep = ok(
        "content_grep",
        json!({"dataset": home, "text": "localhost"}),
    );
    assert_eq!(grep["matches"][0]["line_number"], 1);
    let sb = ok("size_breakdown", json!({"dataset": home}));
    assert_eq!(sb["complete"], true);

    for (probe, params) in [
        (
            "file_history",
            json!({"dataset": home, "path": "etc/hosts"}),
        ),
        ("find_deleted", json!({"dataset": home})),
        (
            "read_file",
            json!({"dataset": home, "path": "etc/hosts", "snapshot": "s1"}),
        ),
        (
            "bisect_change",
            json!({"dataset": home, "path": "etc/hosts", "from": "s1", "to": "live"}),
        ),
    ] {
        let err = run(&pack, &pool, probe, params).unwrap_err();
        assert!(
            matches!(err, ProbeError::Unsupported(ref m) if m.contains(".zfs/snapshot") && m.contains("zfs-fuse")),
            "{probe}: {err:?}"
        );
    }
    let diff = run(
        &pack,
        &pool,
        "diff_snapshots",
        json!({"dataset": home, "from": "s1"}),
    )
    .unwrap_err();
    assert!(
        matches!(diff, ProbeError::Unsupported(ref m) if m.contains("zfs diff") && m.contains(".zfs/snapshot")),
        "{diff:?}"
    );
    // Paths are confined on a real mount too.
    assert!(
        run(
            &pack,
            &pool,
            "read_file",
            json!({"dataset": home, "path": "escape/x"})
        )
        .is_err()
    );
    assert!(
        run(
            &pack,
            &pool,
            "list_dir",
            json!({"dataset": home, "path": "../.."})
        )
        .is_err()
    );
    // Another pool's datasets stay out of reach.
    assert!(matches!(
        run(
            &pack,
            &pool,
            "list_snapshots",
            json!({"dataset": "ztest/home"})
        ),
        Err(ProbeError::Denied(_))
    ));
}

#[test]
fn the_test_pool_is_destroyed_afterwards() {
    let name = {
        let pool = pool_or_skip!();
        assert!(
            sh("zpool", &["list", "-H", "-o", "name"])
                .unwrap()
                .lines()
                .any(|l| l == pool.name)
        );
        pool.name.clone()
    };
    assert!(
        !sh("zpool", &["list", "-H", "-o", "name"])
            .unwrap()
            .lines()
            .any(|l| l == name),
        "{name} is still there"
    );
}

/// Runs a probe with the real tools on a [`TestPool`], seeing only it.
fn run_on(
    pack: &PackDef,
    pool: &TestPool,
    probe: &str,
    params: Value,
) -> Result<Value, ProbeError> {
    let spec = pack.manifest.probe(probe).unwrap();
    let validated = validate(&spec.params, params.as_object().unwrap())
        .map_err(|e| ProbeError::InvalidInput(e.to_string()))?;
    let runner = SystemRunner::default();
    let settings = json!({"datasets": [pool.name]});
    let secrets = sonde_packs::SecretGuard::standard();
    let ctx = ProbeContext {
        deadline: Instant::now() + Duration::from_secs(60),
        runner: &runner,
        settings: &settings,
        secrets: &secrets,
    };
    pack.handlers[probe].run(&ctx, &validated).map(|o| o.data)
}

macro_rules! test_pool_or_skip {
    ($dir:expr) => {
        match TestPool::create($dir, "sondeh") {
            Ok(p) => p,
            Err(why) => {
                if std::env::var_os("SONDE_REQUIRE_REAL_POOL").is_some() {
                    panic!("a real pool is required (SONDE_REQUIRE_REAL_POOL) but: {why}");
                }
                eprintln!("SKIPPED (no real pool): {why}");
                return;
            }
        }
    };
}

/// Snapshot contents on real ZFS (each snapshot's read-only clone where
/// OpenZFS shows `.zfs/snapshot/<name>`): reading an old version, the
/// history of a file edited in place (same object: "modified"), versions,
/// renames and moves of files and a directory told from deletions by
/// object number, a tree comparison that sees the renames, and the space
/// report without `written`.
#[test]
fn snapshot_contents_history_and_renames_on_zfs_fuse() {
    let dir = tempfile::tempdir().unwrap();
    let pool = test_pool_or_skip!(dir.path());
    let pack = sonde_pack_zfs::pack().unwrap();
    let home = pool.create_dataset("home").unwrap();
    let ds = pool.ds("home");
    for d in ["etc", "docs", "notes", "olddir"] {
        std::fs::create_dir(home.join(d)).unwrap();
    }
    std::fs::write(home.join("etc/nginx.conf"), "listen 80;\n").unwrap();
    std::fs::write(home.join("docs/readme.md"), "# readme\n").unwrap();
    std::fs::write(home.join("notes/ideas.txt"), "ideas\n").unwrap();
    std::fs::write(home.join("notes/keep.txt"), "keep\n").unwrap();
    std::fs::write(home.join("olddir/x.txt"), "x\n").unwrap();
    std::fs::write(home.join("old.txt"), "to be deleted\n").unwrap();
    pool.snapshot("home", "s1").unwrap();
    // An edit in place: the same object, a new mtime and size.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::OpenOptions::new()
        .append(true)
        .open(home.join("etc/nginx.conf"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"listen 443 ssl;\n"))
        .unwrap();
    pool.snapshot("home", "s2").unwrap();
    std::fs::rename(home.join("docs/readme.md"), home.join("docs/README.md")).unwrap();
    std::fs::create_dir(home.join("archive")).unwrap();
    std::fs::rename(home.join("notes/ideas.txt"), home.join("archive/ideas.txt")).unwrap();
    std::fs::rename(home.join("olddir"), home.join("newdir")).unwrap();
    std::fs::remove_file(home.join("old.txt")).unwrap();
    pool.snapshot("home", "s3").unwrap();
    std::fs::write(home.join("etc/nginx.conf"), "listen 443 ssl http2;\n").unwrap();
    assert_eq!(pool.expose_snapshots("home").unwrap(), ["s1", "s2", "s3"]);
    let ok = |probe: &str, params: Value| {
        run_on(&pack, &pool, probe, params.clone())
            .unwrap_or_else(|e| panic!("zfs.{probe} {params}: {e:?}"))
    };

    let info = ok("agent_info", json!({}));
    assert!(
        list(&info, "datasets_with_snapshot_contents").contains(&json!(ds)),
        "{info}"
    );
    let old = ok(
        "read_file",
        json!({"dataset": ds, "path": "etc/nginx.conf", "snapshot": "s1"}),
    );
    assert_eq!(old["content"], "listen 80;\n");

    let h = ok(
        "file_history",
        json!({"dataset": ds, "path": "etc/nginx.conf"}),
    );
    let changes: Vec<&str> = list(&h, "timeline")
        .iter()
        .map(|t| t["change"].as_str().unwrap())
        .collect();
    // s1; s2 edited in place (same object); s3 unchanged; live rewritten
    // (std::fs::write truncates the same object).
    assert_eq!(changes, ["present", "modified", "modified"], "{h}");
    assert_eq!(h["timeline"][1]["from"]["name"], "s2");
    assert_eq!(h["timeline"][1]["to"]["name"], "s3");
    let v = ok(
        "versions_of",
        json!({"dataset": ds, "path": "etc/nginx.conf"}),
    );
    assert_eq!(v["distinct_versions"], 3, "{v}");

    let d = ok("find_deleted", json!({"dataset": ds}));
    let paths = |field: &str| -> Vec<String> {
        list(&d, field)
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths("deleted"), ["old.txt"], "{d}");
    let renamed: Vec<(String, String)> = list(&d, "renamed")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["new_path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for pair in [
        ("docs/readme.md", "docs/README.md"),
        ("notes/ideas.txt", "archive/ideas.txt"),
        ("olddir", "newdir"),
    ] {
        assert!(
            renamed.contains(&(pair.0.to_owned(), pair.1.to_owned())),
            "{pair:?} in {renamed:?}"
        );
    }
    assert!(
        list(&d, "renamed")
            .iter()
            .all(|e| e["identity"].as_str().unwrap().starts_with("object number")),
        "{d}"
    );
    for r in list(&d, "renamed") {
        assert_eq!(r["last_seen"]["name"], "s2", "{r}");
        assert_eq!(r["gone_by"]["name"], "s3", "{r}");
    }

    let diff = ok(
        "diff_snapshots",
        json!({"dataset": ds, "from": "s2", "to": "s3"}),
    );
    assert_eq!(diff["method"], "tree comparison");
    assert!(
        list(&diff, "changes")
            .iter()
            .any(|c| c["change"] == "R" && c["path"] == "docs/readme.md"),
        "{diff}"
    );

    let space = ok(
        "space_report",
        json!({"dataset": ds, "older_than": "2099-01-01"}),
    );
    let row = &list(&space, "datasets")[0];
    assert_eq!(row["dataset"], ds.as_str());
    assert_eq!(row["snapshots"], 3);
    let old = &row["older_snapshots"];
    assert_eq!(old["count"], 3);
    assert_eq!(
        old["frees_at_least_bytes"], old["frees_at_most_bytes"],
        "all snapshots: exactly usedbysnapshots ({row})"
    );
}
