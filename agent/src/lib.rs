//! The Sonde agent.
//!
//! It runs on each machine as an unprivileged user ([`privilege`]), connects
//! out to its hub ([`connection`]) with a certificate it got by enrolling
//! ([`enroll`]), attests what it is on every connect ([`attest`]), and runs
//! only probe descriptors from trusted, approved packs ([`packs`]) under a
//! capability ceiling ([`runtime`]). Results are scrubbed of secrets
//! ([`scrub`]) and every request is recorded in a local hash chain
//! ([`audit`]). `sonde-agent probe` runs the same path by hand ([`local`]).

pub mod attest;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connection;
pub mod enroll;
pub mod identity;
pub mod local;
pub mod pack_states;
pub mod privilege;
pub mod runtime;
pub mod scrub;
pub mod tls;

/// Logs to stderr (journald under systemd). `RUST_LOG` filters.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
