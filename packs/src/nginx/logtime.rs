//! The times nginx writes in its logs, to Unix milliseconds.
//!
//! - `$time_local`: `01/May/2024:10:00:00 +0200` (with its UTC offset);
//! - `$time_iso8601`: `2024-05-01T10:00:00+02:00`;
//! - `$msec`: `1714550400.123`;
//! - the error log's `2024/05/01 10:00:00`, in the server's local time
//!   **without** an offset: kept as text, never compared with a window.

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// `sonde_protocol::time::civil_from_days`, Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `+0200`, `-0530`, `+02:00`, `Z` → seconds east of UTC.
fn offset_s(text: &str) -> Option<i64> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let rest = rest.replace(':', "");
    if rest.len() != 4 {
        return None;
    }
    let h = digits(&rest[..2])?;
    let m = digits(&rest[2..])?;
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

fn to_ms(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, offset: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset) * 1000)
}

/// `01/May/2024:10:00:00 +0200` → Unix ms.
pub fn parse_time_local(text: &str) -> Option<i64> {
    let (stamp, zone) = text.trim().split_once(' ')?;
    let mut parts = stamp.split(['/', ':']);
    let d = digits(parts.next()?)?;
    let mon = parts.next()?;
    let mo = MONTHS.iter().position(|m| *m == mon)? as u32 + 1;
    let y = digits(parts.next()?)?;
    let h = digits(parts.next()?)?;
    let mi = digits(parts.next()?)?;
    let s = digits(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    to_ms(y, mo, u32::try_from(d).ok()?, h, mi, s, offset_s(zone)?)
}

/// `2024-05-01T10:00:00+02:00` → Unix ms.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() < 20 {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let rest = rest.strip_prefix('T')?;
    let (clock, zone) = rest.split_at(8.min(rest.len()));
    let mut dp = date.split('-');
    let y = digits(dp.next()?)?;
    let mo = u32::try_from(digits(dp.next()?)?).ok()?;
    let d = u32::try_from(digits(dp.next()?)?).ok()?;
    let mut cp = clock.split(':');
    let h = digits(cp.next()?)?;
    let mi = digits(cp.next()?)?;
    let s = digits(cp.next()?)?;
    to_ms(y, mo, d, h, mi, s, offset_s(zone)?)
}

/// `1714550400.123` → Unix ms.
pub fn parse_msec(text: &str) -> Option<i64> {
    let (secs, frac) = text.trim().split_once('.').unwrap_or((text.trim(), "0"));
    let secs = digits(secs)?;
    let ms = digits(&format!("{frac:0<3}")[..3])?;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_protocol::time::{civil_from_days, format_utc_ms};

    #[test]
    fn days_round_trip_with_civil_from_days() {
        for z in [-800_000i64, -1, 0, 1, 59, 365, 11_016, 19_844, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{z}");
        }
    }

    #[test]
    fn nginx_times_parse_with_their_offsets() {
        let utc = parse_time_local("01/May/2024:10:00:00 +0000").unwrap();
        assert_eq!(format_utc_ms(utc), "2024-05-01 10:00:00Z");
        assert_eq!(
            parse_time_local("01/May/2024:12:00:00 +0200"),
            Some(utc),
            "the offset is applied"
        );
        assert_eq!(parse_iso8601("2024-05-01T12:00:00+02:00"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T10:00:00Z"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T10:00"), None);
        assert_eq!(parse_msec("1714557600.250"), Some(1_714_557_600_250));
        assert_eq!(parse_msec("1714557600"), Some(1_714_557_600_000));
        for bad in [
            "",
            "01/Foo/2024:10:00:00 +0000",
            "01/May/2024:25:00:00 +0000",
            "01/May/2024:10:00:00",
            "01/May/2024:10:00:00 +00",
            "x/May/2024:10:00:00 +0000",
            "01/May/2024:10:00:00:00 +0000",
        ] {
            assert_eq!(parse_time_local(bad), None, "{bad}");
        }
        assert_eq!(parse_msec("abc"), None);
    }
}
