//! The Sonde hub: the one daemon a homelab operator runs.
//!
//! It is the certificate authority for its agents ([`ca`]), enrolls them
//! with single-use tokens and operator approval ([`enroll`]), keeps a live
//! mutually-authenticated link to each ([`link`]), runs probes on them for
//! MCP clients ([`mcp`], [`probe`]) under per-key policies, records every
//! security event and probe call in a hash-chained, checkpointed audit log
//! ([`audit`]), and offers operators an admin API on a Unix socket
//! ([`admin`]). All state is one SQLite file behind one interface
//! ([`store`]); the fleet's live state is kept in memory ([`fleet`]).

pub mod admin;
pub mod audit;
pub mod ca;
pub mod cli;
pub mod commands;
pub mod config;
pub mod critical_path;
pub mod datadir;
pub mod demo;
pub mod durations;
pub mod enroll;
pub mod error;
pub mod fleet;
pub mod hub;
pub mod init;
pub mod integrations;
pub mod link;
pub mod mcp;
pub mod oauth;
pub mod probe;
pub mod rate_limit;
pub mod serve;
pub mod store;
pub mod trending;
pub mod users;

/// Logs to stderr (journald picks it up under systemd). `RUST_LOG` filters.
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
