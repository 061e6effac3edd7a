//! Making hub-provided text safe and short for the screen, and formatting
//! times. Nothing here panics, whatever the input.

/// Longest text kept from one hub-provided string.
pub const MAX_TEXT: usize = 2000;

/// `text` with control characters escaped (`\u{1b}` → `\x1b`, newlines →
/// `⏎`) and cut to [`MAX_TEXT`] characters, so a name can never move the
/// cursor, change colours or blow up a row.
pub fn clean(text: &str) -> String {
    clip(text, MAX_TEXT)
}

/// [`clean`], cut to `max` characters (with `…` when cut).
pub fn clip(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count >= max {
            out.push('…');
            break;
        }
        if c == '\n' {
            out.push('⏎');
        } else if c == '\t' {
            out.push(' ');
        } else if c.is_control() || is_bidi_control(c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// "just now", "42s ago", "5m ago", "3h ago", "2d ago" (or "in 5m" for the future).
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let diff = now_ms.saturating_sub(then_ms);
    let (future, secs) = if diff < 0 {
        (true, diff.saturating_neg() / 1000)
    } else {
        (false, diff / 1000)
    };
    let amount = if secs < 2 {
        return "just now".into();
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h", secs / 3600)
    } else {
        format!("{}d", secs / 86_400)
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `2024-05-01 12:34:56Z` (UTC).
pub use sonde_protocol::time::format_utc_ms as utc;

/// `30s`, `15m`, `2h`, `7d` → milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(clean("a\u{1b}[31mb\nc"), "a\\x1b[31mb⏎c");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("", 3), "");
        assert_eq!(clean(&"x".repeat(5000)).chars().count(), MAX_TEXT + 1);
        assert_eq!(clean("\u{202e}evil"), "\\x202eevil");
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_714_566_896_000), "2024-05-01 12:34:56Z");
        assert_eq!(ago(10_000, 9_000), "just now");
        assert_eq!(ago(100_000, 0), "1m ago");
        assert_eq!(ago(0, 7_200_000), "in 2h");
        assert_eq!(ago(i64::MAX, i64::MIN), "106751991167d ago");
        let _ = utc(i64::MIN);
        let _ = utc(i64::MAX);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(900_000));
        assert_eq!(parse_duration("2d"), Some(172_800_000));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
