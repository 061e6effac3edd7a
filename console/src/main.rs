//! `sonde-console [--data DIR | --socket PATH] [--theme dark|light|solarized|mono]`:
//! the operator's terminal UI.

use clap::Parser;
use std::path::PathBuf;

use sonde_console::theme::{ThemeName, no_color_requested};

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
    /// Colours: dark (default), light, solarized, or mono. `NO_COLOR` set
    /// to anything non-empty draws without colour whatever the theme.
    #[arg(long, env = "SONDE_CONSOLE_THEME", default_value = "dark", value_parser = parse_theme)]
    theme: ThemeName,
}

fn parse_theme(s: &str) -> Result<ThemeName, String> {
    s.parse()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = match (args.socket, args.data) {
        (Some(s), _) => sonde_console::Target::Socket(s),
        (None, Some(d)) => sonde_console::Target::DataDir(d),
        (None, None) => sonde_console::Target::DataDir(PathBuf::from("/var/lib/sonde-hub")),
    };
    let options = sonde_console::Options {
        theme: args.theme,
        no_color: no_color_requested(std::env::var_os("NO_COLOR").as_deref()),
        in_tmux: std::env::var_os("TMUX").is_some_and(|v| !v.is_empty()),
    };
    sonde_console::run(target, options)?;
    Ok(())
}
