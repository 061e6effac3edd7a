//! `network.interfaces` (`/sys/class/net` for state, `/proc/net/dev` for
//! counters, `ip -j addr` for addresses when it is installed) and
//! `network.ping` (`ping`, argv only, the host after `--`).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;
use std::path::Path;

use crate::exec::{Argv, ExecError, ExecLimits};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};

fn read_trim(path: &Path) -> Option<String> {
    let b = crate::bounded::read_file_bounded(path, 4096).ok()?;
    Some(String::from_utf8_lossy(&b.bytes).trim().to_owned())
}

/// `ip -j addr` output → interface name → addresses.
pub fn parse_ip_addr(json_text: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(json_text) else {
        return out;
    };
    for iface in list {
        let Some(name) = iface.get("ifname").and_then(Value::as_str) else {
            continue;
        };
        let addrs: Vec<Value> = iface
            .get("addr_info")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| {
                        json!({
                            "family": x.get("family"),
                            "address": x.get("local"),
                            "prefix_len": x.get("prefixlen"),
                            "scope": x.get("scope"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name.to_owned(), Value::Array(addrs));
    }
    out
}

/// Traffic counters of one interface, from `/proc/net/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev`: two header lines, then
/// `name: rx bytes packets errs drop fifo frame compressed multicast tx bytes packets errs drop …`.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, Counters> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            if n.len() < 12 {
                return None;
            }
            Some((
                name.trim().to_owned(),
                Counters {
                    rx_bytes: n[0],
                    rx_packets: n[1],
                    rx_errors: n[2],
                    rx_dropped: n[3],
                    tx_bytes: n[8],
                    tx_packets: n[9],
                    tx_errors: n[10],
                    tx_dropped: n[11],
                },
            ))
        })
        .collect()
}

/// Addresses by interface, and a note when they could not be had.
fn addresses(ctx: &ProbeContext<'_>) -> (Map<String, Value>, Option<String>) {
    match ctx.runner.run(
        &Argv::new("ip").args(["-j", "addr", "show"]),
        &ExecLimits::until(ctx.deadline),
    ) {
        Ok(out) if out.success() => {
            let map = parse_ip_addr(&out.stdout);
            if map.is_empty() && !out.stdout.is_empty() {
                (Map::new(), Some("`ip -j addr` gave output that is not the expected JSON (an old iproute2?); addresses left out".into()))
            } else {
                (map, None)
            }
        }
        Ok(out) => (
            Map::new(),
            Some(format!(
                "`ip -j addr` failed ({}); addresses left out",
                out.stderr_text()
            )),
        ),
        Err(ExecError::NotFound { .. }) => (
            Map::new(),
            Some("addresses need the `ip` command (Debian: apt install iproute2); left out".into()),
        ),
        Err(e) => (Map::new(), Some(format!("addresses left out: {e}"))),
    }
}

pub fn interfaces(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let base = Path::new("/sys/class/net");
    let entries = std::fs::read_dir(base)
        .map_err(|e| ProbeError::Failed(format!("cannot list /sys/class/net: {e}")))?;
    let counters = std::fs::read_to_string("/proc/net/dev")
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default();
    let (addresses, note) = addresses(ctx);
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let truncated = names.len() > 1000;
    let mut list = Vec::new();
    let mut findings = Vec::new();
    for name in names.into_iter().take(1000) {
        let dir = base.join(&name);
        // /sys has the same counters when /proc/net/dev is not visible.
        let c = counters.get(&name).copied().unwrap_or_else(|| {
            let stat = |s: &str| {
                read_trim(&dir.join("statistics").join(s))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Counters {
                rx_bytes: stat("rx_bytes"),
                rx_packets: stat("rx_packets"),
                rx_errors: stat("rx_errors"),
                rx_dropped: stat("rx_dropped"),
                tx_bytes: stat("tx_bytes"),
                tx_packets: stat("tx_packets"),
                tx_errors: stat("tx_errors"),
                tx_dropped: stat("tx_dropped"),
            }
        });
        let state = read_trim(&dir.join("operstate"));
        let errors = c.rx_errors.saturating_add(c.tx_errors);
        let packets = c.rx_packets.saturating_add(c.tx_packets);
        if errors > 0 && errors.saturating_mul(100) >= packets {
            findings.push(super::finding(
                "warning",
                format!("{name}: {errors} errors in {packets} packets (1% or more)"),
            ));
        }
        list.push(json!({
            "name": name,
            "state": state,
            "mtu": read_trim(&dir.join("mtu")).and_then(|v| v.parse::<u64>().ok()),
            "mac": read_trim(&dir.join("address")),
            // Reading `speed` of a link that is down fails: null.
            "speed_mbps": read_trim(&dir.join("speed")).and_then(|v| v.parse::<i64>().ok()).filter(|s| *s > 0),
            "addresses": addresses.get(&name).cloned().unwrap_or(Value::Array(vec![])),
            "rx_bytes": c.rx_bytes,
            "tx_bytes": c.tx_bytes,
            "rx_packets": c.rx_packets,
            "tx_packets": c.tx_packets,
            "rx_errors": c.rx_errors,
            "tx_errors": c.tx_errors,
            "rx_dropped": c.rx_dropped,
            "tx_dropped": c.tx_dropped,
        }));
    }
    ProbeOutput::from_serialize(
        &json!({"interfaces": list, "note": note, "findings": findings}),
        truncated,
    )
}

/// Reads ping's summary lines (iputils and busybox print the same two).
pub fn parse_ping(text: &str) -> Option<Value> {
    let stats = text.lines().find(|l| l.contains("packets transmitted"))?;
    let num = |key: &str| -> Option<u64> {
        stats
            .split(',')
            .find(|p| p.contains(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let transmitted = num("transmitted")?;
    let received = num("received")?;
    // "+3 errors": ICMP errors such as "Destination unreachable".
    let errors = stats
        .split(',')
        .find(|p| p.contains("errors"))
        .and_then(|p| {
            p.split_whitespace()
                .next()?
                .trim_start_matches('+')
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let loss = stats
        .split(',')
        .find(|p| p.contains("packet loss"))?
        .split_whitespace()
        .next()?
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()?;
    let rtt = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| {
            let values = l.split('=').nth(1)?.split_whitespace().next()?;
            let v: Vec<f64> = values.split('/').filter_map(|x| x.parse().ok()).collect();
            (v.len() >= 3).then(|| json!({"min": v[0], "avg": v[1], "max": v[2]}))
        });
    let unreachable = text
        .lines()
        .find(|l| l.starts_with("From ") && l.contains("nreachable"))
        .map(|l| {
            l.split_once(" icmp_seq=")
                .map_or(l, |(from, rest)| {
                    // "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable"
                    let reason = rest.split_once(' ').map_or("", |(_, r)| r);
                    if reason.is_empty() { from } else { reason }
                })
                .to_owned()
        });
    Some(json!({
        "transmitted": transmitted,
        "received": received,
        "errors": errors,
        "unreachable": unreachable,
        "loss_percent": loss,
        "rtt_ms": rtt,
    }))
}

/// The ping command: numeric output, `count` echoes, `timeout` seconds for
/// each reply, the whole run bounded (`-w`), and the host as one argument
/// after `--` so it can never be read as an option.
pub fn ping_argv(host: &str, count: i64, timeout: i64) -> Argv {
    Argv::new("ping")
        .args([
            "-n",
            "-c",
            &count.to_string(),
            "-W",
            &timeout.to_string(),
            "-w",
            &(count + timeout).to_string(),
            "--",
        ])
        .arg(host)
}

pub fn ping(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let host = params
        .str("host")
        .ok_or_else(|| ProbeError::InvalidInput("host is required".into()))?;
    let count = params.i64("count").unwrap_or(3);
    let timeout = params.i64("timeout_s").unwrap_or(2);
    let out = ctx
        .runner
        .run(
            &ping_argv(host, count, timeout),
            &ExecLimits::until(ctx.deadline),
        )
        .map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(
                "`ping` is not installed on this machine (Debian: apt install iputils-ping)".into(),
            ),
            other => ProbeError::Failed(other.to_string()),
        })?;
    if out.timed_out {
        return Err(ProbeError::Timeout);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(mut v) = parse_ping(&text) {
        v["host"] = json!(host);
        if v["received"] == 0 {
            let why = v["unreachable"]
                .as_str()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            v["findings"] = json!([super::finding(
                "error",
                format!("{host} did not answer{why}")
            )]);
        }
        return Ok(ProbeOutput::new(v));
    }
    let err = out.stderr_text();
    if err.contains("Name or service not known")
        || err.contains("unknown host")
        || err.contains("Temporary failure in name resolution")
        || err.contains("bad address")
    {
        return Err(ProbeError::NotFound(format!(
            "cannot resolve {host}: {err}"
        )));
    }
    let hint = if err.contains("Operation not permitted")
        || err.contains("Permission denied")
        || err.contains("socket:")
    {
        " (the agent's user may not send ICMP: allow unprivileged ping with `sysctl net.ipv4.ping_group_range=\"0 2147483647\"`; a setcap on ping does not help, because probes run with no_new_privs, which ignores file capabilities)"
    } else {
        ""
    };
    Err(ProbeError::Failed(format!(
        "ping {host} failed: {}{hint}",
        if err.is_empty() { "no output" } else { &err }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary() {
        // iputils-ping 20221126 (Debian 12).
        let text = "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.031 ms\n\n--- 127.0.0.1 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms\nrtt min/avg/max/mdev = 0.031/0.045/0.059/0.014 ms\n";
        let v = parse_ping(text).unwrap();
        assert_eq!(v["transmitted"], 3);
        assert_eq!(v["received"], 2);
        assert_eq!(v["rtt_ms"]["max"], 0.059);
        let none = parse_ping("3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n")
            .unwrap();
        assert_eq!(none["loss_percent"], 100.0);
        assert!(none["rtt_ms"].is_null());
        // busybox ping.
        let bb = parse_ping("--- 10.0.0.1 ping statistics ---\n2 packets transmitted, 2 packets received, 0% packet loss\nround-trip min/avg/max = 0.081/0.090/0.099 ms\n").unwrap();
        assert_eq!(bb["received"], 2);
        assert_eq!(bb["rtt_ms"]["avg"], 0.090);
        assert!(parse_ping("ping: unknown host").is_none());
    }

    #[test]
    fn ping_host_is_one_argument_after_the_end_of_options() {
        let argv = ping_argv("-f", 3, 2);
        assert_eq!(argv.display(), "ping -n -c 3 -W 2 -w 5 -- -f");
    }

    #[test]
    fn ip_json() {
        let v = parse_ip_addr(br#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]}]"#);
        assert_eq!(v["lo"][0]["address"], "127.0.0.1");
        assert!(parse_ip_addr(b"not json").is_empty());
    }

    #[test]
    fn net_dev_counters() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0\n  eth0: 99 1 2 3 0 0 0 0 77 4 5 6 0 0 0 0\nbroken: 1 2\n";
        let c = parse_net_dev(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c["eth0"].rx_errors, 2);
        assert_eq!(c["eth0"].tx_bytes, 77);
        assert_eq!(c["eth0"].tx_dropped, 6);
    }
}
