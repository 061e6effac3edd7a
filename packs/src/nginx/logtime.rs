//! The times nginx writes in its logs, to Unix milliseconds.
//!
//! - `$time_local`: `01/May/2024:10:00:00 +0200` (with its UTC offset);
//! - `$time_iso8601`: `2024-05-01T10:00:00+02:00`;
//! - `$msec`: `1714550400.123`;
//! - the error log's `2024/05/01 10:00:00`, in the server's local time
//!   **without** an offset: kept as text, never compared with a window.

/// `01/May/2024:10:00:00 +0200` → Unix ms.
pub fn parse_time_local(text: &str) -> Option<i64> {
    let parsed = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", text.trim()).ok()?;
    Some(parsed.to_timestamp().ok()?.as_millisecond())
}

/// `2024-05-01T10:00:00+02:00` (RFC 3339, an offset required) → Unix ms.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let t: jiff::Timestamp = text.trim().parse().ok()?;
    Some(t.as_millisecond())
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
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
    use sonde_protocol::time::format_utc_ms;

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
            "30/Feb/2024:10:00:00 +0000",
        ] {
            assert_eq!(parse_time_local(bad), None, "{bad}");
        }
        assert_eq!(parse_msec("abc"), None);
    }
}
