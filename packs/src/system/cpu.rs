//! `cpu.usage` (load averages and utilisation sampled from `/proc/stat`)
//! and `uptime`.

use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::time::Duration;

use super::finding;
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};

/// Jiffies of one `cpu…` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Times {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl Times {
    fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// `(name, times)` for the aggregate line (`cpu`) and each core (`cpuN`).
pub fn parse_stat(text: &str) -> Vec<(String, Times)> {
    text.lines()
        .filter(|l| l.starts_with("cpu"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_owned();
            let n: Vec<u64> = f.take(8).map(|x| x.parse().unwrap_or(0)).collect();
            if n.len() < 4 {
                return None;
            }
            let g = |i: usize| n.get(i).copied().unwrap_or(0);
            Some((
                name,
                Times {
                    user: g(0),
                    nice: g(1),
                    system: g(2),
                    idle: g(3),
                    iowait: g(4),
                    irq: g(5),
                    softirq: g(6),
                    steal: g(7),
                },
            ))
        })
        .collect()
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 1000.0).round() / 10.0
    }
}

/// Utilisation between two samples.
pub fn busy(a: &Times, b: &Times) -> Value {
    let total = b.total().saturating_sub(a.total());
    let idle = b
        .idle
        .saturating_add(b.iowait)
        .saturating_sub(a.idle.saturating_add(a.iowait));
    json!({
        "busy_percent": pct(total.saturating_sub(idle), total),
        "user_percent": pct(
            b.user.saturating_add(b.nice).saturating_sub(a.user.saturating_add(a.nice)),
            total
        ),
        "system_percent": pct(
            b.system
                .saturating_add(b.irq)
                .saturating_add(b.softirq)
                .saturating_sub(a.system.saturating_add(a.irq).saturating_add(a.softirq)),
            total
        ),
        "iowait_percent": pct(b.iowait.saturating_sub(a.iowait), total),
        "steal_percent": pct(b.steal.saturating_sub(a.steal), total),
    })
}

fn read(path: &str) -> Result<String, ProbeError> {
    std::fs::read_to_string(path)
        .map_err(|e| ProbeError::Failed(format!("cannot read {path}: {e}")))
}

/// `/proc/loadavg` → the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> (f64, f64, f64) {
    let l: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| l.get(i).copied().unwrap_or(0.0);
    (at(0), at(1), at(2))
}

/// Two `/proc/stat` samples and `/proc/loadavg` → the result (without
/// `sample_ms`).
pub fn summarise(first: &str, second: &str, loadavg: &str) -> Value {
    let (first, second) = (parse_stat(first), parse_stat(second));
    let (one, five, fifteen) = parse_loadavg(loadavg);
    let mut per_core = Vec::new();
    let mut overall = json!({});
    for (name, b) in &second {
        let Some((_, a)) = first.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let mut v = busy(a, b);
        if name == "cpu" {
            overall = v;
        } else if let Ok(n) = name.trim_start_matches("cpu").parse::<u32>() {
            v["cpu"] = json!(n);
            per_core.push(v);
        }
    }
    let cpus = per_core.len().max(1);
    let mut findings = Vec::new();
    if five > cpus as f64 * 2.0 {
        findings.push(finding(
            "warning",
            format!("5-minute load {five} is more than twice the {cpus} CPUs"),
        ));
    }
    if overall["busy_percent"].as_f64().is_some_and(|b| b >= 90.0) {
        findings.push(finding(
            "warning",
            format!(
                "the CPUs were {}% busy while sampled",
                overall["busy_percent"]
            ),
        ));
    }
    if overall["iowait_percent"]
        .as_f64()
        .is_some_and(|w| w >= 20.0)
    {
        findings.push(finding(
            "warning",
            format!(
                "{}% of CPU time was spent waiting for I/O: a disk may be slow or overloaded",
                overall["iowait_percent"]
            ),
        ));
    }
    if overall["steal_percent"].as_f64().is_some_and(|s| s >= 10.0) {
        findings.push(finding(
            "warning",
            format!(
                "{}% of CPU time was taken by the hypervisor (steal)",
                overall["steal_percent"]
            ),
        ));
    }
    json!({
        "load": {"one": one, "five": five, "fifteen": fifteen},
        "cpus": cpus,
        "busy_percent": overall["busy_percent"],
        "iowait_percent": overall["iowait_percent"],
        "steal_percent": overall["steal_percent"],
        "per_core": per_core,
        "findings": findings,
    })
}

pub fn usage(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let asked = u64::try_from(params.i64("sample_ms").unwrap_or(250)).unwrap_or(250);
    // Leave room to answer before the deadline.
    let sample = Duration::from_millis(asked).min(ctx.time_left() / 2);
    let first = read("/proc/stat")?;
    std::thread::sleep(sample);
    let second = read("/proc/stat")?;
    let mut v = summarise(&first, &second, &read("/proc/loadavg")?);
    v["sample_ms"] = json!(sample.as_millis() as u64);
    Ok(ProbeOutput::new(v))
}

pub fn uptime(
    _ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let text = read("/proc/uptime")?;
    let up: f64 = text
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| ProbeError::Failed("unreadable /proc/uptime".into()))?;
    let now_ms = sonde_protocol::time::now_ms();
    let uname = rustix::system::uname();
    Ok(ProbeOutput::new(json!({
        "uptime_seconds": up.floor() as u64,
        "boot_time_ms": now_ms.saturating_sub((up * 1000.0) as i64),
        "hostname": uname.nodename().to_string_lossy(),
        "kernel": uname.release().to_string_lossy(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_between_samples() {
        let a = parse_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0\n");
        let b =
            parse_stat("cpu  200 0 100 850 50 0 0 0 0 0\ncpu0 200 0 100 850 50 0 0 0\nintr 5\n");
        assert_eq!(a.len(), 2);
        let v = busy(&a[0].1, &b[0].1);
        assert_eq!(v["busy_percent"], 75.0);
        assert_eq!(v["user_percent"], 50.0);
        assert_eq!(v["iowait_percent"], 0.0);
    }
}
