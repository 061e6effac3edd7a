//! Building the demo's other binaries (agent, console, the sample pool's
//! fake `zfs`) when the demo runs under `cargo run`, so that a second run
//! of the README's command compiles nothing.
//!
//! Why a re-run used to recompile: `cargo run` starts the demo with the
//! variables cargo sets for a package (`CARGO_MANIFEST_DIR`,
//! `CARGO_PKG_NAME`, `CARGO_PKG_VERSION_*`, …, and a longer
//! `LD_LIBRARY_PATH`). A nested `cargo build` inherited them, and `ring`'s
//! build script declares `rerun-if-env-changed` on several of them, so the
//! nested build re-ran it and rebuilt `ring` and everything above it
//! (rustls, tokio-rustls, rcgen, x509-parser, the Sonde crates); the next
//! `cargo run` from a plain shell saw them change back and did it again.
//! The nested build now runs with the environment of the shell that
//! started `cargo run`. (Different feature sets for `-p sonde-hub` and
//! `-p sonde-agent -p sonde-console` are not a cause: cargo keeps both
//! variants of a dependency side by side.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `cargo build` invocations (arguments after `cargo`) that build what
/// the demo runs besides the hub. The fake `zfs` is built on its own so
/// that the features it needs never reach the agent. `tests/src/lib.rs`
/// builds the same way, so the end-to-end tests and the demo share
/// artifacts.
pub fn invocations(release: bool) -> Vec<Vec<String>> {
    let mut plans: Vec<Vec<&str>> = vec![
        vec!["build", "-p", "sonde-agent", "-p", "sonde-console"],
        vec![
            "build",
            "-p",
            "sonde-pack-zfs",
            "--features",
            "fixture",
            "--bin",
            "sonde-zfs-fixture",
        ],
    ];
    if release {
        for p in &mut plans {
            p.push("--release");
        }
    }
    plans
        .into_iter()
        .map(|p| p.into_iter().map(str::to_owned).collect())
        .collect()
}

/// Variables `cargo run` sets for the program it runs, which a nested
/// cargo must not see (they are the package's, not the user's).
pub fn set_by_cargo_run(name: &str) -> bool {
    const NAMES: [&str; 10] = [
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    NAMES.contains(&name) || name.starts_with("CARGO_PKG_")
}

/// `LD_LIBRARY_PATH` without the entries cargo prepended: those inside the
/// target directory or the toolchain. `None` when nothing is left.
pub fn user_library_path(value: &OsString, target: &Path, toolchain: &Path) -> Option<OsString> {
    let kept: Vec<PathBuf> = std::env::split_paths(value)
        .filter(|p| {
            let cargos = p.starts_with(target)
                || (toolchain.as_os_str().len() > 1 && p.starts_with(toolchain));
            !p.as_os_str().is_empty() && !cargos
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        std::env::join_paths(kept).ok()
    }
}

/// A `cargo` command with the environment of the shell that started
/// `cargo run`: `cargo_bin` is `$CARGO`, `target` the target directory.
pub fn cargo_command(cargo_bin: &Path, target: &Path) -> Command {
    let mut c = Command::new(cargo_bin);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            c.env_remove(&name);
        }
    }
    // <toolchain>/bin/cargo → <toolchain>
    let toolchain = cargo_bin
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    if let Some(value) = std::env::var_os("LD_LIBRARY_PATH") {
        match user_library_path(&value, target, toolchain) {
            Some(v) => c.env("LD_LIBRARY_PATH", v),
            None => c.env_remove("LD_LIBRARY_PATH"),
        };
    }
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cargo_run_variables_are_recognised() {
        for name in [
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        // The user's own settings stay.
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "PATH",
            "CARGO_BUILD_JOBS",
        ] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }

    #[test]
    fn cargo_library_paths_are_removed_and_the_users_kept() {
        let target = Path::new("/src/sonde/target");
        let toolchain = Path::new("/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu");
        let value = OsString::from(
            "/src/sonde/target/release/build/ring-1/out:/src/sonde/target/release/deps:/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib:/opt/mine/lib",
        );
        assert_eq!(
            user_library_path(&value, target, toolchain),
            Some(OsString::from("/opt/mine/lib"))
        );
        let only_cargo = OsString::from("/src/sonde/target/release:/src/sonde/target/release/deps");
        assert_eq!(user_library_path(&only_cargo, target, toolchain), None);
    }

    #[test]
    fn the_plan_builds_agent_console_and_the_fake_zfs() {
        let plans = invocations(true);
        assert!(plans.iter().all(|p| p.contains(&"--release".to_owned())));
        let all: Vec<String> = plans.concat();
        for want in ["sonde-agent", "sonde-console", "sonde-zfs-fixture"] {
            assert!(all.contains(&want.to_owned()), "{want}");
        }
        assert!(invocations(false).concat().iter().all(|a| a != "--release"));
    }
}
