//! `cadenza-tui`: one screen to launch QEMU and watch the Cadenza kernel's console, panics,
//! heap, leaks and processes (docs/tui.md).
//!
//! The crate is split so that everything that decides what the screen shows can be tested
//! without a terminal, a QEMU or a kernel:
//!
//! - `app` — all state and the key handling, pure data in and `Action`s out;
//! - `panes` — drawing, `App` to ratatui buffer (snapshot-tested with `TestBackend`);
//! - `input` — the key table and how keys become bytes for the guest;
//! - `console`, `panic`, `telemetry`, `report` — the console terminal emulator, panic
//!   symbolization, the telemetry worker and its adapters, and saved reports;
//! - `session`, `gdb`, `terminal` — the launcher glue that does the I/O (build, QEMU, sockets,
//!   gdb, the real terminal), kept thin and off the UI thread.

pub mod app;
pub mod cli;
pub mod console;
pub mod gdb;
pub mod input;
pub mod panes;
pub mod panic;
pub mod report;
pub mod session;
pub mod telemetry;
pub mod terminal;

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};

use anyhow::{Context, Result, bail};
use ratatui::crossterm::event::{self, Event};

pub use app::App;
pub use cli::Cli;

/// How long the UI waits for a key before redrawing with whatever arrived meanwhile.
const FRAME: Duration = Duration::from_millis(50);

/// Reads terminal events on a thread of its own.
///
/// Why not `event::poll` on the UI thread: when the terminal goes away (window closed, tmux
/// killed) crossterm 0.29's reader retries the failing `read` forever inside `poll`, so the UI
/// thread would spin there and never see the SIGHUP flag. Here only this thread can get stuck;
/// the UI thread notices the signal, or its next draw fails, and the process exits.
fn spawn_input() -> Receiver<std::io::Result<Event>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let event = event::read();
                let failed = event.is_err();
                if tx.send(event).is_err() || failed {
                    return;
                }
            }
        })
        .ok();
    rx
}

/// Runs the TUI until the user quits (or a signal asks to).
pub fn run(cli: &Cli) -> Result<()> {
    let workspace = cadenza_qemu::Workspace::locate().ok();
    let plan = session::Plan::from_cli(cli, workspace.as_ref())?;
    let quit = terminal::quit_signal().context("cannot install signal handlers")?;
    terminal::install_panic_hook();
    let mut guard = terminal::TerminalGuard::enter().context("cannot set up the terminal")?;
    let mut app = App::new();
    let mut session = session::Session::start(plan, workspace, &mut app);
    let input = spawn_input();
    while !app.quit && !quit.load(Ordering::Relaxed) {
        session.tick(&mut app);
        guard
            .terminal
            .draw(|frame| panes::draw(frame, &mut app))
            .context("cannot draw")?;
        let mut next = input.recv_timeout(FRAME);
        // Take every event already queued, then redraw once.
        loop {
            match next {
                Ok(Ok(Event::Key(key))) => {
                    for action in app.handle_key(key) {
                        session.execute(action, &mut app);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error).context("cannot read the terminal"),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => bail!("the terminal's input closed"),
            }
            next = input.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            });
        }
    }
    drop(session);
    drop(guard);
    Ok(())
}
