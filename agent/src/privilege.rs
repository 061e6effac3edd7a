//! The agent never runs as root.

/// What to tell someone who started the agent as root.
pub const ROOT_REFUSAL: &str = "\
sonde-agent refuses to run as root (uid 0), and there is no option to allow it.

Run it as the unprivileged `sonde` user instead:

  sudo useradd --system --home-dir /var/lib/sonde-agent --create-home --shell /usr/sbin/nologin sonde
  sudo install -d -o sonde -g sonde -m 0700 /var/lib/sonde-agent
  sudo -u sonde sonde-agent enroll --hub HUB:7443 --token TOKEN --ca-sha256 FINGERPRINT

and as a service with the unit in assets/sonde-agent.service (User=sonde,
NoNewPrivileges=yes, an empty CapabilityBoundingSet=). Packs that need more
(docker, the journal, ZFS) say exactly which group or delegation to grant.";

/// Errors out when the effective or real uid is 0.
pub fn refuse_root() -> anyhow::Result<()> {
    if rustix::process::geteuid().is_root() || rustix::process::getuid().is_root() {
        anyhow::bail!("{ROOT_REFUSAL}");
    }
    Ok(())
}
