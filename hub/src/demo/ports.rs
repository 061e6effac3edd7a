//! The demo's ports, checked before anything starts: a port that is taken
//! fails the demo at once, naming the process that holds it when this user
//! can see it (`/proc/net/tcp{,6}` gives the listening socket's inode,
//! `/proc/<pid>/fd/*` the process holding it).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;

/// A port the demo needs and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub port: u16,
    pub what: &'static str,
}

/// A process that holds a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command line (arguments joined by spaces), or its `comm`.
    pub command: String,
}

/// A port that cannot be bound.
#[derive(Debug)]
pub struct Busy {
    pub wanted: Wanted,
    pub error: std::io::Error,
    /// Who listens on it, when visible to this user.
    pub holders: Vec<Holder>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Wanted { port, what } = self.wanted;
        if self.error.kind() != std::io::ErrorKind::AddrInUse {
            return write!(
                f,
                "cannot listen on 127.0.0.1:{port} ({what}): {}",
                self.error
            );
        }
        write!(f, "port {port} ({what}) is already in use")?;
        match self.holders.as_slice() {
            [] if rustix::process::geteuid().is_root() => {
                write!(f, " (no process holding it could be found)")
            }
            [] => write!(
                f,
                " by a process this user cannot see (run `ss -ltnp 'sport = :{port}'` as root to find it)"
            ),
            holders => {
                let shown: Vec<String> = holders
                    .iter()
                    .map(|h| format!("pid {} ({})", h.pid, h.command))
                    .collect();
                write!(f, " by {}", shown.join(", "))
            }
        }
    }
}

/// Checks that every wanted port can be bound on 127.0.0.1 (and releases
/// it again). Returns each one that cannot, with who holds it.
pub fn check(wanted: &[Wanted]) -> Vec<Busy> {
    wanted
        .iter()
        .filter_map(|w| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, w.port));
            TcpListener::bind(addr).err().map(|error| Busy {
                wanted: *w,
                holders: if error.kind() == std::io::ErrorKind::AddrInUse {
                    holders(w.port)
                } else {
                    Vec::new()
                },
                error,
            })
        })
        .collect()
}

/// Inodes of the sockets listening on `port` (any address), from the text
/// of `/proc/net/tcp` or `/proc/net/tcp6`.
pub fn listening_inodes(proc_net_tcp: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local = f.get(1)?;
            let state = f.get(3)?;
            let inode = f.get(9)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            (*state == LISTEN && u16::from_str_radix(hex_port, 16).ok()? == port)
                .then(|| inode.parse().ok())
                .flatten()
        })
        .filter(|inode| *inode != 0)
        .collect()
}

/// The processes (visible to this user) with a descriptor on one of
/// `inodes`, found under `proc` (normally `/proc`).
pub fn processes_holding(proc: &Path, inodes: &[u64]) -> Vec<Holder> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            out.push(Holder {
                pid,
                command: command_of(&entry.path()),
            });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// A process's command line, or its name.
fn command_of(proc_pid: &Path) -> String {
    let cmdline = std::fs::read(proc_pid.join("cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let text = if args.is_empty() {
        std::fs::read_to_string(proc_pid.join("comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    } else {
        args.join(" ")
    };
    // Control characters would garble the terminal; long lines say little more.
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(200)
        .collect();
    clean
}

/// Who listens on `port`, as far as this user can see.
pub fn holders(port: u16) -> Vec<Holder> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    processes_holding(Path::new("/proc"), &inodes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1D14 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 00000000:1D13 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1D14 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn listening_sockets_are_found_by_port() {
        assert_eq!(listening_inodes(TCP, 7444), vec![31337]);
        assert_eq!(listening_inodes(TCP, 7443), vec![4242]);
        assert!(listening_inodes(TCP, 80).is_empty());
        // Garbage never panics.
        assert!(listening_inodes("x\n1: nonsense\n:::: 0A\n", 7444).is_empty());
    }

    #[test]
    fn a_busy_port_names_this_process() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let busy = check(&[Wanted {
            port,
            what: "MCP endpoint",
        }]);
        assert_eq!(busy.len(), 1);
        let me = std::process::id();
        assert!(
            busy[0].holders.iter().any(|h| h.pid == me),
            "{:?}",
            busy[0].holders
        );
        let text = busy[0].to_string();
        assert!(
            text.contains(&format!(
                "port {port} (MCP endpoint) is already in use by pid {me}"
            )),
            "{text}"
        );
        drop(held);
        assert!(
            check(&[Wanted {
                port,
                what: "MCP endpoint"
            }])
            .is_empty()
        );
    }
}
