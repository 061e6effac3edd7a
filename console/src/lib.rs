//! The Sonde operator console: a terminal UI over the hub's admin socket.
//!
//! Keys become [`action::Action`]s through one key map ([`keymap`], which
//! also generates the help and the status-bar hints); [`app`] routes each
//! action to the open overlay ([`modal`], [`palette`]) or the current
//! screen ([`screens`]: each a component with its own state, `update` and
//! `view`), and turns hub answers into shared [`data`]. Admin calls run on
//! a background tokio runtime ([`worker`]), never on the draw loop;
//! [`terminal`] sets up and always restores the terminal.

pub mod action;
pub mod app;
pub mod clipboard;
pub mod data;
#[cfg(test)]
mod fixtures;
pub mod form;
pub mod human;
pub mod keymap;
pub mod list;
pub mod modal;
pub mod palette;
pub mod screens;
pub mod table;
pub mod terminal;
pub mod text;
pub mod theme;
pub mod ui;
pub mod worker;

use crossterm::event::{self, Event, KeyEventKind, MouseEventKind};
use sonde_admin::AdminClient;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use app::Options;

/// Where the hub's admin socket is.
#[derive(Debug, Clone)]
pub enum Target {
    DataDir(PathBuf),
    Socket(PathBuf),
}

impl Target {
    pub fn client(&self) -> AdminClient {
        match self {
            Target::DataDir(d) => AdminClient::for_data_dir(d),
            Target::Socket(s) => AdminClient::new(s.clone()),
        }
        .with_timeout(Duration::from_secs(300))
    }
}

/// Why the console stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the console until the operator quits.
pub fn run(target: Target, options: Options) -> Result<(), ConsoleError> {
    let client = target.client();
    let mut app = app::App::with_options(client.socket().display().to_string(), options);
    let worker = worker::Worker::spawn(client)?;
    let mut guard = terminal::setup()?;
    loop {
        for r in app.tick(now_ms()) {
            worker.send(r);
        }
        while let Some(response) = worker.try_recv() {
            for r in app.on_response(response) {
                worker.send(r);
            }
        }
        guard.terminal.draw(|f| ui::draw(f, &app))?;
        if event::poll(Duration::from_millis(100))? {
            let requests = match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => app.on_key(k),
                Event::Mouse(m) => match m.kind {
                    MouseEventKind::ScrollDown => app.on_scroll(true),
                    MouseEventKind::ScrollUp => app.on_scroll(false),
                    _ => Vec::new(),
                },
                // Resize: the next draw uses the new size.
                _ => Vec::new(),
            };
            for r in requests {
                worker.send(r);
            }
        }
        for seq in app.output.drain(..) {
            terminal::write_raw(&seq)?;
        }
        if let Some(lines) = app.plain.take() {
            terminal::show_plain(&mut guard, &lines)?;
        }
        if app.quit {
            break;
        }
    }
    drop(guard);
    Ok(())
}
