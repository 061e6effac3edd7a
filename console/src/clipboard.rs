//! Copying to the operator's clipboard with OSC 52: an escape sequence the
//! terminal itself acts on, so it works over SSH and in tmux (with
//! `set-clipboard on`), where no local clipboard program could.
//!
//! Inside tmux the sequence is also sent wrapped in tmux's passthrough
//! (`ESC P tmux; … ESC \`), which reaches the outer terminal when tmux has
//! `allow-passthrough on` but not `set-clipboard on`.

use base64::Engine;

/// The longest text sent (terminals cap OSC 52 payloads; 100 KB is a
/// common limit and far beyond any key or command).
pub const MAX_COPY: usize = 64 * 1024;

/// The OSC 52 sequence that puts `text` on the clipboard (`c` selection).
pub fn osc52(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("\x1b]52;c;{b64}\x07")
}

/// `seq` wrapped for tmux's passthrough (every `ESC` doubled).
pub fn tmux_passthrough(seq: &str) -> String {
    format!("\x1bPtmux;{}\x1b\\", seq.replace('\x1b', "\x1b\x1b"))
}

/// What to write to the terminal to copy `text`: the plain sequence, and
/// inside tmux the wrapped one too. `None` when the text is too long.
pub fn sequences(text: &str, in_tmux: bool) -> Option<Vec<String>> {
    if text.len() > MAX_COPY {
        return None;
    }
    let plain = osc52(text);
    let mut out = vec![plain.clone()];
    if in_tmux {
        out.push(tmux_passthrough(&plain));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_carries_the_text_in_base64() {
        assert_eq!(osc52("hello world"), "\x1b]52;c;aGVsbG8gd29ybGQ=\x07");
        assert_eq!(
            tmux_passthrough("\x1b]52;c;eA==\x07"),
            "\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\"
        );
        assert_eq!(sequences("x", false).unwrap().len(), 1);
        assert_eq!(sequences("x", true).unwrap().len(), 2);
        assert!(sequences(&"x".repeat(MAX_COPY + 1), false).is_none());
    }
}
