//! The telemetry channel, TUI side: a background thread that polls the kernel for snapshots
//! over `cadenza_qemu::telemetry::TelemetryClient`, and the few things the TUI needs that the
//! client does not give.
//!
//! Why a thread: a request waits for the guest's UART, which under TCG (or while gdb holds the
//! kernel stopped) can take seconds or never answer. The UI thread only ever `try_recv`s the
//! worker's events, so the screen stays live whatever the kernel does; user actions (scan,
//! mark) go to the worker through a channel and are served before the next periodic poll.
//!
//! Adapters (things `cadenza_qemu::telemetry` does not provide, kept here rather than changing
//! that crate):
//! - **mark**: telemetry v1 has no `mark` request (the kernel's kmemleak `mark` command is not
//!   wired to the UART). The worker asks anyway — a kernel that learns it answers with a
//!   snapshot — and when the kernel refuses, the TUI keeps the mark itself: a baseline snapshot
//!   that the memory pane diffs against (`MarkBaseline`).
//!
//! Fields a newer kernel adds to `task` records need no adapter: the decoder keeps them
//! (`Task::extra`), and `extra_columns` turns them into the processes pane's columns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use cadenza_qemu::telemetry::{ClientError, ERROR, ParseError, Snapshot, Task, TelemetryClient};

/// How often the worker asks for a snapshot (the issue asks for at least 2 per second).
pub const POLL_INTERVAL: Duration = Duration::from_millis(400);
/// How long one request may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for QEMU to create the socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the user asked the kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TelemetryCommand {
    /// Run a leak scan now (the answer's `leak` records are its result).
    Scan,
    /// Mark the current allocation sequence number.
    Mark,
    /// Which process the user is looking at: polls then ask for its memory map and kernel
    /// stack (`detail PID`) instead of a plain snapshot.
    Focus(Option<u32>),
}

/// Which request an answer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    Poll,
    Scan,
    Mark,
}

impl Answered {
    fn line(self, focus: Option<u32>) -> String {
        match (self, focus) {
            (Self::Poll, Some(pid)) => format!("detail {pid}"),
            (Self::Poll, None) => "snapshot".into(),
            (Self::Scan, _) => "scan".into(),
            (Self::Mark, _) => "mark".into(),
        }
    }
}

#[derive(Debug)]
pub enum TelemetryEvent {
    Connected,
    Snapshot {
        snapshot: Box<Snapshot>,
        raw: String,
        answered: Answered,
    },
    /// The kernel answered `telemetry-error` (e.g. a request it does not know).
    Refused {
        answered: Answered,
        message: String,
    },
    /// A request failed but the channel is still open (timeout, unparsable answer).
    Error(String),
    /// The channel is gone (QEMU exited, or the socket never came up); the worker has stopped.
    Closed(String),
}

/// The polling thread. Dropping it asks the thread to stop (it finishes its current request).
pub struct TelemetryWorker {
    commands: Sender<TelemetryCommand>,
    events: Receiver<TelemetryEvent>,
    stop: Arc<AtomicBool>,
}

impl TelemetryWorker {
    /// Starts polling `socket` every `interval`, giving QEMU `connect_timeout` to create it.
    pub fn start(socket: PathBuf, interval: Duration, connect_timeout: Duration) -> Self {
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        std::thread::Builder::new()
            .name("telemetry".into())
            .spawn(move || {
                run(
                    &socket,
                    (interval, connect_timeout),
                    &command_rx,
                    &event_tx,
                    &stop_flag,
                )
            })
            .ok();
        Self {
            commands: command_tx,
            events: event_rx,
            stop,
        }
    }

    pub fn send(&self, command: TelemetryCommand) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Events that have arrived, without waiting.
    pub fn drain(&self) -> Vec<TelemetryEvent> {
        self.events.try_iter().collect()
    }
}

impl Drop for TelemetryWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(
    socket: &std::path::Path,
    (interval, connect_timeout): (Duration, Duration),
    commands: &Receiver<TelemetryCommand>,
    events: &Sender<TelemetryEvent>,
    stop: &AtomicBool,
) {
    let mut client = match TelemetryClient::connect(socket, connect_timeout) {
        Ok(client) => client,
        Err(error) => {
            let _ = events.send(TelemetryEvent::Closed(error.to_string()));
            return;
        }
    };
    if events.send(TelemetryEvent::Connected).is_err() {
        return;
    }
    let mut next_poll = Instant::now();
    let mut focus = None;
    // Cleared when the kernel refuses `detail` (one without it): polls stay plain snapshots.
    let mut detail_supported = true;
    while !stop.load(Ordering::Relaxed) {
        let wait = next_poll.saturating_duration_since(Instant::now());
        let answered = match commands.recv_timeout(wait) {
            Ok(TelemetryCommand::Scan) => Answered::Scan,
            Ok(TelemetryCommand::Mark) => Answered::Mark,
            Ok(TelemetryCommand::Focus(pid)) => {
                focus = pid;
                continue;
            }
            Err(RecvTimeoutError::Timeout) => Answered::Poll,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if answered == Answered::Poll {
            next_poll = Instant::now() + interval;
        }
        let line = answered.line(focus.filter(|_| detail_supported));
        let event = match client.request_text(&line, REQUEST_TIMEOUT) {
            Ok(raw) if line.starts_with("detail ") && raw.contains(ERROR) => {
                detail_supported = false;
                next_poll = Instant::now();
                continue;
            }
            Ok(raw) => match Snapshot::parse(&raw) {
                Ok(snapshot) => TelemetryEvent::Snapshot {
                    snapshot: Box::new(snapshot),
                    raw,
                    answered,
                },
                Err(ParseError::Kernel(message)) => TelemetryEvent::Refused { answered, message },
                Err(error) => TelemetryEvent::Error(format!("unreadable snapshot: {error}")),
            },
            Err(error @ ClientError::Timeout { .. }) => TelemetryEvent::Error(error.to_string()),
            Err(error) => {
                let _ = events.send(TelemetryEvent::Closed(error.to_string()));
                return;
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// The host-side mark: where the heap stood when the user pressed `m`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkBaseline {
    /// The snapshot the mark was taken from.
    pub snapshot_seq: u64,
    /// The tracker's allocation sequence number at the mark.
    pub alloc_seq: u64,
    pub objects: u64,
    pub bytes: u64,
    pub allocs: u64,
    pub frees: u64,
    /// Live bytes per call site id.
    pub site_bytes: HashMap<u32, u64>,
    /// True when the kernel itself took the mark (a kernel that knows the `mark` request).
    pub by_kernel: bool,
}

impl MarkBaseline {
    pub fn from_snapshot(snapshot: &Snapshot, by_kernel: bool) -> Self {
        Self {
            snapshot_seq: snapshot.seq,
            alloc_seq: if by_kernel {
                snapshot.tracker.mark
            } else {
                snapshot.tracker.seq
            },
            objects: snapshot.heap.objects,
            bytes: snapshot.heap.bytes,
            allocs: snapshot.heap.allocs,
            frees: snapshot.heap.frees,
            site_bytes: snapshot.sites.iter().map(|s| (s.id, s.bytes)).collect(),
            by_kernel,
        }
    }

    /// What changed since the mark, as (live objects, live bytes, allocations, frees).
    pub fn delta(&self, now: &Snapshot) -> (i64, i64, u64, u64) {
        (
            signed_diff(now.heap.objects, self.objects),
            signed_diff(now.heap.bytes, self.bytes),
            now.heap.allocs.saturating_sub(self.allocs),
            now.heap.frees.saturating_sub(self.frees),
        )
    }

    /// Live bytes a call site gained since the mark (its whole size if it is new).
    pub fn site_delta(&self, id: u32, bytes: u64) -> i64 {
        signed_diff(bytes, self.site_bytes.get(&id).copied().unwrap_or(0))
    }
}

fn signed_diff(now: u64, then: u64) -> i64 {
    let diff = i128::from(now) - i128::from(then);
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

/// The union of the tasks' extra field names (`Task::extra`: fields a newer kernel adds), in
/// first-seen order by pid (the processes pane's columns).
pub fn extra_columns(tasks: &[Task]) -> Vec<String> {
    let mut by_pid: Vec<&Task> = tasks.iter().filter(|t| !t.extra.is_empty()).collect();
    by_pid.sort_by_key(|t| t.pid);
    let mut columns: Vec<String> = Vec::new();
    for task in by_pid {
        for (name, _) in &task.extra {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_task_fields_become_columns_in_pid_order() {
        let task = |pid: u32, extra: &[(&str, &str)]| Task {
            pid,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Task::default()
        };
        let tasks = [
            task(3, &[("note", "two words")]),
            task(2, &[]),
            task(1, &[("cpu_ns", "1200"), ("rss", "0x3000")]),
        ];
        assert_eq!(extra_columns(&tasks), ["cpu_ns", "rss", "note"]);
    }

    #[test]
    fn mark_baseline_diffs_heap_and_sites() {
        let mut snapshot = Snapshot::default();
        snapshot.heap.objects = 10;
        snapshot.heap.bytes = 1000;
        snapshot.heap.allocs = 50;
        snapshot.tracker.seq = 77;
        snapshot.sites.push(cadenza_qemu::telemetry::CallSite {
            id: 4,
            bytes: 100,
            ..Default::default()
        });
        let mark = MarkBaseline::from_snapshot(&snapshot, false);
        assert_eq!(mark.alloc_seq, 77);
        snapshot.heap.objects = 7;
        snapshot.heap.bytes = 1500;
        snapshot.heap.allocs = 60;
        snapshot.heap.frees = 13;
        assert_eq!(mark.delta(&snapshot), (-3, 500, 10, 13));
        assert_eq!(mark.site_delta(4, 164), 64);
        assert_eq!(mark.site_delta(9, 32), 32);
    }

    #[test]
    fn worker_reports_a_missing_socket_and_stops() {
        let worker = TelemetryWorker::start(
            "/nonexistent/dir/t.sock".into(),
            POLL_INTERVAL,
            Duration::from_millis(100),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = worker.drain();
            if let Some(TelemetryEvent::Closed(message)) = events.first() {
                assert!(message.contains("/nonexistent/dir/t.sock"), "{message}");
                break;
            }
            assert!(Instant::now() < deadline, "no Closed event");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn snapshot_text(seq: u64, scans: u64) -> String {
        let mut snapshot = Snapshot {
            version: 1,
            seq,
            ..Default::default()
        };
        snapshot.tracker.state = "on".into();
        snapshot.tracker.scans = scans;
        snapshot.to_text()
    }

    #[test]
    fn worker_polls_serves_commands_and_reports_refusals() {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // A fake kernel: snapshots for `snapshot` and `scan`, an error line for anything else.
        let kernel = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut seq = 0;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let answer = match line.as_str() {
                    "snapshot" | "scan" => {
                        seq += 1;
                        snapshot_text(seq, u64::from(line == "scan"))
                    }
                    _ => "telemetry-error version=1 message=\"unknown request; use snapshot, scan or detail PID\"\n"
                        .to_string(),
                };
                if writer.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let worker =
            TelemetryWorker::start(path, Duration::from_millis(50), Duration::from_secs(5));
        assert!(worker.send(TelemetryCommand::Mark));
        assert!(worker.send(TelemetryCommand::Scan));
        let (mut connected, mut polls, mut refused_mark, mut scanned) = (false, 0, false, false);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(connected && polls >= 2 && refused_mark && scanned) {
            assert!(Instant::now() < deadline, "events missing");
            for event in worker.drain() {
                match event {
                    TelemetryEvent::Connected => connected = true,
                    TelemetryEvent::Snapshot {
                        answered: Answered::Poll,
                        ..
                    } => polls += 1,
                    TelemetryEvent::Snapshot {
                        answered: Answered::Scan,
                        snapshot,
                        ..
                    } => scanned = snapshot.tracker.scans == 1,
                    TelemetryEvent::Refused {
                        answered: Answered::Mark,
                        message,
                    } => refused_mark = message.starts_with("unknown request"),
                    other => panic!("unexpected {other:?}"),
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(worker);
        kernel.join().unwrap();
    }
}
