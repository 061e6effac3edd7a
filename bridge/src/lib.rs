//! The stdio bridge: a local MCP client (one that only launches stdio
//! servers, like Claude Desktop) talks newline-delimited JSON-RPC on this
//! process's stdin/stdout; the bridge relays every message to the hub's
//! Streamable HTTP endpoint and every answer back.
//!
//! **A faithful JSON-RPC relay, not an MCP proxy**: the bridge does not
//! parse MCP beyond what the transport needs (the `initialize` exchange for
//! the session id and protocol version, message ids for error answers), so
//! every feature the hub offers — tools, prompts, completion, progress,
//! cancellation, future protocol versions — passes through unchanged, and
//! there is no second MCP implementation to drift from the hub's. Requests
//! are relayed concurrently (a `notifications/cancelled` overtakes the call
//! it cancels); answers that come as an SSE stream (progress, then the
//! result) are written out message by message.
//!
//! **Trust**: `https` only with the hub CA pinned by its SHA-256
//! (`--hub-ca-sha256`; [`tls`]), no system roots, fail closed; the API key
//! comes from `--key-file` (mode 0600) or `SONDE_API_KEY`, never from argv
//! (an argument that looks like a key is refused, without echoing it:
//! [`config::check_argv`]). Plain `http` is accepted for a loopback hub
//! only (a hub behind a local reverse proxy).

pub mod config;
pub mod relay;
pub mod sse;
pub mod tls;

use std::process::ExitCode;

/// The binary's entry point.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Err(e) = config::check_argv(&argv) {
        eprintln!("sonde-mcp-bridge: {e}");
        return ExitCode::from(2);
    }
    let args = <config::Args as clap::Parser>::parse_from(argv);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let settings = match config::Settings::from_args(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sonde-mcp-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sonde-mcp-bridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(relay::run_stdio(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sonde-mcp-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
