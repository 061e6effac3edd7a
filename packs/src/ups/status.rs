//! NUT variables → a UPS summary with decoded status flags and findings.
//! Variable names and status flags are NUT's (docs/nut-names.txt in the
//! NUT source; `ups.status` is a space-separated list of flags).

use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::system::finding;

/// `upsc UPS` output (`name: value` lines) as a map. Lines without `: `
/// are skipped.
pub fn parse_variables(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// `upsc -L` output (`name: description` lines).
pub fn parse_list(text: &str) -> Vec<(String, Option<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((name, desc)) => (
                name.trim().to_owned(),
                Some(desc.trim().to_owned()).filter(|d| !d.is_empty()),
            ),
            None => (l.to_owned(), None),
        })
        .filter(|(name, _)| super::upsc::is_ups_name(name))
        .collect()
}

/// What each `ups.status` flag means.
pub const FLAGS: &[(&str, &str)] = &[
    ("OL", "on line power"),
    ("OB", "on battery"),
    ("LB", "low battery"),
    ("HB", "high battery"),
    ("RB", "the battery needs to be replaced"),
    ("CHRG", "battery charging"),
    ("DISCHRG", "battery discharging"),
    ("BYPASS", "on bypass: the load is not protected"),
    ("CAL", "runtime calibration in progress"),
    ("OFF", "output off: the load has no power from the UPS"),
    ("OVER", "overloaded"),
    ("TRIM", "trimming high input voltage"),
    ("BOOST", "boosting low input voltage"),
    (
        "FSD",
        "forced shutdown: the machines it powers are shutting down",
    ),
    ("ALARM", "an alarm is active (see ups.alarm)"),
    ("TEST", "a self-test is running"),
    ("ECO", "in ECO (high efficiency) mode"),
    ("WAIT", "upsd is waiting for the driver's first data"),
];

/// A flag's meaning, or `None` for a flag NUT does not document.
pub fn flag_meaning(flag: &str) -> Option<&'static str> {
    FLAGS.iter().find(|(f, _)| *f == flag).map(|(_, m)| *m)
}

fn num(vars: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    vars.get(key).and_then(|v| v.trim().parse::<f64>().ok())
}

/// A number as JSON: integral values as integers.
fn json_num(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => json!(x as i64),
        Some(x) => json!(x),
        None => Value::Null,
    }
}

/// Days since 1970-01-01 of `date` in the forms UPSes report it
/// (`2019/01/15`, `2019-01-15`, `01/15/2019`, `01/15/19`).
pub fn date_days(date: &str) -> Option<i64> {
    let parts: Vec<&str> = date.trim().split(['/', '-']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let n = |s: &str| s.trim().parse::<i64>().ok();
    let (y, m, d) = if a.len() == 4 {
        (n(a)?, n(b)?, n(c)?)
    } else {
        let y = n(c)?;
        (if c.len() == 2 { 2000 + y } else { y }, n(a)?, n(b)?)
    };
    if !(1990..=2200).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    sonde_protocol::time::days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)
}

/// One UPS's summary and findings. `today` is days since 1970 (for the
/// battery's age).
pub fn summarise(name: &str, vars: &BTreeMap<String, String>, today: i64) -> (Value, Vec<Value>) {
    let mut findings = Vec::new();
    let raw_status = vars.get("ups.status").cloned().unwrap_or_default();
    let flags: Vec<&str> = raw_status.split_whitespace().collect();
    let decoded: Vec<Value> = flags
        .iter()
        .map(|f| json!({"flag": f, "meaning": flag_meaning(f).unwrap_or("not a flag NUT documents")}))
        .collect();
    let has = |f: &str| flags.contains(&f);
    let charge = num(vars, "battery.charge");
    let runtime = num(vars, "battery.runtime");
    let load = num(vars, "ups.load");
    let test_result = vars.get("ups.test.result").cloned();
    let battery_date = vars
        .get("battery.date")
        .or_else(|| vars.get("battery.mfr.date"))
        .cloned();
    let battery_age_days = battery_date
        .as_deref()
        .and_then(date_days)
        .map(|d| today - d)
        .filter(|d| *d >= 0);
    let mins = |s: f64| (s / 60.0).round() as i64;

    if flags.is_empty() {
        findings.push(finding(
            "warning",
            format!("UPS {name} reports no ups.status: its driver may not support this UPS fully"),
        ));
    }
    if has("WAIT") {
        findings.push(finding(
            "info",
            format!("UPS {name}: upsd has no data from its driver yet (WAIT); ask again in a few seconds"),
        ));
    }
    if has("OB") {
        let left = runtime.map(|r| format!(", about {} min of runtime left", mins(r)));
        findings.push(finding(
            "warning",
            format!(
                "UPS {name} is ON BATTERY (mains power is out){}{}",
                charge.map(|c| format!(", charge {c}%")).unwrap_or_default(),
                left.unwrap_or_default()
            ),
        ));
    }
    if has("LB") {
        findings.push(finding(
            "critical",
            format!("UPS {name} reports LOW BATTERY: the machines it powers are about to lose power (upsmon shuts them down now)"),
        ));
    }
    if has("FSD") {
        findings.push(finding(
            "critical",
            format!(
                "UPS {name} is in forced shutdown (FSD): the machines it powers are shutting down"
            ),
        ));
    }
    if has("RB") {
        findings.push(finding(
            "error",
            format!("UPS {name} says its battery needs to be replaced (RB)"),
        ));
    }
    if has("OVER") {
        findings.push(finding(
            "error",
            format!(
                "UPS {name} is overloaded{}: remove load or it may cut power",
                load.map(|l| format!(" ({l}% load)")).unwrap_or_default()
            ),
        ));
    }
    if has("OFF") {
        findings.push(finding(
            "error",
            format!("UPS {name}'s output is off: what it powers has no backup"),
        ));
    }
    if has("BYPASS") {
        findings.push(finding(
            "warning",
            format!("UPS {name} is on bypass: its load is not protected by the battery"),
        ));
    }
    if has("ALARM") || vars.contains_key("ups.alarm") {
        if let Some(alarm) = vars.get("ups.alarm").filter(|a| !a.is_empty()) {
            findings.push(finding("warning", format!("UPS {name} alarm: {alarm}")));
        } else if has("ALARM") {
            findings.push(finding(
                "warning",
                format!("UPS {name} has an active alarm"),
            ));
        }
    }
    if let Some(l) = load.filter(|l| *l >= 80.0 && !has("OVER")) {
        findings.push(finding(
            "warning",
            format!("UPS {name} load is {l}%: little headroom, and a short runtime on battery"),
        ));
    }
    if let Some(r) = runtime.filter(|r| *r < 300.0) {
        findings.push(finding(
            "warning",
            format!(
                "UPS {name} runtime on battery is only about {} min",
                mins(r).max(0)
            ),
        ));
    }
    if let Some(c) = charge.filter(|c| *c < 50.0 && !has("OB")) {
        findings.push(finding(
            "warning",
            format!(
                "UPS {name} battery charge is {c}% while on line power: it is not charging well"
            ),
        ));
    }
    if let Some(t) = &test_result {
        let lower = t.to_ascii_lowercase();
        if lower.contains("fail") || lower.contains("warning") || lower.contains("error") {
            findings.push(finding(
                "error",
                format!("UPS {name}: the last self-test did not pass ({t})"),
            ));
        }
    }
    if let (Some(age), Some(date)) = (battery_age_days, &battery_date)
        && age > 5 * 365
        && !has("RB")
    {
        findings.push(finding(
            "info",
            format!("UPS {name}: the battery date is {date} (about {} years ago); lead-acid UPS batteries usually last 3 to 5 years: a runtime test would tell", age / 365),
        ));
    }

    let get = |k: &str| vars.get(k).cloned();
    let summary = json!({
        "name": name,
        "reachable": true,
        "status": raw_status,
        "flags": decoded,
        "on_battery": has("OB"),
        "low_battery": has("LB"),
        "replace_battery": has("RB"),
        "battery": {
            "charge_percent": json_num(charge),
            "runtime_s": json_num(runtime),
            "charge_low_percent": json_num(num(vars, "battery.charge.low")),
            "runtime_low_s": json_num(num(vars, "battery.runtime.low")),
            "voltage": json_num(num(vars, "battery.voltage")),
            "type": get("battery.type"),
            "date": battery_date,
            "age_days": battery_age_days,
        },
        "load_percent": json_num(load),
        "realpower_nominal_w": json_num(num(vars, "ups.realpower.nominal")),
        "input": {
            "voltage": json_num(num(vars, "input.voltage")),
            "frequency": json_num(num(vars, "input.frequency")),
            "transfer_reason": get("input.transfer.reason"),
        },
        "output": {"voltage": json_num(num(vars, "output.voltage"))},
        "self_test": {
            "result": test_result,
            "date": get("ups.test.date"),
            "interval_s": json_num(num(vars, "ups.test.interval")),
        },
        "alarm": get("ups.alarm"),
        "beeper": get("ups.beeper.status"),
        "device": {
            "manufacturer": get("device.mfr").or_else(|| get("ups.mfr")),
            "model": get("device.model").or_else(|| get("ups.model")),
            "serial": get("device.serial").or_else(|| get("ups.serial")),
            "firmware": get("ups.firmware"),
        },
        "driver": {"name": get("driver.name"), "version": get("driver.version")},
    });
    (summary, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> BTreeMap<String, String> {
        parse_variables(text)
    }

    #[test]
    fn on_battery_low_and_replace_are_findings() {
        let v = vars(
            "battery.charge: 18\nbattery.runtime: 240\nups.status: OB DISCHRG LB RB\nups.load: 35\nups.test.result: Done and warning\nbattery.date: 2015/03/01\n",
        );
        let (s, f) = summarise("rack", &v, date_days("2024/05/01").unwrap());
        assert_eq!(s["on_battery"], true);
        assert_eq!(s["low_battery"], true);
        assert_eq!(s["battery"]["charge_percent"], 18);
        assert_eq!(s["flags"][2]["meaning"], "low battery");
        let sev: Vec<(&str, &str)> = f
            .iter()
            .map(|x| {
                (
                    x["severity"].as_str().unwrap(),
                    x["message"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            sev.iter()
                .any(|(s, m)| *s == "warning" && m.contains("ON BATTERY") && m.contains("4 min")),
            "{sev:?}"
        );
        assert!(
            sev.iter()
                .any(|(s, m)| *s == "critical" && m.contains("LOW BATTERY"))
        );
        assert!(
            sev.iter()
                .any(|(s, m)| *s == "error" && m.contains("replaced"))
        );
        assert!(
            sev.iter()
                .any(|(s, m)| *s == "error" && m.contains("self-test"))
        );
        // RB already says it: no battery-age note on top.
        assert!(!sev.iter().any(|(_, m)| m.contains("years ago")));
    }

    #[test]
    fn a_healthy_ups_has_no_findings_but_an_old_battery_is_noted() {
        let v = vars(
            "battery.charge: 100\nbattery.runtime: 1800\nups.status: OL\nups.load: 23\nups.test.result: Done and passed\nbattery.date: 2017/01/15\n",
        );
        let (s, f) = summarise("ups", &v, date_days("2024/05/01").unwrap());
        assert_eq!(s["status"], "OL");
        assert_eq!(s["battery"]["runtime_s"], 1800);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["severity"], "info");
        let (_, f) = summarise("ups", &v, date_days("2019/05/01").unwrap());
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn dates_and_lists_parse() {
        assert_eq!(
            date_days("2020/03/01").unwrap() - date_days("2020/02/28").unwrap(),
            2,
            "2020 is a leap year"
        );
        assert_eq!(date_days("2019-01-15"), date_days("01/15/2019"));
        assert_eq!(date_days("01/15/19"), date_days("2019/01/15"));
        for bad in ["", "x", "2019/13/01", "1800/01/01", "2019/01", "a/b/c"] {
            assert_eq!(date_days(bad), None, "{bad}");
        }
        assert_eq!(
            parse_list("myups: Rack UPS\nother: \nbad name: x\n"),
            vec![
                ("myups".to_owned(), Some("Rack UPS".to_owned())),
                ("other".to_owned(), None)
            ]
        );
        let v = parse_variables("a: 1\nnot a var\nb.c: x: y\n");
        assert_eq!(v["b.c"], "x: y");
        assert_eq!(v.len(), 2);
    }
}
