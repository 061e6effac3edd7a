//! The zfs pack on a real pool, through the real system: a zfs-fuse pool on
//! a file (made as root), an enrolled `sonde-agent` running as the
//! unprivileged test user, and an MCP client (rmcp) talking to the hub.
//! The assistant lists pools, datasets and snapshots, reads a file as it
//! was in a snapshot, follows a file's history across snapshots and tells
//! a rename from a deletion — every `zfs`/`zpool` command run by the agent
//! as that user.
//!
//! zfs-fuse's control socket (`/var/run/zfs/zfs_socket`; `/run/zfs` on
//! Debian) is root's alone (directory 0700, socket 0755). For this test
//! only, [`SocketAccess`] gives the test user's group access to both and
//! restores owner and mode afterwards (also when the test fails). Beware
//! what that means on a real machine: zfs-fuse checks no permissions of
//! its own, so whoever can open the socket can run any `zfs` command; the
//! pack itself only ever runs read-only ones (its guarantee tests).
//!
//! zfs-fuse has no `.zfs` directory: the pool shows each snapshot's files
//! through a read-only clone mounted where OpenZFS would show them
//! (`sonde_pack_zfs::fixture::real_pool`).
//!
//! It needs root and a running zfs-fuse (`zfs-fuse` as root). Without
//! them it prints why and passes — unless `SONDE_REQUIRE_REAL_POOL` is set
//! (CI sets it when zfs-fuse makes pools there), when it fails.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sonde_pack_zfs::fixture::real_pool::{TestPool, unavailable};
use sonde_tests::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Group access to zfs-fuse's socket for the test, undone on drop.
struct SocketAccess {
    /// Path, owner, group and mode before.
    saved: Vec<(PathBuf, u32, u32, u32)>,
}

impl SocketAccess {
    /// The socket's directory and the socket itself, group `gid`, with
    /// group read/traverse and read/write.
    fn grant(gid: u32) -> Result<SocketAccess, String> {
        let socket = ["/var/run/zfs/zfs_socket", "/run/zfs/zfs_socket"]
            .iter()
            .map(Path::new)
            .find(|p| p.symlink_metadata().is_ok())
            .ok_or("zfs-fuse's socket is in neither /var/run/zfs nor /run/zfs")?;
        let dir = socket.parent().ok_or("the socket has no directory")?;
        let mut access = SocketAccess { saved: Vec::new() };
        for (path, add, default_mode) in [(dir, 0o050, 0o700), (socket, 0o060, 0o755)] {
            let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
            // A run that was killed could not restore them: what it left is
            // not what to restore, zfs-fuse's own root-only modes are.
            let saved = if m.gid() == gid {
                (path.to_owned(), 0, 0, default_mode)
            } else {
                (path.to_owned(), m.uid(), m.gid(), m.mode() & 0o7777)
            };
            access.saved.push(saved);
            std::os::unix::fs::chown(path, None, Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
            std::fs::set_permissions(
                path,
                std::fs::Permissions::from_mode((m.mode() & 0o7777) | add),
            )
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        }
        Ok(access)
    }
}

impl Drop for SocketAccess {
    fn drop(&mut self) {
        for (path, uid, gid, mode) in self.saved.iter().rev() {
            let _ = std::os::unix::fs::chown(path, Some(*uid), Some(*gid));
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode));
        }
    }
}

/// Why this test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if !is_root() {
        return Some("not running as root (the agent must run as another user)".into());
    }
    unavailable()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zfs_questions_on_a_real_pool_through_an_unprivileged_agent() {
    if let Some(why) = cannot_run() {
        if std::env::var_os("SONDE_REQUIRE_REAL_POOL").is_some() {
            panic!("a real pool is required (SONDE_REQUIRE_REAL_POOL) but: {why}");
        }
        eprintln!("SKIPPED (no real pool): {why}");
        return;
    }
    let id = agent_identity().unwrap();
    let scratch = Scratch::new();

    // The pool and its history, made as root.
    let pool = TestPool::create(scratch.path(), "sondee").unwrap();
    let home = pool.create_dataset("home").unwrap();
    let ds = pool.ds("home");
    std::fs::create_dir(home.join("etc")).unwrap();
    std::fs::create_dir(home.join("docs")).unwrap();
    std::fs::write(home.join("etc/app.conf"), "port = 80\n").unwrap();
    std::fs::write(home.join("docs/readme.md"), "# readme\n").unwrap();
    std::fs::write(home.join("old.txt"), "bye\n").unwrap();
    pool.snapshot("home", "daily-1").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(home.join("etc/app.conf"), "port = 443\ntls = on\n").unwrap();
    std::fs::rename(home.join("docs/readme.md"), home.join("docs/README.md")).unwrap();
    std::fs::remove_file(home.join("old.txt")).unwrap();
    pool.snapshot("home", "daily-2").unwrap();
    pool.expose_snapshots("home").unwrap();

    // The agent's user may talk to zfs-fuse for the test.
    let _socket = SocketAccess::grant(id.gid).unwrap();

    let hub = Hub::start(&scratch);
    let extra = format!("[packs.zfs]\ndatasets = [{:?}]\n", pool.name);
    let agent = online_agent(&scratch, &hub, "zfsbox", &extra).await;
    hub.approve_pack("zfsbox", "zfs").await;
    let key = hub.api_key(&["--name", "assistant", "--probes", "zfs.*"]);
    let client = mcp_client(&hub, &key).await.unwrap();
    let probe = |probe: &str, params: Value| {
        let client = &client;
        let args = json!({"agent": "zfsbox", "probe": probe, "params": params});
        let name = probe.to_owned();
        async move {
            let (err, v) = call_tool(client, "probe", args).await;
            assert!(!err, "{name}: {v}");
            v["data"].clone()
        }
    };

    // Who is asking ZFS: the unprivileged user.
    let info = probe("zfs.agent_info", json!({})).await;
    assert_eq!(info["user"], TEST_USER, "{info}");
    assert_eq!(info["pools"], json!([pool.name]));

    // "Which pools, datasets and snapshots are there?"
    let pools = probe("zfs.list_pools", json!({})).await;
    assert_eq!(pools["pools"][0]["name"], pool.name.as_str());
    assert_eq!(pools["pools"][0]["health"], "ONLINE");
    let datasets = probe("zfs.list_datasets", json!({"root": pool.name})).await;
    let names: Vec<&str> = datasets["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&ds.as_str()), "{datasets}");
    let snaps = probe("zfs.list_snapshots", json!({"dataset": ds})).await;
    let snap_names: Vec<&str> = snaps["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(snap_names, ["daily-1", "daily-2"]);

    // "What did app.conf say in the first snapshot?"
    let old = probe(
        "zfs.read_file",
        json!({"dataset": ds, "path": "etc/app.conf", "snapshot": "daily-1"}),
    )
    .await;
    assert_eq!(old["content"], "port = 80\n");
    assert_eq!(old["snapshot"]["name"], "daily-1");

    // "When did it change?"
    let history = probe(
        "zfs.file_history",
        json!({"dataset": ds, "path": "etc/app.conf"}),
    )
    .await;
    let timeline = history["timeline"].as_array().unwrap();
    assert_eq!(history["snapshots_examined"], 3, "two snapshots and live");
    assert_eq!(timeline.len(), 2, "{history}");
    assert_eq!(timeline[0]["from"]["name"], "daily-1");
    assert_eq!(
        timeline[1]["change"], "modified",
        "edited in place: {history}"
    );
    assert_eq!(timeline[1]["from"]["name"], "daily-2");
    assert_eq!(timeline[1]["to"]["name"], "live");

    // "What did I delete?" — the renamed readme is not among them.
    let deleted = probe("zfs.find_deleted", json!({"dataset": ds})).await;
    assert_eq!(deleted["deleted"][0]["path"], "old.txt", "{deleted}");
    assert_eq!(deleted["count"], 1);
    assert_eq!(deleted["renamed"][0]["path"], "docs/readme.md");
    assert_eq!(deleted["renamed"][0]["new_path"], "docs/README.md");

    hub.assert_audit_ok();
    client.cancel().await.unwrap();
    drop(agent);
}
