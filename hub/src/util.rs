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
        let b = AuditBudget::per_minute(2);
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
    }
}
