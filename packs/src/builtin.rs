//! The packs compiled into the agent: system, systemd, docker, nginx,
//! proxmox, smart and ups.
//! (The zfs pack lives in its own crate, `sonde-pack-zfs`.)

use crate::handler::PackDef;
use crate::manifest::ManifestError;

/// Every built-in pack of this crate, in a stable order.
pub fn packs() -> Result<Vec<PackDef>, ManifestError> {
    Ok(vec![
        crate::system::pack()?,
        crate::systemd::pack()?,
        crate::docker::pack()?,
        crate::nginx::pack()?,
        crate::proxmox::pack()?,
        crate::smart::pack()?,
        crate::ups::pack()?,
    ])
}
