//! Small formatting and parsing helpers shared by the hub's commands.

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

/// Parses `90s`, `15m`, `2h`, `90d`, `1w` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 90s, 15m, 2h, 90d)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        "w" => n.saturating_mul(7 * 86_400),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    if secs == 0 {
        return Err(format!("{text:?}: a duration must be positive"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Lets at most `limit` audit entries of one kind through per minute; the
/// rest are counted and reported with the next one let through. Keeps a
/// flood (bad handshakes, bad API keys) from bloating the audit chain.
#[derive(Debug)]
pub struct AuditBudget {
    limit: u32,
    state: std::sync::Mutex<(std::time::Instant, u32, u64)>,
}

impl AuditBudget {
    pub fn per_minute(limit: u32) -> Self {
        AuditBudget {
            limit,
            state: std::sync::Mutex::new((std::time::Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed_since_last)` if this event may be audited.
    pub fn take(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.elapsed() > std::time::Duration::from_secs(60) {
            *s = (std::time::Instant::now(), 0, s.2);
        }
        if s.1 >= self.limit {
            s.2 += 1;
            return None;
        }
        s.1 += 1;
        Some(std::mem::take(&mut s.2))
    }
}

/// The name of `uid` from `/etc/passwd`.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// `2026-11-23 14:05:09Z` for a Unix-ms time (UTC), for tables.
pub fn format_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
        assert_eq!(format_time_ms(0), "1970-01-01 00:00:00Z");
        let b = AuditBudget::per_minute(2);
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
        assert_eq!(format_time_ms(1_795_000_000_000), "2026-11-18 11:06:40Z");
    }
}
