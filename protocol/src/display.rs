//! Text from peers, made safe for a terminal.
//!
//! Agents choose their host names, OS strings, pack descriptions; MCP
//! clients choose their arguments; files hold anything. Printed raw, such
//! text could carry escape sequences that move the cursor, recolour or
//! rewrite what the operator sees, set the window title, or reverse text
//! with bidirectional controls. Every CLI prints peer-supplied text through
//! these functions; nothing here ever fails.
//!
//! What is escaped: C0 controls (except the newline and tab of a layout,
//! where allowed), DEL, C1 controls (U+0080–U+009F: some terminals obey
//! an 8-bit CSI), bidirectional and invisible formatting characters
//! (U+200B–U+200F, U+202A–U+202E, U+2060–U+2069, U+FEFF).

use std::borrow::Cow;
use std::fmt::Write as _;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        )
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool, json: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) || keep(c) {
            out.push(c);
        } else if json {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else if c == '\n' {
            out.push_str("\\n");
        } else if c == '\t' {
            out.push_str("\\t");
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// A block of text for a terminal: newlines and tabs stay (the layout),
/// every other control is escaped (`\x1b`, `\u{202e}`).
pub fn terminal_text(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n' || c == '\t', false)
}

/// One field (a table cell, a value on a line): newlines and tabs are
/// escaped too, so a value cannot fake another row.
pub fn terminal_field(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false, false)
}

/// JSON text for a terminal: what `serde_json` leaves raw (C1 controls,
/// bidirectional and invisible characters) becomes a `\uXXXX` escape, so
/// the output is the same JSON value and safe to show.
pub fn terminal_json(json: &str) -> Cow<'_, str> {
    escape_with(json, |c| c == '\n' || c == ' ' || c == '\t', true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_could_drive_a_terminal() {
        assert_eq!(terminal_text("ok\n\ttab"), "ok\n\ttab");
        assert_eq!(terminal_text("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(terminal_text("t\x1b]0;pwned\x07"), "t\\x1b]0;pwned\\x07");
        assert_eq!(terminal_text("csi\u{9b}31m"), "csi\\x9b31m");
        assert_eq!(terminal_text("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(terminal_text("cr\roverwrite"), "cr\\x0doverwrite");
        assert_eq!(terminal_field("nas\nFAKE ROW"), "nas\\nFAKE ROW");
        assert_eq!(terminal_field("plain name"), "plain name");
        let json =
            serde_json::to_string(&serde_json::json!({"os": "x\u{9b}y\u{202e}z\u{1b}"})).unwrap();
        let safe = terminal_json(&json);
        assert!(!safe.chars().any(needs_escape), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["os"], "x\u{9b}y\u{202e}z\u{1b}");
    }

    proptest! {
        #[test]
        fn prop_no_control_survives(s in any::<String>()) {
            prop_assert!(!terminal_field(&s).chars().any(needs_escape));
            prop_assert!(!terminal_text(&s).chars().any(|c| needs_escape(c) && c != '\n' && c != '\t'));
            let json = serde_json::to_string(&s).unwrap();
            let safe = terminal_json(&json);
            prop_assert!(!safe.chars().any(|c| needs_escape(c) && c != '\n' && c != '\t'));
            let back: String = serde_json::from_str(&safe).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
