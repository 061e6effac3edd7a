//! Durations as operators type and read them: `15m`, `2h5m`, `90d`.

/// `3m`, `2h5m`, `4d`, `850ms` — for messages.
pub fn human_duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// Parses a positive duration with the grammar shared with the console
/// (`sonde_protocol::duration`: `90s`, `15m`, `2h`, `1h30m`, `90d`, `2w`; a
/// bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = sonde_protocol::duration::parse(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("{:?}: a duration must be positive", text.trim()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration_ms(500), "500ms");
        assert_eq!(human_duration_ms(180_000), "3m");
        assert_eq!(human_duration_ms(7_500_000), "2h5m");
        assert_eq!(human_duration_ms(7_200_000), "2h");
        assert_eq!(human_duration_ms(3 * 86_400_000), "3d");
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_duration("30").unwrap().as_secs(), 30);
        assert!(parse_duration("15x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
    }
}
