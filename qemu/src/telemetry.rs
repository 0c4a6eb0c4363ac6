//! The kernel's telemetry snapshots (docs/telemetry.md): the format, re-exported from
//! `cadenza_abi::telemetry`, and a socket client.
//!
//! With `telemetry=ttyS2` on its command line the kernel answers one request line on that UART
//! (`snapshot`, `scan`, or `detail PID`) with one snapshot: a versioned, line-based
//! `kind key=value` text format. The record types, the encoder the kernel writes with and the
//! decoder (`Snapshot::parse`) live in `cadenza-abi`, shared with the kernel so the two sides
//! cannot drift; they are re-exported here so the host tools and tests keep one import path.
//! This module adds what needs `std`: `TelemetryClient` talks to the UART through QEMU's
//! unix-socket chardev (`SerialBackend::Unix`) with a timeout on every request.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use cadenza_abi::telemetry::*;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the telemetry socket {path}: {source} (is QEMU running with telemetry=ttyS<n> on that port?)"
    )]
    Connect { path: PathBuf, source: io::Error },
    #[error("telemetry I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("no complete answer to {request:?} within {timeout:?} ({received} bytes received)")]
    Timeout {
        request: String,
        timeout: Duration,
        received: usize,
    },
    #[error("the telemetry socket closed (did the guest exit?)")]
    Closed,
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// A connection to the kernel's telemetry UART through QEMU's unix-socket chardev.
pub struct TelemetryClient {
    stream: UnixStream,
    pending: Vec<u8>,
}

impl TelemetryClient {
    /// Connects, retrying until `timeout` while QEMU has not created the socket yet.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let deadline = Instant::now() + timeout;
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Ok(Self {
                        stream,
                        pending: Vec::new(),
                    });
                }
                Err(source) if Instant::now() >= deadline => {
                    return Err(ClientError::Connect {
                        path: path.to_path_buf(),
                        source,
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends one request line and returns the raw answer: the lines from `telemetry-begin` to
    /// `telemetry-end`, or a `telemetry-error` line.
    pub fn request_text(
        &mut self,
        request: &str,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let deadline = Instant::now() + timeout;
        self.stream.write_all(format!("{request}\n").as_bytes())?;
        self.stream.flush()?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(answer) = self.take_answer() {
                return Ok(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout {
                    request: request.to_string(),
                    timeout,
                    received: self.pending.len(),
                });
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A complete answer at the front of the buffer, if one has arrived (bytes before it —
    /// the tail of an answer nobody waited for — are dropped with it).
    fn take_answer(&mut self) -> Option<String> {
        let mut start = None;
        let mut offset = 0;
        while let Some(newline) = self.pending[offset..].iter().position(|&b| b == b'\n') {
            let end = offset + newline + 1;
            let line = &self.pending[offset..end];
            let answer = if line.starts_with(ERROR.as_bytes()) && start.is_none() {
                Some(offset)
            } else if line.starts_with(BEGIN.as_bytes()) {
                start = Some(offset);
                None
            } else if line.starts_with(END.as_bytes()) {
                start
            } else {
                None
            };
            if let Some(from) = answer {
                let text = String::from_utf8_lossy(&self.pending[from..end]).into_owned();
                self.pending.drain(..end);
                return Some(text);
            }
            offset = end;
        }
        None
    }

    /// Requests and parses one snapshot.
    pub fn request(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Snapshot, ClientError> {
        let text = self.request_text(&request.line(), timeout)?;
        Ok(Snapshot::parse(&text)?)
    }

    pub fn snapshot(&mut self, timeout: Duration) -> Result<Snapshot, ClientError> {
        self.request(Request::Snapshot, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot as the kernel writes it (trimmed to a few records), with a leak and sites.
    const SAMPLE: &str = "\
telemetry-begin version=1 seq=7
uptime ns=3004123456 jiffies=300 hz=100
frames total=65247 free=64500 used=747 kernel=244 heap=2 heap_meta=32 tracker=477
heap objects=3 bytes=200 footprint=8192 free_bytes=7920 internal_frag=72 external_frag=7920 allocs=10 frees=7 failed=0 large_objects=0 large_frames=0 large_bytes=0
classes count=2
class size=16 frames=1 live=1 free=255 requested=8 partial_frames=1 partial_free=255 empty_frames=0 full_frames=0
class size=128 frames=1 live=2 free=30 requested=192 partial_frames=1 partial_free=30 empty_frames=0 full_frames=0
tracker state=on objects=3 peak=5 capacity=32768 bytes=200 sites=4 site_capacity=1536 overhead=1953792 seq=10 mark=0 scans=1 unreferenced=1 untracked=0 allocs=10 frees=7
scan at_ns=3000000000 objects=3 unreferenced=1 new=1 root_bytes=264192 object_bytes=8 duration_ns=800000
sites count=1
site id=5 objects=2 bytes=144 allocs=2 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\" ret1=0xffffffff802352b0 sym1=\"<[u8; 4] as core::fmt::Debug>::fmt+0x60/0x798\" ret2=0x1234 sym2=\"?\"
leaks count=1 total=1
leak addr=0xffff80000050f000 size=72 seq=3 pid=0 comm=\"swapper/0\" jiffies=0 age_ms=3000 site=5 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\"
tasks count=0 total=0
telemetry-end seq=7 records=13
";

    #[test]
    fn client_reassembles_answers_from_a_stream() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut client = TelemetryClient {
            stream: ours,
            pending: Vec::new(),
        };
        let kernel = std::thread::spawn(move || {
            let mut theirs = theirs;
            let mut request = [0u8; 9];
            theirs.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"snapshot\n");
            // Stale bytes first, then the answer in small pieces.
            theirs
                .write_all(b"telemetry-end seq=6 records=1\n")
                .unwrap();
            for piece in SAMPLE.as_bytes().chunks(37) {
                theirs.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut request = [0u8; 9];
            theirs.read_exact(&mut request).unwrap();
            theirs
                .write_all(b"telemetry-error version=1 message=\"unknown request; use snapshot, scan or detail PID\"\n")
                .unwrap();
            theirs
        });
        let snapshot = client
            .snapshot(Duration::from_secs(10))
            .expect("a snapshot");
        assert_eq!(snapshot.seq, 7);
        match client.request(Request::Snapshot, Duration::from_secs(10)) {
            Err(ClientError::Parse(ParseError::Kernel(message))) => {
                assert!(message.starts_with("unknown request"), "{message}")
            }
            other => panic!("expected the kernel's error, got {other:?}"),
        }
        let _theirs = kernel.join().unwrap();
        let timeout = client.request_text("snapshot", Duration::from_millis(100));
        assert!(
            matches!(timeout, Err(ClientError::Timeout { .. })),
            "{timeout:?}"
        );
    }

    #[test]
    fn connect_reports_a_missing_socket() {
        let error =
            TelemetryClient::connect("/nonexistent/telemetry.sock", Duration::from_millis(50))
                .err()
                .expect("must fail");
        assert!(
            error.to_string().contains("/nonexistent/telemetry.sock"),
            "{error}"
        );
    }
}
