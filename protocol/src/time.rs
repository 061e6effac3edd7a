//! Wall-clock time as Unix milliseconds, the one time unit on the wire, and
//! the few calendar conversions the crates share (through `jiff`, in UTC).

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Milliseconds since the Unix epoch, now. A clock before 1970 reads as 0.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `secs` (Unix seconds) in UTC with a `strftime` format (`%Y-%m-%d`,
/// `%d/%b/%Y:%H:%M:%S +0000`, …); `unix:<secs>` outside the years
/// -9999..=9999, which no calendar format can show.
pub fn format_utc(secs: i64, format: &str) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t.strftime(format).to_string(),
        Err(_) => format!("unix:{secs}"),
    }
}

/// `2026-11-23 14:05:09Z`: a Unix-ms time in UTC, for tables and logs.
pub fn format_utc_ms(ms: i64) -> String {
    format_utc(ms.div_euclid(1000), "%Y-%m-%d %H:%M:%SZ")
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian); `None` for
/// a date that does not exist (`2023-02-29`) or lies outside -9999..=9999.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let date = Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()?;
    let epoch = Date::constant(1970, 1, 1);
    let span = epoch.until((jiff::Unit::Day, date)).ok()?;
    Some(i64::from(span.get_days()))
}

/// The civil date (year, month, day) `days` after 1970-01-01; `None`
/// outside -9999..=9999.
pub fn civil_from_days(days: i64) -> Option<(i64, u32, u32)> {
    let secs = days.checked_mul(86_400)?;
    let date = TimeZone::UTC
        .to_datetime(Timestamp::from_second(secs).ok()?)
        .date();
    Some((
        i64::from(date.year()),
        u32::try_from(date.month()).ok()?,
        u32::try_from(date.day()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_utc_ms(1_714_566_896_000), "2024-05-01 12:34:56Z");
        assert_eq!(format_utc_ms(1_795_000_000_000), "2026-11-18 11:06:40Z");
        assert_eq!(format_utc_ms(-1000), "1969-12-31 23:59:59Z");
        assert_eq!(format_utc_ms(i64::MAX), format!("unix:{}", i64::MAX / 1000));
        assert_eq!(
            format_utc(1_714_557_600, "%d/%b/%Y:%H:%M:%S +0000"),
            "01/May/2024:10:00:00 +0000"
        );
    }

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(civil_from_days(19_782), Some((2024, 2, 29)));
        assert_eq!(days_from_civil(2024, 5, 1), Some(19_844));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2024, 13, 1), None);
        assert_eq!(days_from_civil(100_000, 1, 1), None);
        for z in (-800_000..2_900_000).step_by(997) {
            let (y, m, d) = civil_from_days(z).unwrap_or_else(|| panic!("{z}"));
            assert_eq!(days_from_civil(y, m, d), Some(z), "{z}");
        }
        assert_eq!(civil_from_days(i64::MAX), None);
    }
}
