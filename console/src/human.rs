//! A probe result for people: the JSON as an indented outline where sizes,
//! times and durations also appear in human units beside the raw value
//! (`"used_bytes": 1099511627776 (1.0 TiB)`), or as the raw pretty JSON.
//!
//! Units are inferred from the key name, following the packs' naming
//! (`*_bytes`, `size`, `*_ms`, `*_s`, `*_seconds`, `*_at`, `mtime`,
//! `created`, `time`); large values of time-like keys are read as
//! timestamps (seconds from 10⁹, milliseconds from 10¹²). The raw value is
//! always shown, so a wrong guess misleads no one.

use serde_json::Value;

use crate::text;

/// Lines drawn at most (a huge result stays usable; saving writes it all).
pub const MAX_LINES: usize = 20_000;

/// One line of a rendered result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    pub text: String,
    /// The value in human units, shown after the raw one.
    pub human: Option<String>,
}

impl ResultLine {
    fn plain(text: String) -> ResultLine {
        ResultLine { text, human: None }
    }

    /// The whole line as shown (for searching).
    pub fn full(&self) -> String {
        match &self.human {
            Some(h) => format!("{}  ({h})", self.text),
            None => self.text.clone(),
        }
    }
}

fn time_like(key: &str) -> bool {
    key.ends_with("_at")
        || key.ends_with("_at_ms")
        || key.starts_with("predicate_at")
        || matches!(
            key,
            "mtime"
                | "ctime"
                | "atime"
                | "time"
                | "timestamp"
                | "created"
                | "creation"
                | "first_seen"
                | "last_seen"
                | "last_scrub"
        )
}

/// The value of `key` in human units, when the key says what it measures.
pub fn annotate(key: &str, value: &Value) -> Option<String> {
    let n = value.as_u64()?;
    let key = key.to_ascii_lowercase();
    if key.contains("bytes") || key == "size" || key.ends_with("_size") {
        return (n >= 1024).then(|| text::bytes(n));
    }
    let as_time = |ms: u64| i64::try_from(ms).ok().map(text::utc);
    if key.ends_with("_ms") {
        return if n >= 1_000_000_000_000 {
            as_time(n)
        } else {
            (n >= 1000).then(|| text::duration_ms(n))
        };
    }
    if time_like(&key) {
        return if n >= 1_000_000_000_000 {
            as_time(n)
        } else if n >= 100_000_000 {
            as_time(n.saturating_mul(1000))
        } else {
            None
        };
    }
    if key.ends_with("_s") || key.ends_with("seconds") || key.ends_with("_secs") {
        return if n >= 1_000_000_000 {
            as_time(n.saturating_mul(1000))
        } else {
            (n >= 60).then(|| text::duration_ms(n.saturating_mul(1000)))
        };
    }
    None
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn outline(key: Option<&str>, value: &Value, indent: usize, out: &mut Vec<ResultLine>) {
    if out.len() >= MAX_LINES {
        return;
    }
    let pad = "  ".repeat(indent.min(40));
    let label = match key {
        Some(k) => format!("{pad}{k}:"),
        None => format!("{pad}-"),
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push(ResultLine::plain(label));
            for (k, v) in map {
                outline(Some(k), v, indent + 1, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            out.push(ResultLine::plain(format!(
                "{label} ({} items)",
                items.len()
            )));
            for v in items {
                outline(None, v, indent + 1, out);
            }
        }
        Value::Object(_) => out.push(ResultLine::plain(format!("{label} {{}}"))),
        Value::Array(_) => out.push(ResultLine::plain(format!("{label} []"))),
        v => out.push(ResultLine {
            text: format!("{label} {}", scalar(v)),
            human: key.and_then(|k| annotate(k, v)),
        }),
    }
}

/// The result data as lines: the annotated outline, or (`raw`) the pretty
/// JSON exactly.
pub fn lines(data: &Value, raw: bool) -> Vec<ResultLine> {
    if raw {
        let pretty = serde_json::to_string_pretty(data).unwrap_or_default();
        return pretty
            .lines()
            .take(MAX_LINES)
            .map(|l| ResultLine::plain(l.to_owned()))
            .collect();
    }
    let mut out = Vec::new();
    match data {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                outline(Some(k), v, 0, &mut out);
            }
        }
        other => outline(None, other, 0, &mut out),
    }
    out
}

/// Indices of the lines containing `needle` (case-insensitive).
pub fn search(lines: &[ResultLine], needle: &str) -> Vec<usize> {
    if needle.is_empty() {
        return Vec::new();
    }
    let needle = needle.to_lowercase();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.full().to_lowercase().contains(&needle))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_times_and_durations_get_human_units_beside_the_raw_value() {
        assert_eq!(
            annotate("used_bytes", &json!(1_099_511_627_776u64)).unwrap(),
            "1.0 TiB"
        );
        assert_eq!(annotate("size", &json!(2048)).unwrap(), "2.0 KiB");
        assert_eq!(annotate("size", &json!(100)), None, "small sizes are plain");
        assert_eq!(annotate("rtt_ms", &json!(1234)).unwrap(), "1.2 s");
        assert_eq!(
            annotate("created_ms", &json!(1_714_566_896_000u64)).unwrap(),
            "2024-05-01 12:34:56Z"
        );
        assert_eq!(annotate("uptime_s", &json!(200)).unwrap(), "3m 20s");
        assert_eq!(
            annotate("mtime", &json!(1_714_566_896)).unwrap(),
            "2024-05-01 12:34:56Z"
        );
        assert_eq!(
            annotate("started_at", &json!(1_714_566_896_000u64)).unwrap(),
            "2024-05-01 12:34:56Z"
        );
        assert_eq!(annotate("used_percent", &json!(42)), None);
        assert_eq!(annotate("count", &json!(5_000_000)), None);
        assert_eq!(
            annotate("used_bytes", &json!("12")),
            None,
            "strings are left alone"
        );
        assert_eq!(annotate("used_bytes", &json!(-5)), None);
    }

    #[test]
    fn outline_and_raw_views() {
        let data =
            json!({"pools": [{"name": "tank", "size_bytes": 4096}], "empty": {}, "none": []});
        let human: Vec<String> = lines(&data, false).iter().map(ResultLine::full).collect();
        assert_eq!(
            human,
            [
                "empty: {}",
                "none: []",
                "pools: (1 items)",
                "  -",
                "    name: \"tank\"",
                "    size_bytes: 4096  (4.0 KiB)",
            ]
        );
        let raw: Vec<String> = lines(&data, true).into_iter().map(|l| l.text).collect();
        assert_eq!(raw.join("\n"), serde_json::to_string_pretty(&data).unwrap());
        assert_eq!(lines(&json!("x"), false)[0].text, "- \"x\"");
        let found = search(&lines(&data, false), "KIB");
        assert_eq!(found, [5]);
        assert!(search(&lines(&data, false), "").is_empty());
    }

    #[test]
    fn huge_and_deep_results_are_bounded() {
        let big = Value::Array((0..50_000).map(Value::from).collect());
        assert!(lines(&big, false).len() <= MAX_LINES);
        assert!(lines(&big, true).len() <= MAX_LINES);
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!({ "a": deep });
        }
        let l = lines(&deep, false);
        assert!(l.iter().all(|l| l.text.len() < 200));
    }
}
