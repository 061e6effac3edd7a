//! The fake `zfs` and `zpool` of the zfs pack's tests and benchmark (not a
//! tool for machines): linked as `<fixture>/bin/zfs` and `<fixture>/bin/zpool`,
//! it reads `fixture.json` next to the link it was started as and prints
//! what OpenZFS 2.x (or zfs-fuse) would for the fixture's tree. See
//! `sonde_pack_zfs::fixture`. Under its own name, `sonde-zfs-fixture sample
//! DIR` builds the demo's sample pool (`sonde_pack_zfs::fixture::sample`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let me = PathBuf::from(argv.first().cloned().unwrap_or_default());
    let tool = me
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if tool != "zfs" && tool != "zpool" {
        // Under its own name: `sonde-zfs-fixture sample DIR` (the demo's sample pool).
        return ExitCode::from(sonde_pack_zfs::fixture::sample::command(
            argv.get(1..).unwrap_or(&[]),
        ));
    }
    let dir = me.parent().unwrap_or(std::path::Path::new("."));
    let state_file = dir.join(sonde_pack_zfs::fixture::STATE_FILE);
    // The benchmark's cost of one real `zfs` command.
    if let Some(ms) = std::fs::read_to_string(dir.join(sonde_pack_zfs::fixture::DELAY_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    }
    let state = match std::fs::read(&state_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(s) => s,
        None => {
            eprintln!("sonde-zfs-fixture: cannot read {}", state_file.display());
            return ExitCode::from(2);
        }
    };
    let reply = sonde_pack_zfs::fixture::fake::answer(&state, &tool, argv.get(1..).unwrap_or(&[]));
    let _ = std::io::stdout().write_all(&reply.stdout);
    let _ = std::io::stderr().write_all(&reply.stderr);
    ExitCode::from(reply.code)
}
