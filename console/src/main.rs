//! `sonde-console [--data DIR | --socket PATH]`: the operator's terminal UI.

use clap::Parser;
use std::path::PathBuf;

/// The Sonde operator console (a terminal UI over the hub's admin socket).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The hub's data directory (the socket is DIR/admin.sock).
    #[arg(long, env = "SONDE_HUB_DATA", conflicts_with = "socket")]
    data: Option<PathBuf>,
    /// The admin socket itself.
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = match (args.socket, args.data) {
        (Some(s), _) => sonde_console::Target::Socket(s),
        (None, Some(d)) => sonde_console::Target::DataDir(d),
        (None, None) => sonde_console::Target::DataDir(PathBuf::from("/var/lib/sonde-hub")),
    };
    sonde_console::run(target)?;
    Ok(())
}
