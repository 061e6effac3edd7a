//! What this agent attests on every connect: OS, kernel, its own binary,
//! its packs, its configuration and the machine id.

use sonde_protocol::Digest;
use sonde_protocol::attestation::{Attestation, AttestedPack};
use std::io::Read;

use crate::config::AgentConfig;

/// `PRETTY_NAME` from os-release (or "unknown").
pub fn os_release() -> String {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(v) = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="))
        {
            return v.trim_matches('"').to_owned();
        }
    }
    "unknown".into()
}

pub fn kernel() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// SHA-256 of the running executable.
pub fn binary_sha256() -> Digest {
    let mut hasher_input = Vec::new();
    let digest =
        std::fs::File::open("/proc/self/exe").and_then(|mut f| f.read_to_end(&mut hasher_input));
    match digest {
        Ok(_) => Digest::of(&hasher_input),
        Err(_) => Digest([0; 32]),
    }
}

/// Builds the attestation for the given packs and config.
pub fn attest(
    config: &AgentConfig,
    packs: Vec<AttestedPack>,
    binary: Digest,
    sandbox: sonde_packs::sandbox::SandboxLevel,
) -> Attestation {
    let mut packs = packs;
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    Attestation {
        os_release: os_release(),
        kernel: kernel(),
        arch: std::env::consts::ARCH.to_owned(),
        binary_sha256: binary,
        packs,
        config_sha256: config.sha256(),
        machine_id: machine_id(),
        sandbox: sandbox.as_attested(),
        config: config.attested_settings(),
    }
}
