//! Choosing a snapshot by name or by time.
//!
//! A selector is one of:
//! - a keyword: `latest` (also `newest`, `last`), `oldest` (`first`), or
//!   `live` (`now`, `current`: the live file system);
//! - a snapshot name: `daily-2024-05-01`, `@daily-2024-05-01` or
//!   `tank/home@daily-2024-05-01`;
//! - a time: `yesterday`, `today`, `3 weeks ago`, `2h ago`, `a month ago`,
//!   `last week`, an ISO date `2024-05-01` or date-time
//!   `2024-05-01T12:00[:00]` (`Z`, `±hh:mm`; UTC otherwise).
//!
//! A time picks the newest snapshot taken at or before it; a bare date
//! means the end of that day (UTC), so `2024-05-01` is the state as of
//! that day. Months are 30 days and years 365. All date math is done here
//! by hand (no time zone database; times are UTC).

use crate::model::Snapshot;

/// What a selector names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Index into the (oldest-first) snapshot list.
    Snapshot(usize),
    /// The live file system.
    Live,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A point in time, or a whole day: `start..=end` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpec {
    pub start: i64,
    pub end: i64,
}

impl TimeSpec {
    fn at(t: i64) -> Self {
        TimeSpec { start: t, end: t }
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `2024-05-01` (the whole day), `2024-05-01T12:00[:00[.fff]]`,
/// `2024-05-01 12:00`, with `Z` or `±hh[:mm]` (UTC when absent).
pub fn parse_iso(text: &str) -> Option<TimeSpec> {
    let t = text.trim();
    let date = t.get(..10)?;
    let rest = t.get(10..)?;
    let mut d = date.split('-');
    let (y, m, day): (i64, u32, u32) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || day == 0 || day > days_in_month(y, m) {
        return None;
    }
    let midnight = days_from_civil(y, m, day).checked_mul(86_400)?;
    if rest.is_empty() {
        return Some(TimeSpec {
            start: midnight,
            end: midnight + 86_399,
        });
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut c = clock.split(':');
    let h: i64 = num(c.next()?)?;
    let min: i64 = num(c.next()?)?;
    let sec: i64 = match c.next() {
        Some(s) => num(s.split('.').next()?)?,
        None => 0,
    };
    if c.next().is_some() || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let local = midnight + h * 3600 + min * 60 + sec;
    let shift = match offset {
        "" | "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let body = o.get(1..)?;
            let (oh, om): (i64, i64) = match body.split_once(':') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if body.len() == 4 => (num(body.get(..2)?)?, num(body.get(2..)?)?),
                None => (num(body)?, 0),
            };
            if oh > 14 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(TimeSpec::at(local - shift))
}

/// `3 weeks ago`, `2h ago`, `a month ago`, `yesterday`, `today`, `now`,
/// `last week` → Unix seconds.
pub fn parse_relative(text: &str, now: i64) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let unit_seconds = |unit: &str| -> Option<i64> {
        Some(match unit.trim() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "wk" | "wks" | "week" | "weeks" => 7 * 86_400,
            "mo" | "month" | "months" => 30 * 86_400,
            "y" | "yr" | "yrs" | "year" | "years" => 365 * 86_400,
            _ => return None,
        })
    };
    match t.as_str() {
        "yesterday" => return now.checked_sub(86_400),
        "today" | "now" => return Some(now),
        _ => {}
    }
    if let Some(unit) = t.strip_prefix("last ") {
        return now.checked_sub(unit_seconds(unit)?);
    }
    let body = t.strip_suffix("ago")?.trim();
    let (count, unit) = if let Some(u) = body.strip_prefix("an ").or(body.strip_prefix("a ")) {
        (1i64, u)
    } else {
        let split = body
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len());
        let (n, u) = body.split_at(split);
        (num(n)?, u)
    };
    now.checked_sub(count.checked_mul(unit_seconds(unit)?)?)
}

/// A time expression (relative or ISO) as a span.
pub fn parse_time(text: &str, now: i64) -> Option<TimeSpec> {
    parse_relative(text, now)
        .map(TimeSpec::at)
        .or_else(|| parse_iso(text))
}

/// Picks a snapshot (in an oldest-first list of one dataset's snapshots).
pub fn select(
    snapshots: &[Snapshot],
    dataset: &str,
    selector: &str,
    now: i64,
) -> Result<Selected, String> {
    let s = selector.trim();
    let none = || format!("{dataset} has no snapshots");
    match s.to_ascii_lowercase().as_str() {
        "live" | "now" | "current" => return Ok(Selected::Live),
        "latest" | "newest" | "last" => {
            return snapshots
                .len()
                .checked_sub(1)
                .map(Selected::Snapshot)
                .ok_or_else(none);
        }
        "oldest" | "first" => {
            return if snapshots.is_empty() {
                Err(none())
            } else {
                Ok(Selected::Snapshot(0))
            };
        }
        _ => {}
    }
    let name = s.strip_prefix('@').unwrap_or(s);
    let name = match name.split_once('@') {
        Some((ds, snap)) if ds == dataset => snap,
        Some((ds, _)) => {
            return Err(format!("snapshot {s:?} belongs to {ds}, not {dataset}"));
        }
        None => name,
    };
    if let Some(i) = snapshots.iter().position(|x| x.short_name() == name) {
        return Ok(Selected::Snapshot(i));
    }
    let time = parse_time(s, now).ok_or_else(|| {
        format!(
            "{s:?} is neither a snapshot of {dataset} nor a time (try latest, oldest, live, yesterday, 3 days ago, 2024-05-01, or a name from list_snapshots)"
        )
    })?;
    snapshots
        .iter()
        .rposition(|x| x.creation <= time.end)
        .map(Selected::Snapshot)
        .ok_or_else(|| match snapshots.first() {
            Some(first) => format!(
                "no snapshot of {dataset} was taken at or before {s}; the oldest is {} ({})",
                first.short_name(),
                format_time(first.creation)
            ),
            None => none(),
        })
}

/// `2024-05-01T12:00:00Z`.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = sonde_protocol::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn snaps() -> Vec<Snapshot> {
        [("a", 1000), ("b", 2000), ("c", 3000)]
            .iter()
            .enumerate()
            .map(|(i, (n, t))| Snapshot {
                name: format!("tank/home@{n}"),
                createtxg: i as u64,
                creation: *t,
                used: 0,
                referenced: 0,
            })
            .collect()
    }

    #[test]
    fn by_name_and_keyword() {
        let s = snaps();
        let sel = |x: &str| select(&s, "tank/home", x, 0);
        assert_eq!(sel("latest"), Ok(Selected::Snapshot(2)));
        assert_eq!(sel("oldest"), Ok(Selected::Snapshot(0)));
        assert_eq!(sel("b"), Ok(Selected::Snapshot(1)));
        assert_eq!(sel("@b"), Ok(Selected::Snapshot(1)));
        assert_eq!(sel("tank/home@b"), Ok(Selected::Snapshot(1)));
        assert!(
            sel("tank/other@b")
                .unwrap_err()
                .contains("belongs to tank/other")
        );
        assert_eq!(sel("live"), Ok(Selected::Live));
        assert!(
            select(&[], "tank/home", "latest", 0)
                .unwrap_err()
                .contains("no snapshots")
        );
    }

    #[test]
    fn by_time_picks_the_newest_at_or_before() {
        let s = snaps();
        let sel = |x: &str, now| select(&s, "tank/home", x, now);
        assert_eq!(sel("1970-01-01T00:40:00Z", 0), Ok(Selected::Snapshot(1)));
        // A bare date is the end of that day.
        assert_eq!(sel("1970-01-01", 0), Ok(Selected::Snapshot(2)));
        assert_eq!(sel("10 minutes ago", 3100), Ok(Selected::Snapshot(1)));
        assert_eq!(sel("a minute ago", 2030), Ok(Selected::Snapshot(0)));
        assert!(sel("1969-12-31", 0).unwrap_err().contains("oldest is a"));
        assert!(sel("tuesday-ish", 0).unwrap_err().contains("neither"));
    }

    #[test]
    fn time_formats() {
        assert_eq!(
            parse_iso("1970-01-02"),
            Some(TimeSpec {
                start: 86_400,
                end: 172_799
            })
        );
        assert_eq!(
            parse_iso("2024-05-01T12:00").map(|t| t.start),
            Some(1_714_564_800)
        );
        assert_eq!(
            parse_iso("2024-05-01 12:00:30Z").map(|t| t.start),
            Some(1_714_564_830)
        );
        assert_eq!(
            parse_iso("2024-05-01T14:00+02:00").map(|t| t.start),
            Some(1_714_564_800)
        );
        assert_eq!(
            parse_iso("2024-05-01T14:00+0200").map(|t| t.start),
            Some(1_714_564_800)
        );
        assert_eq!(
            parse_iso("2024-05-01T07:00-05").map(|t| t.start),
            Some(1_714_564_800)
        );
        assert_eq!(parse_iso("2024-13-01"), None);
        assert_eq!(parse_iso("2023-02-29"), None);
        assert!(parse_iso("2024-02-29").is_some());
        assert_eq!(parse_iso("2024-5-1"), None);
        assert_eq!(parse_iso("2024-05-01T25:00"), None);
        assert_eq!(
            parse_relative("3 weeks ago", 10_000_000),
            Some(10_000_000 - 21 * 86_400)
        );
        assert_eq!(parse_relative("2h ago", 10_000), Some(10_000 - 7200));
        assert_eq!(parse_relative("2 H AGO", 10_000), Some(10_000 - 7200));
        assert_eq!(parse_relative("yesterday", 100_000), Some(100_000 - 86_400));
        assert_eq!(
            parse_relative("last week", 1_000_000),
            Some(1_000_000 - 604_800)
        );
        assert_eq!(parse_relative("an hour ago", 10_000), Some(6400));
        assert_eq!(parse_relative("3 fortnights ago", 0), None);
        assert_eq!(parse_relative("-3 days ago", 0), None);
        assert_eq!(parse_relative("99999999999999999999 years ago", 0), None);
        assert_eq!(format_time(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }

    proptest! {
        #[test]
        fn prop_format_and_parse_agree(t in 0i64..8_000_000_000) {
            let text = format_time(t);
            prop_assert_eq!(parse_iso(&text), Some(TimeSpec { start: t, end: t }));
        }

        #[test]
        fn prop_time_parsing_never_panics(s in "\\PC{0,40}", now in any::<i64>()) {
            let _ = parse_time(&s, now);
            let _ = select(&snaps(), "tank/home", &s, now);
        }
    }
}
