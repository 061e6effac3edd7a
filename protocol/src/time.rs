//! Wall-clock time as Unix milliseconds, the one time unit on the wire, and
//! the few calendar conversions the crates share (through `jiff`, in UTC).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The clock a component decides expiry by: the wall clock in every
/// binary ([`Clock::system`]); a [`ManualClock`] in tests, so that expiry
/// is tested by moving time, not by sleeping. Cloning shares the clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the wall clock.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The wall clock ([`now_ms`]).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Unix milliseconds by this clock.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            None => now_ms(),
            Some(ms) => ms.load(Ordering::SeqCst),
        }
    }
}

/// A clock that stands still until told to move; its [`Clock`]s (from
/// [`ManualClock::clock`]) all read the time it holds.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Starts at the wall clock's time.
    pub fn now() -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(now_ms())))
    }

    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(Arc::clone(&self.0)),
        }
    }

    /// Moves the time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
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
    fn a_manual_clock_moves_only_when_told_and_its_clocks_agree() {
        let manual = ManualClock::now();
        let (a, b) = (manual.clock(), manual.clock().clone());
        let t0 = a.now_ms();
        assert_eq!(b.now_ms(), t0);
        manual.advance(Duration::from_secs(90));
        assert_eq!(a.now_ms(), t0 + 90_000);
        assert_eq!(b.now_ms(), t0 + 90_000);
        manual.advance(Duration::MAX);
        assert_eq!(a.now_ms(), i64::MAX);
        // The system clock is the wall clock.
        let before = now_ms();
        let sys = Clock::system().now_ms();
        assert!(sys >= before && sys <= now_ms());
    }

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
