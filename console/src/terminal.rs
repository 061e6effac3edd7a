//! Taking over the terminal and always giving it back: on a normal exit, on
//! an error, and on a panic (the hook restores it before the message).

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{Stdout, Write, stdout};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Restores the terminal when dropped.
#[derive(Debug)]
pub struct TerminalGuard {
    pub terminal: Term,
}

/// Puts the terminal back (idempotent; errors ignored: nothing else to do).
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Raw mode, alternate screen, mouse capture, and a panic hook that
/// restores all of it before the panic message is printed.
pub fn setup() -> std::io::Result<TerminalGuard> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    enable_raw_mode()?;
    let entered = execute!(stdout(), EnterAlternateScreen, EnableMouseCapture);
    if let Err(e) = entered {
        restore();
        return Err(e);
    }
    match Terminal::new(CrosstermBackend::new(stdout())) {
        Ok(terminal) => Ok(TerminalGuard { terminal }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Writes an escape sequence straight to the terminal (OSC 52).
pub fn write_raw(seq: &str) -> std::io::Result<()> {
    let mut out = stdout();
    out.write_all(seq.as_bytes())?;
    out.flush()
}

/// Leaves the full-screen view to print `lines` as plain terminal text
/// (each line one logical line the terminal wraps softly, so selecting it
/// with the mouse copies it whole), waits for Enter or Esc, then clears the
/// screen and its scrollback (the lines may hold a secret) and comes back.
pub fn show_plain(guard: &mut TerminalGuard, lines: &[String]) -> std::io::Result<()> {
    use crossterm::event::{Event, KeyCode, KeyEventKind};
    execute!(
        stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    )?;
    let mut out = stdout();
    out.write_all(b"\x1b[2J\x1b[H")?;
    for l in lines {
        let safe = crate::text::clean(l);
        out.write_all(safe.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    out.write_all(
        b"\r\n-- Enter or Esc returns to the console (this text is then cleared) --\r\n",
    )?;
    out.flush()?;
    loop {
        if let Event::Key(k) = crossterm::event::read()?
            && k.kind != KeyEventKind::Release
            && matches!(k.code, KeyCode::Enter | KeyCode::Esc)
        {
            break;
        }
    }
    // Clear the screen and the scrollback (xterm's ED 3) before going back.
    out.write_all(b"\x1b[2J\x1b[3J\x1b[H")?;
    out.flush()?;
    execute!(stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    guard.terminal.clear()
}
