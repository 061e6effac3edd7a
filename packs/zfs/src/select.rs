//! Choosing a snapshot by name or by time.
//!
//! A selector is one of:
//! - a keyword: `latest` (also `newest`, `last`), `oldest` (`first`), or
//!   `live` (`now`, `current`: the live file system);
//! - a snapshot name: `daily-2024-05-01`, `@daily-2024-05-01` or
//!   `tank/home@daily-2024-05-01`;
//! - a time: `yesterday`, `today`, `3 weeks ago`, `2h ago`, `a month ago`,
//!   `1 day 6h ago`, `last week`, an ISO date `2024-05-01` or date-time
//!   `2024-05-01T12:00[:00[.fff]]` (`Z`, `±hh[:mm]`; UTC otherwise).
//!
//! A time picks the newest snapshot taken at or before it; a bare date
//! means the end of that day (UTC), so `2024-05-01` is the state as of
//! that day. Months and years are calendar months and years (UTC). Dates,
//! times and spans are parsed and computed by `jiff`; there is no time
//! zone database (everything is UTC).
//!
//! A time can land far from any snapshot ("3 weeks ago" on a dataset whose
//! nearest older snapshot is 22 months old). [`choose`] says how far the
//! chosen snapshot is from the time asked, and warns when that gap is more
//! than [`FAR_FLOOR`] (a day: what a daily schedule gives anyway) **and**
//! either more than twice the dataset's median spacing between snapshots
//! (a snapshot the schedule should have taken is missing) or more than how
//! far back the time asked is (asked for 3 weeks ago, got something at
//! least 6 weeks old).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use crate::model::Snapshot;

/// What a selector names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Index into the (oldest-first) snapshot list.
    Snapshot(usize),
    /// The live file system.
    Live,
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

/// Seconds of a UTC civil date-time.
fn utc_seconds(dt: DateTime) -> Option<i64> {
    dt.to_zoned_datetime(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// `2024-05-01` (the whole day), `2024-05-01T12:00[:00[.fff]]`,
/// `2024-05-01 12:00`, with `Z` or `±hh[:mm]` (UTC when absent).
pub fn parse_iso(text: &str) -> Option<TimeSpec> {
    let t = text.trim();
    // Exactly `YYYY-MM-DD` first: a day is a span, not a point.
    if t.len() == 10 && !t.contains([':', 'T', 't', ' ']) {
        let day: Date = t.parse().ok()?;
        let start = utc_seconds(day.to_datetime(jiff::civil::Time::midnight()))?;
        return Some(TimeSpec {
            start,
            end: start + 86_399,
        });
    }
    if !t.contains(':') || !t.get(..4)?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // With an offset (`Z`, `+02:00`) it is an instant; without, UTC.
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Some(TimeSpec::at(ts.as_second()));
    }
    let dt: DateTime = t.parse().ok()?;
    utc_seconds(dt).map(TimeSpec::at)
}

/// `3 weeks ago`, `2h ago`, `a month ago`, `1 day 6h ago`, `yesterday`,
/// `today`, `now`, `last week` → Unix seconds.
pub fn parse_relative(text: &str, now: i64) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    match t.as_str() {
        "yesterday" => return now.checked_sub(86_400),
        "today" | "now" => return Some(now),
        _ => {}
    }
    let spec = if let Some(unit) = t.strip_prefix("last ") {
        format!("1 {} ago", unit.trim())
    } else if let Some(rest) = t.strip_prefix("an ").or_else(|| t.strip_prefix("a ")) {
        format!("1 {}", rest.trim())
    } else {
        t.clone()
    };
    // A count first (no sign: `-3 days ago` is not a time), and in the past.
    if !spec.starts_with(|c: char| c.is_ascii_digit()) || !spec.ends_with("ago") {
        return None;
    }
    let span: Span = spec.parse().ok()?;
    let at = Timestamp::from_second(now)
        .ok()?
        .to_zoned_datetime(TimeZone::UTC)
        .checked_add(span)
        .ok()?;
    Some(at.timestamp().as_second())
}

/// A time expression (relative or ISO) as a span.
pub fn parse_time(text: &str, now: i64) -> Option<TimeSpec> {
    parse_relative(text, now)
        .map(TimeSpec::at)
        .or_else(|| parse_iso(text))
}

/// Gaps under this are never warned about (a day: a daily schedule's
/// spacing).
pub const FAR_FLOOR: i64 = 86_400;

/// How a time expression was resolved to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeMatch {
    /// The time asked (a whole day for a bare date).
    pub asked: TimeSpec,
    /// From the chosen snapshot to the time asked (its end, for a day).
    pub distance: i64,
    /// From the chosen snapshot to the start of the time asked (0 when the
    /// snapshot falls within a day asked): what the warning is about.
    pub gap: i64,
    /// Set when the gap is past the threshold (see the module docs).
    pub warning: Option<String>,
}

/// A selection, and how a time was resolved when one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub selected: Selected,
    pub by_time: Option<TimeMatch>,
}

/// What a selector is, before looking at the snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    Keyword,
    /// Could only be a snapshot name.
    Name,
    /// Parses as a time (and might still be a snapshot's name).
    Time,
}

/// Classifies a selector (for callers that refresh a cached snapshot list
/// when a name is not in it).
pub fn kind_of(selector: &str, now: i64) -> SelectorKind {
    let s = selector.trim();
    match s.to_ascii_lowercase().as_str() {
        "live" | "now" | "current" | "latest" | "newest" | "last" | "oldest" | "first" => {
            SelectorKind::Keyword
        }
        _ if s.contains('@') => SelectorKind::Name,
        _ if parse_time(s, now).is_some() => SelectorKind::Time,
        _ => SelectorKind::Name,
    }
}

/// The median spacing between consecutive snapshots, in seconds.
pub fn median_spacing(snapshots: &[Snapshot]) -> Option<i64> {
    let mut gaps: Vec<i64> = snapshots
        .windows(2)
        .map(|w| w[1].creation - w[0].creation)
        .filter(|g| *g > 0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    Some(gaps[gaps.len() / 2])
}

/// `3d 4h`, `5h 12m`, `40s`.
pub fn duration_text(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn time_match(
    snapshots: &[Snapshot],
    chosen: &Snapshot,
    asked: TimeSpec,
    text: &str,
    now: i64,
) -> TimeMatch {
    let distance = asked.end.saturating_sub(chosen.creation).max(0);
    let gap = asked.start.saturating_sub(chosen.creation).max(0);
    let spacing = median_spacing(snapshots);
    let lookback = now.saturating_sub(asked.start);
    let far =
        gap > FAR_FLOOR && (spacing.is_some_and(|m| gap > m.saturating_mul(2)) || gap > lookback);
    let warning = far.then(|| {
        format!(
            "the newest snapshot at or before {text:?} ({}) is {} ({}), {} earlier{}: its contents may be much older than the time asked; zfs.list_snapshots shows which snapshots exist",
            format_time(asked.start),
            chosen.short_name(),
            format_time(chosen.creation),
            duration_text(gap),
            spacing.map_or_else(String::new, |m| format!(
                ", while this dataset's snapshots are usually {} apart",
                duration_text(m)
            ))
        )
    });
    TimeMatch {
        asked,
        distance,
        gap,
        warning,
    }
}

/// Picks a snapshot (in an oldest-first list of one dataset's snapshots),
/// saying how a time was resolved.
pub fn choose(
    snapshots: &[Snapshot],
    dataset: &str,
    selector: &str,
    now: i64,
) -> Result<Choice, String> {
    let s = selector.trim();
    let none = || format!("{dataset} has no snapshots");
    let plain = |selected| Choice {
        selected,
        by_time: None,
    };
    match s.to_ascii_lowercase().as_str() {
        "live" | "now" | "current" => return Ok(plain(Selected::Live)),
        "latest" | "newest" | "last" => {
            return snapshots
                .len()
                .checked_sub(1)
                .map(|i| plain(Selected::Snapshot(i)))
                .ok_or_else(none);
        }
        "oldest" | "first" => {
            return if snapshots.is_empty() {
                Err(none())
            } else {
                Ok(plain(Selected::Snapshot(0)))
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
        return Ok(plain(Selected::Snapshot(i)));
    }
    if s.contains('@') {
        return Err(format!(
            "{dataset} has no snapshot {name:?} (zfs.list_snapshots lists them)"
        ));
    }
    let time = parse_time(s, now).ok_or_else(|| {
        format!(
            "{s:?} is neither a snapshot of {dataset} nor a time (try latest, oldest, live, yesterday, 3 days ago, 2024-05-01, or a name from list_snapshots)"
        )
    })?;
    let i = snapshots
        .iter()
        .rposition(|x| x.creation <= time.end)
        .ok_or_else(|| match snapshots.first() {
            Some(first) => format!(
                "no snapshot of {dataset} was taken at or before {s}; the oldest is {} ({})",
                first.short_name(),
                format_time(first.creation)
            ),
            None => none(),
        })?;
    Ok(Choice {
        selected: Selected::Snapshot(i),
        by_time: Some(time_match(snapshots, &snapshots[i], time, s, now)),
    })
}

/// Picks a snapshot (see [`choose`]).
pub fn select(
    snapshots: &[Snapshot],
    dataset: &str,
    selector: &str,
    now: i64,
) -> Result<Selected, String> {
    choose(snapshots, dataset, selector, now).map(|c| c.selected)
}

pub use sonde_protocol::time::days_from_civil;

/// `2024-05-01T12:00:00Z` (`unix:<seconds>` outside the years -9999..=9999).
pub fn format_time(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("unix:{secs}"),
    }
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
        // Calendar months: a month before 2024-05-01 is 2024-04-01.
        assert_eq!(
            parse_relative("a month ago", 1_714_564_800),
            Some(1_711_972_800)
        );
        assert_eq!(
            parse_relative("1 day 6h ago", 200_000),
            Some(200_000 - 108_000)
        );
        assert_eq!(
            parse_relative("3 weeks", 10_000_000),
            None,
            "not in the past"
        );
        assert_eq!(format_time(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(i64::MAX), format!("unix:{}", i64::MAX));
        assert_eq!(days_from_civil(2024, 5, 1), Some(19_844));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2023, 2, 29), None);
    }

    fn at(times: &[i64]) -> Vec<Snapshot> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Snapshot {
                name: format!("tank/home@s{i}"),
                createtxg: i as u64,
                creation: *t,
                used: 0,
                referenced: 0,
            })
            .collect()
    }

    #[test]
    fn a_far_time_says_how_far_and_warns() {
        const DAY: i64 = 86_400;
        let now = 1_000 * DAY;
        // One snapshot 22 months back, then daily ones for the last week.
        let mut times = vec![now - 670 * DAY];
        times.extend((0..7).map(|d| now - (7 - d) * DAY));
        let snaps = at(&times);
        let c = choose(&snaps, "tank/home", "3 weeks ago", now).unwrap();
        assert_eq!(c.selected, Selected::Snapshot(0));
        let m = c.by_time.unwrap();
        assert_eq!(m.gap, (670 - 21) * DAY);
        assert_eq!(m.distance, m.gap);
        let w = m.warning.expect("22 months away is warned");
        assert!(w.contains("649d 0h earlier") && w.contains("s0"), "{w}");
        // Daily snapshots: yesterday is a day away at most, never warned.
        let c = choose(&snaps, "tank/home", "yesterday", now - 3600).unwrap();
        let m = c.by_time.unwrap();
        assert!(m.gap <= DAY && m.warning.is_none(), "{m:?}");
        // Names and keywords are not times.
        assert_eq!(
            choose(&snaps, "tank/home", "s3", now).unwrap().by_time,
            None
        );
        assert_eq!(
            choose(&snaps, "tank/home", "latest", now).unwrap().by_time,
            None
        );
        // A missed run: the newest snapshot before the time is 3 days
        // older than it, where snapshots are a day apart.
        let gappy = at(&[now - 10 * DAY, now - 9 * DAY, now - 8 * DAY, now - 4 * DAY]);
        let m = choose(&gappy, "tank/home", "5 days ago", now)
            .unwrap()
            .by_time
            .unwrap();
        assert_eq!(m.gap, 3 * DAY);
        assert!(m.warning.is_some(), "twice the usual spacing: {m:?}");
        // Monthly snapshots asked a year back: a few weeks off is the
        // schedule, not a warning (the distance is still reported).
        let monthly = at(&(0..24)
            .map(|k| now - (24 - k) * 30 * DAY)
            .collect::<Vec<_>>());
        let m = choose(&monthly, "tank/home", "1 year ago", now)
            .unwrap()
            .by_time
            .unwrap();
        assert!(
            m.gap > DAY && m.gap < 30 * DAY && m.warning.is_none(),
            "{m:?}"
        );
        // A bare date: the gap counts from the start of that day.
        let day = choose(&snaps, "tank/home", &format_time(now - 3 * DAY)[..10], now)
            .unwrap()
            .by_time
            .unwrap();
        assert_eq!(day.gap, 0);
        assert_eq!(day.distance, DAY - 1);
    }

    #[test]
    fn selector_kinds() {
        assert_eq!(kind_of("latest", 0), SelectorKind::Keyword);
        assert_eq!(kind_of("tank/home@x", 0), SelectorKind::Name);
        assert_eq!(kind_of("daily-7", 0), SelectorKind::Name);
        assert_eq!(kind_of("3 days ago", 0), SelectorKind::Time);
        assert_eq!(kind_of("2024-05-01", 0), SelectorKind::Time);
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
