//! One grammar for durations typed by people, shared by the hub CLI
//! (`--ttl 15m`, `--expires 90d`, `audit list --since 2h`) and the console
//! (`since:2w` in the audit filter), so what one accepts the other accepts.
//!
//! Grammar: one or more `<digits><unit>` groups, optionally separated by
//! spaces (`90s`, `15m`, `1h30m`, `2w 3d`, `3 days`); units `s`, `m`, `h`, `d`, `w`
//! (and their long forms: `sec`, `min`, `hour`, `day`, `week`, with or
//! without a plural `s`). A bare number is seconds. Months and years are
//! refused: their length varies, and `m` already means minutes.
//!
//! Parsing is done here rather than with a date crate because the grammar
//! is this small and both sides must agree on it exactly; a crate such as
//! `jiff` would bring calendars and time zones we do not need.

use std::time::Duration;

/// Why a duration was refused; the message names the text and says what
/// would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration (examples: 90s, 15m, 2h, 1h30m, 7d, 2w)")]
    Malformed(String),
    #[error("{text:?}: unknown unit {unit:?} (use s, m, h, d or w)")]
    UnknownUnit { text: String, unit: String },
    #[error("{0:?} is too long a duration")]
    Overflow(String),
}

/// Seconds per unit, by every spelling accepted.
fn unit_seconds(unit: &str) -> Option<u64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "wk" | "wks" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    })
}

/// Parses a duration (see the module docs for the grammar). Zero is a
/// valid duration here; callers that need a positive one say so.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let malformed = || DurationError::Malformed(trimmed.to_owned());
    if trimmed.is_empty() {
        return Err(malformed());
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Overflow(trimmed.to_owned()));
    }
    let mut total: u64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        let (number, after) = rest.split_at(digits);
        let after = after.trim_start();
        let letters = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, after) = after.split_at(letters);
        if unit.is_empty() {
            return Err(malformed());
        }
        let per =
            unit_seconds(&unit.to_ascii_lowercase()).ok_or_else(|| DurationError::UnknownUnit {
                text: trimmed.to_owned(),
                unit: unit.to_owned(),
            })?;
        let n: u64 = number
            .parse()
            .map_err(|_| DurationError::Overflow(trimmed.to_owned()))?;
        total = n
            .checked_mul(per)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| DurationError::Overflow(trimmed.to_owned()))?;
        rest = after.trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// [`parse`] as milliseconds that fit an `i64` (for "this long ago").
pub fn parse_ms(text: &str) -> Result<i64, DurationError> {
    let d = parse(text)?;
    i64::try_from(d.as_millis()).map_err(|_| DurationError::Overflow(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_grammar() {
        let secs = |t: &str| parse(t).unwrap().as_secs();
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("90d"), 90 * 86_400);
        assert_eq!(secs("2w"), 14 * 86_400);
        assert_eq!(secs("30"), 30);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("2w 3d"), 17 * 86_400);
        assert_eq!(secs(" 3 days"), 3 * 86_400);
        assert_eq!(secs("1H"), 3600);
        assert_eq!(secs("0s"), 0);
        assert_eq!(parse_ms("2s").unwrap(), 2000);
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(matches!(parse(""), Err(DurationError::Malformed(_))));
        assert!(matches!(parse("m"), Err(DurationError::Malformed(_))));
        assert!(matches!(parse("5m3"), Err(DurationError::Malformed(_))));
        assert!(matches!(parse("-5m"), Err(DurationError::Malformed(_))));
        assert!(matches!(parse("1.5h"), Err(DurationError::Malformed(_))));
        let e = parse("15x").unwrap_err();
        assert!(e.to_string().contains("unknown unit \"x\""), "{e}");
        assert!(matches!(
            parse("3mo"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("1y"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("99999999999999999999"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("99999999999999999w"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_ms("18446744073709551615s"),
            Err(DurationError::Overflow(_))
        ));
    }

    proptest! {
        /// Any text: an answer or an error, never a panic; and every
        /// composed duration parses back to its sum.
        #[test]
        fn never_panics_and_sums_groups(text in ".{0,40}", groups in proptest::collection::vec((0u64..10_000, 0usize..5), 1..5)) {
            let _ = parse(&text);
            let units = ["s", "m", "h", "d", "w"];
            let per = [1u64, 60, 3600, 86_400, 604_800];
            let written: String = groups.iter().map(|(n, u)| format!("{n}{}", units[*u])).collect();
            let expected: u64 = groups.iter().map(|(n, u)| n * per[*u]).sum();
            prop_assert_eq!(parse(&written).unwrap().as_secs(), expected);
        }
    }
}
