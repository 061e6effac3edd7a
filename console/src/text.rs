//! Making hub-provided text safe and short for the screen, fitting text to
//! a width without ever cutting it silently, and formatting times, sizes
//! and durations for people. Nothing here panics, whatever the input.

use sonde_protocol::time::days_from_civil;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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
        push_clean(&mut out, c);
    }
    out
}

fn push_clean(out: &mut String, c: char) {
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

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// Columns `text` takes on screen.
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cleaned and fitted to `cols` screen columns: whole when it fits,
/// otherwise cut with a trailing `…` (so a cut value never passes for a
/// whole one).
pub fn fit(text: &str, cols: usize) -> String {
    let cleaned = clip(text, MAX_TEXT);
    if width(&cleaned) <= cols {
        return cleaned;
    }
    if cols == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in cleaned.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > cols - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// `text` cleaned and cut into rows of at most `cols` columns, at any
/// character (not at spaces): a command stays one string, whatever the
/// width.
pub fn wrap_chars(text: &str, cols: usize) -> Vec<String> {
    let cleaned = clean(text);
    let cols = cols.max(1);
    let mut rows = vec![String::new()];
    let mut used = 0;
    for c in cleaned.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > cols && used > 0 {
            rows.push(String::new());
            used = 0;
        }
        used += w;
        if let Some(row) = rows.last_mut() {
            row.push(c);
        }
    }
    rows
}

/// `text` cleaned and cut into rows of at most `cols` columns at spaces
/// (a word longer than a row is cut at any character).
pub fn wrap_words(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut rows: Vec<String> = Vec::new();
    let mut row = String::new();
    for word in clean(text).split(' ') {
        let needed = if row.is_empty() {
            width(word)
        } else {
            width(&row) + 1 + width(word)
        };
        if needed > cols && !row.is_empty() {
            rows.push(std::mem::take(&mut row));
        }
        if width(word) > cols {
            let mut pieces = wrap_chars(word, cols);
            let last = pieces.pop().unwrap_or_default();
            rows.extend(pieces);
            row = last;
            continue;
        }
        if !row.is_empty() {
            row.push(' ');
        }
        row.push_str(word);
    }
    rows.push(row);
    rows
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

/// `05-01 12:34:56` (UTC, no year): whole in a narrow column; the detail
/// shows [`utc`].
pub fn utc_short(ms: i64) -> String {
    let full = utc(ms);
    // "YYYY-MM-DD HH:MM:SSZ" → "MM-DD HH:MM:SS"
    match full.split_once('-') {
        Some((_, rest)) => rest.trim_end_matches('Z').to_owned(),
        None => full,
    }
}

/// `1.5 KiB`, `3.2 GiB` (binary units, as `zfs` and `free -h` print them).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `850 ms`, `1.2 s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    if s < 3600 {
        return format!("{}m {}s", s / 60, s % 60);
    }
    if s < 86_400 {
        return format!("{}h {}m", s / 3600, s % 3600 / 60);
    }
    format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
}

/// `2024-05-01`, `2024-05-01T12:34`, `2024-05-01 12:34:56Z` (UTC) → ms.
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    if !(1970..=9999).contains(&y) {
        return None;
    }
    let mut secs = 0i64;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let min: i64 = parts.next()?.parse().ok()?;
        let s: i64 = match parts.next() {
            Some(s) => s.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() || h > 23 || min > 59 || s > 59 || h < 0 || min < 0 || s < 0 {
            return None;
        }
        secs = h * 3600 + min * 60 + s;
    }
    Some((days_from_civil(y, m, day)? * 86_400 + secs) * 1000)
}

/// A point in time typed by the operator: a duration ago (the hub CLI's
/// grammar, [`sonde_protocol::duration`]: `30m`, `2h`, `7d`, `2w`, a bare
/// number is seconds) or a UTC date (`2024-05-01`, `2024-05-01T12:00`).
pub fn parse_when(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(ms) = parse_utc(text) {
        return Ok(ms);
    }
    sonde_protocol::duration::parse_ms(text)
        .map(|ago| now_ms.saturating_sub(ago))
        .map_err(|e| format!("{e}, or a UTC date like 2024-05-01T12:00"))
}

/// Eight levels of a text sparkline (readable in any terminal font that
/// has block elements; no colour needed).
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A one-row sparkline of `values` scaled to their maximum (`None`: a gap,
/// drawn as a space; all zero: the lowest bar).
pub fn sparkline(values: &[Option<u64>]) -> String {
    let max = values.iter().flatten().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(_) if max == 0 => BARS[0],
            Some(v) => {
                let i = ((*v as f64 / max as f64) * (BARS.len() - 1) as f64).round() as usize;
                BARS[i.min(BARS.len() - 1)]
            }
        })
        .collect()
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
    fn fit_never_cuts_silently() {
        assert_eq!(fit("sk_3f9a1c2e", 11), "sk_3f9a1c2e");
        assert_eq!(fit("sk_3f9a1c2e", 10), "sk_3f9a1c…");
        assert_eq!(fit("abc", 1), "…");
        assert_eq!(fit("abc", 0), "");
        // Wide characters count for two columns.
        assert_eq!(fit("日本語", 5), "日本…");
        assert!(width(&fit("日本語", 5)) <= 5);
        assert_eq!(fit("a\u{1b}b", 10), "a\\x1bb");
    }

    #[test]
    fn wrapping_at_any_character_keeps_every_character() {
        let cmd = "claude mcp add sonde --transport http https://hub:7444/mcp";
        let rows = wrap_chars(cmd, 20);
        assert!(rows.iter().all(|r| width(r) <= 20));
        assert_eq!(rows.concat(), cmd);
        assert_eq!(wrap_chars("", 5), [""]);
        assert_eq!(wrap_chars("abc", 0).concat(), "abc");
    }

    #[test]
    fn word_wrapping_keeps_every_word() {
        let text = "accept the current attestation as the baseline, ending the quarantine";
        let rows = wrap_words(text, 20);
        assert!(rows.iter().all(|r| width(r) <= 20), "{rows:?}");
        assert_eq!(rows.join(" "), text);
        assert_eq!(wrap_words("", 5), [""]);
        assert_eq!(wrap_words("abcdefghij", 4).concat(), "abcdefghij");
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_714_566_896_000), "2024-05-01 12:34:56Z");
        assert_eq!(utc_short(1_714_566_896_000), "05-01 12:34:56");
        assert_eq!(ago(10_000, 9_000), "just now");
        assert_eq!(ago(100_000, 0), "1m ago");
        assert_eq!(ago(0, 7_200_000), "in 2h");
        assert_eq!(ago(i64::MAX, i64::MIN), "106751991167d ago");
        let _ = utc(i64::MIN);
        let _ = utc(i64::MAX);
        let _ = utc_short(i64::MIN);
    }

    #[test]
    fn points_in_time_use_the_hub_grammar_or_a_date() {
        let now = 1_714_566_896_000;
        assert_eq!(parse_when("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_when("2w", now), Ok(now - 14 * 86_400_000));
        assert_eq!(parse_when("1h30m", now), Ok(now - 5_400_000));
        assert_eq!(
            parse_when("30", now),
            Ok(now - 30_000),
            "seconds, as in the CLI"
        );
        assert_eq!(parse_when("2024-05-01", now), Ok(1_714_521_600_000));
        assert_eq!(
            parse_when("2024-05-01T12:34:56Z", now),
            Ok(1_714_566_896_000)
        );
        assert_eq!(parse_when("2024-05-01 12:34", now), Ok(1_714_566_840_000));
        assert!(parse_when("soon", now).unwrap_err().contains("UTC date"));
        assert!(parse_when("2024-13-01", now).is_err());
        assert!(parse_when("5x", now).is_err());
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2024, 12, 31)] {
            let ms = days_from_civil(y, m, d).unwrap() * 86_400_000;
            assert_eq!(
                &utc(ms)[..10],
                format!("{y:04}-{m:02}-{d:02}"),
                "round trip"
            );
        }
    }

    #[test]
    fn sizes_and_durations_for_people() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1_099_511_627_776), "1.0 TiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(1234), "1.2 s");
        assert_eq!(duration_ms(200_000), "3m 20s");
        assert_eq!(duration_ms(7_500_000), "2h 5m");
        assert_eq!(duration_ms(277_200_000), "3d 5h");
        assert!(!duration_ms(u64::MAX).is_empty());
    }

    #[test]
    fn sparklines_scale_to_the_maximum() {
        assert_eq!(sparkline(&[Some(0), Some(4), Some(8)]), "▁▅█");
        assert_eq!(sparkline(&[Some(0), None, Some(0)]), "▁ ▁");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[Some(u64::MAX), Some(1)]), "█▁");
    }
}
