//! The admin socket is the operator's door: mode 0600 in a private data
//! dir, so only the hub's own user gets in, and every change made through
//! it is attributed to the Unix user on the other end (`operator:<user>`).
#![allow(clippy::unwrap_used)]

use sonde_tests::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hub_user_reaches_the_admin_socket_and_actions_are_attributed() {
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let socket = hub.data.join("admin.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "admin.sock mode");
    let dir = std::fs::metadata(&hub.data).unwrap();
    assert_eq!(
        dir.permissions().mode() & 0o077,
        0,
        "the data dir is private"
    );
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());

    // An action through the socket is audited with the caller's user name.
    hub.cli_ok(&["token", "create", "--label", "attributed"]);
    let created = hub.audit_actions("token.created");
    let actor = created[0]["actor"].as_str().unwrap();
    assert!(actor.starts_with("operator:"), "{actor}");

    // Another user cannot use it (nor read the database behind it).
    if let Some(other) = agent_identity() {
        let out = std::process::Command::new(bin("sonde-hub"))
            .args(["--data", hub.data.to_str().unwrap(), "token", "create"])
            .uid(other.uid)
            .gid(other.gid)
            .output()
            .unwrap();
        assert!(!out.status.success(), "another user created a token");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("ermission denied") || stderr.contains("not running"),
            "{stderr}"
        );
        assert_eq!(hub.audit_actions("token.created").len(), 1);
    } else {
        eprintln!("not root: the other-user half of this test needs a second user");
    }
}
