//! Driving a real `gdb` from Rust: the boot tests use it against the kernel's stub and QEMU's,
//! and the TUI's gdb pane will too.
//!
//! gdb runs with its command line on a pipe, exactly as if typed: after each command we wait
//! for the next `(gdb) ` prompt, so asynchronous events (an interrupted `continue &`, a
//! breakpoint hit) are processed between commands as in an interactive session — something
//! `gdb -batch` cannot do.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::launch::Shared;

const PROMPT: &str = "(gdb) ";

pub struct Gdb {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Shared>,
    /// Output offset up to which everything has been consumed by `run`.
    seen: usize,
}

impl Gdb {
    /// Starts gdb on `elf` and connects to `target` (`:PORT`, `HOST:PORT` or a socket path).
    pub fn attach(elf: &Path, target: &str, timeout: Duration) -> Result<(Self, String)> {
        // One pipe for stdout and stderr, as on a terminal: gdb prints target output (`monitor`)
        // on stderr and prompts on stdout, and two pipes would lose their relative order.
        let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
        let writer_for_stderr = writer.try_clone().context("cannot create a pipe")?;
        let mut child = Command::new("gdb")
            .args([
                "-nx",
                "-q",
                "-ex",
                "set confirm off",
                "-ex",
                "set pagination off",
            ])
            .args(["-ex", "set width 0", "-ex", "set remotetimeout 10"])
            .arg(elf)
            .stdin(Stdio::piped())
            .stdout(writer)
            .stderr(writer_for_stderr)
            .spawn()
            .context("cannot start gdb (Debian: apt-get install -y gdb)")?;
        let output = Arc::new(Shared::default());
        output.clone().collect(reader, false);
        let stdin = child.stdin.take().expect("piped");
        let mut gdb = Self {
            child,
            stdin,
            output,
            seen: 0,
        };
        gdb.wait_prompt(timeout)?;
        let connected = gdb.run(&format!("target remote {target}"), timeout)?;
        Ok((gdb, connected))
    }

    fn wait_prompt(&mut self, timeout: Duration) -> Result<String> {
        let start = self.seen;
        match self.output.wait_for(PROMPT, start, timeout) {
            Some(end) => {
                self.seen = end;
                let text = self.output.text();
                Ok(text
                    .get(start..end - PROMPT.len())
                    .unwrap_or_default()
                    .to_owned())
            }
            None => bail!(
                "gdb did not come back within {timeout:?}; its output so far:\n{}",
                self.output.text()
            ),
        }
    }

    /// Runs one command and returns what it printed (up to the next prompt).
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<String> {
        writeln!(self.stdin, "{command}").context("gdb's stdin is closed")?;
        self.stdin.flush()?;
        self.wait_prompt(timeout)
            .with_context(|| format!("while running {command:?}"))
    }

    /// Waits until gdb prints `needle` (after everything `run` returned so far), e.g. the stop
    /// report of a `continue &` that was interrupted.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let start = self.seen;
        match self.output.wait_for(needle, start, timeout) {
            Some(end) => {
                let text = self.output.text();
                // Also swallow the prompt that follows the event, if it came.
                self.seen = end;
                Ok(text.get(start..end).unwrap_or_default().to_owned())
            }
            None => bail!(
                "gdb never printed {needle:?}; its output so far:\n{}",
                self.output.text()
            ),
        }
    }

    /// Everything gdb printed.
    pub fn transcript(&self) -> String {
        self.output.text()
    }

    /// Quits gdb (detaching if still attached) and returns the whole transcript.
    pub fn quit(mut self) -> String {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output.text()
    }
}

impl Drop for Gdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
