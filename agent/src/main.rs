//! `sonde-agent`: parses the command line, refuses root, hands over.

use clap::Parser;
use sonde_agent::cli::{Cli, Command};
use sonde_agent::config::AgentConfig;
use sonde_agent::{commands, enroll, privilege};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sonde_agent::init_logging();
    if let Err(e) = privilege::refuse_root() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Bounded: a blocking task still running (a DNS lookup, a file read)
    // does not hold the process. Probe threads are plain threads that end
    // with the process; in-flight probes had their drain (connection.rs).
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "error: {}",
                sonde_protocol::display::terminal_text(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let missing_ok = matches!(cli.command, Command::Enroll { .. } | Command::Probe(_))
        || cli.config.as_os_str() == sonde_agent::config::DEFAULT_CONFIG;
    let config = AgentConfig::load(&cli.config, missing_ok)?;
    match cli.command {
        Command::Enroll {
            hub,
            token,
            ca_sha256,
            name,
            no_wait,
        } => {
            let info = enroll::enroll(
                config,
                enroll::EnrollOptions {
                    hub,
                    token,
                    ca_sha256,
                    name,
                    no_wait,
                },
            )
            .await?;
            println!(
                "Enrolled as {} ({}) with hub {}.",
                info.name, info.agent_id, info.address
            );
            println!(
                "Start the agent: sonde-agent run --config {}",
                cli.config.display()
            );
            Ok(0)
        }
        Command::Run => commands::run(config).await.map(|()| 0),
        Command::Status { json } => commands::status(config, json).map(|()| 0),
        Command::Packs(c) => commands::packs(config, c).map(|()| 0),
        Command::Audit(c) => commands::audit(config, c),
        Command::Probe(args) => commands::probe(config, args).await,
    }
}
