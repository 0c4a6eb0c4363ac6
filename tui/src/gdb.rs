//! gdb inside the GDB pane, on a thread of its own.
//!
//! `cadenza_qemu::gdb::Gdb` drives a real gdb over pipes and blocks until gdb's next prompt,
//! which for a kernel stuck in a loop can be a long time; so the `Gdb` lives on this worker and
//! the UI only sends it command lines and receives its transcript. Execution commands are run
//! in the background (`continue &`), so the prompt comes back at once and Ctrl-C (`interrupt`)
//! can stop the kernel again; stop reports then arrive in the transcript, which the worker
//! forwards whenever it grows.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use cadenza_qemu::gdb::Gdb;

/// How long gdb may take to connect or to answer one command.
pub const GDB_TIMEOUT: Duration = Duration::from_secs(30);
/// Transcript lines forwarded to the pane.
const KEEP_LINES: usize = 500;

#[derive(Debug)]
pub enum GdbEvent {
    /// Connected; gdb's output so far.
    Attached(String),
    Failed(String),
    /// New gdb output (appended to what came before).
    Output(String),
}

pub struct GdbWorker {
    commands: Sender<String>,
    events: Receiver<GdbEvent>,
}

/// `c` / `continue` / `next` … as background commands, so the prompt returns while the kernel
/// runs (gdb then accepts `interrupt`).
pub fn backgrounded(command: &str) -> String {
    let word = command.split_whitespace().next().unwrap_or_default();
    let runs = matches!(
        word,
        "c" | "continue" | "cont" | "s" | "step" | "n" | "next" | "finish" | "fin" | "until" | "u"
    );
    if runs && !command.trim_end().ends_with('&') {
        format!("{} &", command.trim_end())
    } else {
        command.to_string()
    }
}

/// The last `KEEP_LINES` lines of `text`.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(KEEP_LINES);
    let mut out = lines[skip..].join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

impl GdbWorker {
    /// Starts gdb on `elf` and connects it to `target` (`:PORT`).
    pub fn attach(elf: PathBuf, target: String, script: Option<PathBuf>) -> Self {
        let (command_tx, command_rx) = mpsc::channel::<String>();
        let (event_tx, event_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("gdb".into())
            .spawn(move || {
                let mut gdb = match Gdb::attach(&elf, &target, GDB_TIMEOUT) {
                    Ok((gdb, _)) => gdb,
                    Err(error) => {
                        let _ = event_tx.send(GdbEvent::Failed(format!("{error:#}")));
                        return;
                    }
                };
                if let Some(script) = script {
                    let _ = gdb.run(&format!("source {}", script.display()), GDB_TIMEOUT);
                }
                let first = gdb.transcript();
                let mut sent = first.len();
                if event_tx.send(GdbEvent::Attached(tail(&first))).is_err() {
                    return;
                }
                loop {
                    match command_rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(command) => {
                            if let Err(error) = gdb.run(&command, GDB_TIMEOUT) {
                                let first_line = format!("{error:#}");
                                let first_line = first_line.lines().next().unwrap_or_default();
                                let _ = event_tx.send(GdbEvent::Output(format!(
                                    "\n[cadenza-tui: {first_line}]\n"
                                )));
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            gdb.quit();
                            return;
                        }
                    }
                    let now = gdb.transcript();
                    if now.len() > sent {
                        let new = now.get(sent..).unwrap_or_default().to_string();
                        sent = now.len();
                        if event_tx.send(GdbEvent::Output(new)).is_err() {
                            return;
                        }
                    }
                }
            })
            .ok();
        Self {
            commands: command_tx,
            events: event_rx,
        }
    }

    pub fn send(&self, command: &str) {
        let _ = self.commands.send(backgrounded(command));
    }

    pub fn drain(&self) -> Vec<GdbEvent> {
        self.events.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_commands_run_in_the_background() {
        assert_eq!(backgrounded("c"), "c &");
        assert_eq!(backgrounded("continue &"), "continue &");
        assert_eq!(backgrounded("next 3"), "next 3 &");
        assert_eq!(backgrounded("bt"), "bt");
        assert_eq!(backgrounded("monitor ps"), "monitor ps");
    }
}
