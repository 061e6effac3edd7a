//! Parsers for what the read-only `zfs` and `zpool` commands print. Pure
//! functions over bytes: no I/O, never panic, unknown lines are skipped.
//!
//! Formats (OpenZFS 2.x, and the older zfs-fuse 0.7 where it differs):
//! - `zfs list -H -p -o name,…` and `zfs get -H -p -o name,property,value`:
//!   tab-separated columns, one row per line, exact numbers and Unix-second
//!   times. zfs-fuse has no `list -p`, but its `get -p` is exact, so the
//!   pack falls back to `zfs get` there ([`crate::model`]).
//! - `zpool list -H -p -o name,size,allocated,free,capacity,health,fragmentation`:
//!   exact numbers, capacity and fragmentation as plain percentages (`-`
//!   when unknown). Without `-p` (zfs-fuse: `-o name,size,alloc,free,cap,health`)
//!   sizes are human (`250M`) and capacity is `0%`; both are read.
//! - `zpool status [POOL]`: the human report (`pool:`, `state:`, `status:`,
//!   `action:`, `scan:`/`scrub:`, `config:` with the device tree, `errors:`).
//! - `zfs diff -H -F A B`: `change<TAB>type<TAB>path[<TAB>new path]`; every
//!   byte that is not printable ASCII, and every space and backslash, is
//!   written as `\` and four octal digits (`\0040` for a space, `\0012` for
//!   a newline, `\0377` for byte 0xff), so a line never holds a raw tab or
//!   newline and paths are recovered byte for byte.

use serde::Serialize;
use std::collections::BTreeMap;

/// The lines of a command's output (without `\n`; a final `\r` is kept,
/// since ZFS never prints one and names may hold one).
pub fn lines(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    out.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

/// Tab-separated fields of one `-H` line.
pub fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| *b == b'\t').collect()
}

/// Lossy text of a field, for values that are shown, never for paths.
pub fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

/// name → property → raw value, from `zfs get -H -p -o name,property,value`.
pub type Properties = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Parses `name<TAB>property<TAB>value` lines. Names that are not UTF-8
/// (ZFS never makes such names) and short lines are skipped.
pub fn parse_get(out: &[u8]) -> Properties {
    let mut props = Properties::new();
    for line in lines(out) {
        let mut f = line.splitn(3, |b| *b == b'\t');
        let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(name), Ok(prop)) = (std::str::from_utf8(name), std::str::from_utf8(prop)) else {
            continue;
        };
        props
            .entry(name.to_owned())
            .or_default()
            .insert(prop.to_owned(), value.to_vec());
    }
    props
}

/// A size as ZFS prints it: exact bytes (`-p`) or human (`1.5G`, `884K`,
/// `0`, `12.0T`). `-` and `none` are `None`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let split = t.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let power = match unit
        .trim_end_matches(['B', 'b'])
        .to_ascii_uppercase()
        .as_str()
    {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return None,
    };
    let bytes = n * 1024f64.powi(power);
    // Saturating float-to-int conversion: huge values become u64::MAX.
    Some(bytes as u64)
}

/// A percentage as `zpool list` prints it: `12`, `12%`, `-`.
pub fn parse_percent(text: &str) -> Option<f64> {
    text.trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite())
}

/// One pool from `zpool list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub size_bytes: Option<u64>,
    pub allocated_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub capacity_percent: Option<f64>,
    pub health: String,
    pub fragmentation_percent: Option<f64>,
    /// Sizes were printed rounded (an old ZFS without `-p`).
    pub approximate: bool,
}

/// Parses `zpool list -H [-p] -o name,size,allocated,free,capacity,health[,fragmentation]`.
pub fn parse_pool_list(out: &[u8], approximate: bool) -> Vec<PoolRow> {
    lines(out)
        .filter_map(|line| {
            let f: Vec<String> = fields(line).into_iter().map(text).collect();
            if f.len() < 6 {
                return None;
            }
            Some(PoolRow {
                name: f[0].clone(),
                size_bytes: parse_size(&f[1]),
                allocated_bytes: parse_size(&f[2]),
                free_bytes: parse_size(&f[3]),
                capacity_percent: parse_percent(&f[4]),
                health: f[5].clone(),
                fragmentation_percent: f.get(6).and_then(|x| parse_percent(x)),
                approximate,
            })
        })
        .collect()
}

/// One device line of a `zpool status` config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vdev {
    pub name: String,
    /// 0 for the pool (and for `logs`, `cache`, `spares`…), then one per
    /// level of indentation.
    pub depth: usize,
    pub state: Option<String>,
    pub read_errors: Option<u64>,
    pub write_errors: Option<u64>,
    pub checksum_errors: Option<u64>,
    /// Trailing text such as `cannot open` or `(resilvering)`.
    pub note: Option<String>,
}

/// One pool of a `zpool status` report.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub state: Option<String>,
    pub status: Option<String>,
    pub action: Option<String>,
    /// The `scan:` text (`scrub:` on older ZFS), lines joined.
    pub scan: Option<String>,
    pub errors: Option<String>,
    pub vdevs: Vec<Vdev>,
}

const STATUS_KEYS: &[&str] = &[
    "state",
    "status",
    "action",
    "scan",
    "scrub",
    "errors",
    "see",
    "remove",
    "checkpoint",
    "config",
];

/// Parses a `zpool status` report for one pool or several.
pub fn parse_status(out: &[u8]) -> Vec<PoolStatus> {
    let text = String::from_utf8_lossy(out);
    let mut pools: Vec<PoolStatus> = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("pool:") {
            pools.push(PoolStatus {
                name: name.trim().to_owned(),
                ..PoolStatus::default()
            });
            section = "pool".into();
            continue;
        }
        let Some(pool) = pools.last_mut() else {
            continue;
        };
        // A key line starts at the left (right-aligned keys: "  scan:",
        // " state:"), never with a tab.
        let indent = line.len() - trimmed.len();
        if !line.starts_with('\t')
            && indent <= 8
            && let Some((key, value)) = trimmed.split_once(':')
            && STATUS_KEYS.contains(&key)
        {
            section = if key == "scrub" { "scan" } else { key }.to_owned();
            let value = value.trim();
            let slot = match section.as_str() {
                "state" => Some(&mut pool.state),
                "status" => Some(&mut pool.status),
                "action" => Some(&mut pool.action),
                "scan" => Some(&mut pool.scan),
                "errors" => Some(&mut pool.errors),
                _ => None,
            };
            if let Some(slot) = slot
                && !value.is_empty()
            {
                *slot = Some(value.to_owned());
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        match section.as_str() {
            "config" => {
                let cols: Vec<&str> = trimmed.split_whitespace().collect();
                if cols.first() == Some(&"NAME") {
                    continue;
                }
                // Devices are indented by a tab, then two spaces per level.
                let after_tab = line.strip_prefix('\t').unwrap_or(line);
                let depth = (after_tab.len() - after_tab.trim_start().len()) / 2;
                let count = |i: usize| cols.get(i).and_then(|v| parse_size(v));
                pool.vdevs.push(Vdev {
                    name: cols.first().map(|s| (*s).to_owned()).unwrap_or_default(),
                    depth,
                    state: cols.get(1).map(|s| (*s).to_owned()),
                    read_errors: count(2),
                    write_errors: count(3),
                    checksum_errors: count(4),
                    note: (cols.len() > 5).then(|| cols[5..].join(" ")),
                });
            }
            "status" | "action" | "scan" | "errors" => {
                let slot = match section.as_str() {
                    "status" => &mut pool.status,
                    "action" => &mut pool.action,
                    "scan" => &mut pool.scan,
                    _ => &mut pool.errors,
                };
                *slot = Some(match slot.take() {
                    Some(prev) => format!("{prev} {trimmed}"),
                    None => trimmed.to_owned(),
                });
            }
            _ => {}
        }
    }
    pools
}

/// `Sun Nov 12 00:24:01 2023` (as `zpool status` prints times) → Unix
/// seconds, reading the wall-clock time as UTC (the report is in the
/// machine's local time zone; scrub ages are counted in days, so the
/// offset does not matter).
pub fn parse_ctime(text: &str) -> Option<i64> {
    let one_space = text.split_whitespace().collect::<Vec<_>>().join(" ");
    ["%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y"]
        .iter()
        .find_map(|format| {
            jiff::fmt::strtime::parse(format, &one_space)
                .and_then(|t| t.to_datetime())
                .ok()
        })
        .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second())
}

/// When the last scrub finished, from a `scan:` text, as Unix seconds.
pub fn scrub_finished(scan: &str) -> Option<i64> {
    // "scrub repaired 0B in 00:00:01 with 0 errors on Sun Nov 12 00:24:01 2023"
    if !scan.starts_with("scrub repaired") {
        return None;
    }
    let when = scan.rsplit_once(" on ")?.1.trim();
    // Later lines (joined with spaces) are not part of the date.
    let date: Vec<&str> = when.split_whitespace().take(5).collect();
    parse_ctime(&date.join(" "))
}

/// One line of `zfs diff -H -F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `+`, `-`, `M` or `R`.
    pub change: char,
    /// The `-F` type: `F` file, `/` directory, `@` symlink, `|` FIFO,
    /// `=` socket, `B`/`C` devices, `>` door, `P` event port.
    pub kind: char,
    pub path: Vec<u8>,
    /// For `R`: where it was renamed to.
    pub new_path: Option<Vec<u8>>,
}

/// Undoes `zfs diff`'s escapes (`\` + four octal digits), byte-exact. A
/// backslash not followed by a valid escape is kept as it is.
pub fn unescape_diff(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(digits) = field.get(i + 1..i + 5)
            && digits.iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 5;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// Parses `zfs diff -H -F` output.
pub fn parse_diff(out: &[u8]) -> Vec<DiffLine> {
    lines(out)
        .filter_map(|line| {
            let f = fields(line);
            let change = char::from(*f.first()?.first()?);
            if !matches!(change, '+' | '-' | 'M' | 'R') || f.len() < 3 {
                return None;
            }
            Some(DiffLine {
                change,
                kind: char::from(*f[1].first()?),
                path: unescape_diff(f[2]),
                new_path: f.get(3).map(|p| unescape_diff(p)),
            })
        })
        .collect()
}

/// The meaningful part of a command's error output: its non-empty lines up
/// to a usage text (zfs-fuse prints its whole usage after an error),
/// joined with spaces, at most 500 characters.
pub fn error_text(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take_while(|l| !l.starts_with("usage:"))
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_exact_and_human() {
        assert_eq!(parse_size("204800"), Some(204_800));
        assert_eq!(parse_size("884K"), Some(884 * 1024));
        assert_eq!(parse_size("1.5G"), Some(1_610_612_736));
        assert_eq!(parse_size("250M"), Some(250 << 20));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("0B"), Some(0));
        assert_eq!(parse_size("-"), None);
        assert_eq!(parse_size("none"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("-5K"), None);
        assert_eq!(parse_size("1e400K"), None);
    }

    #[test]
    fn get_lines_keep_raw_values() {
        let p = parse_get(
            b"tank/home\tused\t204800\ntank/home@s1\tcreation\t1700000000\nbroken\ntank/home\tmountpoint\t/mnt/a\tb\xff\n",
        );
        assert_eq!(p["tank/home"]["used"], b"204800");
        assert_eq!(p["tank/home@s1"]["creation"], b"1700000000");
        assert_eq!(p["tank/home"]["mountpoint"], b"/mnt/a\tb\xff");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn diff_escapes_are_byte_exact() {
        let lines = parse_diff(
            b"M\t/\t/tank/home/\nR\tF\t/tank/home/a\\0040b\t/tank/home/new\\0012line\n+\tF\t/tank/home/\\0377bad\n-\t@\t/tank/home/back\\0134slash\nnoise\n",
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].path, b"/tank/home/");
        assert_eq!(lines[1].change, 'R');
        assert_eq!(lines[1].path, b"/tank/home/a b");
        assert_eq!(
            lines[1].new_path.as_deref(),
            Some(&b"/tank/home/new\nline"[..])
        );
        assert_eq!(lines[2].path, b"/tank/home/\xffbad");
        assert_eq!(lines[3].path, b"/tank/home/back\\slash");
        assert_eq!(lines[3].kind, '@');
        assert_eq!(
            unescape_diff(b"end\\04"),
            b"end\\04",
            "short escapes are literal"
        );
        assert_eq!(
            unescape_diff(b"x\\0777"),
            b"x\\0777",
            "out of range is literal"
        );
    }

    #[test]
    fn status_report_openzfs() {
        let text = b"  pool: tank\n state: DEGRADED\nstatus: One or more devices could not be used because the label is missing or\n\tinvalid.\naction: Replace the device using 'zpool replace'.\n   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-4J\n  scan: scrub repaired 0B in 00:10:01 with 0 errors on Sun Nov 12 00:24:01 2023\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\ttank        DEGRADED     0     0     0\n\t  mirror-0  DEGRADED     0     0     0\n\t    sda     ONLINE       0     0     0\n\t    sdb     UNAVAIL      0     0     0  cannot open\n\tlogs\n\t  nvme0n1   ONLINE       0     0     0\n\nerrors: No known data errors\n\n  pool: backup\n state: ONLINE\n  scan: none requested\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tbackup      ONLINE       0     0     0\n\t  sdc       ONLINE       0     0  1.2K\n\nerrors: 3 data errors, use '-v' for a list\n";
        let p = parse_status(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].state.as_deref(), Some("DEGRADED"));
        assert!(
            p[0].status
                .as_deref()
                .unwrap()
                .ends_with("missing or invalid.")
        );
        assert_eq!(p[0].vdevs.len(), 6);
        assert_eq!(p[0].vdevs[3].note.as_deref(), Some("cannot open"));
        assert_eq!(p[0].vdevs[0].depth, 0);
        assert_eq!(p[0].vdevs[1].depth, 1);
        assert_eq!(p[0].vdevs[2].depth, 2);
        assert_eq!(p[0].vdevs[4].name, "logs");
        assert_eq!(p[0].vdevs[4].state, None);
        assert_eq!(p[0].errors.as_deref(), Some("No known data errors"));
        assert_eq!(
            scrub_finished(p[0].scan.as_deref().unwrap()),
            Some(1_699_748_641)
        );
        assert_eq!(p[1].vdevs[1].checksum_errors, Some(1228));
        assert_eq!(scrub_finished(p[1].scan.as_deref().unwrap()), None);
        assert!(p[1].errors.as_deref().unwrap().starts_with("3 data errors"));
    }

    #[test]
    fn status_report_zfs_fuse() {
        let text = b"  pool: ztest\n state: ONLINE\n scrub: none requested\nconfig:\n\n\tNAME           STATE     READ WRITE CKSUM\n\tztest          ONLINE       0     0     0\n\t  /tmp/zt.img  ONLINE       0     0     0\n\nerrors: No known data errors\n";
        let p = parse_status(text);
        assert_eq!(p[0].scan.as_deref(), Some("none requested"));
        assert_eq!(p[0].vdevs[1].name, "/tmp/zt.img");
        assert_eq!(p[0].vdevs[1].depth, 1);
    }

    #[test]
    fn scrub_in_progress_is_not_finished() {
        let text = b"  pool: tank\n state: ONLINE\n  scan: scrub in progress since Sun Nov 12 00:24:01 2023\n\t1.23G scanned at 100M/s, 1.00G issued at 90M/s, 10G total\n\t0B repaired, 10.00% done, 00:01:40 to go\nconfig:\n";
        let p = parse_status(text);
        let scan = p[0].scan.as_deref().unwrap();
        assert!(scan.contains("10.00% done"), "{scan}");
        assert_eq!(scrub_finished(scan), None);
    }

    #[test]
    fn pool_list_exact_and_human() {
        let v = parse_pool_list(b"tank\t1000\t600\t400\t60\tONLINE\t5\n", false);
        assert_eq!(v[0].capacity_percent, Some(60.0));
        assert_eq!(v[0].fragmentation_percent, Some(5.0));
        let old = parse_pool_list(b"ztest\t250M\t884K\t249M\t0%\tONLINE\n", true);
        assert_eq!(old[0].size_bytes, Some(250 << 20));
        assert_eq!(old[0].capacity_percent, Some(0.0));
        assert!(old[0].fragmentation_percent.is_none());
        assert!(old[0].approximate);
    }

    #[test]
    fn ctime() {
        assert_eq!(parse_ctime("Sun Nov 12 00:24:01 2023"), Some(1_699_748_641));
        assert_eq!(parse_ctime("Sun Jan  7 00:24:01 2024"), Some(1_704_587_041));
        assert_eq!(parse_ctime("Sun Foo 7 00:24:01 2024"), None);
    }

    #[test]
    fn error_text_skips_usage() {
        assert_eq!(
            error_text(b"\nunrecognized command 'diff'\nusage: zfs command args ...\n\tcreate\n"),
            "unrecognized command 'diff'"
        );
        assert_eq!(
            error_text(b"Unable to obtain diffs:\n   The sys_mount privilege or diff delegated permission is needed\nto execute the diff ioctl\n"),
            "Unable to obtain diffs: The sys_mount privilege or diff delegated permission is needed to execute the diff ioctl"
        );
    }

    proptest! {
        #[test]
        fn prop_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_get(&bytes);
            let _ = parse_pool_list(&bytes, false);
            let _ = parse_status(&bytes);
            let _ = parse_diff(&bytes);
            let _ = error_text(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_size(&text);
            let _ = parse_ctime(&text);
            let _ = scrub_finished(&text);
        }

        #[test]
        fn prop_diff_escaping_round_trips(name in prop::collection::vec(1u8..=255, 1..64)) {
            // What OpenZFS's stream_bytes() writes.
            let mut escaped = Vec::new();
            for &b in &name {
                if b > b' ' && b != b'\\' && b < 0x7f {
                    escaped.push(b);
                } else {
                    escaped.extend(format!("\\{b:04o}").into_bytes());
                }
            }
            prop_assert_eq!(unescape_diff(&escaped), name);
        }
    }
}
