//! `sonde-hub`: parses the command line and hands over to the library.

use clap::Parser;
use sonde_hub::cli::{CertCommand, Cli, Command};
use sonde_hub::commands::{self, Out};
use sonde_hub::datadir::DataDir;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sonde_hub::init_logging();
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
    // Bounded: a blocking task still running (a DNS lookup, a store read
    // on its way) does not hold the process once `serve` has shut down in
    // order (serve.rs).
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
    let data = DataDir::new(&cli.data);
    let out = Out { json: cli.json };
    match cli.command {
        Command::Init { hostnames, ips } => {
            let made = sonde_hub::init::init(&cli.data, &hostnames, &ips)?;
            println!("Initialised hub {} in {}", made.hub_id, cli.data.display());
            println!("Hub CA SHA-256: {}", made.ca_sha256);
            println!(
                "Start it with: sonde-hub serve --data {}",
                cli.data.display()
            );
        }
        Command::Cert(CertCommand::Reissue { hostnames, ips }) => {
            let done = sonde_hub::init::reissue_server_cert(&cli.data, &hostnames, &ips)?;
            let mut names: Vec<String> = done.hostnames.clone();
            names.extend(done.ips.iter().map(|i| i.to_string()));
            println!(
                "Issued a new server certificate for {} (plus localhost, 127.0.0.1, ::1); the old pair is kept as server.crt.old / server.key.old.",
                if names.is_empty() {
                    "localhost only".to_owned()
                } else {
                    names.join(", ")
                }
            );
            println!(
                "Restart the hub to serve it (systemctl restart sonde-hub). Agents and MCP clients trust the same CA, so nothing else changes."
            );
        }
        Command::Serve {
            agent_listen,
            mcp_listen,
        } => {
            sonde_hub::serve::serve(
                data,
                sonde_hub::serve::Overrides {
                    agent_listen,
                    mcp_listen,
                },
            )
            .await?;
        }
        Command::Token(c) => commands::token(&data, out, c).await?,
        Command::Enrollments(c) => commands::enrollments(&data, out, c).await?,
        Command::Agents(c) => commands::agents(&data, out, c).await?,
        Command::Packs(c) => commands::packs(&data, out, c).await?,
        Command::Audit(c) => return Ok(commands::audit(&data, out, c).await? as u8),
        Command::Keys(c) => commands::keys(&data, out, c).await?,
        Command::Oauth(c) => commands::oauth(&data, out, c).await?,
        Command::Integrations(c) => {
            sonde_hub::integrations::commands::run(&data, out.json, c).await?
        }
        Command::Demo(args) => sonde_hub::demo::run(args).await?,
        Command::Paths(c) => {
            return sonde_hub::critical_path::command::paths(&data, out, c).await;
        }
        Command::Trending {
            window,
            target,
            probe,
            limit,
        } => {
            let q = sonde_admin::api::TrendingQuery {
                window: Some(window),
                target,
                probe,
                limit: Some(limit),
            };
            sonde_hub::critical_path::command::trending(&data, out, q).await?
        }
    }
    Ok(0)
}
