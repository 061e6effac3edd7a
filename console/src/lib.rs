//! The Sonde operator console: a terminal UI over the hub's admin socket.
//!
//! [`app`] holds the state and turns keys and hub answers into new state and
//! [`worker::Request`]s; [`worker`] runs admin calls on a background tokio
//! runtime; [`ui`] and [`views`] draw; [`terminal`] sets up and always
//! restores the terminal; [`form`] is the schema-driven parameter form.

pub mod app;
#[cfg(test)]
mod fixtures;
pub mod form;
pub mod terminal;
pub mod text;
pub mod ui;
pub mod views;
pub mod worker;

use crossterm::event::{self, Event, KeyEventKind, MouseEventKind};
use sonde_admin::AdminClient;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
pub fn run(target: Target) -> Result<(), ConsoleError> {
    let client = target.client();
    let mut app = app::App::new(client.socket().display().to_string());
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
        if app.quit {
            break;
        }
    }
    drop(guard);
    Ok(())
}
