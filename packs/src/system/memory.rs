//! `memory.usage`: `/proc/meminfo`.

use serde_json::json;
use sonde_protocol::schema::ValidatedParams;
use std::collections::HashMap;

use super::finding;
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};

/// `Key: value kB` lines, in bytes.
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (key, rest) = l.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            let factor = match parts.next() {
                Some("kB") => 1024,
                _ => 1,
            };
            Some((key.trim().to_owned(), n.saturating_mul(factor)))
        })
        .collect()
}

/// `part` of `whole` in percent, one decimal.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 1000.0).round() / 10.0
    }
}

pub fn usage(
    _ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| ProbeError::Failed(format!("cannot read /proc/meminfo: {e}")))?;
    Ok(ProbeOutput::new(summarise(&text)))
}

/// `/proc/meminfo` text → the result.
pub fn summarise(text: &str) -> serde_json::Value {
    let m = parse_meminfo(text);
    let get = |k: &str| m.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    let available = m.get("MemAvailable").copied().unwrap_or_else(|| {
        get("MemFree")
            .saturating_add(get("Buffers"))
            .saturating_add(get("Cached"))
    });
    let used = total.saturating_sub(available);
    let used_percent = percent(used, total);
    let (swap_total, swap_free) = (get("SwapTotal"), get("SwapFree"));
    let mut findings = Vec::new();
    if total > 0 && (available as f64) < total as f64 * 0.1 {
        findings.push(finding(
            "warning",
            format!("only {available} bytes of memory available ({used_percent}% used)"),
        ));
    }
    let swap_used_percent = percent(swap_total.saturating_sub(swap_free), swap_total);
    if swap_total > 0 && swap_used_percent >= 80.0 {
        findings.push(finding(
            "warning",
            format!("swap is {swap_used_percent}% used"),
        ));
    }
    json!({
        "total_bytes": total,
        "available_bytes": available,
        "used_bytes": used,
        "used_percent": used_percent,
        "free_bytes": get("MemFree"),
        "buffers_bytes": get("Buffers"),
        "cached_bytes": get("Cached"),
        "swap_total_bytes": swap_total,
        "swap_free_bytes": swap_free,
        "swap_used_percent": swap_used_percent,
        "findings": findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kb_lines() {
        let m = parse_meminfo(
            "MemTotal:       16384 kB\nMemAvailable:    8192 kB\nHugePages_Total:       0\nbroken\n",
        );
        assert_eq!(m["MemTotal"], 16384 * 1024);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(m.len(), 3);
    }
}
